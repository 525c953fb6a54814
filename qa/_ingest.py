"""Files and folders → committed articles in the index, incrementally.

Articles are keyed by absolute path (``article_id``) and content hash: an
unchanged file is not even parsed, a changed one replaces its chunks, a file
gone from an ingested folder is removed. Chunks of several articles are
embedded together (the model is fastest on full batches); each batch of
articles is then committed as described in :mod:`qa._store`. Bad files are
reported and skipped, never fatal.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from qa._articles import SUFFIX_KINDS, SkipFile, article_id_for, file_kind, parse_file, read_regular_file
from qa._chunking import chunk_article
from qa._config import ChunkingSettings
from qa._models import Article, Chunk, IngestReport
from qa._errors import IndexModelMismatch
from qa._store import ChromaIndex

# Progress callback: (files done, files in all).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SourceFile:
    path: Path
    root: Path

    @property
    def label(self) -> str:
        return str(self.path)


def scan(paths: Iterable[Path]) -> tuple[list[SourceFile], list[tuple[str, str]], list[Path]]:
    """Supported files under ``paths`` (recursively), what was skipped, and the folders scanned.

    Only regular files are articles: a named pipe, socket or device (which would block or
    never end a read) with an article's name is listed as skipped, never opened."""
    files: list[SourceFile] = []
    skipped: list[tuple[str, str]] = []
    folders: list[Path] = []
    for given in paths:
        root = Path(given).resolve()
        if root.is_dir():
            folders.append(root)
            for path in sorted(root.rglob("*")):
                if any(part.startswith(".") for part in path.relative_to(root).parts):
                    continue  # hidden files and folders (.git, editor swap files)
                if path.suffix not in SUFFIX_KINDS or path.is_dir():
                    continue
                if path.is_file():
                    files.append(SourceFile(path, root))
                elif (mode := _mode(path)) is not None:
                    skipped.append((str(path), f"not a regular file: {file_kind(mode)}"))
        elif root.is_file():
            if root.suffix in SUFFIX_KINDS:
                files.append(SourceFile(root, root))
            else:
                skipped.append((str(given), f"unsupported file type {root.suffix or '(none)'}"))
        elif (mode := _mode(root)) is not None:
            skipped.append((str(given), f"not a regular file: {file_kind(mode)}"))
        else:
            skipped.append((str(given), "no such file or folder"))
    unique = {f.path: f for f in files}
    return list(unique.values()), skipped, folders


def _mode(path: Path) -> int | None:
    """``st_mode`` of what ``path`` points to; None when nothing is there (a dangling link)."""
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


def _file_hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(read_regular_file(path)).hexdigest()
    except SkipFile:
        return None


def check_embedding_model(stored: str | None, configured: str, index: ChromaIndex) -> None:
    """Vectors of two models are not comparable: an index answers and grows only with its own."""
    if stored and stored != configured:
        raise IndexModelMismatch(
            f"the index in {index.location} holds vectors of the embedding model {stored!r}, but the "
            f"configured model is {configured!r}; run `qa ingest --rebuild` to re-embed it"
        )


class Ingestor:
    def __init__(self, index: ChromaIndex, embedder, chunking: ChunkingSettings,
                 commit_chunks: int = 1024) -> None:
        self._index = index
        self._embedder = embedder
        self._chunking = chunking
        self._commit_chunks = max(1, commit_chunks)

    def run(self, paths: Iterable[Path], progress: Progress | None = None) -> IngestReport:
        files, skipped, folders = scan(paths)
        return self.run_files(files, skipped, folders, progress)

    def run_files(self, files: list[SourceFile], skipped: list[tuple[str, str]], folders: list[Path],
                  progress: Progress | None = None) -> IngestReport:
        """Ingest ``files``; articles of ``folders`` that are not among them are removed."""
        began = time.perf_counter()
        report = IngestReport(skipped=list(skipped))
        records = self._index.records()
        if records:
            check_embedding_model(self._index.embedding_model(), self._embedder.model_name, self._index)
        self._index.check_writable(0)
        self._index.delete_orphans(records)  # leftovers of an interrupted run

        pending: list[tuple[Article, list[Chunk], bool]] = []
        pending_chunks = 0
        for done, source in enumerate(files, 1):
            record = records.get(article_id_for(source.path))
            if record and record.content_hash == _file_hash(source.path):
                report.unchanged.append(record.doc)
            else:
                try:
                    article = parse_file(source.path, source.root)
                except SkipFile as exc:
                    report.skipped.append((source.label, exc.message))
                else:
                    report.warnings.extend((article.doc, w) for w in article.warnings)
                    chunks = chunk_article(article, self._chunking.max_words, self._chunking.min_words)
                    pending.append((article, chunks, record is not None))
                    pending_chunks += len(chunks)
            if pending_chunks >= self._commit_chunks:
                self._commit(pending, report)
                pending, pending_chunks = [], 0
            if progress:
                progress(done, len(files))
        self._commit(pending, report)

        present = {article_id_for(f.path) for f in files}
        for record in records.values():
            in_scanned_folder = any(Path(record.root) == folder for folder in folders)
            if in_scanned_folder and record.article_id not in present:
                self._index.remove_article(record.article_id)
                report.removed.append(record.doc)
        report.seconds = time.perf_counter() - began
        return report

    def _commit(self, pending: list[tuple[Article, list[Chunk], bool]], report: IngestReport) -> None:
        if not pending:
            return
        texts = [chunk.indexed_text for _, chunks, _ in pending for chunk in chunks]
        self._index.check_writable(len(texts))
        vectors = self._embedder.embed(texts)
        batch = []
        offset = 0
        for article, chunks, _ in pending:
            batch.append((article, chunks, vectors[offset : offset + len(chunks)]))
            offset += len(chunks)
        self._index.write_articles(batch, self._embedder.model_name,
                                   {a.article_id for a, _, existed in pending if existed})
        for article, chunks, existed in pending:
            (report.updated if existed else report.added).append(article.doc)
            report.chunks_embedded += len(chunks)
            report.paragraphs_indexed += len(article.paragraphs)

