"""A fresh process reads the manifest from a local copy of its generation, or brings an older copy
forward by the commit log; only when the log does not reach back does it read all of Chroma."""

from __future__ import annotations

import gc
import pickle
import threading
from pathlib import Path

import pytest

from qa import QAService, Settings
from qa._models import PackedParagraphs, Paragraph
from qa._store import ChromaIndex

from conftest import SEEDS


def _files(settings: Settings) -> list[Path]:
    return sorted((Path(settings.index.dir) / "manifest").glob("records-*.pkl"))


def _copies(settings: Settings) -> list[Path]:
    """The manifest copies, once every copy this process has begun writing is written."""
    for thread in threading.enumerate():
        if thread.name == "qa-manifest-copy":
            thread.join()
    return _files(settings)


def _retitle_copy(copy: Path, title: str) -> None:
    with copy.open("rb") as handle:
        version, records = pickle.load(handle)
    records = {key: record._replace(title=title) for key, record in records.items()}
    with copy.open("wb") as handle:
        pickle.dump((version, records), handle)


def _folder_with_one_article(tmp_path: Path, title: str = "A second article") -> Path:
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "note.txt").write_text(f"{title}\n\nIt says something else entirely.\n", encoding="utf-8")
    return folder


def test_a_fresh_service_reads_the_copy_of_the_current_generation(settings: Settings, tmp_path: Path) -> None:
    QAService(settings).ingest([SEEDS])
    (copy,) = _copies(settings)
    assert QAService(settings).index.generation() in copy.name
    # Marked so that only a read of the copy, not of Chroma, can show it.
    _retitle_copy(copy, "read from the copy")
    assert {r.title for r in QAService(settings).snapshot().records.values()} == {"read from the copy"}

    another = _folder_with_one_article(tmp_path)
    QAService(settings).ingest([another])  # a new generation, one article more
    # The older copy was brought forward: its (marked) records, plus the one article the commit
    # log says changed, read from Chroma; and it was left as the new generation's copy.
    fresh = QAService(settings)
    titles = sorted(r.title for r in fresh.snapshot().records.values())
    assert titles == ["A second article", "read from the copy"]
    (copy,) = _copies(settings)
    assert fresh.index.generation() in copy.name


@pytest.mark.parametrize("articles_per_copy", [1_000, 1])
def test_a_reader_leaves_a_copy_only_after_a_long_walk(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                        articles_per_copy: int) -> None:
    # A copy takes seconds to write at a million paragraphs, on a server that is starting.
    QAService(settings).ingest([SEEDS])
    (old,) = _copies(settings)
    # Uploads, as a server makes them, leave no copy: the next reader brings the old one forward.
    QAService(settings).upload([("note.txt", b"A second article\n\nIt says something else entirely.\n")])
    monkeypatch.setattr("qa._store._ARTICLES_PER_COPY", articles_per_copy)  # 1: as 1,000 articles would
    reader = QAService(settings)
    assert len(reader.snapshot().records) == 2
    if articles_per_copy == 1:
        (new,) = _copies(settings)
        assert reader.index.generation() in new.name
    else:
        assert _copies(settings) == [old]


def test_a_copy_older_than_the_commit_log_is_not_used(settings: Settings, tmp_path: Path) -> None:
    QAService(settings).ingest([SEEDS])
    (copy,) = _copies(settings)
    _retitle_copy(copy, "read from the copy")
    another = _folder_with_one_article(tmp_path)
    writer = QAService(settings)
    writer.ingest([another])
    # As if more commits had landed since the copy than the log keeps.
    commits = writer.index._commits  # noqa: SLF001
    commits.delete(ids=commits.get()["ids"])
    (Path(settings.index.dir) / "manifest" / f"records-{writer.index.generation()}.pkl").unlink()
    titles = sorted(r.title for r in QAService(settings).snapshot().records.values())
    assert "read from the copy" not in titles and "A second article" in titles and len(titles) == 2


