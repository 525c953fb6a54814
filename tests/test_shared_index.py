"""Several local processes on one embedded index: `qa ingest` beside a running `qa serve`."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from chromadb.config import System

from _live import qa_server
from conftest import REPO, SEEDS
from qa import QAService
from qa._lock import exclusive_writer

BRIDGE = ("Harbour bridge reopens\n\nThe harbour bridge in Sydney reopened on Monday after seven weeks "
          "of repairs costing 40 million dollars.\n")
FERRY = ("Ferry strike ends\n\nThe ferry workers in Manly ended their strike on Friday after a pay deal "
         "of four percent.\n")
TRAM = b"Tram line opens\n\nThe new tram line in Parramatta opened on Sunday with twelve stops.\n"


def _qa(*args: str, index_dir: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=REPO,
                          env={**os.environ, "QA_INDEX_DIR": str(index_dir), **env},
                          capture_output=True, text=True, timeout=300)


def _ask(base: str, question: str) -> dict:
    reply = httpx.post(f"{base}/v1/ask", json={"question": question}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_an_ingest_beside_a_running_server_is_answered_by_the_server(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    assert _qa("ingest", str(SEEDS), index_dir=index_dir).returncode == 0
    articles = tmp_path / "articles"
    articles.mkdir()
    with qa_server(index_dir, upload_dir=tmp_path / "uploads", wait_for="/readyz",
                   env={"QA_API_KEY": "", "QA_UI_PASSWORD": ""}) as base:
        assert _ask(base, "How many anti-ballistic missiles will encompass Russia?")["citations"]

        (articles / "bridge.txt").write_text(BRIDGE, encoding="utf-8")
        ingest = _qa("ingest", str(articles), index_dir=index_dir)
        assert ingest.returncode == 0, ingest.stderr
        answer = _ask(base, "How long did the harbour bridge repairs take?")
        assert [c["doc"] for c in answer["citations"]] == ["bridge.txt"]
        assert "seven weeks" in answer["answer"]

        # The server writes next, then the other process again: each sees the other's commits.
        uploaded = httpx.post(f"{base}/v1/documents", files={"files": ("tram.txt", TRAM, "text/plain")}, timeout=60)
        assert uploaded.status_code == 201, uploaded.text
        (articles / "ferry.txt").write_text(FERRY, encoding="utf-8")
        assert _qa("ingest", str(articles), index_dir=index_dir).returncode == 0
        for question, doc in (("What pay deal ended the ferry strike?", "ferry.txt"),
                              ("How many stops has the new tram line?", "tram.txt"),
                              ("How long did the harbour bridge repairs take?", "bridge.txt")):
            assert [c["doc"] for c in _ask(base, question)["citations"]] == [doc]
        listed = httpx.get(f"{base}/v1/documents", timeout=30).json()
        assert listed["count"] == 4
        assert httpx.get(f"{base}/readyz", timeout=30).json()["documents"] == 4

    cli = _qa("ask", "How many stops has the new tram line?", "--json", index_dir=index_dir)
    assert cli.returncode == 0 and "twelve stops" in cli.stdout


def test_a_server_beside_ingests_keeps_one_chroma_client_system_alive(seeded_service: QAService,
                                                                     tmp_path: Path) -> None:
    # After another process's commit a server opens a new Chroma client. The one it drops refers to
    # itself through its components and held its loaded vector index until some later full
    # collection (about 220 MB a commit at 100k paragraphs: bench/reopen_memory.py). With the
    # automatic collector off, only the product's own release can free it.
    index_dir = Path(seeded_service.settings.index.dir)
    articles = tmp_path / "more"
    articles.mkdir()
    assert seeded_service.ask("How many anti-ballistic missiles will encompass Russia?").citations
    gc.disable()
    try:
        for number, (text, question) in enumerate(((BRIDGE, "How long did the harbour bridge repairs take?"),
                                                   (FERRY, "What pay deal ended the ferry strike?"),
                                                   (TRAM.decode(), "How many stops has the new tram line?"))):
            (articles / f"{number}.txt").write_text(text, encoding="utf-8")
            assert _qa("ingest", str(articles), index_dir=index_dir).returncode == 0
            assert [c.doc for c in seeded_service.ask(question).citations] == [f"{number}.txt"]
        chroma = str(index_dir / "chroma")
        gc.unfreeze()  # frozen objects (qa._cache) are alive too, and not in get_objects() until thawed
        alive = [o for o in gc.get_objects() if isinstance(o, System) and o.settings.persist_directory == chroma]
        assert len(alive) == 1
    finally:
        gc.enable()


def test_a_second_writer_waits_and_then_says_who_holds_the_index(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    with exclusive_writer(index_dir, wait_s=0, what="ingest"):
        result = _qa("ingest", str(articles), index_dir=index_dir, QA_INDEX_WRITER_WAIT_S="0.5")
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert f"process {os.getpid()} (ingest) is writing to the index" in result.stderr
    assert "try again" in result.stderr
    # Released with the block: the same command now goes through.
    assert _qa("ingest", str(articles), index_dir=index_dir).returncode == 0


def test_the_lock_of_a_killed_writer_is_released_by_its_exit(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from qa._lock import exclusive_writer\n"
         "with exclusive_writer(Path(sys.argv[1]), 0, 'ingest'):\n    print('held', flush=True); sys.stdin.read()",
         str(index_dir)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Exception, match="is writing to the index"):
            with exclusive_writer(index_dir, wait_s=0, what="upload"):
                pass
        holder.kill()
        holder.wait(timeout=10)
        with exclusive_writer(index_dir, wait_s=0, what="upload"):
            assert "upload" in (index_dir / "write.lock").read_text()
    finally:
        holder.kill()
        holder.wait(timeout=10)
