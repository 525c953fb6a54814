"""The index in Chroma: chunk vectors, and the manifest of committed articles.

Two collections, ``<prefix>_chunks`` and ``<prefix>_articles``:

* chunks hold the vector, the paragraph text and ``article_id`` /
  ``content_hash`` / paragraph numbers; they are written through llama-index's
  ``ChromaVectorStore`` and read by its query path.
* articles hold one record per article (the manifest): title, file, hash,
  ingest time and the numbered paragraphs with their spans. Writing that
  record is the commit of an article: chunks whose ``(article_id, hash)`` do
  not match a record are invisible to queries and deleted by the next ingest.
  So an ingest killed at any point leaves an index that a re-run brings to the
  same state as one clean run, and a query never sees half an article.

A ``generation`` record changes on every commit so other readers (the keyword
index, other processes) notice cheaply that the index changed.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import os
import shutil
import tempfile
import threading
import uuid
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import chromadb
import httpx
import numpy as np
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings as ChromaSettings
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.vector_stores.chroma import ChromaVectorStore

from qa._cache import read_cached, write_cached
from qa._config import Settings, VectorStoreSettings, secret
from qa._embedding import ORIGINAL_MODEL_NAME
from qa._errors import IndexCorrupt, IndexWriteError, StoreUnavailable
from qa._models import Article, ArticleRecord, Chunk, PackedParagraphs, Paragraph

_GENERATION_ID = "__generation__"
# What an index written before the model was recorded holds: the packaged graph's vectors.
LEGACY_EMBEDDING_MODEL = ORIGINAL_MODEL_NAME
# Chroma refuses records without a vector; manifest records are looked up by id only.
_NO_VECTOR = [1.0]
_READ_PAGE = 5000
# Articles per `$in` filter when fetching the chunks of a few changed articles: one filter stays small.
_ARTICLES_PER_FETCH = 200
_MANIFEST_COPY_VERSION = 3
# Commits the log keeps: a process whose records are older than that reads the whole manifest.
_COMMIT_LOG_LENGTH = 64
# A process brings its records, or the newest copy, forward by the commit log, and leaves a new
# copy (in the background) only once the walk gets long: after this many commits since the copy,
# well before the log runs out, or this many articles changed. At a million paragraphs, bringing
# 1,000 articles forward reads them in 0.14 s; writing the copy takes 3 s.
_COMMITS_PER_COPY = _COMMIT_LOG_LENGTH // 2
_ARTICLES_PER_COPY = 1_000
# The id, in the commits collection, of the record naming the articles of the latest write.
_WRITE_IN_PROGRESS = "write-in-progress"


def _server_headers(settings: VectorStoreSettings) -> dict[str, str]:
    token = secret("QA_CHROMA_TOKEN")
    if not token:
        return {}
    if settings.auth_header.lower() == "authorization":
        return {"Authorization": f"Bearer {token}"}
    return {settings.auth_header: token}


def _bound_http_timeout(client: Any, seconds: float) -> None:
    """chromadb's HTTP client waits forever on a hung server; give its session a deadline."""
    session = getattr(getattr(client, "_server", None), "_session", None)
    if session is not None:
        session.timeout = httpx.Timeout(seconds, connect=min(seconds, 5.0))


