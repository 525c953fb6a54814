"""A real ``qa serve`` whose Chroma server is not running yet: the process is up (healthz),
not ready (readyz 503), and requests that need the index get a 503 in the error shape
rather than a 500 or a hang. Once Chroma starts, the same server becomes ready by itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from _api_data import SEED_QUESTION, assert_error
from _live import ChromaServer, qa_server

ARTICLE = b"Harbour Notes\n\nThe harbour of Velmora will reopen on Monday after the storm repairs are done.\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("no-store")


@pytest.fixture(scope="module")
def chroma(folder: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(folder / "chroma-data", log=folder / "chroma.log")  # started by the last test
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server_log(folder: Path) -> Path:
    return folder / "server.log"


@pytest.fixture(scope="module")
def base_url(folder: Path, chroma: ChromaServer, server_log: Path) -> Iterator[str]:
    env = {"QA_API_KEY": "", "QA_UI_PASSWORD": "", **chroma.env}
    with qa_server(folder / "index", env=env, log=server_log) as url:
        yield url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        yield client


def readiness_after_warm_up(http: httpx.Client) -> httpx.Response:
    """/readyz once the start-up warm-up has finished, one way or the other."""
    deadline = time.monotonic() + 60
    response = http.get("/readyz")
    while response.status_code == 503 and "still loading" in response.text and time.monotonic() < deadline:
        time.sleep(0.1)  # polling interval; the loop checks the real state
        response = http.get("/readyz")
    return response


def test_up_but_not_ready(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert_error(http.get("/readyz"), 503, "not_ready")
    error = assert_error(readiness_after_warm_up(http), 503, "not_ready")
    assert "Chroma" in error["message"]


def test_requests_needing_the_index_get_503(http: httpx.Client) -> None:
    assert_error(http.post("/v1/ask", json={"question": SEED_QUESTION}), 503, "store_unavailable")
    assert_error(http.get("/v1/documents"), 503, "store_unavailable")
    assert_error(http.post("/v1/chat/completions", json={
        "model": "news-qa", "messages": [{"role": "user", "content": SEED_QUESTION}], "stream": True}),
        503, "store_unavailable")


def test_becomes_ready_when_the_store_comes_up(http: httpx.Client, chroma: ChromaServer, server_log: Path) -> None:
    chroma.start()
    deadline = time.monotonic() + 60
    response = readiness_after_warm_up(http)
    while response.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)  # polling interval; the loop checks the real state
        response = http.get("/readyz")
    assert response.json() == {"status": "ready", "documents": 0}
    assert_error(http.post("/v1/ask", json={"question": SEED_QUESTION}), 409, "index_empty")

    assert http.post("/v1/documents", files={"files": ("harbour.txt", ARTICLE, "text/plain")}).status_code == 201
    answer = http.post("/v1/ask", json={"question": "When will the harbour of Velmora reopen?"}).json()
    assert "Monday" in answer["answer"] and answer["citations"][0]["doc"] == "harbour.txt"
    assert "Traceback" not in server_log.read_text(encoding="utf-8", errors="replace")
