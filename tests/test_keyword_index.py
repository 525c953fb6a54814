"""The on-disk keyword index (issue 16): opened, not rebuilt, by every process; brought up to
date by the difference to the manifest when it lags; rebuilt from Chroma, with a warning, when
it is missing or damaged."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import qa._keyword
from _index_checks import ChromaReads, bbc_sample, run_ingest
from conftest import REPO, SEEDS, make_settings
from qa import QAService
from qa._text import terms

BRIDGE = ("Harbour bridge reopens\n\nThe Zorblatt harbour bridge reopened on Monday after seven weeks "
          "of repairs costing 40 million dollars.\n")
QUERIES = ["zorblatt harbour bridge repairs", "anti-ballistic missiles Russia", "THAAD deployed country"]


def _ingest(folder: Path, index_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qa.cli", "ingest", str(folder)], cwd=REPO,
                          env={**os.environ, "QA_INDEX_DIR": str(index_dir)},
                          capture_output=True, text=True, timeout=300)


def keyword_results(service: QAService) -> list[list[tuple[str, float]]]:
    keyword = service.snapshot().keyword
    return [sorted((ref.chunk_id, round(score, 4)) for ref, score in keyword.search(terms(q), 20))
            for q in QUERIES]


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    index_dir = tmp_path / "index"
    assert _ingest(SEEDS, index_dir).returncode == 0
    return index_dir


@pytest.fixture
def bridge_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "bridge.txt").write_text(BRIDGE, encoding="utf-8")
    return folder


def _service(tmp_path: Path, index_dir: Path) -> QAService:
    return QAService(make_settings(tmp_path, index={"dir": str(index_dir)}))


def test_another_processs_ingest_is_seen_without_reading_chroma(tmp_path: Path, index_dir: Path,
                                                               bridge_folder: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    reader = _service(tmp_path, index_dir)
    before = reader.snapshot()
    assert not before.keyword.search(terms("zorblatt"), 5)
    reads = ChromaReads(monkeypatch)

    assert _ingest(bridge_folder, index_dir).returncode == 0
    after = reader.snapshot()
    assert after.generation != before.generation
    [(ref, _)] = after.keyword.search(terms("zorblatt"), 5)
    assert after.records[ref.article_id].doc == "bridge.txt"
    # The ingesting process brought the keyword index up to date; this one only opened it.
    assert (reads.everything, reads.articles) == (0, [])
    # The snapshot taken before still answers as it did: a view is a point in time.
    assert not before.keyword.search(terms("zorblatt"), 5)


def test_the_synced_state_is_read_again_only_when_another_process_replaced_it(
        tmp_path: Path, index_dir: Path, bridge_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a million paragraphs the state file holds 232k hashes; a process's own commit must not
    read back what it has just written, and must see what another process wrote."""
    state_reads: list[Path] = []
    real_read_cached = qa._keyword.read_cached

    def counted(path: Path, version: int):
        state_reads.append(path)
        return real_read_cached(path, version)

    monkeypatch.setattr(qa._keyword, "read_cached", counted)
    writer = _service(tmp_path, index_dir)
    writer.snapshot()
    assert len(state_reads) == 1  # the first open reads it
    writer.upload([("quay.txt", b"Quay reopens\n\nThe Velmora quay reopened after nine weeks.\n")])
    writer.snapshot()
    assert len(state_reads) == 1  # its own commit: remembered, not read back
    [(ref, _)] = writer.snapshot().keyword.search(terms("velmora"), 5)

    assert _ingest(bridge_folder, index_dir).returncode == 0  # another process's commit
    after = writer.snapshot()
    assert len(state_reads) == 2
    assert after.keyword.search(terms("zorblatt"), 5) and after.keyword.search(terms("velmora"), 5)
    assert after.paragraph_count == sum(len(r.paragraphs) for r in after.records.values())