def _open_client(settings: Settings) -> Any:
    store = settings.vector_store
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if store.mode in ("http", "cloud"):
        try:
            if store.mode == "cloud":
                client = chromadb.CloudClient(tenant=store.tenant, database=store.database,
                                              api_key=secret("QA_CHROMA_TOKEN"), settings=chroma_settings)
            else:
                client = chromadb.HttpClient(
                    host=store.host, port=store.port, ssl=store.ssl, headers=_server_headers(store),
                    tenant=store.tenant, database=store.database, settings=chroma_settings,
                )
        except Exception as exc:  # chromadb raises bare ValueError/ConnectionError here
            raise StoreUnavailable(f"cannot reach the Chroma server at {_describe(store)}: {exc}") from None
        _bound_http_timeout(client, store.timeout_s)
        return client
    folder = Path(settings.index.dir) / "chroma"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(folder), settings=chroma_settings)
    except Exception as exc:
        problem = unwritable_reason(folder)
        if problem is None:
            raise IndexCorrupt(
                f"the index folder {folder} cannot be opened ({exc}); "
                f"delete it or run `qa ingest --rebuild` to build it again"
            ) from None
    # Chroma writes even to open an index, so a read-only folder is served from a copy:
    # questions are still answered, and every write says what is wrong.
    copy = Path(tempfile.mkdtemp(prefix="qa-readonly-index-")) / "chroma"
    try:
        shutil.copytree(folder, copy)
        client = chromadb.PersistentClient(path=str(copy), settings=chroma_settings)
    except Exception as exc:
        raise IndexCorrupt(f"the index folder {folder} is not writable ({problem}) and cannot be read: {exc}") from None
    client.qa_read_only_reason = problem
    weakref.finalize(client, shutil.rmtree, copy.parent, True)
    return client


def unwritable_reason(folder: Path) -> str | None:
    """Why nothing can be written in ``folder`` (read-only, no permission, disk full), or None."""
    try:
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def forget_open_clients() -> None:
    """Chroma caches one client system per folder, and a failed open leaves a broken one behind;
    after deleting a broken index folder it must be dropped before the folder is opened again."""
    SharedSystemClient.clear_system_cache()