def test_a_running_service_reads_only_what_changed(settings: Settings, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    reader = QAService(settings)
    reader.ingest([SEEDS])
    reader.snapshot()
    another = _folder_with_one_article(tmp_path)
    QAService(settings).ingest([another])  # another service: as another process would
    # The other left a copy of the new generation: the whole manifest again, which at a million
    # paragraphs takes seconds to read. The reader brings its own records forward instead.
    (copy,) = _copies(settings)
    assert QAService(settings).index.generation() in copy.name
    fetched: list[set[str]] = []
    whole_reads: list[str] = []
    copy_reads: list[str] = []
    fetch, pages, read = ChromaIndex._fetch_records, ChromaIndex._pages, ChromaIndex._read_manifest_copy  # noqa: SLF001
    monkeypatch.setattr(ChromaIndex, "_fetch_records", lambda self, ids: fetched.append(set(ids)) or fetch(self, ids))
    monkeypatch.setattr(ChromaIndex, "_pages", lambda self, collection, include:
                        whole_reads.append(collection.name) or pages(self, collection, include))
    monkeypatch.setattr(ChromaIndex, "_read_manifest_copy", lambda self, generation:
                        copy_reads.append(generation) or read(self, generation))
    records = reader.snapshot().records
    [new_id] = [a for a, r in records.items() if r.title == "A second article"]
    assert fetched == [{new_id}] and len(records) == 2
    assert not any(name.endswith("_articles") for name in whole_reads)
    assert copy_reads == []


def test_records_read_from_a_copy_are_left_out_of_the_collectors_walks(settings: Settings) -> None:
    # At a million paragraphs they are 1.9M objects, and one full collection over them 1.1 s.
    QAService(settings).ingest([SEEDS])
    gc.unfreeze()
    try:
        record = next(iter(QAService(settings).snapshot().records.values()))
        walked = gc.get_objects()  # every generation the collector walks; the frozen are in none
        assert not any(o is record or o is record.paragraphs[0] for o in walked)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_damaged_copy_is_read_from_chroma_instead(settings: Settings) -> None:
    QAService(settings).ingest([SEEDS])
    (copy,) = _copies(settings)
    copy.write_bytes(b"not a pickle")
    records = QAService(settings).snapshot().records
    assert len(records) == 1 and next(iter(records.values())).paragraphs


def test_an_article_added_and_removed_since_the_copy_is_simply_absent(settings: Settings, tmp_path: Path) -> None:
    reader = QAService(settings)
    reader.ingest([SEEDS])
    reader.snapshot()
    another = _folder_with_one_article(tmp_path, "A short-lived article")
    writer = QAService(settings)
    writer.ingest([another])
    (note_id,) = {a for a, r in writer.snapshot().records.items() if r.title == "A short-lived article"}
    writer.delete_document(note_id)
    for copy in _copies(settings):
        copy.unlink()  # the reader must bring its own (older) records forward across both commits
    records = reader.snapshot().records
    assert note_id not in records and len(records) == 1


def test_an_ingest_reads_the_manifest_copy_once(settings: Settings, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    QAService(settings).ingest([SEEDS])
    reads: list[str] = []
    read = ChromaIndex._read_manifest_copy  # noqa: SLF001

    def counted(self, generation):
        copied = read(self, generation)
        if copied is not None:
            reads.append(generation)
        return copied

    monkeypatch.setattr(ChromaIndex, "_read_manifest_copy", counted)
    writer = QAService(settings)
    writer.ingest([_folder_with_one_article(tmp_path)])  # before its commit and after, one read
    assert len(reads) == 1 and len(writer.snapshot().records) == 2
    (copy,) = [c for c in _copies(settings) if writer.index.generation() in c.name]  # left for the next process


def test_a_new_copy_replaces_the_old_one_only_once_it_is_written(settings: Settings, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    QAService(settings).ingest([SEEDS])
    (old,) = _copies(settings)
    seen_while_writing: list[list[str]] = []
    dump = pickle.dump

    def watched_dump(obj, handle, *args, **kwargs):
        if Path(getattr(handle, "name", "")).name.startswith("records-"):
            seen_while_writing.append([p.name for p in _files(settings)])
        return dump(obj, handle, *args, **kwargs)

    monkeypatch.setattr(pickle, "dump", watched_dump)
    QAService(settings).ingest([_folder_with_one_article(tmp_path)])
    (new,) = _copies(settings)
    assert seen_while_writing and all(old.name in names for names in seen_while_writing)
    assert new != old


def test_a_running_service_that_keeps_writing_leaves_copies_for_the_next_process(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qa._store._COMMITS_PER_COPY", 2)
    server = QAService(settings)
    server.ingest([SEEDS])
    server.snapshot()
    for copy in _copies(settings):
        copy.unlink()
    for number in range(3):  # uploads, as the API makes them: the server's own records move forward
        server.upload([(f"note-{number}.txt", f"Note {number}\n\nSomething new, number {number}.\n".encode())])
        server.snapshot()
    (copy,) = _copies(settings)
    # The copy is of a generation the server reached; a fresh process brings it forward by at
    # most the commits since, without reading the whole manifest.
    whole_reads: list[str] = []
    pages = ChromaIndex._pages  # noqa: SLF001
    monkeypatch.setattr(ChromaIndex, "_pages", lambda self, collection, include:
                        whole_reads.append(collection.name) or pages(self, collection, include))
    records = QAService(settings).snapshot().records
    assert len(records) == 4
    assert not any(name.endswith("_articles") for name in whole_reads)


def test_packed_paragraphs_read_back_as_the_paragraphs_they_were_made_of() -> None:
    paragraphs = (Paragraph(1, 0, 5, "héllo"), Paragraph(2, 7, 12, "wörld", "Background"), Paragraph(3, 14, 14, ""))
    packed = pickle.loads(pickle.dumps(PackedParagraphs(paragraphs), protocol=pickle.HIGHEST_PROTOCOL))
    assert list(packed) == list(paragraphs) and packed == paragraphs and paragraphs == packed
    assert len(packed) == 3 and packed[-1] == paragraphs[2] and packed[1:] == paragraphs[1:]
    assert hash(packed) == hash(paragraphs)
    with pytest.raises(IndexError):
        packed[3]
