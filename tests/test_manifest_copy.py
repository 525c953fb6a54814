"""A fresh process reads the manifest from a local copy of its generation, never a stale one."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

from qa import QAService, Settings

from conftest import SEEDS


def _copies(settings: Settings) -> list[Path]:
    return sorted((Path(settings.index.dir) / "manifest").glob("records-*.pkl"))


def _retitle_copy(copy: Path, title: str) -> None:
    with copy.open("rb") as handle:
        version, records = pickle.load(handle)
    records = {key: dataclasses.replace(record, title=title) for key, record in records.items()}
    with copy.open("wb") as handle:
        pickle.dump((version, records), handle)


def test_a_fresh_service_reads_the_copy_of_the_current_generation(settings: Settings, tmp_path: Path) -> None:
    QAService(settings).ingest([SEEDS])
    (copy,) = _copies(settings)
    assert QAService(settings).index.generation() in copy.name
    # Marked so that only a read of the copy, not of Chroma, can show it.
    _retitle_copy(copy, "read from the copy")
    assert {r.title for r in QAService(settings).snapshot().records.values()} == {"read from the copy"}

    another = tmp_path / "more"
    another.mkdir()
    (another / "note.txt").write_text("A second article\n\nIt says something else entirely.\n", encoding="utf-8")
    QAService(settings).ingest([another])  # a new generation: the marked copy is stale
    titles = {r.title for r in QAService(settings).snapshot().records.values()}
    assert "read from the copy" not in titles and "A second article" in titles
    assert len(_copies(settings)) == 1


def test_a_damaged_copy_is_read_from_chroma_instead(settings: Settings) -> None:
    QAService(settings).ingest([SEEDS])
    (copy,) = _copies(settings)
    copy.write_bytes(b"not a pickle")
    records = QAService(settings).snapshot().records
    assert len(records) == 1 and next(iter(records.values())).paragraphs