def release_dropped_clients() -> None:
    """Free the memory of embedded clients no longer referenced, now rather than at some later
    full garbage collection, and hand it back to the system.

    A Chroma client system refers to itself through its components, so a dropped one waits for
    the cycle collector, which in a process holding a large manifest runs a full collection
    rarely; meanwhile it keeps its loaded vector index. Freed, that memory mostly stays in
    glibc's per-thread arenas, where the next client's loading threads do not reuse it. A
    server beside `qa ingest` reopens its client after every commit, and grew by the size of
    the vector index each time (bench/reopen_memory.py: about 220 MB a commit at 100k
    paragraphs, without end). The client may have been frozen with a manifest copy
    (:mod:`qa._cache`), so everything is thawed for this one full collection and frozen again."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def _describe(store: VectorStoreSettings) -> str:
    return f"Chroma Cloud ({store.tenant}/{store.database})" if store.mode == "cloud" else f"{store.host}:{store.port}"


# Room an ingest batch needs on disk, per chunk (vector, text, metadata, HNSW and log
# overhead, generously) and at the least; Chroma's embedded store cannot be read
# again until space is freed if it runs out of disk half-way through a write.
_BYTES_PER_CHUNK = 32_768
_MIN_FREE_BYTES = 64 * 1024 * 1024


def _record_from_chroma(article_id: str, metadata: dict, document: str) -> ArticleRecord:
    paragraphs = PackedParagraphs(Paragraph(**p) for p in json.loads(document)["paragraphs"])
    return ArticleRecord(
        article_id=article_id,
        doc=metadata["doc"],
        path=metadata["path"],
        root=metadata["root"],
        title=metadata["title"],
        content_hash=metadata["content_hash"],
        kind=metadata["kind"],
        chunk_count=int(metadata["chunk_count"]),
        paragraphs=paragraphs,
        ingested_at=metadata["ingested_at"],
    )


def _is_committed(chunk_metadata: dict, records: dict[str, ArticleRecord]) -> bool:
    """Whether a chunk belongs to the committed version of its article."""
    record = records.get(chunk_metadata.get("article_id", ""))
    return record is not None and record.content_hash == chunk_metadata.get("content_hash")


def _model_of(generation_record: dict | None) -> str | None:
    """The embedding model a generation record names; None before the first commit."""
    # Indexes written before the model was recorded all hold the packaged ONNX model's vectors.
    return generation_record.get("embedding_model", LEGACY_EMBEDDING_MODEL) if generation_record else None


class ChromaIndex:
    """Reads and writes the two collections; every Chroma failure becomes a :mod:`qa` error."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client = _open_client(settings)
        self.read_only_reason: str | None = getattr(self._client, "qa_read_only_reason", None)
        prefix = settings.vector_store.collection_prefix
        try:
            self._chunks = self._client.get_or_create_collection(
                f"{prefix}_chunks", embedding_function=None, metadata={"hnsw:space": "cosine"}
            )
            self._articles = self._client.get_or_create_collection(
                f"{prefix}_articles", embedding_function=None
            )
            self._commits = self._client.get_or_create_collection(
                f"{prefix}_commits", embedding_function=None
            )
        except Exception as exc:
            raise self._wrap(exc) from None
        self.vector_store = ChromaVectorStore(chroma_collection=self._chunks)
        # The generations whose writes this client's view holds: the one it opened at and those
        # it committed itself (see has_seen).
        self._seen_generations = {self.generation()}
        # The last manifest this object read or derived, by generation: an ingest reads it before
        # its commit and again after, and at a million paragraphs each read of the copy is seconds.
        self._last_records: tuple[str, dict[str, ArticleRecord]] | None = None
        self._commits_since_copy = 0
        self._articles_since_copy = 0
        self._copy_writer: threading.Thread | None = None

    def has_seen(self, generation: str) -> bool:
        """Whether this client's view of the store includes ``generation``.

        An embedded client keeps the vector index it loaded in memory and never sees another
        process's writes: searching it after one fails ("Error finding id") and writing from it
        would persist a stale view. A generation it has not seen means: open a new client. A
        Chroma server serves every client the same store, so its clients have seen everything."""
        return self._settings.vector_store.mode != "embedded" or generation in self._seen_generations

    def _wrap(self, exc: Exception, writing: bool = False) -> Exception:
        store = self._settings.vector_store
        if store.mode != "embedded":
            return StoreUnavailable(f"the Chroma server at {_describe(store)} failed: {exc}")
        folder = Path(self._settings.index.dir) / "chroma"
        if writing and (problem := unwritable_reason(folder)):
            return self._write_error(problem)
        return IndexCorrupt(
            f"the index in {folder} cannot be used ({exc}); run `qa ingest --rebuild` to build it again"
        )

    @property
    def location(self) -> str:
        """The index folder or the Chroma server, for messages."""
        store = self._settings.vector_store
        return str(Path(self._settings.index.dir) / "chroma") if store.mode == "embedded" else _describe(store)

    # -- reading -----------------------------------------------------------------

    def _generation_record(self) -> dict | None:
        """The metadata of the record every commit rewrites; None before the first commit."""
        try:
            got = self._articles.get(ids=[_GENERATION_ID], include=["metadatas"])
        except Exception as exc:
            raise self._wrap(exc) from None
        return got["metadatas"][0] if got["ids"] else None

    def generation(self) -> str:
        record = self._generation_record()
        return record["token"] if record else "empty"

    def embedding_model(self) -> str | None:
        """The embedding model whose vectors the index holds; None while it holds none."""
        return _model_of(self._generation_record())

    def records(self, generation: str | None = None,
                known: tuple[str, dict[str, ArticleRecord]] | None = None) -> dict[str, ArticleRecord]:
        """Every committed article, by id, as of ``generation`` (default: the current one; a
        caller that has just read the generation passes it, so the two agree).

        Reading the whole manifest from Chroma is most of a fresh ``qa ask``'s own work, and
        28–36 s at a million paragraphs, so it is the last resort. A caller holding records
        (``known``: its previous snapshot's generation and records) brings them forward by the
        commit log: only the articles the commits since then changed are read. A caller without
        reads the local copy of that generation's manifest, or else brings the newest local copy
        forward. A new copy is left for the next process after a whole read, or once the walk from
        the last copy has grown long.
        """
        if generation is None:
            generation = self.generation()
        if self._last_records is not None and self._last_records[0] == generation:
            return self._last_records[1]
        records, consistent = self._read_records(generation, known)
        if consistent:
            self._last_records = (generation, records)
        return records

    def _read_records(self, generation: str, known: tuple[str, dict[str, ArticleRecord]] | None
                      ) -> tuple[dict[str, ArticleRecord], bool]:
        """The records of ``generation``, and whether they are exactly that generation's."""
        # A caller with records of its own (a running server) brings them forward by the commit
        # log, a read of the few articles changed, rather than read the whole copy again (2 s at a
        # million paragraphs).
        holds_records = known is not None
        if not holds_records:
            if (copied := self._read_manifest_copy(generation)) is not None:
                return copied, True
            known = self._last_records or self._newest_manifest_copy()
        if known is not None and (walked := self._changed_since(known[0], generation)) is not None:
            changed, commits = walked
            fetched = self._fetch_records(changed)
            records = {**known[1], **fetched}
            # An article added and removed after ``known`` is in neither.
            for removed in changed - fetched.keys():
                records.pop(removed, None)
            self._commits_since_copy += commits
            self._articles_since_copy += len(changed)
            if self._commits_since_copy >= _COMMITS_PER_COPY or self._articles_since_copy >= _ARTICLES_PER_COPY:
                self._leave_copy_in_background(generation, records)
            return records, True
        if holds_records and (copied := self._read_manifest_copy(generation)) is not None:
            return copied, True
        records: dict[str, ArticleRecord] = {}
        for ids, metadatas, documents in self._pages(self._articles, ["metadatas", "documents"]):
            for article_id, metadata, document in zip(ids, metadatas, documents):
                if article_id != _GENERATION_ID:
                    records[article_id] = _record_from_chroma(article_id, metadata, document)
        # A commit that landed while we read makes these records newer than ``generation``.
        consistent = self.generation() == generation
        if consistent:
            self._leave_copy_in_background(generation, records)
        return records, consistent

    def _manifest_copy(self, generation: str) -> Path:
        return Path(self._settings.index.dir) / "manifest" / f"records-{generation}.pkl"

    def _newest_manifest_copy(self) -> tuple[str, dict[str, ArticleRecord]] | None:
        folder = Path(self._settings.index.dir) / "manifest"
        for path in sorted(folder.glob("records-*.pkl"), key=lambda p: p.stat().st_mtime, reverse=True):
            generation = path.stem.removeprefix("records-")
            if (copied := self._read_manifest_copy(generation)) is not None:
                return generation, copied
        return None

    def leave_manifest_copy(self) -> None:
        """Leave a copy of the records last read for the next process, unless there is one: what a
        writer's batch (``qa ingest``) does after its commit. A reader leaves one only after a
        long walk from the last copy."""
        if self._copy_writer is not None:
            self._copy_writer.join()  # one of an older generation (the ingest's first read) would skip this one
        if self._last_records is not None and not self._manifest_copy(self._last_records[0]).exists():
            self._leave_copy_in_background(*self._last_records)

    def _leave_copy_in_background(self, generation: str, records: dict[str, ArticleRecord]) -> None:
        """Write the copy on a thread of its own, one at a time: at a million paragraphs it takes
        seconds, which a starting server would otherwise add to its cold open. Not a daemon, so
        that a process ending (a server shutting down, a one-shot `qa ask`) finishes the file
        rather than leave half."""
        if self._copy_writer is not None and self._copy_writer.is_alive():
            return
        self._copy_writer = threading.Thread(target=self._write_manifest_copy, args=(generation, records),
                                             name="qa-manifest-copy")
        self._copy_writer.start()

    def _changed_since(self, known: str, generation: str) -> tuple[set[str], int] | None:
        """The ids of the articles that the commits after ``known`` up to ``generation`` wrote or
        removed, and how many commits those were; None when the commit log does not reach back to
        ``known`` (then only a whole read will do)."""
        if known == generation:
            return set(), 0
        current = self._generation_record()
        if not current or "sequence" not in current:
            return None  # written before the log was kept
        sequence = int(current["sequence"])
        wanted = [str(n) for n in range(sequence, max(sequence - _COMMIT_LOG_LENGTH, 0), -1)]
        try:
            got = self._commits.get(ids=wanted, include=["metadatas", "documents"])
        except Exception as exc:
            raise self._wrap(exc) from None
        log = {int(i): (m, d) for i, m, d in zip(got["ids"], got["metadatas"], got["documents"])}
        changed: set[str] = set()
        commits = 0
        expected = None  # until the walk reaches ``generation``: commits may have landed since
        for number in range(sequence, sequence - len(wanted), -1):
            if number not in log:
                return None  # a gap: the log was cut short
            metadata, document = log[number]
            if expected is None and metadata.get("token") != generation:
                continue
            if expected is not None and metadata.get("token") != expected:
                return None  # an entry whose commit never landed was overwritten: the chain is broken
            changed.update(json.loads(document))
            commits += 1
            if metadata.get("parent") == known:
                return changed, commits
            expected = metadata.get("parent")
        return None

    def _fetch_records(self, article_ids: set[str]) -> dict[str, ArticleRecord]:
        """The committed records of those of ``article_ids`` that have one."""
        ids = sorted(article_ids)
        found: dict[str, ArticleRecord] = {}
        try:
            for begin in range(0, len(ids), _ARTICLES_PER_FETCH):
                got = self._articles.get(ids=ids[begin : begin + _ARTICLES_PER_FETCH],
                                         include=["metadatas", "documents"])
                for article_id, metadata, document in zip(got["ids"], got["metadatas"], got["documents"]):
                    found[article_id] = _record_from_chroma(article_id, metadata, document)
        except Exception as exc:
            raise self._wrap(exc) from None
        return found

    def _read_manifest_copy(self, generation: str) -> dict[str, ArticleRecord] | None:
        return read_cached(self._manifest_copy(generation), _MANIFEST_COPY_VERSION, long_lived=True)

    def _write_manifest_copy(self, generation: str, records: dict[str, ArticleRecord]) -> None:
        self._commits_since_copy = 0
        self._articles_since_copy = 0
        try:
            write_cached(self._manifest_copy(generation), _MANIFEST_COPY_VERSION, records)
        except OSError:
            pass  # a read-only index folder still answers, reading the manifest from Chroma

    def committed_chunks(self, records: dict[str, ArticleRecord]) -> Iterator[tuple[str, str, dict]]:
        """(chunk id, text, metadata) of every chunk of a committed article version."""
        for ids, metadatas, documents in self._pages(self._chunks, ["metadatas", "documents"]):
            for chunk_id, metadata, document in zip(ids, metadatas, documents):
                if _is_committed(metadata, records):
                    yield chunk_id, document, metadata

    def chunks_of_articles(self, records: dict[str, ArticleRecord]) -> Iterator[tuple[str, str, dict]]:
        """Like :meth:`committed_chunks`, for the articles in ``records`` only: what the keyword
        index fetches after a commit that changed a few of many articles."""
        for ids, metadatas, documents in self._chunk_pages_of(list(records), ["metadatas", "documents"]):
            for chunk_id, metadata, document in zip(ids, metadatas, documents):
                if _is_committed(metadata, records):
                    yield chunk_id, document, metadata

    def _chunk_pages_of(self, article_ids: list[str], include: list[str]) -> Iterator[tuple[list, list, list]]:
        """Like :meth:`_pages` over the chunks, for the chunks of ``article_ids`` only."""
        ids = sorted(article_ids)
        try:
            for begin in range(0, len(ids), _ARTICLES_PER_FETCH):
                got = self._chunks.get(where={"article_id": {"$in": ids[begin : begin + _ARTICLES_PER_FETCH]}},
                                       include=include)
                yield got["ids"], got["metadatas"], got.get("documents") or [""] * len(got["ids"])
        except Exception as exc:
            raise self._wrap(exc) from None

    def _pages(self, collection: Any, include: list[str]) -> Iterator[tuple[list, list, list]]:
        offset = 0
        while True:
            try:
                got = collection.get(include=include, limit=_READ_PAGE, offset=offset)
            except Exception as exc:
                raise self._wrap(exc) from None
            if not got["ids"]:
                return
            yield got["ids"], got["metadatas"], got.get("documents") or [""] * len(got["ids"])
            offset += len(got["ids"])

    def chunk_count(self) -> int:
        try:
            return self._chunks.count()
        except Exception as exc:
            raise self._wrap(exc) from None

    def dense_search(self, query_vector: np.ndarray, n: int) -> list[tuple[str, float, dict]]:
        """(chunk id, cosine similarity, metadata), best first; stale chunks may appear and are
        dropped by the caller, which knows the committed records."""
        if n <= 0:
            return []
        try:
            result = self.vector_store.query(
                VectorStoreQuery(query_embedding=query_vector.tolist(), similarity_top_k=n)
            )
        except Exception as exc:
            raise self._wrap(exc) from None
        hits = []
        for node, similarity in zip(result.nodes, result.similarities):
            # ChromaVectorStore reports exp(-distance); cosine distance is 1 - cos.
            cosine = 1.0 + float(np.log(max(similarity, 1e-12)))
            hits.append((node.node_id, cosine, node.metadata))
        return hits

    def chunk_vectors(self, chunk_ids: list[str]) -> dict[str, np.ndarray]:
        """Stored embeddings of ``chunk_ids`` (those that exist), by id."""
        if not chunk_ids:
            return {}
        try:
            got = self._chunks.get(ids=chunk_ids, include=["embeddings"])
        except Exception as exc:
            raise self._wrap(exc) from None
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(got["ids"], got["embeddings"])}

    # -- writing -----------------------------------------------------------------

    def _max_batch(self) -> int:
        """Chroma refuses larger writes (5,461 records embedded); llama-index splits only at 41,665."""
        try:
            return max(1, int(self._client.get_max_batch_size()))
        except Exception:  # an older server without the call: a size every version takes
            return 5000

    def _write_error(self, problem: str) -> IndexWriteError:
        return IndexWriteError.in_folder(Path(self._settings.index.dir) / "chroma", problem)

    def check_writable(self, chunks: int) -> None:
        """Refuse a write that cannot succeed before it starts, so the index is never left half-written
        by a full disk or a read-only folder."""
        if self.read_only_reason:
            raise self._write_error(self.read_only_reason)
        if self._settings.vector_store.mode != "embedded":
            return
        folder = Path(self._settings.index.dir) / "chroma"
        needed = max(_MIN_FREE_BYTES, chunks * _BYTES_PER_CHUNK)
        free = shutil.disk_usage(folder).free
        if free < needed:
            raise self._write_error(
                f"{free / 1e6:.0f} MB free on its disk, about {needed / 1e6:.0f} MB needed; nothing was written"
            )
        if problem := unwritable_reason(folder):
            raise self._write_error(problem)

    def write_articles(self, batch: list[tuple[Article, list[Chunk], np.ndarray]], embedding_model: str,
                       replacing: set[str] = frozenset()) -> None:
        """Store the chunks, then commit the article records, then drop the previous versions
        of the articles in ``replacing`` (ids of articles that were already indexed).
        ``embedding_model`` made the vectors; the commit records it."""
        nodes: list[TextNode] = []
        ids, metadatas, documents = [], [], []
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for article, chunks, vectors in batch:
            nodes.extend(
                TextNode(
                    id_=chunk.chunk_id,
                    text=chunk.text,
                    embedding=vector.tolist(),
                    metadata={
                        "article_id": article.article_id,
                        "content_hash": article.content_hash,
                        "paragraphs": ",".join(str(n) for n in chunk.paragraph_numbers),
                        "context": chunk.context,
                    },
                )
                for chunk, vector in zip(chunks, vectors)
            )
            ids.append(article.article_id)
            documents.append(json.dumps({"paragraphs": [p._asdict() for p in article.paragraphs]}))
            metadatas.append({
                "doc": article.doc,
                "path": str(article.path),
                "root": str(article.root),
                "title": article.title,
                "content_hash": article.content_hash,
                "kind": article.kind,
                "chunk_count": len(chunks),
                "ingested_at": now,
            })
        try:
            self._announce_write(ids)
            step = self._max_batch()
            for begin in range(0, len(nodes), step):
                self.vector_store.add(nodes[begin : begin + step])
            self._articles.upsert(
                ids=ids, embeddings=[_NO_VECTOR] * len(ids), metadatas=metadatas, documents=documents
            )
            for article in (a for a, _, _ in batch if a.article_id in replacing):
                self._chunks.delete(
                    where={"$and": [{"article_id": article.article_id},
                                    {"content_hash": {"$ne": article.content_hash}}]}
                )
            self._bump_generation(ids, embedding_model)
        except Exception as exc:
            raise self._wrap(exc, writing=True) from None

    def remove_article(self, article_id: str) -> None:
        """Uncommit first, so a query never sees chunks of a half-removed article."""
        self.check_writable(0)
        try:
            self._announce_write([article_id])
            self._articles.delete(ids=[article_id])
            self._chunks.delete(where={"article_id": article_id})
            self._bump_generation([article_id])
        except Exception as exc:
            raise self._wrap(exc, writing=True) from None

    def _announce_write(self, article_ids: list[str]) -> None:
        """Record which articles the write about to start touches, before it touches them: if it
        is interrupted, only their chunks can be orphans (:meth:`delete_orphans`)."""
        self._commits.upsert(ids=[_WRITE_IN_PROGRESS], embeddings=[_NO_VECTOR], metadatas=[{"articles": len(article_ids)}],
                             documents=[json.dumps(sorted(article_ids))])

    def _last_write(self) -> list[str] | None:
        """The articles the latest write announced; None for an index written before writes were."""
        try:
            got = self._commits.get(ids=[_WRITE_IN_PROGRESS], include=["documents"])
        except Exception as exc:
            raise self._wrap(exc) from None
        return json.loads(got["documents"][0]) if got["ids"] else None

    def delete_orphans(self, records: dict[str, ArticleRecord]) -> int:
        """Delete chunks left by an interrupted write (no matching committed record).

        Writes are one at a time and each announces its articles first, so only the chunks of the
        latest write's articles need checking: at a million paragraphs a scan of every chunk took
        over two minutes of each ingest. An index without the announcement is scanned whole."""
        last_write = self._last_write()
        pages = (self._pages(self._chunks, ["metadatas"]) if last_write is None
                 else self._chunk_pages_of(last_write, ["metadatas"]))
        orphans = [chunk_id for ids, metadatas, _ in pages
                   for chunk_id, metadata in zip(ids, metadatas) if not _is_committed(metadata, records)]
        try:
            for begin in range(0, len(orphans), _READ_PAGE):
                self._chunks.delete(ids=orphans[begin : begin + _READ_PAGE])
        except Exception as exc:
            raise self._wrap(exc, writing=True) from None
        return len(orphans)

    def reset(self) -> None:
        """Drop both collections (``qa ingest --rebuild``)."""
        prefix = self._settings.vector_store.collection_prefix
        for name in (f"{prefix}_chunks", f"{prefix}_articles", f"{prefix}_commits"):
            try:
                self._client.delete_collection(name)
            except Exception:  # a collection that is already gone is what we want
                pass
        self.__init__(self._settings)

    def _bump_generation(self, changed: list[str], embedding_model: str | None = None) -> None:
        """A new generation token; the recorded embedding model is kept unless one is given.

        The commit log entry (which articles this commit wrote or removed, and the generation
        before) is written first: one that lands without its generation is overwritten by the
        next commit, which takes the same sequence number."""
        previous = self._generation_record() or {}
        sequence = int(previous.get("sequence", 0)) + 1
        metadata = {"token": uuid.uuid4().hex, "sequence": sequence}
        self._seen_generations.add(metadata["token"])
        model = embedding_model or _model_of(previous or None)
        if model:
            metadata["embedding_model"] = model
        self._commits.upsert(ids=[str(sequence)], embeddings=[_NO_VECTOR],
                             metadatas=[{"token": metadata["token"], "parent": previous.get("token", "empty")}],
                             documents=[json.dumps(sorted(set(changed)))])
        if sequence > _COMMIT_LOG_LENGTH:
            self._commits.delete(ids=[str(sequence - _COMMIT_LOG_LENGTH)])
        self._articles.upsert(ids=[_GENERATION_ID], embeddings=[_NO_VECTOR], metadatas=[metadata], documents=[""])
