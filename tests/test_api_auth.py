"""The API with ``QA_API_KEY`` set, over a real ``qa serve``: every /v1 route wants the key,
the health checks do not, the chat sits behind Gradio's login, and the key shows up in no
response and no log line. Also the property-based test of the whole API from its own
OpenAPI spec (schemathesis), run against this keyed server with the key.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest
from openai import OpenAI
from schemathesis.checks import ignored_auth

from _api_data import SEED_QUESTION, assert_error, build_index
from _live import qa_server
from _spec_fuzz import SPEC_CHECKS, fuzz_against_spec
from conftest import SEED_FILE
from qa._articles import article_id_for
from qa._server import DEFAULT_UI_USER, ui_login

API_KEY = "qa-test-key-5c1d9e0b7a"
UI_USER = "editor"
UI_PASSWORD = "chat-password-83f2"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Enough to find what a handful of fields can break, while the run stays well under a minute.
SCHEMATHESIS_EXAMPLES = 60


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth-log") / "server.log"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, server_log: Path) -> Iterator[str]:
    index_dir = build_index(tmp_path_factory.mktemp("api-auth"), with_towns=False)
    env = {"QA_API_KEY": API_KEY, "QA_UI_USER": UI_USER, "QA_UI_PASSWORD": UI_PASSWORD}
    with qa_server(index_dir, env=env, log=server_log, wait_for="/readyz") as url:
        yield url


@pytest.fixture
def anonymous(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        yield client


@pytest.fixture
def keyed(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60, headers=AUTH) as client:
        yield client


SEED_ID = article_id_for(SEED_FILE)
ARTICLE = b"Auth Check\n\nThis article exists to prove that an upload with the key is indexed.\n"
CHAT_BODY = {"model": "news-qa", "messages": [{"role": "user", "content": SEED_QUESTION}]}
# (method, path, request arguments, status with the key)
ENDPOINTS = [
    ("GET", "/v1/models", {}, 200),
    ("GET", "/v1/documents", {}, 200),
    ("GET", f"/v1/documents/{SEED_ID}", {}, 200),
    ("POST", "/v1/ask", {"json": {"question": SEED_QUESTION}}, 200),
    ("POST", "/v1/ask/stream", {"json": {"question": SEED_QUESTION}}, 200),
    ("POST", "/v1/chat/completions", {"json": CHAT_BODY}, 200),
    ("POST", "/v1/chat/completions", {"json": {**CHAT_BODY, "stream": True}}, 200),
    ("POST", "/v1/documents", {"files": {"files": ("auth-check.txt", ARTICLE, "text/plain")}}, 201),
    ("DELETE", "/v1/documents/0000000000000000", {}, 404),
    ("GET", "/v1/no-such-endpoint", {}, 404),
]
ENDPOINT_IDS = [f"{method} {path}" + (" stream" if "stream" in str(args) else "") for method, path, args, _ in ENDPOINTS]
WRONG_CREDENTIALS = {
    "no header": {},
    "wrong key": {"Authorization": "Bearer not-the-key"},
    "key with a suffix": {"Authorization": f"Bearer {API_KEY}x"},
    "key prefix": {"Authorization": f"Bearer {API_KEY[:-1]}"},
    "basic auth": {"Authorization": "Basic " + base64.b64encode(f"{UI_USER}:{API_KEY}".encode()).decode()},
    "key without scheme": {"Authorization": API_KEY},
}


@pytest.mark.parametrize("credentials", WRONG_CREDENTIALS.values(), ids=WRONG_CREDENTIALS.keys())
@pytest.mark.parametrize(("method", "path", "request_args", "status"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_v1_refuses_requests_without_the_key(anonymous: httpx.Client, keyed: httpx.Client, method: str, path: str,
                                             request_args: dict, status: int, credentials: dict) -> None:
    args = {**request_args, "headers": {**request_args.get("headers", {}), **credentials}}
    if "files" in args:
        args["files"] = {"files": ("refused.txt", ARTICLE, "text/plain")}
    response = anonymous.request(method, path, **args)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert API_KEY not in response.text
    assert "refused.txt" not in {d["doc"] for d in keyed.get("/v1/documents").json()["documents"]}


@pytest.mark.parametrize(("method", "path", "request_args", "status"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_v1_admits_the_key(keyed: httpx.Client, method: str, path: str, request_args: dict, status: int) -> None:
    response = keyed.request(method, path, **request_args)
    assert response.status_code == status, response.text


def test_scheme_name_is_case_insensitive(anonymous: httpx.Client) -> None:
    assert anonymous.get("/v1/models", headers={"Authorization": f"bearer {API_KEY}"}).status_code == 200


def test_health_checks_and_schema_stay_open(anonymous: httpx.Client) -> None:
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").json()["status"] == "ready"
    spec = anonymous.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["api_key"] == {
        "type": "http", "scheme": "bearer", "description": "the server's QA_API_KEY, as `Authorization: Bearer <key>`"}
    assert spec["paths"]["/v1/ask"]["post"]["security"] == [{"api_key": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_openai_client_with_and_without_the_key(base_url: str) -> None:
    keyed = OpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0)
    completion = keyed.chat.completions.create(**CHAT_BODY)
    assert completion.model_extra["citations"][0]["paragraph"] == 6
    streamed = list(keyed.chat.completions.create(**CHAT_BODY, stream=True))
    assert streamed[-1].model_extra["citations"] == completion.model_extra["citations"]

    wrong = OpenAI(base_url=f"{base_url}/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(**CHAT_BODY)
    assert caught.value.body["type"] == "unauthorized"
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


@pytest.mark.parametrize(("environ", "login"), [
    ({}, None),
    ({"QA_API_KEY": ""}, None),
    ({"QA_API_KEY": "k"}, (DEFAULT_UI_USER, "k")),
    ({"QA_UI_PASSWORD": "p"}, (DEFAULT_UI_USER, "p")),
    ({"QA_API_KEY": "k", "QA_UI_USER": "u", "QA_UI_PASSWORD": "p"}, ("u", "p")),
])
def test_chat_login_comes_from_the_environment(environ: dict, login: tuple[str, str] | None) -> None:
    assert ui_login(environ) == login


def test_chat_ui_is_behind_the_login(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as browser:
        assert browser.get("/config").status_code == 401
        assert browser.post("/login", data={"username": UI_USER, "password": API_KEY}).status_code != 200
        assert browser.post("/login", data={"username": UI_USER, "password": "guess"}).status_code != 200
        assert browser.get("/config").status_code == 401
        login = browser.post("/login", data={"username": UI_USER, "password": UI_PASSWORD})
        assert login.status_code == 200 and login.json() == {"success": True}
        assert browser.get("/config").status_code == 200


# -- the API against its own OpenAPI spec --------------------------------------------------


def test_api_against_its_openapi_spec(base_url: str) -> None:
    """Schemathesis generates requests from /openapi.json, valid ones and invalid ones, for
    every operation, and checks no answer is a 5xx or strays from the spec (status, content
    type, body schema, headers), that invalid data is refused, and that the key is enforced."""
    cases_run, operations, failures = fuzz_against_spec(
        base_url, SCHEMATHESIS_EXAMPLES, "schemathesis.txt", checks=[*SPEC_CHECKS, ignored_auth], headers=AUTH)
    print(f"schemathesis: {cases_run} cases over {len(operations)} operations")
    assert not failures, "\n\n".join(failures[:5])
    assert cases_run >= 10 * len(operations)


def test_secrets_never_reach_the_log(anonymous: httpx.Client, server_log: Path) -> None:
    anonymous.get("/v1/models", headers={"Authorization": f"Bearer {API_KEY}-but-wrong"})
    log = server_log.read_text(encoding="utf-8", errors="replace")
    assert "GET /v1/models" in log  # the access log is on, and still does not show the key
    assert API_KEY not in log and UI_PASSWORD not in log
    assert "Traceback" not in log
