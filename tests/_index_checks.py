"""Comparing whole indexes, and running ``qa ingest`` as a real process that can be interrupted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping

import pytest

from qa import QAService
from qa._store import ChromaIndex

from conftest import REPO, SHARED_DATA


def index_state(service: QAService) -> tuple[dict, set[str]]:
    """Every committed article (doc, hash, chunk count, paragraph spans) and every chunk id stored."""
    records = service.index.records()
    state = {
        r.article_id: (r.doc, r.content_hash, r.chunk_count, tuple((p.number, p.start, p.end) for p in r.paragraphs))
        for r in records.values()
    }
    chunk_ids = {
        chunk_id
        for ids, _, _ in service.index._pages(service.index._chunks, ["metadatas"])  # noqa: SLF001
        for chunk_id in ids
    }
    return state, chunk_ids


def bbc_sample(target: Path, count: int, section: str = "business") -> Path:
    target.mkdir(parents=True)
    for path in sorted((SHARED_DATA / "bbc" / section).glob("*.txt"))[:count]:
        shutil.copy(path, target / path.name)
    return target


def run_ingest(folder: Path, env: Mapping[str, str], interrupt_with: signal.Signals | None = None) -> int:
    """``qa ingest folder`` in a subprocess committing small batches; with ``interrupt_with``, the
    signal is sent as soon as progress shows that some batches have been committed."""
    environment = {**os.environ, "QA_INGEST_COMMIT_CHUNKS": "8", **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "ingest", str(folder)], cwd=REPO, env=environment,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    if interrupt_with is not None:
        for line in process.stderr:
            # "Indexing: 6/30 files": six files read means several 8-chunk batches committed.
            if line.startswith("Indexing:") and int(line.split()[1].split("/")[0]) >= 6:
                process.send_signal(interrupt_with)
                break
    process.communicate(timeout=300)
    return process.returncode


class ChromaReads:
    """Counts what the keyword index fetches from Chroma, by wrapping the real methods."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.everything = 0
        self.articles: list[set[str]] = []
        committed, of_articles = ChromaIndex.committed_chunks, ChromaIndex.chunks_of_articles

        def counted_committed(index, records):
            self.everything += 1
            return committed(index, records)

        def counted_of_articles(index, records):
            self.articles.append(set(records))
            return of_articles(index, records)

        monkeypatch.setattr(ChromaIndex, "committed_chunks", counted_committed)
        monkeypatch.setattr(ChromaIndex, "chunks_of_articles", counted_of_articles)
