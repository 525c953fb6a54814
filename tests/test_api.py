"""The HTTP API over a real ``qa serve`` (uvicorn on a free loopback port), without an API key.

One index (the seed article and twenty look-alike town articles) and one server serve the
whole module; tests that upload articles delete them again. Called with plain HTTP
(httpx) and with the official ``openai`` client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest
from openai import OpenAI

from _api_data import (
    SEED_PARAGRAPH, SEED_PHRASE, SEED_QUESTION, TOWN_PARAGRAPH, TOWNS, ask_events, assert_error, build_index,
    server_sent_events, town_file, town_question,
)
from _live import qa_server
from conftest import REPO, SEED_FILE
from qa import AskResponse, LLMError, source_text
from qa._api import _ask_events, _completion_events
from qa._articles import article_id_for
from qa._service import AnswerDelta, AnswerDone

UPLOAD_LIMIT = 300_000
FOLLOW_UP = "Where have they already been placed?"
JSON = {"content-type": "application/json"}
ANSWER_FIELDS = {"question", "standalone_question", "answer", "abstained", "citations", "related",
                 "retrieved", "timings", "mode", "notice", "unsupported", "citation_check"}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_index(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def upload_dir(index_dir: Path) -> Path:
    return index_dir.parent / "uploads"


@pytest.fixture(scope="module")
def server_log(index_dir: Path) -> Path:
    return index_dir.parent / "server.log"


@pytest.fixture(scope="module")
def base_url(index_dir: Path, upload_dir: Path, server_log: Path) -> Iterator[str]:
    # Blank values switch auth off even when the developer's shell sets them.
    env = {"QA_API_KEY": "", "QA_UI_PASSWORD": "", "QA_SERVER_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}
    with qa_server(index_dir, upload_dir, env=env, log=server_log, wait_for="/readyz") as url:
        yield url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        yield client


@pytest.fixture
def chat(base_url: str) -> OpenAI:
    return OpenAI(base_url=f"{base_url}/v1", api_key="no-key-needed", max_retries=0)


def ask(http: httpx.Client, question: str, **fields) -> dict:
    response = http.post("/v1/ask", json={"question": question, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def without_timings(answer: dict) -> dict:
    return {key: value for key, value in answer.items() if key != "timings"}


def seed_document_id(http: httpx.Client) -> str:
    documents = http.get("/v1/documents").json()["documents"]
    return next(d["id"] for d in documents if d["doc"] == SEED_FILE.name)


# -- health and schema -------------------------------------------------------------------


def test_health_and_readiness(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "documents": http.get("/v1/documents").json()["count"]}
    assert ready.json()["documents"] >= 1 + len(TOWNS)


def test_openapi_documents_every_endpoint_and_the_error_shape(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    operations = {(method.upper(), path) for path, methods in spec["paths"].items() for method in methods}
    assert operations == {
        ("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/v1/ask"), ("POST", "/v1/ask/stream"),
        ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/v1/documents"),
        ("POST", "/v1/documents"), ("GET", "/v1/documents/{document_id}"),
        ("DELETE", "/v1/documents/{document_id}"),
    }
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, methods in spec["paths"].items():
        for operation in methods.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"] == {"application/json": {"schema": error_ref}}, (path, status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert "citations" in spec["components"]["schemas"]["ChatCompletion"]["properties"]
    assert "securitySchemes" not in spec["components"]  # no key set: nothing to send


# -- asking ------------------------------------------------------------------------------


def test_ask_returns_the_same_object_as_the_cli(http: httpx.Client, index_dir: Path) -> None:
    answer = ask(http, SEED_QUESTION)
    assert set(answer) == set(AskResponse.model_fields)
    assert answer["abstained"] is False and "[1]" in answer["answer"] and SEED_PHRASE in answer["answer"]
    citation = answer["citations"][0]
    assert (citation["n"], citation["doc"], citation["paragraph"]) == (1, SEED_FILE.name, SEED_PARAGRAPH)
    assert source_text(SEED_FILE)[citation["start"]:citation["end"]] == citation["text"]

    cli = subprocess.run([sys.executable, "-m", "qa.cli", "ask", SEED_QUESTION, "--json"], cwd=REPO,
                         env={**os.environ, "QA_INDEX_DIR": str(index_dir)},
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert without_timings(json.loads(cli.stdout)) == without_timings(answer)


@pytest.mark.parametrize(("path", "extra"), [("/v1/ask/stream", {}), ("/v1/ask", {"stream": True})])
def test_streamed_answer_is_deltas_then_citations_then_done(http: httpx.Client, path: str, extra: dict) -> None:
    deltas, sources, done = ask_events(http.post(path, json={"question": SEED_QUESTION, **extra}))
    assert len(deltas) > 5
    assert "".join(deltas) == done["answer"]
    assert sources == {"citations": done["citations"], "abstained": False, "related": []}
    assert done["citations"][0]["paragraph"] == SEED_PARAGRAPH
    assert without_timings(done) == without_timings(ask(http, SEED_QUESTION))


def _answer_that_fails_midway() -> Iterator[AnswerDelta | AnswerDone]:
    yield AnswerDelta("The ")
    raise LLMError("the model stopped answering")


def test_a_stream_that_fails_midway_ends_with_an_error_event() -> None:
    error = {"error": {"type": "llm_error", "message": "the model stopped answering"}}
    ask_stream = b"".join(_ask_events(_answer_that_fails_midway())).decode()
    assert [(name, json.loads(data)) for name, data in server_sent_events(ask_stream)] == [
        ("delta", {"text": "The "}), ("error", error)]
    chat_stream = b"".join(_completion_events(_answer_that_fails_midway(), "chatcmpl-1", "news-qa")).decode()
    events = [json.loads(data) for _, data in server_sent_events(chat_stream)]
    assert events[-1] == error and events[-2]["choices"][0]["delta"] == {"content": "The "}
    assert "[DONE]" not in chat_stream


def test_follow_up_reads_the_history(http: httpx.Client) -> None:
    first = ask(http, SEED_QUESTION)
    alone = ask(http, FOLLOW_UP)
    assert alone["standalone_question"] == FOLLOW_UP
    history = [{"role": "user", "content": SEED_QUESTION}, {"role": "assistant", "content": first["answer"]}]
    follow_up = ask(http, FOLLOW_UP, history=history)
    assert SEED_QUESTION in follow_up["standalone_question"]
    assert "California" in follow_up["answer"]


@pytest.mark.parametrize("k", [1, 4])
def test_k_sets_how_many_paragraphs_are_read(http: httpx.Client, k: int) -> None:
    assert len(ask(http, SEED_QUESTION, k=k)["retrieved"]) == k


def test_unanswerable_question_abstains_with_related_paragraphs(http: httpx.Client) -> None:
    answer = ask(http, "What is the boiling point of mercury on Mars?", mode="extractive")
    assert answer["abstained"] is True and answer["citations"] == []
    assert answer["related"]


# -- OpenAI-compatible -------------------------------------------------------------------


def test_openai_client_lists_the_model_and_gets_a_cited_answer(chat: OpenAI) -> None:
    assert [model.id for model in chat.models.list()] == ["news-qa", "news-qa-extractive"]
    completion = chat.chat.completions.create(
        model="news-qa",
        messages=[{"role": "system", "content": "You answer from news articles."},
                  {"role": "user", "content": SEED_QUESTION}],
    )
    assert completion.object == "chat.completion" and completion.model == "news-qa"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert SEED_PHRASE in choice.message.content and "[1]" in choice.message.content
    citations = completion.model_extra["citations"]
    assert (citations[0]["n"], citations[0]["doc"], citations[0]["paragraph"]) == (1, SEED_FILE.name, SEED_PARAGRAPH)
    assert completion.model_extra["abstained"] is False
    assert completion.model_extra["unsupported"] == [] and completion.model_extra["notice"] is None


def test_openai_client_streams_the_same_answer(chat: OpenAI) -> None:
    messages = [{"role": "user", "content": SEED_QUESTION}]
    whole = chat.chat.completions.create(model="news-qa-extractive", messages=messages)
    chunks = list(chat.chat.completions.create(model="news-qa-extractive", messages=messages, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert len({c.id for c in chunks}) == 1 and chunks[0].object == "chat.completion.chunk"
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert final.model_extra["citations"] == whole.model_extra["citations"]
    assert final.model_extra["answer"] == whole.choices[0].message.content
    assert all(c.choices[0].finish_reason is None and "citations" not in (c.model_extra or {}) for c in chunks[:-1])


def test_openai_follow_up_with_content_parts(chat: OpenAI) -> None:
    first = chat.chat.completions.create(model="news-qa", messages=[{"role": "user", "content": SEED_QUESTION}])
    follow_up = chat.chat.completions.create(model="news-qa", messages=[
        {"role": "user", "content": SEED_QUESTION},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": [{"type": "text", "text": FOLLOW_UP}]},
    ])
    assert "California" in follow_up.choices[0].message.content


@pytest.mark.parametrize(("request_fields", "error_class", "error_type"), [
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": SEED_QUESTION}]},
     openai.BadRequestError, "invalid_input"),
    ({"model": "news-qa", "messages": [{"role": "user", "content": SEED_QUESTION},
                                       {"role": "assistant", "content": "An answer."}]},
     openai.BadRequestError, "invalid_input"),
    ({"model": "news-qa", "messages": [{"role": "user", "content": "  "}]},
     openai.UnprocessableEntityError, "invalid_question"),
    ({"model": "news-qa", "messages": [{"role": "user", "content": ""}], "stream": True},
     openai.UnprocessableEntityError, "invalid_question"),
    ({"model": "news-qa", "messages": []}, openai.UnprocessableEntityError, "invalid_request"),
], ids=["unknown model", "last message not the user's", "blank question", "blank question streamed",
        "no messages"])
def test_openai_client_sees_errors_as_api_errors(chat: OpenAI, request_fields: dict, error_class: type,
                                                 error_type: str) -> None:
    with pytest.raises(error_class) as caught:
        chat.chat.completions.create(**request_fields)
    assert caught.value.body["type"] == error_type
    assert caught.value.body["message"]


# -- documents ---------------------------------------------------------------------------


def test_documents_list_and_numbered_paragraphs_with_spans(http: httpx.Client) -> None:
    listing = http.get("/v1/documents").json()
    assert listing["count"] == len(listing["documents"])
    assert {town_file(town) for town, _ in TOWNS} | {SEED_FILE.name} <= {d["doc"] for d in listing["documents"]}

    detail = http.get(f"/v1/documents/{seed_document_id(http)}").json()
    assert detail["doc"] == SEED_FILE.name and detail["title"].startswith("Aegis Missile Defense System")
    numbers = [p["number"] for p in detail["paragraphs"]]
    assert numbers == list(range(1, len(numbers) + 1)) == list(range(1, detail["paragraph_count"] + 1))
    text = source_text(SEED_FILE)
    assert all(text[p["start"]:p["end"]] == p["text"] for p in detail["paragraphs"])
    assert SEED_PHRASE in detail["paragraphs"][SEED_PARAGRAPH - 1]["text"]


VELMORA = ("Velmora Harbour Report\n\n"
           "The Velmora harbour master announced that the new lighthouse will be painted saffron yellow this spring.\n\n"
           "Fishermen in Velmora welcomed the decision after a long and stormy winter on the coast.\n")
QUAYSIDE = ("# Quayside Market\n\n"
            "The Quayside market in Velmora will open on Sundays from June, selling smoked eel and samphire.\n")
VELMORA_QUESTION = "What colour will the Velmora lighthouse be painted?"


def test_upload_ask_reupload_and_delete(http: httpx.Client, upload_dir: Path) -> None:
    response = http.post("/v1/documents", files=[
        ("files", ("velmora.txt", VELMORA.encode(), "text/plain")),
        ("files", ("quayside.md", QUAYSIDE.encode(), "text/markdown")),
    ])
    assert response.status_code == 201, response.text
    uploaded = response.json()
    assert sorted(d["doc"] for d in uploaded["documents"]) == ["quayside.md", "velmora.txt"]
    assert sorted(uploaded["report"]["added"]) == ["quayside.md", "velmora.txt"]
    assert uploaded["report"]["skipped"] == []
    velmora = next(d for d in uploaded["documents"] if d["doc"] == "velmora.txt")
    assert velmora["paragraph_count"] == 2 and velmora["title"] == "Velmora Harbour Report"

    answer = ask(http, VELMORA_QUESTION)
    assert "saffron" in answer["answer"]
    assert answer["citations"][0]["article_id"] == velmora["id"] and answer["citations"][0]["paragraph"] == 1

    again = http.post("/v1/documents", files={"files": ("velmora.txt", VELMORA.encode(), "text/plain")})
    assert again.status_code == 201 and again.json()["report"]["unchanged"] == ["velmora.txt"]

    for document in uploaded["documents"]:
        deleted = http.delete(f"/v1/documents/{document['id']}")
        assert deleted.status_code == 200 and deleted.json()["deleted"]["id"] == document["id"]
        assert_error(http.get(f"/v1/documents/{document['id']}"), 404, "document_not_found")
        assert_error(http.delete(f"/v1/documents/{document['id']}"), 404, "document_not_found")
    assert not (upload_dir / "velmora.txt").exists() and not (upload_dir / "quayside.md").exists()
    assert all(c["article_id"] != velmora["id"] for c in ask(http, VELMORA_QUESTION)["citations"])


# -- bad input: always 4xx, always one shape ----------------------------------------------

LONG_BODY = b'{"question": "' + b"x" * 1_100_000 + b'"}'
BAD_REQUESTS = [
    ("malformed JSON", "POST", "/v1/ask", {"content": b'{"question": ', "headers": JSON}, 400, "invalid_json"),
    ("form instead of JSON", "POST", "/v1/ask", {"data": {"question": "why?"}}, 422, "invalid_request"),
    ("body not an object", "POST", "/v1/ask", {"json": ["why?"]}, 422, "invalid_request"),
    ("missing question", "POST", "/v1/ask", {"json": {}}, 422, "invalid_request"),
    ("empty question", "POST", "/v1/ask", {"json": {"question": ""}}, 422, "invalid_question"),
    ("blank question", "POST", "/v1/ask", {"json": {"question": " \n\t "}}, 422, "invalid_question"),
    ("over-long question", "POST", "/v1/ask", {"json": {"question": "why " * 501}}, 422, "invalid_question"),
    ("question not a string", "POST", "/v1/ask", {"json": {"question": 42}}, 422, "invalid_request"),
    ("unpaired surrogate", "POST", "/v1/ask", {"content": b'{"question": "why \\ud800?"}', "headers": JSON},
     422, "invalid_request"),
    ("k zero", "POST", "/v1/ask", {"json": {"question": "why?", "k": 0}}, 422, "invalid_request"),
    ("k too large", "POST", "/v1/ask", {"json": {"question": "why?", "k": 51}}, 422, "invalid_request"),
    ("k not an integer", "POST", "/v1/ask", {"json": {"question": "why?", "k": 2.5}}, 422, "invalid_request"),
    ("misspelt field", "POST", "/v1/ask", {"json": {"question": "why?", "histroy": []}}, 422, "invalid_request"),
    ("history turn of a system", "POST", "/v1/ask",
     {"json": {"question": "why?", "history": [{"role": "system", "content": "hi"}]}}, 422, "invalid_request"),
    ("llm mode not offered", "POST", "/v1/ask", {"json": {"question": "why?", "mode": "llm"}}, 400, "invalid_input"),
    ("unknown mode", "POST", "/v1/ask", {"json": {"question": "why?", "mode": "poetic"}}, 422, "invalid_request"),
    ("stream not a boolean", "POST", "/v1/ask", {"json": {"question": "why?", "stream": 1}}, 422, "invalid_request"),
    ("empty question streamed", "POST", "/v1/ask/stream", {"json": {"question": ""}}, 422, "invalid_question"),
    ("body over the limit", "POST", "/v1/ask", {"content": LONG_BODY, "headers": JSON}, 413, "payload_too_large"),
    ("chat without model", "POST", "/v1/chat/completions",
     {"json": {"messages": [{"role": "user", "content": "why?"}]}}, 422, "invalid_request"),
    ("chat message of unknown role", "POST", "/v1/chat/completions",
     {"json": {"model": "news-qa", "messages": [{"role": "oracle", "content": "why?"}]}}, 422, "invalid_request"),
    ("unknown document", "GET", "/v1/documents/0000000000000000", {}, 404, "document_not_found"),
    ("delete unknown document", "DELETE", "/v1/documents/0000000000000000", {}, 404, "document_not_found"),
    ("document id with a path", "GET", "/v1/documents/..%2F..%2Fetc%2Fpasswd", {}, 404, None),
    ("unknown endpoint", "GET", "/v1/answers", {}, 404, "not_found"),
    ("wrong method", "GET", "/v1/ask", {}, 405, "method_not_allowed"),
    ("upload without files", "POST", "/v1/documents", {"data": {"note": "nothing attached"}}, 422, "invalid_request"),
]


@pytest.mark.parametrize(("method", "path", "request_args", "status", "error_type"),
                         [case[1:] for case in BAD_REQUESTS], ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_in_the_error_shape(http: httpx.Client, method: str, path: str,
                                                   request_args: dict, status: int, error_type: str | None) -> None:
    assert_error(http.request(method, path, **request_args), status, error_type)


def test_wrong_method_names_the_allowed_ones(http: httpx.Client) -> None:
    response = http.put("/v1/documents")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"


ARTICLE = b"Escape Notes\n\nThis paragraph has more than enough words to be indexed as an article.\n"
BAD_UPLOADS = [
    ("parent folder", "../escape.txt", ARTICLE, 400),
    ("absolute path", "/etc/escape.txt", ARTICLE, 400),
    ("nested parent folder", "notes/../../escape.txt", ARTICLE, 400),
    ("drive letter", "C:escape.txt", ARTICLE, 400),
    ("unsupported type", "escape.pdf", ARTICLE, 415),
    ("no suffix", "escape", ARTICLE, 415),
    ("only a suffix", ".txt", ARTICLE, 415),
    ("oversized", "escape.txt", b"word " * (UPLOAD_LIMIT // 5 + 1), 413),
    ("empty", "escape.txt", b"", 422),
    ("binary", "escape.txt", bytes(range(256)) * 8, 422),
]


@pytest.mark.parametrize(("name", "content", "status"), [case[1:] for case in BAD_UPLOADS],
                         ids=[case[0] for case in BAD_UPLOADS])
def test_bad_uploads_are_refused_and_change_nothing(http: httpx.Client, upload_dir: Path, name: str,
                                                    content: bytes, status: int) -> None:
    before = http.get("/v1/documents").json()["count"]
    error = assert_error(http.post("/v1/documents", files={"files": (name, content, "text/plain")}), status,
                         "upload_rejected")
    assert str(upload_dir) not in error["message"]
    assert http.get("/v1/documents").json()["count"] == before
    assert not (upload_dir.parent / "escape.txt").exists() and not Path("/etc/escape.txt").exists()
    assert not (upload_dir / "escape.txt").exists()


def test_one_bad_name_rejects_the_whole_upload(http: httpx.Client, upload_dir: Path) -> None:
    response = http.post("/v1/documents", files=[
        ("files", ("fine.txt", ARTICLE, "text/plain")),
        ("files", ("../escape.txt", ARTICLE, "text/plain")),
    ])
    assert_error(response, 400, "upload_rejected")
    assert "fine.txt" not in {d["doc"] for d in http.get("/v1/documents").json()["documents"]}
    assert not (upload_dir / "fine.txt").exists()


def test_too_many_files_in_one_upload(http: httpx.Client) -> None:
    files = [("files", (f"part-{n}.txt", ARTICLE, "text/plain")) for n in range(21)]
    assert_error(http.post("/v1/documents", files=files), 400, "upload_rejected")


@pytest.mark.parametrize("name", ["C:\\escape.txt", "folder\\escape.txt"])
def test_backslash_names_never_leave_the_upload_folder(http: httpx.Client, upload_dir: Path, name: str) -> None:
    response = http.post("/v1/documents", files={"files": (name, ARTICLE, "text/plain")})
    # The multipart parser may already cut a Windows path down to its base name.
    if response.status_code == 201:
        document = response.json()["documents"][0]
        assert document["doc"] == "escape.txt" and (upload_dir / "escape.txt").exists()
        assert http.delete(f"/v1/documents/{document['id']}").status_code == 200
    else:
        assert_error(response, 400, "upload_rejected")
    assert not (upload_dir.parent / "escape.txt").exists()
    assert not list(upload_dir.parent.glob("*escape*"))


# -- concurrency -------------------------------------------------------------------------


def _answer_by(route: str, http: httpx.Client, chat: OpenAI, question: str) -> tuple[str, list]:
    if route == "ask":
        answer = ask(http, question)
        return answer["answer"], answer["citations"]
    if route == "stream":
        _, _, done = ask_events(http.post("/v1/ask/stream", json={"question": question}))
        return done["answer"], done["citations"]
    chunks = list(chat.chat.completions.create(model="news-qa", stream=True,
                                               messages=[{"role": "user", "content": question}]))
    return "".join(c.choices[0].delta.content or "" for c in chunks), chunks[-1].model_extra["citations"]


def test_twenty_concurrent_questions_each_get_their_own_answer(http: httpx.Client, chat: OpenAI) -> None:
    routes = ("ask", "stream", "chat")
    start_together = threading.Barrier(len(TOWNS))

    def answer(position: int) -> tuple[str, list]:
        town = TOWNS[position][0]
        start_together.wait(timeout=30)
        return _answer_by(routes[position % len(routes)], http, chat, town_question(town))

    with ThreadPoolExecutor(max_workers=len(TOWNS)) as pool:
        results = list(pool.map(answer, range(len(TOWNS))))
    for (town, item), (text, citations) in zip(TOWNS, results):
        assert item in text and town in text, (town, text)
        assert citations[0]["doc"] == town_file(town) and citations[0]["paragraph"] == TOWN_PARAGRAPH, citations


@dataclass(frozen=True)
class Observation:
    finished: float
    town: str
    cited_doc: str


LEDGER_PARAGRAPHS = 150


def _ledger() -> bytes:
    paragraphs = [f"Entry {n} of the Corvantis ledger records that warehouse {n} received {3 * n} crates of "
                  f"quillwort and {7 * n} barrels of tamarind syrup from the northern docks." for n in
                  range(1, LEDGER_PARAGRAPHS + 1)]
    return ("Corvantis Ledger\n\n" + "\n\n".join(paragraphs) + "\n").encode()


def test_ingest_beside_queries_neither_blocks_them_nor_shows_half_an_article(
        base_url: str, http: httpx.Client, upload_dir: Path) -> None:
    ledger_id = article_id_for(upload_dir / "ledger.txt")
    upload_result: dict[str, object] = {}
    uploaded = threading.Event()

    def upload() -> None:
        with httpx.Client(base_url=base_url, timeout=120) as client:
            upload_result["response"] = client.post("/v1/documents",
                                                    files={"files": ("ledger.txt", _ledger(), "text/plain")})
        upload_result["finished"] = time.monotonic()
        uploaded.set()

    uploader = threading.Thread(target=upload)
    uploader.start()
    # The file lands in the upload folder whole, just before it is indexed under the write lock.
    while not (upload_dir / "ledger.txt").exists() and not uploaded.is_set():
        time.sleep(0.005)  # polling interval; the loop checks the real state

    observations: list[Observation] = []
    while not uploaded.is_set():
        town = TOWNS[len(observations) % len(TOWNS)][0]
        answer = ask(http, town_question(town))
        observations.append(Observation(time.monotonic(), town, answer["citations"][0]["doc"]))
        seen = http.get(f"/v1/documents/{ledger_id}")
        if seen.status_code == 200:
            assert seen.json()["paragraph_count"] == len(seen.json()["paragraphs"]) == LEDGER_PARAGRAPHS
        else:
            assert_error(seen, 404, "document_not_found")
    uploader.join()

    response = upload_result["response"]
    assert response.status_code == 201, response.text
    assert response.json()["documents"][0]["paragraph_count"] == LEDGER_PARAGRAPHS
    answered_during_ingest = [o for o in observations if o.finished < upload_result["finished"]]
    assert answered_during_ingest, "no question was answered while the upload was being indexed"
    assert all(o.cited_doc == town_file(o.town) for o in observations)

    answer = ask(http, "How many barrels of tamarind syrup did warehouse 217 receive?")
    assert answer["citations"][0]["article_id"] == ledger_id
    assert http.delete(f"/v1/documents/{ledger_id}").status_code == 200


def test_no_request_reached_the_catch_all_handler(http: httpx.Client, server_log: Path) -> None:
    http.get("/healthz")
    log = server_log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log and "unexpected" not in log


def test_a_body_that_is_not_utf8_is_named_as_such(http: httpx.Client) -> None:
    error = assert_error(http.post("/v1/ask", content='{"question": "café?"}'.encode("latin-1"), headers=JSON),
                         400, "invalid_json")
    assert "UTF-8" in error["message"]