def test_a_lagging_keyword_index_catches_up_with_the_changed_article_only(
        tmp_path: Path, index_dir: Path, bridge_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before_bridge = tmp_path / "keyword-before"
    shutil.copytree(index_dir / "keyword", before_bridge)
    assert _ingest(bridge_folder, index_dir).returncode == 0
    expected = keyword_results(_service(tmp_path / "synced", index_dir))
    # As if the ingest had been killed between its Chroma commit and its keyword sync: the keyword
    # index and its state are those of the generation before.
    shutil.rmtree(index_dir / "keyword")
    shutil.copytree(before_bridge, index_dir / "keyword")

    reads = ChromaReads(monkeypatch)
    service = _service(tmp_path, index_dir)
    results = keyword_results(service)
    bridge_id = next(a for a, r in service.snapshot().records.items() if r.doc == "bridge.txt")
    assert (reads.everything, reads.articles) == (0, [{bridge_id}])
    assert results == expected and results[0]


def test_a_sync_killed_after_its_commit_repeats_to_the_same_index(tmp_path: Path, index_dir: Path,
                                                                  bridge_folder: Path) -> None:
    state = index_dir / "keyword" / "synced-state.pkl"
    state_before_bridge = state.read_bytes()
    assert _ingest(bridge_folder, index_dir).returncode == 0
    synced = _service(tmp_path / "synced", index_dir)
    expected, chunk_count = keyword_results(synced), len(synced.snapshot().keyword)
    # The sync of the bridge committed its chunks, then was killed before it wrote its state.
    state.write_bytes(state_before_bridge)

    repeated = _service(tmp_path, index_dir)
    assert len(repeated.snapshot().keyword) == chunk_count  # the bridge's chunks are not there twice
    assert keyword_results(repeated) == expected


def test_an_interrupted_ingest_leaves_keyword_results_equal_to_a_clean_runs(tmp_path: Path) -> None:
    folder = bbc_sample(tmp_path / "bbc", 30)
    interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"
    assert run_ingest(folder, {"QA_INDEX_DIR": str(interrupted)}, interrupt_with=signal.SIGKILL) == -signal.SIGKILL
    partial = _service(tmp_path / "p", interrupted)
    assert 0 < len(partial.snapshot().records) < 30  # the keyword index now holds the half-way state
    assert run_ingest(folder, {"QA_INDEX_DIR": str(interrupted)}) == 0
    assert run_ingest(folder, {"QA_INDEX_DIR": str(clean)}) == 0
    queries = ["profit fell shares", "oil prices rise", "bank interest rates"]
    resumed = _service(tmp_path / "r", interrupted).snapshot().keyword
    once = _service(tmp_path / "c", clean).snapshot().keyword
    assert len(resumed) == len(once)
    for query in queries:
        assert {r.chunk_id: pytest.approx(s, rel=0.02) for r, s in resumed.search(terms(query), 10)} \
            == {r.chunk_id: s for r, s in once.search(terms(query), 10)}


@pytest.mark.parametrize("damage", ["deleted", "segments garbled", "state garbled"])
def test_a_missing_or_damaged_keyword_index_is_rebuilt_from_chroma_with_a_warning(
        tmp_path: Path, index_dir: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    expected = keyword_results(_service(tmp_path / "before", index_dir))
    folder = index_dir / "keyword"
    if damage == "deleted":
        shutil.rmtree(folder)
    elif damage == "segments garbled":
        for path in (folder / "chunks").iterdir():
            if path.is_file():
                path.write_bytes(b"garbage" * 10)
    else:
        (folder / "synced-state.pkl").write_bytes(b"not a pickle")
    with caplog.at_level(logging.WARNING, logger="qa._keyword"):
        results = keyword_results(_service(tmp_path, index_dir))
    assert results == expected
    if damage != "deleted":
        assert any("damaged" in r.message and "rebuilding it" in r.message for r in caplog.records)


def test_the_cli_says_so_when_it_rebuilds_a_damaged_keyword_index(tmp_path: Path, index_dir: Path) -> None:
    (index_dir / "keyword" / "synced-state.pkl").write_bytes(b"not a pickle")
    result = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "Which country deployed THAAD?"], cwd=REPO,
                            env={**os.environ, "QA_INDEX_DIR": str(index_dir)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "keyword index" in result.stderr and "rebuilding it" in result.stderr
    assert "[1]" in result.stdout
