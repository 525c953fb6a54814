"""Several API workers over one Chroma server: consistency under load, and a server that goes away."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from qa import source_text

from _index_checks import bbc_sample
from _live import ChromaServer, chroma_server, free_port, wait_until_up
from conftest import REPO, SEEDS

MISSILES = "How many anti-ballistic missiles will encompass Russia?"


@contextlib.contextmanager
def api_workers(env: dict[str, str], workers: int, log: Path) -> Iterator[str]:
    """``uvicorn --workers N`` over the app factory, as the README runs it."""
    port = free_port()
    uvicorn = Path(sys.executable).with_name("uvicorn")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(uvicorn), "--factory", "qa._server:app_from_environment", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers)],
            cwd=REPO, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(f"{base}/readyz", process, timeout=120)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    with chroma_server(tmp_path / "chroma-data", log=tmp_path / "chroma.log") as server:
        yield server


def _env(chroma: ChromaServer, tmp_path: Path, name: str) -> dict[str, str]:
    return {**chroma.env, "QA_INDEX_DIR": str(tmp_path / name), "QA_INDEX_UPLOAD_DIR": str(tmp_path / "uploads"),
            "QA_VECTOR_STORE_TIMEOUT_S": "5", "QA_API_KEY": "", "QA_UI_PASSWORD": "",
            "GRADIO_ANALYTICS_ENABLED": "False"}


def _ingest(folder: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qa.cli", "ingest", str(folder)], cwd=REPO,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_hundred_questions_beside_an_ingest_of_two_hundred_articles(tmp_path: Path, chroma: ChromaServer) -> None:
    assert _ingest(SEEDS, _env(chroma, tmp_path, "cli")).wait(timeout=120) == 0
    folder = bbc_sample(tmp_path / "bbc", 200, section="sport")
    folders = {"": SEEDS, folder.name: folder}

    with api_workers(_env(chroma, tmp_path, "api"), workers=2, log=tmp_path / "api.log") as base:
        ingest = _ingest(folder, {**_env(chroma, tmp_path, "cli"), "QA_INGEST_COMMIT_CHUNKS": "64"})
        questions = [MISSILES, "Who won the match?", "Which player was injured?",
                     "Who condemned the deployment of THAAD by South Korea?"] * 25

        def ask(question: str) -> httpx.Response:
            return httpx.post(f"{base}/v1/ask", json={"question": question}, timeout=60)

        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(ask, questions))
        assert ingest.wait(timeout=600) == 0, ingest.stderr.read()

        assert [r.status_code for r in responses] == [200] * 100
        for question, response in zip(questions, responses):
            body = response.json()
            assert body["question"] == question  # answers never mix between requests
            for cited in body["citations"] + body["retrieved"]:
                source = (SEEDS / cited["doc"]) if (SEEDS / cited["doc"]).exists() else folder / cited["doc"]
                assert source_text(source)[cited["start"] : cited["end"]] == cited["text"]
        assert all(r.json()["citations"][0]["paragraph"] == 6 for q, r in zip(questions, responses) if q == MISSILES)

        # Once the ingest has finished, every worker answers from the new articles.
        listed = httpx.get(f"{base}/v1/documents", timeout=30).json()
        assert len(listed["documents"]) == 201
        first_title = next(folder.glob("*.txt")).read_text(encoding="utf-8").splitlines()[0]
        for _ in range(6):
            body = httpx.post(f"{base}/v1/ask", json={"question": first_title}, timeout=60).json()
            assert body["retrieved"][0]["title"] == first_title


def test_chroma_stopped_gives_503_quickly_and_service_resumes(tmp_path: Path, chroma: ChromaServer) -> None:
    env = _env(chroma, tmp_path, "api")
    assert _ingest(SEEDS, env).wait(timeout=120) == 0
    with api_workers(env, workers=2, log=tmp_path / "api.log") as base:
        assert httpx.post(f"{base}/v1/ask", json={"question": MISSILES}, timeout=60).status_code == 200

        chroma.stop()
        began = time.monotonic()
        response = httpx.post(f"{base}/v1/ask", json={"question": MISSILES}, timeout=60)
        assert time.monotonic() - began < 15
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["type"] == "store_unavailable" and f"127.0.0.1:{chroma.port}" in error["message"]
        assert httpx.get(f"{base}/readyz", timeout=30).status_code == 503

        chroma.start()
        wait_until_up(f"{base}/readyz", timeout=60)  # readiness comes back by itself
        for _ in range(4):  # both workers recover
            response = httpx.post(f"{base}/v1/ask", json={"question": MISSILES}, timeout=60)
            assert response.status_code == 200 and response.json()["citations"][0]["paragraph"] == 6
