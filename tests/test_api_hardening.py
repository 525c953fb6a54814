"""What a hostile client found against ``qa serve`` (issue 13), each hole checked against a real
server: uploads whose names clash or are too long, unpaired surrogates in chat requests, DNS
rebinding and cross-site requests (Host and Origin checks, the chat at "/" included), the
``finish_reason`` of streamed chunks, HEAD health checks, and a property-based run of
schemathesis over every /v1 operation of the open server.

Two servers serve the module: ``open_url`` over the seed article without a key, and
``keyed_url`` with a key, an extra allowed host and a vector store that is not running, so it
never becomes ready (which is what its HEAD /readyz must say).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from openai import OpenAI

from _api_data import SEED_QUESTION, assert_error, build_index, server_sent_events
from _live import free_port, qa_server
from _spec_fuzz import fuzz_against_spec
from conftest import SEED_FILE
from qa._articles import article_id_for

API_KEY = "hardening-key-0b7e41"
PROXY_NAME = "qa.example.org"
EVIL_ORIGIN = "http://evil.example"
SEED_ID = article_id_for(SEED_FILE)
JSON = {"content-type": "application/json"}
# Per operation and mode; a longer run by hand: QA_API_FUZZ_EXAMPLES=400.
SCHEMATHESIS_EXAMPLES = int(os.environ.get("QA_API_FUZZ_EXAMPLES", "40"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hardening")


@pytest.fixture(scope="module")
def upload_dir(folder: Path) -> Path:
    return folder / "uploads"


@pytest.fixture(scope="module")
def server_log(folder: Path) -> Path:
    return folder / "open-server.log"


@pytest.fixture(scope="module")
def open_url(folder: Path, upload_dir: Path, server_log: Path) -> Iterator[str]:
    index_dir = build_index(folder / "open", with_towns=False)
    env = {"QA_API_KEY": "", "QA_UI_PASSWORD": ""}
    with qa_server(index_dir, upload_dir, env=env, log=server_log, wait_for="/readyz") as url:
        yield url


@pytest.fixture(scope="module")
def keyed_url(folder: Path) -> Iterator[str]:
    nobody_listens = {"QA_VECTOR_STORE_MODE": "http", "QA_VECTOR_STORE_HOST": "127.0.0.1",
                      "QA_VECTOR_STORE_PORT": str(free_port()), "QA_VECTOR_STORE_TIMEOUT_S": "2"}
    env = {"QA_API_KEY": API_KEY, "QA_UI_PASSWORD": "", "QA_SERVER_ALLOWED_HOSTS": f"{PROXY_NAME}, 10.9.8.7",
           **nobody_listens}
    with qa_server(folder / "keyed-index", env=env, log=folder / "keyed-server.log") as url:
        yield url


@pytest.fixture
def http(open_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=open_url, timeout=60) as client:
        yield client


def port_of(url: str) -> int:
    return httpx.URL(url).port


def article(title: str, subject: str) -> bytes:
    return (f"{title}\n\nThe town council said on Monday that {subject} would be finished before the winter "
            f"festival, according to the minutes of the meeting.\n").encode()


def upload(http: httpx.Client, name: str, content: bytes, **params) -> httpx.Response:
    return http.post("/v1/documents", params=params, files={"files": (name, content, "text/plain")})


def indexed_ids(http: httpx.Client) -> set[str]:
    return {d["id"] for d in http.get("/v1/documents").json()["documents"]}


def delete_all(http: httpx.Client, ids: list[str]) -> None:
    for document_id in ids:
        assert http.delete(f"/v1/documents/{document_id}").status_code == 200


# -- uploads: names ----------------------------------------------------------------------


def test_a_300_character_name_is_saved_shortened(http: httpx.Client, upload_dir: Path) -> None:
    name = "Über die Brücke von Köln, eine Reportage " * 8 + ".txt"
    assert len(name) > 300
    response = upload(http, name, article("Bridge Report", "the new bridge"))
    assert response.status_code == 201, response.text
    [saved] = response.json()["files"]
    assert saved["name"] == name and saved["status"] == "added"
    assert saved["saved_as"].startswith("Über die Brücke von Köln") and saved["saved_as"].endswith(".txt")
    assert len(saved["saved_as"].encode()) < 255
    assert (upload_dir / saved["saved_as"]).is_file()
    [document] = response.json()["documents"]
    assert (document["id"], document["doc"]) == (saved["id"], saved["saved_as"])
    delete_all(http, [saved["id"]])
    assert not (upload_dir / saved["saved_as"]).exists()


def test_names_in_other_scripts_stay_two_articles(http: httpx.Client) -> None:
    japan = upload(http, "日本.txt", article("Japan Report", "the harbour crane"))
    china = upload(http, "中国.txt", article("China Report", "the railway station"))
    assert japan.status_code == china.status_code == 201, (japan.text, china.text)
    [japan_file], [china_file] = japan.json()["files"], china.json()["files"]
    assert (japan_file["saved_as"], china_file["saved_as"]) == ("日本.txt", "中国.txt")
    assert japan_file["id"] != china_file["id"]
    assert {japan_file["id"], china_file["id"]} <= indexed_ids(http)
    assert http.get(f"/v1/documents/{japan_file['id']}").json()["title"] == "Japan Report"
    delete_all(http, [japan_file["id"], china_file["id"]])


def test_names_made_safe_alike_never_silently_replace_each_other(http: httpx.Client, upload_dir: Path) -> None:
    first = upload(http, "$(id).txt", article("First Notice", "the library roof"))
    assert first.status_code == 201, first.text
    [original] = first.json()["files"]
    assert original["saved_as"] == "_id_.txt"
    before = http.get(f"/v1/documents/{original['id']}").json()

    other = article("Second Notice", "the swimming pool")
    error = assert_error(upload(http, "`id`.txt", other), 409, "upload_conflict")
    assert "on_conflict=rename" in error["message"]
    assert http.get(f"/v1/documents/{original['id']}").json() == before
    assert sorted(p.name for p in upload_dir.iterdir()) == ["_id_.txt"]

    renamed = upload(http, "`id`.txt", other, on_conflict="rename")
    assert renamed.status_code == 201, renamed.text
    [kept] = renamed.json()["files"]
    assert kept["saved_as"] == "_id_ (2).txt" and kept["status"] == "added"
    assert "_id_.txt" in kept["note"] and kept["id"] != original["id"]
    assert http.get(f"/v1/documents/{original['id']}").json() == before
    assert {original["id"], kept["id"]} <= indexed_ids(http)

    replaced = upload(http, "$(id).txt", article("Third Notice", "the bus depot"), on_conflict="replace")
    assert replaced.status_code == 201, replaced.text
    [update] = replaced.json()["files"]
    assert (update["id"], update["status"], update["saved_as"]) == (original["id"], "updated", "_id_.txt")
    assert http.get(f"/v1/documents/{original['id']}").json()["title"] == "Third Notice"
    delete_all(http, [original["id"], kept["id"]])


def test_on_conflict_takes_only_its_three_values(http: httpx.Client) -> None:
    error = assert_error(upload(http, "whatever.txt", article("Any", "the park"), on_conflict="merge"),
                         422, "invalid_request")
    assert "on_conflict" in error["message"]
    assert "whatever.txt" not in {d["doc"] for d in http.get("/v1/documents").json()["documents"]}


def test_openapi_documents_on_conflict_and_the_files_list(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    [parameter] = spec["paths"]["/v1/documents"]["post"]["parameters"]
    assert parameter["name"] == "on_conflict" and parameter["in"] == "query"
    assert parameter["schema"]["enum"] == ["refuse", "rename", "replace"]
    assert parameter["schema"]["default"] == "refuse" and "409" in parameter["description"]
    assert "409" in spec["paths"]["/v1/documents"]["post"]["responses"]
    response_schema = spec["components"]["schemas"]["UploadResponse"]
    assert set(response_schema["required"]) == {"files", "documents", "report"}
    assert set(spec["components"]["schemas"]["UploadedFileOut"]["properties"]) == {
        "name", "saved_as", "status", "id", "note"}


# -- unpaired surrogates -----------------------------------------------------------------

# Hand-written JSON: Python cannot encode a lone surrogate itself, but JSON can carry one.
SURROGATE_BODIES = {
    "last message": b'{"model": "news-qa", "messages": [{"role": "user", "content": "\\ud800 Russia"}]}',
    "content part": b'{"model": "news-qa", "messages": [{"role": "user", "content": '
                    b'[{"type": "text", "text": "Russia \\udfff"}]}]}',
    "earlier message": b'{"model": "news-qa", "messages": [{"role": "user", "content": "Russia? \\ud800"}, '
                       b'{"role": "assistant", "content": "It is."}, {"role": "user", "content": "Why?"}]}',
    "earlier answer": b'{"model": "news-qa", "messages": [{"role": "user", "content": "Russia?"}, '
                      b'{"role": "assistant", "content": "\\udc00"}, {"role": "user", "content": "Why?"}]}',
    "system message": b'{"model": "news-qa", "messages": [{"role": "system", "content": "\\ud800"}, '
                      b'{"role": "user", "content": "Why?"}]}',
    "message name": b'{"model": "news-qa", "messages": [{"role": "user", "name": "\\ud800", "content": "Why?"}]}',
    "streamed": b'{"model": "news-qa", "stream": true, "messages": [{"role": "user", "content": "\\ud800 Russia"}]}',
}


@pytest.mark.parametrize("body", SURROGATE_BODIES.values(), ids=SURROGATE_BODIES.keys())
def test_a_lone_surrogate_in_a_chat_request_is_a_422(http: httpx.Client, body: bytes) -> None:
    error = assert_error(http.post("/v1/chat/completions", content=body, headers=JSON), 422, "invalid_request")
    assert "surrogate" in error["message"] and "messages." in error["message"]


def test_a_surrogate_in_a_field_name_is_a_422(http: httpx.Client) -> None:
    response = http.post("/v1/ask", content=b'{"question": "Why?", "\\ud800x": 1}', headers=JSON)
    assert_error(response, 422, "invalid_request")


def test_an_unknown_model_with_a_surrogate_is_a_400(http: httpx.Client) -> None:
    body = b'{"model": "\\ud800", "messages": [{"role": "user", "content": "Why?"}]}'
    assert_error(http.post("/v1/chat/completions", content=body, headers=JSON), 400, "invalid_input")


# -- Host: DNS rebinding -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/documents", "/", "/config", "/healthz"])
def test_a_host_the_server_does_not_have_is_refused(http: httpx.Client, path: str) -> None:
    error = assert_error(http.get(path, headers={"Host": "evil.example"}), 421, "invalid_host")
    assert "allowed_hosts" in error["message"]


@pytest.mark.parametrize("host", ["localhost", "localhost:1234", "127.0.0.1:9", "[::1]:8000", "LOCALHOST"])
def test_loopback_names_are_served_on_any_port(http: httpx.Client, host: str) -> None:
    response = http.get("/v1/models", headers={"Host": host})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("host", ["evil.example:80", "127.0.0.2", PROXY_NAME, "127.0.0.1.evil.example"])
def test_names_like_the_servers_are_not_its_names(http: httpx.Client, host: str) -> None:
    assert_error(http.get("/v1/models", headers={"Host": host}), 421, "invalid_host")


@pytest.mark.parametrize("host", ["local host", "localhost:80:80", "[::1", "localhost:8o"])
def test_a_host_header_that_is_no_host_name_is_a_400(http: httpx.Client, host: str) -> None:
    assert_error(http.get("/v1/models", headers={"Host": host}), 400, "invalid_host")


def test_allowed_hosts_adds_names_and_keeps_loopback(keyed_url: str) -> None:
    with httpx.Client(base_url=keyed_url, timeout=30) as client:
        for host in (PROXY_NAME, f"{PROXY_NAME}:443", "10.9.8.7:8000", "localhost"):
            assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
        assert_error(client.get("/healthz", headers={"Host": "evil.example"}), 421, "invalid_host")


# -- Origin: cross-site requests ---------------------------------------------------------


def test_the_servers_own_pages_may_post(http: httpx.Client, open_url: str) -> None:
    port = port_of(open_url)
    own = http.post("/v1/ask", json={"question": SEED_QUESTION}, headers={"Origin": f"http://127.0.0.1:{port}"})
    assert own.status_code == 200 and own.json()["citations"], own.text
    by_name = http.post("/v1/ask", json={"question": SEED_QUESTION},
                        headers={"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"})
    assert by_name.status_code == 200, by_name.text


@pytest.mark.parametrize("origin", [EVIL_ORIGIN, "null", "http://127.0.0.1:1", "http://localhost"])
def test_another_sites_page_cannot_upload_or_delete(http: httpx.Client, upload_dir: Path, origin: str) -> None:
    refused_upload = http.post("/v1/documents", headers={"Origin": origin},
                               files={"files": ("planted.txt", article("Planted", "nothing"), "text/plain")})
    error = assert_error(refused_upload, 403, "forbidden_origin")
    assert "Origin" in error["message"]
    assert_error(http.delete(f"/v1/documents/{SEED_ID}", headers={"Origin": origin}), 403, "forbidden_origin")
    assert_error(http.post("/v1/ask", json={"question": SEED_QUESTION}, headers={"Origin": origin}),
                 403, "forbidden_origin")
    assert SEED_ID in indexed_ids(http)
    assert not (upload_dir / "planted.txt").exists()


def test_another_sites_page_may_still_read(http: httpx.Client) -> None:
    # Reading changes nothing, and without CORS headers the other site's script cannot see the answer.
    response = http.get("/v1/documents", headers={"Origin": EVIL_ORIGIN})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_the_chat_routes_are_guarded_too(http: httpx.Client, open_url: str) -> None:
    assert_error(http.post("/gradio_api/queue/join", json={}, headers={"Origin": EVIL_ORIGIN}),
                 403, "forbidden_origin")
    own = http.post("/gradio_api/queue/join", json={}, headers={"Origin": f"http://127.0.0.1:{port_of(open_url)}"})
    assert own.status_code != 403 and "forbidden_origin" not in own.text


def test_with_a_key_the_key_guards_v1_and_origin_still_guards_the_chat(keyed_url: str) -> None:
    keyed = {"Authorization": f"Bearer {API_KEY}", "Origin": EVIL_ORIGIN}
    with httpx.Client(base_url=keyed_url, timeout=30) as client:
        # Past the guard: the store behind this server is down, so the answer is its 503.
        assert_error(client.post("/v1/ask", json={"question": SEED_QUESTION}, headers=keyed),
                     503, "store_unavailable")
        assert_error(client.post("/v1/ask", json={"question": SEED_QUESTION}, headers={"Origin": EVIL_ORIGIN}),
                     401, "unauthorized")
        assert_error(client.post("/gradio_api/queue/join", json={}, headers={"Origin": EVIL_ORIGIN}),
                     403, "forbidden_origin")
        # A page served under a configured name (a proxy's) is the server's own.
        proxied = client.post("/gradio_api/queue/join", json={}, headers={"Origin": f"https://{PROXY_NAME}"})
        assert proxied.status_code != 403 and "forbidden_origin" not in proxied.text


# -- streamed chat chunks ----------------------------------------------------------------


def test_every_chunk_but_the_last_says_finish_reason_null(http: httpx.Client, open_url: str) -> None:
    response = http.post("/v1/chat/completions", json={
        "model": "news-qa", "stream": True, "messages": [{"role": "user", "content": SEED_QUESTION}]})
    assert response.status_code == 200, response.text
    data = [payload for _, payload in server_sent_events(response.text)]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in data[:-1]]
    assert len(chunks) > 3
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"]
    assert all("citations" not in c for c in chunks[:-1])

    client = OpenAI(base_url=f"{open_url}/v1", api_key="unused", max_retries=0)
    streamed = list(client.chat.completions.create(
        model="news-qa", stream=True, messages=[{"role": "user", "content": SEED_QUESTION}]))
    # The client reads an absent field as None too; only a sent null is in the fields set.
    assert all("finish_reason" in c.choices[0].model_fields_set and c.choices[0].finish_reason is None
               for c in streamed[:-1])
    assert streamed[-1].choices[0].finish_reason == "stop"


# -- HEAD health checks ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_head_health_checks_answer_like_get(http: httpx.Client, path: str) -> None:
    got, head = http.get(path), http.head(path)
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


def test_head_readyz_of_an_unready_server_is_a_503(keyed_url: str) -> None:
    with httpx.Client(base_url=keyed_url, timeout=30) as client:
        assert client.head("/healthz").status_code == 200
        head = client.head("/readyz")
        assert head.status_code == 503 and head.content == b""
        assert_error(client.get("/readyz"), 503, "not_ready")


# -- the whole API against its spec ------------------------------------------------------


def test_open_api_against_its_openapi_spec(open_url: str) -> None:
    """Schemathesis sends schema-valid and schema-violating requests to every operation of the
    server without a key (derandomized, so every run sends the same cases): no 5xx, and status,
    content type, headers and bodies as the spec says."""
    cases_run, operations, failures = fuzz_against_spec(open_url, SCHEMATHESIS_EXAMPLES, "schemathesis-open.txt")
    assert set(operations) >= {"POST /v1/documents", "DELETE /v1/documents/{document_id}", "POST /v1/chat/completions"}
    assert not failures, "\n\n".join(failures[:5])
    assert cases_run >= 10 * len(operations)


def test_no_request_reached_the_catch_all_handler(http: httpx.Client, server_log: Path) -> None:
    http.get("/healthz")
    log = server_log.read_text(encoding="utf-8", errors="replace")
    assert "GET /healthz" in log
    assert "Traceback" not in log and "unexpected" not in log
