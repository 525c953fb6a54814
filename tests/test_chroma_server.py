"""The index on a real ``chroma run`` server: every command through it, several processes, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from qa import QAService, StoreUnavailable
from qa._text import terms

from _index_checks import ChromaReads, bbc_sample, index_state, run_ingest
from _live import ChromaServer, chroma_server
from conftest import REPO, SEEDS, make_settings

MISSILES = "How many anti-ballistic missiles will encompass Russia?"


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    with chroma_server(tmp_path / "chroma-data", log=tmp_path / "chroma.log") as server:
        yield server


def _service(tmp_path: Path, server: ChromaServer, prefix: str = "news") -> QAService:
    return QAService(make_settings(
        tmp_path, vector_store={"mode": "http", "port": server.port, "collection_prefix": prefix, "timeout_s": 5}))


def _qa(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=REPO, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def test_ingest_ask_and_eval_through_the_server(tmp_path: Path, chroma: ChromaServer) -> None:
    env = {**chroma.env, "QA_INDEX_DIR": str(tmp_path / "local")}
    ingest = _qa("ingest", str(SEEDS), "--json", env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["chunks_embedded"] == 6
    assert not (tmp_path / "local" / "chroma").exists()  # nothing stored locally but the keyword cache

    ask = _qa("ask", MISSILES, "--json", env=env)
    assert ask.returncode == 0, ask.stderr
    assert json.loads(ask.stdout)["citations"][0]["paragraph"] == 6

    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "1", "question": MISSILES, "answers": ["four hundred"],
                                     "doc": next(SEEDS.glob("*.txt")).name}) + "\n", encoding="utf-8")
    evaluation = _qa("eval", str(questions), "--out", str(tmp_path / "out"), env=env)
    assert evaluation.returncode == 0, evaluation.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["hit@1"] == 1.0 and summary["answer_containment"] == 1.0


def test_an_ingest_in_another_process_is_seen_by_the_next_query(tmp_path: Path, chroma: ChromaServer) -> None:
    reader = _service(tmp_path / "reader", chroma)
    reader.ingest([SEEDS])
    assert reader.ask("What did the port of Dover do at noon?").abstained

    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "storm.txt").write_text(
        "Storm closes port\n\nThe port of Dover closed at noon on Friday as gales reached 90mph.\n", encoding="utf-8")
    env = {**chroma.env, "QA_INDEX_DIR": str(tmp_path / "writer")}
    assert _qa("ingest", str(extra), env=env).returncode == 0

    response = reader.ask("What did the port of Dover do at noon?")  # same process, no restart
    assert not response.abstained and "closed at noon" in response.answer
    assert response.citations[0].doc == "storm.txt"



def test_a_worker_with_its_own_keyword_index_fetches_only_the_changed_article(
        tmp_path: Path, chroma: ChromaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two workers on one Chroma server, each with its own index folder (as on two machines): the
    # one that did not write brings its keyword index forward by the one new article, no rebuild.
    reader = _service(tmp_path / "reader", chroma)
    reader.ingest([SEEDS])
    assert not reader.snapshot().keyword.search(terms("dover gales"), 5)
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "storm.txt").write_text(
        "Storm closes port\n\nThe port of Dover closed at noon on Friday as gales reached 90mph.\n", encoding="utf-8")
    writer = _service(tmp_path / "writer", chroma)
    writer.ingest([extra])
    reads = ChromaReads(monkeypatch)
    snapshot = reader.snapshot()
    [(ref, _)] = snapshot.keyword.search(terms("dover gales"), 5)
    assert snapshot.records[ref.article_id].doc == "storm.txt"
    assert (reads.everything, reads.articles) == (0, [{ref.article_id}])


def test_server_stopped_mid_session_fails_fast_and_recovers(tmp_path: Path, chroma: ChromaServer) -> None:
    service = _service(tmp_path, chroma)
    service.ingest([SEEDS])
    assert not service.ask(MISSILES).abstained

    chroma.stop()
    began = time.monotonic()
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{chroma.port}"):
        service.ask(MISSILES)
    assert time.monotonic() - began < 10  # bounded by the client timeout, not hung

    chroma.start()  # same data folder, same port
    assert service.ask(MISSILES).citations[0].paragraph == 6  # the same service object recovers


def test_killed_ingest_then_rerun_equals_one_clean_run_on_the_server(tmp_path: Path, chroma: ChromaServer) -> None:
    folder = bbc_sample(tmp_path / "bbc", 30)
    interrupted = {**chroma.env, "QA_INDEX_DIR": str(tmp_path / "i"), "QA_VECTOR_STORE_COLLECTION_PREFIX": "killed"}
    clean = {**chroma.env, "QA_INDEX_DIR": str(tmp_path / "c"), "QA_VECTOR_STORE_COLLECTION_PREFIX": "clean"}

    assert run_ingest(folder, interrupted, interrupt_with=signal.SIGKILL) == -signal.SIGKILL
    assert 0 < len(_service(tmp_path / "p", chroma, "killed").index.records()) < 30
    assert run_ingest(folder, interrupted) == 0
    assert run_ingest(folder, clean) == 0

    resumed_state, resumed_chunks = index_state(_service(tmp_path / "r", chroma, "killed"))
    clean_state, clean_chunks = index_state(_service(tmp_path / "c2", chroma, "clean"))
    assert len(clean_state) == 30
    assert resumed_state == clean_state
    assert resumed_chunks == clean_chunks
