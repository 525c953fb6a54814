"""Ingestion: incremental, idempotent, safe to interrupt, never stopped by a bad file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qa import QAService
from qa._store import ChromaIndex

from _index_checks import bbc_sample, index_state, run_ingest
from conftest import REPO, SEEDS, make_settings


def test_second_run_embeds_nothing(service: QAService, articles_dir: Path) -> None:
    first = service.ingest([articles_dir])
    assert len(first.added) == 1 and first.chunks_embedded > 0
    second = service.ingest([articles_dir])
    assert second.added == [] and second.updated == [] and second.chunks_embedded == 0
    assert len(second.unchanged) == 1


def test_changed_file_replaces_its_chunks(service: QAService, articles_dir: Path) -> None:
    service.ingest([articles_dir])
    path = next(articles_dir.glob("*.txt"))
    path.write_text("Tokyo weather\n\nTokyo had heavy snow on Monday, closing schools.\n", encoding="utf-8")
    report = service.ingest([articles_dir])
    assert report.updated == [path.name]
    state, chunk_ids = index_state(service)
    (article,) = state.values()
    assert article[2] == 1 and len(chunk_ids) == 1  # the old six chunks are gone
    answer = service.ask("What closed schools in Tokyo?")
    assert "heavy snow" in answer.answer


def test_removed_file_is_removed_and_reported(service: QAService, articles_dir: Path) -> None:
    extra = articles_dir / "extra.md"
    extra.write_text("# Port strike\n\nDock workers walked out in Rotterdam on Monday.\n", encoding="utf-8")
    service.ingest([articles_dir])
    assert len(service.documents()) == 2
    extra.unlink()
    report = service.ingest([articles_dir])
    assert report.removed == ["extra.md"]
    assert [r.doc for r in service.documents()] == [p.name for p in articles_dir.glob("*.txt")]


def test_bad_files_are_reported_and_the_rest_is_indexed(service: QAService, articles_dir: Path) -> None:
    (articles_dir / "empty.txt").write_bytes(b"")
    (articles_dir / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    (articles_dir / "latin1.txt").write_bytes("Caf\xe9 news\n\nA caf\xe9 opened in Lyon.\n".encode("latin-1"))
    (articles_dir / "notes.csv").write_text("a,b\n", encoding="utf-8")  # not an article type: ignored
    unreadable = articles_dir / "locked.txt"
    unreadable.write_text("Locked\n\nSecret paragraph.\n", encoding="utf-8")
    unreadable.chmod(0)
    try:
        report = service.ingest([articles_dir, articles_dir / "missing-folder"])
    finally:
        unreadable.chmod(0o644)
    skipped = dict(report.skipped)
    assert "empty" in skipped[str(articles_dir / "empty.txt")]
    assert "binary" in skipped[str(articles_dir / "image.txt")]
    assert skipped[str(articles_dir / "missing-folder")] == "no such file or folder"
    if os.geteuid() != 0:  # root reads any file, so only others can see this skip
        assert "unreadable" in skipped[str(unreadable)]
    assert report.warnings == [("latin1.txt", "not valid UTF-8: undecodable bytes replaced with U+FFFD")]
    assert {"latin1.txt"} <= set(report.added)


def test_rebuild_starts_from_an_empty_index(service: QAService, articles_dir: Path) -> None:
    service.ingest([articles_dir])
    report = service.ingest([articles_dir], rebuild=True)
    assert len(report.added) == 1 and report.chunks_embedded == 6


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_ingest_then_rerun_equals_one_clean_run(tmp_path: Path, sig: signal.Signals) -> None:
    folder = bbc_sample(tmp_path / "bbc", 30)
    interrupted_dir, clean_dir = tmp_path / "interrupted", tmp_path / "clean"

    code = run_ingest(folder, {"QA_INDEX_DIR": str(interrupted_dir)}, interrupt_with=sig)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    partial = QAService(make_settings(tmp_path / "p", index={"dir": str(interrupted_dir)}))
    assert 0 < len(partial.index.records()) < 30  # really stopped half-way

    assert run_ingest(folder, {"QA_INDEX_DIR": str(interrupted_dir)}) == 0
    assert run_ingest(folder, {"QA_INDEX_DIR": str(clean_dir)}) == 0
    resumed = QAService(make_settings(tmp_path / "r", index={"dir": str(interrupted_dir)}))
    clean = QAService(make_settings(tmp_path / "c", index={"dir": str(clean_dir)}))
    resumed_state, resumed_chunks = index_state(resumed)
    clean_state, clean_chunks = index_state(clean)
    assert len(clean_state) == 30
    assert resumed_state == clean_state
    assert resumed_chunks == clean_chunks  # no duplicates, no orphans


def test_cli_ingest_json_summary(tmp_path: Path, articles_dir: Path) -> None:
    (articles_dir / "empty.txt").write_bytes(b"")
    env = {**os.environ, "QA_INDEX_DIR": str(tmp_path / "index")}
    result = subprocess.run([sys.executable, "-m", "qa.cli", "ingest", str(articles_dir), "--json"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["added"] == [p.name for p in articles_dir.glob("0*.txt")]
    assert summary["skipped"] == [{"file": str(articles_dir / "empty.txt"), "reason": "empty file"}]
    assert summary["chunks_embedded"] == 6


def test_unusable_index_folder_is_a_clear_error(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    (index_dir / "chroma").mkdir(parents=True)
    (index_dir / "chroma" / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    result = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "anything?"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
    assert str(index_dir / "chroma") in result.stderr and "qa ingest --rebuild" in result.stderr

    rebuilt = subprocess.run([sys.executable, "-m", "qa.cli", "ingest", "--rebuild", str(SEEDS)],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    answer = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "How many anti-ballistic missiles?"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0 and "four hundred" in answer.stdout


def test_an_ingest_checks_only_the_last_writes_chunks_for_orphans(service: QAService, articles_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    service.ingest([SEEDS])
    paged: list[str] = []
    pages = ChromaIndex._pages  # noqa: SLF001
    monkeypatch.setattr(ChromaIndex, "_pages", lambda self, collection, include:
                        paged.append(collection.name) or pages(self, collection, include))
    report = service.ingest([articles_dir])
    assert report.added and not any(name.endswith("_chunks") for name in paged)
