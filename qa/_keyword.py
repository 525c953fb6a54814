"""The keyword (BM25) index: tantivy indexes on disk, derived from what Chroma holds.

It is never a source of truth. Two tantivy indexes live under ``<index dir>/keyword/``: one
over chunks (paragraphs), and one over whole articles (title once, then every chunk), which
the re-scorer uses to favour paragraphs of the article a question is about even when the
paragraph itself shares few words with the question. The tokenizer is ours
(:func:`qa._text.terms`; tantivy only splits the pre-tokenized text at spaces) so that the
keyword index and the extractive answerer agree on what a term is.

Why tantivy: a segment-based index that one writer updates in place and any number of
processes open memory-mapped, so a change to one article costs that article, not a rebuild of
every process's in-memory index (bm25s took 9 minutes and 6.4 GB per process at a million
paragraphs). See docs/benchmarks.md, "Keyword index".

Keeping it in step (:meth:`KeywordStore.open_at`): ``synced-state.pkl`` records the Chroma
generation the tantivy commit matches and the content hash of every article it holds. It is
written after the tantivy commit, so it may lag the indexes but never lead them. A process
that finds the state at another generation than the one it reads takes ``sync.lock`` and
applies the difference to the manifest: the chunks of each added or changed article are
fetched from Chroma, those of removed or replaced versions deleted. Applying the same
difference twice gives the same index, which is what makes a killed sync harmless. A state
that does not load, or indexes that do not open, are rebuilt from Chroma with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import tantivy

from qa._cache import read_cached, write_cached
from qa._models import ArticleRecord, indexed_text
from qa._text import terms

log = logging.getLogger(__name__)

_STATE_VERSION = 1
_STATE_FILE = "synced-state.pkl"
_SYNC_LOCK = "sync.lock"
# Enough for a batch of a few thousand chunks between flushes; one thread, as ingest runs
# beside the embedding model on two cores.
_WRITER_HEAP_BYTES = 64_000_000


@dataclass(frozen=True)
class ChunkRef:
    chunk_id: str
    article_id: str
    content_hash: str
    paragraph_numbers: tuple[int, ...]


def parse_paragraph_numbers(value: str) -> tuple[int, ...]:
    return tuple(int(n) for n in value.split(",") if n)


class ChunkSource(Protocol):
    """What the keyword index needs from Chroma: the committed chunks of some articles."""

    def committed_chunks(self, records: dict[str, ArticleRecord]) -> Iterator[tuple[str, str, dict]]: ...

    def chunks_of_articles(self, records: dict[str, ArticleRecord]) -> Iterator[tuple[str, str, dict]]: ...


def _chunk_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    for name in ("chunk_id", "article_id", "content_hash", "paragraphs"):
        builder.add_text_field(name, stored=True, tokenizer_name="raw")
    builder.add_text_field("body", stored=False, tokenizer_name="whitespace", index_option="freq")
    return builder.build()


def _article_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("article_id", stored=True, tokenizer_name="raw")
    builder.add_text_field("body", stored=False, tokenizer_name="whitespace", index_option="freq")
    return builder.build()


def _terms_query(schema: tantivy.Schema, query_terms: list[str]) -> tantivy.Query:
    # One clause per occurrence: a term asked twice counts twice, as BM25 over the query does.
    return tantivy.Query.boolean_query(
        [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", t)) for t in query_terms])


def _only(schema: tantivy.Schema, field: str, values: Iterable[str], query: tantivy.Query) -> tantivy.Query:
    """``query`` scored as it is, over the documents whose ``field`` is one of ``values`` (all of
    them: a document the terms miss scores 0)."""
    restriction = tantivy.Query.const_score_query(tantivy.Query.term_set_query(schema, field, list(values)), 0.0)
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, restriction), (tantivy.Occur.Should, query)])


class KeywordIndex:
    """A point-in-time view of both indexes: later commits do not change what it answers."""

    def __init__(self, generation: str, chunks: tantivy.Index, articles: tantivy.Index) -> None:
        self.generation = generation
        self._chunk_schema = chunks.schema
        self._article_schema = articles.schema
        self._chunks = chunks.searcher()
        self._articles = articles.searcher()

    def __len__(self) -> int:
        return self._chunks.num_docs

    def idf(self, term: str) -> float:
        n = max(self._chunks.num_docs, 1)
        df = min(self._chunks.doc_freq("body", term), n)  # deleted documents count until a merge
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def search(self, query_terms: list[str], n: int) -> list[tuple[ChunkRef, float]]:
        """The ``n`` best chunks with a positive score, best first."""
        if n <= 0 or not query_terms or not self._chunks.num_docs:
            return []
        hits = self._chunks.search(_terms_query(self._chunk_schema, query_terms), n).hits
        return [(self._ref(address), float(score)) for score, address in hits if score > 0]

    def _ref(self, address) -> ChunkRef:
        doc = self._chunks.doc(address)
        return ChunkRef(doc.get_first("chunk_id"), doc.get_first("article_id"), doc.get_first("content_hash"),
                        parse_paragraph_numbers(doc.get_first("paragraphs")))

    def chunk_scores(self, query_terms: list[str], chunk_ids: Iterable[str]) -> dict[str, float]:
        """BM25 score of each of ``chunk_ids`` (0 for one that shares no term; absent when not indexed)."""
        wanted = sorted(set(chunk_ids))
        if not wanted or not query_terms:
            return {}
        query = _only(self._chunk_schema, "chunk_id", wanted, _terms_query(self._chunk_schema, query_terms))
        hits = self._chunks.search(query, len(wanted)).hits
        return {self._chunks.doc(address).get_first("chunk_id"): float(score) for score, address in hits}

    def article_scores(self, query_terms: list[str], article_ids: Iterable[str]) -> dict[str, float]:
        """Article-level BM25 of ``article_ids``, divided by the best score of any article (0..1]."""
        wanted = sorted(set(article_ids))
        if not wanted or not query_terms or not self._articles.num_docs:
            return {}
        query = _terms_query(self._article_schema, query_terms)
        best_hits = self._articles.search(query, 1).hits
        best = float(best_hits[0][0]) if best_hits else 0.0
        if best <= 0:
            return {}
        hits = self._articles.search(_only(self._article_schema, "article_id", wanted, query), len(wanted)).hits
        return {self._articles.doc(address).get_first("article_id"): float(score) / best
                for score, address in hits if score > 0}


@dataclass
class _SyncedState:
    generation: str
    hashes: dict[str, str]  # article id -> content hash of the version the indexes hold


class KeywordStore:
    """The keyword indexes of one index folder (``<index dir>/keyword``).

    One per process and folder: it remembers the synced state it last read or wrote, with the
    file's identity, so a commit reads the state file only when another process replaced it
    (at 1M paragraphs the file holds 232k hashes: 0.19 s to read, and a commit read it twice)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._known_state: tuple[tuple[int, int, int], _SyncedState] | None = None

    def open_at(self, generation: str, records: dict[str, ArticleRecord], source: ChunkSource) -> KeywordIndex:
        """The keyword index as of ``generation`` (whose committed articles are ``records``),
        brought up to date first when it lags."""
        state = self._state()
        if state is not None and state.generation == generation and (opened := self._open()) is not None:
            return KeywordIndex(generation, *opened)
        try:
            with self._sync_lock():
                return self._synced(generation, records, source)
        except OSError as exc:
            # A read-only index folder still answers: from an index in memory, built for this process.
            log.warning("cannot write the keyword index in %s (%s); building it in memory",
                        self.folder, exc.strerror or exc)
            chunks, articles = tantivy.Index(_chunk_schema()), tantivy.Index(_article_schema())
            _apply(chunks, articles, records, source.committed_chunks(records), removed=set(), fresh=True)
            return KeywordIndex(generation, chunks, articles)

    def _synced(self, generation: str, records: dict[str, ArticleRecord], source: ChunkSource) -> KeywordIndex:
        state = self._state()  # again, under the lock: another process may have synced meanwhile
        opened = self._open()
        if state is None or opened is None:
            if self._holds_anything():
                log.warning("the keyword index in %s is damaged or from another release; rebuilding it from "
                            "the vector store (%d articles)", self.folder, len(records))
            opened = self._create()
            state = None
        if state is None or state.generation != generation:
            held = state.hashes if state is not None else {}
            changed = {a: r for a, r in records.items() if held.get(a) != r.content_hash}
            removed = set(held) - set(records)
            fetched = source.chunks_of_articles(changed) if held else source.committed_chunks(records)
            _apply(*opened, changed, fetched, removed, fresh=state is None)
            self._write_state(_SyncedState(generation, {a: r.content_hash for a, r in records.items()}))
        return KeywordIndex(generation, *opened)

    # -- the folder ---------------------------------------------------------------

    def _state_file_identity(self) -> tuple[int, int, int] | None:
        try:
            found = (self.folder / _STATE_FILE).stat()
        except OSError:
            return None
        return found.st_ino, found.st_size, found.st_mtime_ns

    def _state(self) -> _SyncedState | None:
        identity = self._state_file_identity()
        if identity is None:
            return None
        if self._known_state is not None and self._known_state[0] == identity:
            return self._known_state[1]
        # Read after the stat: a file replaced in between is newer than the identity kept with
        # it, so the next call reads it again rather than trusting a stale copy.
        state = read_cached(self.folder / _STATE_FILE, _STATE_VERSION)
        self._known_state = (identity, state) if state is not None else None
        return state

    def _write_state(self, state: _SyncedState) -> None:
        """Under the sync lock, so no other process replaces the file between the write and the stat."""
        write_cached(self.folder / _STATE_FILE, _STATE_VERSION, state)
        identity = self._state_file_identity()
        self._known_state = (identity, state) if identity is not None else None

    def _open(self) -> tuple[tantivy.Index, tantivy.Index] | None:
        try:
            chunks = tantivy.Index.open(str(self.folder / "chunks"))
            articles = tantivy.Index.open(str(self.folder / "articles"))
            chunks.searcher(), articles.searcher()  # a damaged segment shows here, not at open
        except (ValueError, OSError):
            return None
        return chunks, articles

    def _holds_anything(self) -> bool:
        return (self.folder / "chunks").exists() or (self.folder / "articles").exists() \
            or (self.folder / _STATE_FILE).exists()

    def _create(self) -> tuple[tantivy.Index, tantivy.Index]:
        (self.folder / _STATE_FILE).unlink(missing_ok=True)
        indexes = []
        for name, schema in (("chunks", _chunk_schema()), ("articles", _article_schema())):
            shutil.rmtree(self.folder / name, ignore_errors=True)
            (self.folder / name).mkdir(parents=True)
            indexes.append(tantivy.Index(schema, path=str(self.folder / name), reuse=False))
        for stale in self.folder.glob("keyword-*.pkl"):  # the bm25s cache of earlier releases
            stale.unlink(missing_ok=True)
        return indexes[0], indexes[1]

    @contextlib.contextmanager
    def _sync_lock(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / _SYNC_LOCK, "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # held only while a sync writes: wait for it
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _apply(chunks: tantivy.Index, articles: tantivy.Index, changed: dict[str, ArticleRecord],
           fetched: Iterable[tuple[str, str, dict]], removed: set[str], fresh: bool) -> None:
    """Delete whatever the indexes hold of the ``changed`` and ``removed`` articles, add the
    ``fetched`` chunks of the new versions, and commit both indexes (articles first: a reader
    that sees new chunks also sees their articles). Deleting every changed article, not only
    those the state says are held, is what makes a sync killed after its commit harmless to
    repeat; a ``fresh`` index holds nothing to delete."""
    chunk_writer = chunks.writer(heap_size=_WRITER_HEAP_BYTES, num_threads=1)
    article_writer = articles.writer(heap_size=_WRITER_HEAP_BYTES, num_threads=1)
    for article_id in () if fresh else (*removed, *changed):
        chunk_writer.delete_documents_by_term("article_id", article_id)
        article_writer.delete_documents_by_term("article_id", article_id)
    article_terms: dict[str, list[str]] = {}
    for chunk_id, text, metadata in fetched:
        article_id = metadata["article_id"]
        context = metadata.get("context", "")
        chunk_writer.add_document(tantivy.Document(
            chunk_id=chunk_id, article_id=article_id, content_hash=metadata.get("content_hash", ""),
            paragraphs=metadata["paragraphs"], body=" ".join(terms(indexed_text(context, text)))))
        if article_id not in article_terms:  # the title once per article, not once per chunk
            article_terms[article_id] = terms(context)
        article_terms[article_id].extend(terms(text))
    for article_id, words in article_terms.items():
        article_writer.add_document(tantivy.Document(article_id=article_id, body=" ".join(words)))
    for writer in (article_writer, chunk_writer):
        writer.commit()
        writer.wait_merging_threads()
    for index in (chunks, articles):
        index.reload()
