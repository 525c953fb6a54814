"""Scale: retrieval latency, memory and index size at 10k, 100k and 1M paragraphs (issue figures, not a test).

Run from the repository root (the BBC index must exist first, see README "Measured"):

    .venv/bin/pip install -e '.[bench]'        # matplotlib, for the plot
    .venv/bin/python -m bench.scale --sizes 10k,100k,1M --work-dir /tmp/qa-scale

For each size N it builds, once, a real index of exactly N paragraphs in the product's own
format under ``--work-dir``/``nN`` (embedded Chroma written through
:meth:`qa._store.ChromaIndex.write_articles`, the ingest's commit path, in batches of
``--batch-chunks`` paragraphs, then the keyword index cache written by
:meth:`qa.QAService.snapshot`). Paragraph texts are the real BBC chunks of
``--source-index`` (default ``/tmp/idx-bbc``, built by ``qa ingest ../shared/data/bbc``),
one paragraph per chunk: the first copy is the corpus as ingested, every further copy
deals all its paragraphs out at random into articles of the corpus's own lengths, so
postings lists grow as in a bigger news archive. Vectors are the stored chunk embeddings,
plus Gaussian noise (``--noise`` per dimension) and renormalised for the copies, so no
model runs while inserting; embedding cost is measured by ``bench/speed.py``. An index
that was built completely (``BUILD.json`` written last) is reused unless ``--rebuild``;
an interrupted build resumes where it stopped. Builds run in a child process, so their
peak RSS is reported too. On the 2-core development machine the 1M build took 45 min of
inserts plus 10 min of keyword index, 12 GB of disk and 12 GB of RAM at its peak.

Then for each size a fresh process opens the index as ``QAService`` does (snapshot:
Chroma, the manifest and the cached keyword index), and times
``HybridRetriever.candidates(question, 10, vector)`` for the questions of
``tests/data/bbc_dev.jsonl`` and ``../shared/data/squad2-500/questions.jsonl`` (vectors
embedded once beforehand with the product's embedder, so only retrieval is timed), with
the time spent in Chroma and in BM25 inside it, then ``QAService.ask`` (extractive; its
``embed`` stage is subtracted). Memory is the serving process's own (``VmRSS``, and
``VmHWM`` for the peak). It prints Markdown tables, the verdict against the 1M targets
(retrieval p50 ≤ 100 ms, p95 ≤ 250 ms, RSS ≤ 6 GB) and draws ``--plot``.

Figures depend on the machine and on what else runs on it: the load average during each
measurement is printed beside it, and the CPU time of retrieval beside its wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from qa import QAService, load_settings
from qa._articles import article_id_for
from qa._embedding import OnnxMiniLMEmbedding, make_embedding
from qa._eval import read_questions
from qa._keyword import KeywordStore
from qa._metrics import percentile as nearest_rank
from qa._models import Article, Chunk, Paragraph
from qa._retrieval import HybridRetriever
from qa._store import ChromaIndex

REPO = Path(__file__).resolve().parent.parent
DEFAULT_QUESTIONS = (REPO / "tests/data/bbc_dev.jsonl", REPO.parent / "shared/data/squad2-500/questions.jsonl")
TARGET_P50_MS, TARGET_P95_MS, TARGET_RSS_GB = 100.0, 250.0, 6.0
_FORMAT = 1  # bump when the synthetic layout changes: older builds are then rebuilt


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_now_mb() -> float:
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """Peak RSS of this process since it started.

    ``getrusage(RUSAGE_SELF).ru_maxrss`` would be wrong here: Linux carries the parent's peak
    across fork + exec into it, so a child of a 600 MB parent reports at least 600 MB.
    ``VmHWM`` belongs to the process's own address space, which exec replaces."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk under ``path``, as ``du`` counts them."""
    if not path.exists():
        return 0
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                pass
    return total


def percentile(values: list[float], q: float) -> float:
    return nearest_rank(values, q)


# -- the source material: real BBC chunks and their stored vectors -------------------


@dataclass
class SourceArticle:
    doc: str
    title: str
    texts: list[str]  # chunk texts, in order
    contexts: list[str]  # their title/section context, as stored
    vectors: np.ndarray  # (chunks, dim) float32, as stored


def source_model(cache: Path) -> str | None:
    """The embedding model that made the source vectors, as the source index records it."""
    try:
        return json.loads(cache.with_suffix(".json").read_text()).get("embedding_model")
    except (OSError, ValueError):
        return None


def load_source(source_index: Path, cache: Path) -> list[SourceArticle]:
    """The committed chunks of ``source_index`` grouped by article, cached as a pickle (and the
    name of the embedding model of its vectors beside it)."""
    if cache.exists():
        with cache.open("rb") as handle:
            return [SourceArticle(**fields) for fields in pickle.load(handle)]

    index = ChromaIndex(load_settings(index={"dir": str(source_index)}))
    records = index.records()
    if not records:
        sys.exit(f"{source_index} holds no committed article: build it with "
                 f"`QA_INDEX_DIR={source_index} .venv/bin/qa ingest ../shared/data/bbc`")
    pieces: dict[str, list[tuple[int, str, str, np.ndarray]]] = {}
    offset = 0
    while True:  # the chunks with their vectors, which ChromaIndex's readers leave out
        got = index._chunks.get(include=["embeddings", "documents", "metadatas"], limit=5000, offset=offset)
        if not len(got["ids"]):
            break
        for chunk_id, text, meta, vector in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
            record = records.get(meta.get("article_id", ""))
            if record is not None and record.content_hash == meta.get("content_hash"):
                pieces.setdefault(record.article_id, []).append(
                    (int(chunk_id.rsplit(":", 1)[1]), text, meta.get("context", ""), np.asarray(vector, np.float32)))
        offset += len(got["ids"])
    articles = []
    for record in sorted(records.values(), key=lambda r: r.doc):
        chunks = sorted(pieces.get(record.article_id, []), key=lambda p: p[0])
        if chunks:
            articles.append(SourceArticle(record.doc, record.title, [c[1] for c in chunks], [c[2] for c in chunks],
                                          np.stack([c[3] for c in chunks])))
    cache.parent.mkdir(parents=True, exist_ok=True)
    model = index.embedding_model() if hasattr(index, "embedding_model") else None
    cache.with_suffix(".json").write_text(json.dumps({"source_index": str(source_index), "embedding_model": model}))
    with cache.open("wb") as handle:
        pickle.dump([vars(a) for a in articles], handle, protocol=pickle.HIGHEST_PROTOCOL)  # plain dicts: no class path
    return articles


# -- the synthetic corpus of N paragraphs -------------------------------------------


@dataclass
class Planned:
    copy: int
    template: int  # index of the source article lending its title, doc name and length
    pieces: list[tuple[int, int]]  # (source article, chunk) of each paragraph


def plan(source: list[SourceArticle], n: int, seed: int) -> Iterator[Planned]:
    """Articles totalling exactly ``n`` paragraphs: copy 0 is the corpus itself, each further copy
    deals every source paragraph at random into articles shaped like a random source article."""
    flat = [(a, c) for a, article in enumerate(source) for c in range(len(article.texts))]
    produced, copy = 0, 0
    while produced < n:
        if copy == 0:
            order = list(range(len(source)))
            dealt = flat
        else:
            rng = np.random.default_rng([seed, copy])
            order = [int(i) for i in rng.permutation(len(source))]
            dealt = [flat[int(i)] for i in rng.permutation(len(flat))]
        position = 0
        for template in order:
            length = len(source[template].texts)
            take = min(length, n - produced)
            yield Planned(copy, template, dealt[position : position + take])
            position += length
            produced += take
            if produced >= n:
                return
        copy += 1


def materialise(planned: Planned, source: list[SourceArticle], noise: float, seed: int):
    """The :class:`Article`, its :class:`Chunk` s (one per paragraph) and their vectors."""

    template = source[planned.template]
    doc = f"bbc-copy-{planned.copy:03d}/{template.doc}"
    path = Path("/synthetic") / doc
    article_id = article_id_for(path)
    texts = [source[a].texts[c] for a, c in planned.pieces]
    paragraphs, cursor = [], 0
    for number, text in enumerate(texts, 1):
        paragraphs.append(Paragraph(number=number, start=cursor, end=cursor + len(text), text=text))
        cursor += len(text) + 2  # the source text is the paragraphs joined by blank lines
    content_hash = hashlib.sha256("\n\n".join(texts).encode("utf-8")).hexdigest()
    article = Article(article_id=article_id, doc=doc, path=path, root=Path("/synthetic"), title=template.title,
                      paragraphs=tuple(paragraphs), content_hash=content_hash)
    chunks = [
        Chunk(chunk_id=f"{article_id}:{content_hash[:12]}:{i}", article_id=article_id, paragraph_numbers=(i + 1,),
              text=texts[i], context=source[a].contexts[c])
        for i, (a, c) in enumerate(planned.pieces)
    ]
    vectors = np.stack([source[a].vectors[c] for a, c in planned.pieces])
    if planned.copy > 0 and noise > 0:
        rng = np.random.default_rng([seed, planned.copy, planned.template, 1])
        vectors = vectors + rng.normal(0.0, noise, vectors.shape).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return article, chunks, vectors


# -- building one index (child process) -------------------------------------------------


def build_index(folder: Path, n: int, source_cache: Path, noise: float, seed: int, batch_chunks: int) -> None:


    source = load_source(Path("/nonexistent"), source_cache)
    model = source_model(source_cache) or "unknown"
    settings = load_settings(index={"dir": str(folder)})
    service = QAService(settings)
    index = service.index
    # Chroma refuses a write of more records than this (llama-index's ChromaVectorStore does not split).
    batch_chunks = min(batch_chunks, index._client.get_max_batch_size())
    began = time.perf_counter()
    records = index.records()  # a build that was interrupted resumes: its committed articles stay
    if records:
        index.delete_orphans(records)
    resumed = sum(r.chunk_count for r in records.values())
    insert_seconds = 0.0
    pending, pending_chunks = [], 0
    progress = tqdm(total=n, initial=resumed, unit="para", desc=f"build {label(n)}", smoothing=0.05,
                    mininterval=2.0, file=sys.stderr)

    def commit() -> None:
        nonlocal pending, pending_chunks, insert_seconds
        if not pending:
            return
        started = time.perf_counter()
        index.check_writable(pending_chunks)
        index.write_articles(pending, model)
        insert_seconds += time.perf_counter() - started
        progress.update(pending_chunks)
        pending, pending_chunks = [], 0

    for planned in plan(source, n, seed):
        article, chunks, vectors = materialise(planned, source, noise, seed)
        if article.article_id in records:
            continue
        if pending_chunks + len(chunks) > batch_chunks:
            commit()
        pending.append((article, chunks, vectors))
        pending_chunks += len(chunks)
    commit()
    progress.close()
    total_seconds = time.perf_counter() - began
    started = time.perf_counter()
    snapshot = service.snapshot()  # reads the manifest, brings the keyword index up to date
    keyword_seconds = time.perf_counter() - started
    paragraphs = sum(len(r.paragraphs) for r in snapshot.records.values())
    if paragraphs != n or len(snapshot.keyword) != n:
        sys.exit(f"{folder}: built {paragraphs} paragraphs, {len(snapshot.keyword)} chunks, expected {n}")
    info = {
        "format": _FORMAT, "n": n, "noise": noise, "seed": seed, "source_chunks": sum(len(a.texts) for a in source),
        "articles": len(snapshot.records), "paragraphs": paragraphs, "generation": snapshot.generation,
        "resumed_from": resumed, "batch_chunks": batch_chunks, "embedding_model": model,
        "insert_s": round(insert_seconds, 1), "generate_and_insert_s": round(total_seconds, 1),
        "keyword_s": round(keyword_seconds, 1), "build_peak_rss_mb": round(peak_rss_mb()),
        "loadavg": os.getloadavg()[0],
    }
    (folder / "BUILD.json").write_text(json.dumps(info, indent=1))


def build_complete(folder: Path, n: int, noise: float, seed: int) -> dict | None:
    try:
        info = json.loads((folder / "BUILD.json").read_text())
    except (OSError, ValueError):
        return None
    if (info.get("format"), info.get("n"), info.get("noise"), info.get("seed")) != (_FORMAT, n, noise, seed):
        return None
    if not (folder / "keyword" / "synced-state.pkl").exists():
        return None
    return info


# -- serving one index (fresh child process) -------------------------------------------


# What candidates() spends its time in: (label, class, method). Methods the product does not
# have (yet, or any more) are skipped; time in a method called from another listed one counts
# for the outer one only.
_PARTS = (
    ("dense", "qa._store:ChromaIndex", "dense_search"),
    ("vectors", "qa._store:ChromaIndex", "chunk_vectors"),
    ("bm25", "qa._keyword:KeywordIndex", "chunk_scores"),
    ("bm25", "qa._keyword:KeywordIndex", "search"),
    ("bm25_articles", "qa._keyword:KeywordIndex", "article_scores"),
)


def _instrument(parts: dict[str, float]) -> None:
    active = [0]
    for name, where, method in _PARTS:
        module, cls = where.split(":")
        owner = getattr(importlib.import_module(module), cls)
        original = owner.__dict__.get(method)
        if not callable(original):
            continue

        def wrapper(*args, _original=original, _name=name, **kwargs):
            if active[0]:
                return _original(*args, **kwargs)
            active[0] += 1
            began = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                active[0] -= 1
                parts[_name] = parts.get(_name, 0.0) + (time.perf_counter() - began) * 1000
        setattr(owner, method, wrapper)


def serve_and_measure(folder: Path, queries_file: Path, out: Path, ask: bool) -> None:

    stage: dict[str, float] = {}
    # Time the parts of QAService.snapshot() without changing what it does.
    # open_at opens the keyword index; _synced runs only when it had to be brought up to date.
    records, load, build = ChromaIndex.records, KeywordStore.open_at, KeywordStore._synced
    ChromaIndex.records = lambda self, *a: _timed_call(stage, "manifest_s", records, self, *a)
    KeywordStore.open_at = lambda self, *a: _timed_call(stage, "keyword_load_s", load, self, *a)
    KeywordStore._synced = lambda self, *a: _timed_call(stage, "keyword_rebuilt_s", build, self, *a)

    loaded = np.load(queries_file, allow_pickle=False)
    texts, vectors = [str(t) for t in loaded["texts"]], loaded["vectors"]
    rss_start = rss_now_mb()
    began = time.perf_counter()
    service = QAService(load_settings(index={"dir": str(folder)}))
    _ = service.index
    stage["chroma_open_s"] = time.perf_counter() - began
    snapshot = service.snapshot()
    open_s = time.perf_counter() - began
    rss_open = rss_now_mb()
    settings = service.settings
    retriever = HybridRetriever(service.index, None, snapshot, settings.retrieval)

    began = time.perf_counter()
    retriever.candidates(texts[0], 10, vectors[0])  # Chroma loads the HNSW index on the first query
    first_query_ms = (time.perf_counter() - began) * 1000
    for text, vector in zip(texts[1:21], vectors[1:21]):
        retriever.candidates(text, 10, vector)

    parts: dict[str, float] = {}
    _instrument(parts)
    wall, cpu, breakdown = [], [], {}
    for text, vector in zip(texts, vectors):
        parts.clear()
        began, began_cpu = time.perf_counter(), time.process_time()
        retriever.candidates(text, 10, vector)
        wall.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - began_cpu) * 1000)
        for name in {n for n, _, _ in _PARTS} | {"other"}:
            value = wall[-1] - sum(parts.values()) if name == "other" else parts.get(name, 0.0)
            breakdown.setdefault(name, []).append(value)
    rss_retrieval = rss_now_mb()
    peak_retrieval = peak_rss_mb()

    asks, asks_wall = [], []
    if ask:
        index_model = service.index.embedding_model() if hasattr(service.index, "embedding_model") else None
        service._embedder = embedder_for(index_model, settings)  # the index's model, as QAService would need
        service.embedder.embed(["warm up"])
        for text in texts[:10]:
            service.ask(text, retrieve=10)
        for text in texts:
            began = time.perf_counter()
            response = service.ask(text, retrieve=10)
            asks_wall.append((time.perf_counter() - began) * 1000)
            asks.append(asks_wall[-1] - response.timings.get("embed", 0.0))

    def p(values: list[float], q: float) -> float | None:
        return round(percentile(values, q), 2) if values else None

    result = {
        "n": snapshot.paragraph_count, "articles": len(snapshot.records), "chunks": len(snapshot.keyword),
        "queries": len(texts),
        "open_s": round(open_s, 2), **{k: round(v, 2) for k, v in stage.items()},
        "first_query_ms": round(first_query_ms, 1),
        "retrieval_p50": p(wall, 50), "retrieval_p95": p(wall, 95), "retrieval_max": p(wall, 100),
        "retrieval_cpu_p50": p(cpu, 50), "retrieval_cpu_p95": p(cpu, 95),
        "parts": {name: {"p50": p(v, 50), "p95": p(v, 95), "mean": round(float(np.mean(v)), 2)}
                  for name, v in breakdown.items() if any(v)},
        "ask_p50": p(asks, 50), "ask_p95": p(asks, 95),
        "ask_wall_p50": p(asks_wall, 50), "ask_wall_p95": p(asks_wall, 95),
        "rss_start_mb": round(rss_start), "rss_open_mb": round(rss_open),
        "rss_retrieval_mb": round(rss_retrieval), "peak_rss_retrieval_mb": round(peak_retrieval),
        "peak_rss_mb": round(peak_rss_mb()),
        "loadavg": round(os.getloadavg()[0], 2),
    }
    out.write_text(json.dumps(result, indent=1))


def _timed_call(stage: dict, key: str, function, *args):
    began = time.perf_counter()
    try:
        return function(*args)
    finally:
        stage[key] = stage.get(key, 0.0) + time.perf_counter() - began


# -- the parent: build what is missing, measure each size, report --------------------------


def embedder_for(model: str | None, settings):
    """The product's embedder whose vectors are those of ``model`` (the model of the index), so the
    query vectors match the index and ``ask`` accepts it. The configured one when it matches (or
    when the index does not say); otherwise the other local ONNX variant, if it is that model."""
    embedder = make_embedding(settings.embedding)
    if model is None or getattr(embedder, "model_name", model) == model:
        return embedder
    for fused in (False, True):
        other = OnnxMiniLMEmbedding(settings.embedding.max_tokens, settings.embedding.batch_size,
                                    settings.embedding.threads, fused=fused)
        if other.model_name == model:
            return other
    sys.exit(f"no embedder of the model {model!r} that made the source vectors: rebuild --source-index "
             f"with the configured model, then run with --rebuild")


def query_vectors(questions: list[Path], cache: Path, model: str | None) -> Path:
    """The benchmark questions and their vectors from the product's embedder, computed once."""

    texts = [q.question for path in questions for q in read_questions(path)]
    if cache.exists():
        loaded = np.load(cache, allow_pickle=False)
        if [str(t) for t in loaded["texts"]] == texts and "model" in loaded and str(loaded["model"]) == str(model):
            return cache
    embedder = embedder_for(model, load_settings(index={"dir": str(cache.parent / "unused")}))
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    np.savez(cache, texts=np.array(texts), vectors=vectors, model=np.array(str(model)))
    return cache


def _child(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "bench.scale", *args], cwd=REPO, check=True)


def fmt_bytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def fmt_s(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.1f} s"


PART_LABELS = {
    "dense": "dense: Chroma HNSW query",
    "vectors": "Chroma get of vectors",
    "bm25": "BM25 over chunks",
    "bm25_articles": "BM25 over articles",
    "other": "rest (Python: fusion, re-scoring)",
}


def report(rows: list[dict], plot: Path | None) -> None:
    print("\nBuild (once per size; vectors inserted directly, no embedding):\n")
    print("| paragraphs | articles | insert into Chroma | keyword index build | build peak RSS | "
          "index on disk | of which Chroma | of which keyword cache | load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b = r["build"]
        resumed = f" (resumed at {b['resumed_from']:,})" if b.get("resumed_from") else ""
        print(f"| {r['n']:,} | {b['articles']:,} | {fmt_s(b['insert_s'])} "
              f"({r['n'] / max(b['insert_s'], 1e-9):,.0f} para/s){resumed} | {fmt_s(b['keyword_s'])} | "
              f"{b['build_peak_rss_mb'] / 1024:.2f} GB | {fmt_bytes(r['disk_total'])} | {fmt_bytes(r['disk_chroma'])} | "
              f"{fmt_bytes(r['disk_keyword'])} | {b['loadavg']:.1f} |")
    queries = rows[0]["serve"]["queries"] if rows else 0
    print(f"\nServing, a fresh process per size, {queries} questions "
          f"(query vectors precomputed; ask = retrieval + extractive answer, embedding excluded):\n")
    print("| paragraphs | open (cold) | first query | retrieval p50 | retrieval p95 | retrieval CPU p50 / p95 | "
          "ask p50 | ask p95 | RSS after open | RSS after retrieval | peak RSS | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["serve"]
        ask = (f"{s['ask_p50']:.1f} ms | {s['ask_p95']:.1f} ms" if s["ask_p50"] is not None else "– | –")
        print(f"| {r['n']:,} | {s['open_s']:.1f} s (manifest {s.get('manifest_s', 0):.1f} s, keyword "
              f"{s.get('keyword_load_s', 0):.1f} s) | {s['first_query_ms']:.0f} ms | {s['retrieval_p50']:.1f} ms | "
              f"{s['retrieval_p95']:.1f} ms | {s['retrieval_cpu_p50']:.1f} / {s['retrieval_cpu_p95']:.1f} ms | {ask} | "
              f"{s['rss_open_mb'] / 1024:.2f} GB | {s['rss_retrieval_mb'] / 1024:.2f} GB | "
              f"{s['peak_rss_mb'] / 1024:.2f} GB | {s['loadavg']:.1f} |")
    names = [n for n in PART_LABELS if any(n in r["serve"]["parts"] for r in rows)]
    print("\nWhere retrieval time goes (wall ms per question, p50 / p95):\n")
    print("| paragraphs | " + " | ".join(PART_LABELS[n] for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for r in rows:
        parts = r["serve"]["parts"]
        print(f"| {r['n']:,} | " + " | ".join(
            f"{parts[n]['p50']:.1f} / {parts[n]['p95']:.1f}" if n in parts else "–" for n in names) + " |")
    big = [r for r in rows if r["n"] >= 1_000_000]
    if big:
        s = big[-1]["serve"]
        checks = [
            (f"retrieval p50 ≤ {TARGET_P50_MS:.0f} ms", s["retrieval_p50"] <= TARGET_P50_MS, f"{s['retrieval_p50']:.1f} ms"),
            (f"retrieval p95 ≤ {TARGET_P95_MS:.0f} ms", s["retrieval_p95"] <= TARGET_P95_MS, f"{s['retrieval_p95']:.1f} ms"),
            (f"peak RSS ≤ {TARGET_RSS_GB:.0f} GB", s["peak_rss_mb"] / 1024 <= TARGET_RSS_GB,
             f"{s['peak_rss_mb'] / 1024:.2f} GB"),
        ]
        print(f"\nTargets at {big[-1]['n']:,} paragraphs:\n")
        print("| target | measured | verdict |")
        print("|---|---|---|")
        for name, ok, value in checks:
            print(f"| {name} | {value} | {'PASS' if ok else 'FAIL'} |")
    if plot:
        draw(rows, plot)
        print(f"\nPlot: {plot}")


def _plot_lines(ax, ns: list[int], lines: list[tuple[list[float], str, str]]) -> None:
    for values, style, label in lines:
        ax.plot(ns, values, style, label=label)


def draw(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    s = [r["serve"] for r in rows]
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0][0]
    ax.plot(ns, [x["retrieval_p50"] for x in s], "o-", label="retrieval p50")
    ax.plot(ns, [x["retrieval_p95"] for x in s], "o--", label="retrieval p95")
    if all(x["ask_p50"] is not None for x in s):
        ax.plot(ns, [x["ask_p50"] for x in s], "s-", label="ask p50 (no embedding)")
        ax.plot(ns, [x["ask_p95"] for x in s], "s--", label="ask p95 (no embedding)")
    for name, marker in zip(PART_LABELS, "^v<>x"):
        if all(name in x["parts"] for x in s):
            ax.plot(ns, [x["parts"][name]["p50"] for x in s], marker + ":", lw=0.8, label=PART_LABELS[name] + " p50")
    ax.axhline(TARGET_P50_MS, color="grey", lw=0.8, ls="-")
    ax.axhline(TARGET_P95_MS, color="grey", lw=0.8, ls="--")
    ax.set_title("query latency (ms); targets 100 / 250 ms at 1M")
    ax.set_ylabel("ms")
    ax = axes[0][1]
    _plot_lines(ax, ns, [
        ([x["peak_rss_mb"] / 1024 for x in s], "o-", "peak RSS (serving, with model)"),
        ([x["rss_retrieval_mb"] / 1024 for x in s], "o--", "RSS after retrieval"),
        ([x["rss_open_mb"] / 1024 for x in s], "o:", "RSS after open"),
        ([r["build"]["build_peak_rss_mb"] / 1024 for r in rows], "x-.", "builder peak RSS"),
    ])
    ax.axhline(TARGET_RSS_GB, color="grey", lw=0.8)
    ax.set_title("memory (GB); target 6 GB at 1M")
    ax.set_ylabel("GB")
    ax = axes[1][0]
    _plot_lines(ax, ns, [([r[key] / 1e9 for r in rows], style, label) for key, style, label in (
        ("disk_total", "o-", "index on disk"), ("disk_chroma", "o--", "Chroma"), ("disk_keyword", "o:", "keyword cache"))])
    ax.set_yscale("log")
    ax.set_title("index size on disk (GB)")
    ax.set_ylabel("GB")
    ax = axes[1][1]
    ax.plot(ns, [r["build"]["insert_s"] for r in rows], "o-", label="build: insert into Chroma")
    ax.plot(ns, [r["build"]["keyword_s"] for r in rows], "o--", label="build: keyword index")
    ax.plot(ns, [x["open_s"] for x in s], "s-", label="cold open (snapshot)")
    ax.set_yscale("log")
    ax.set_title("time (s)")
    ax.set_ylabel("s")
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_xlabel("paragraphs in the index")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle("News QA at scale (2-core machine, shared with other work)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1M", help="paragraph counts, e.g. 10k,100k,1M")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/qa-scale"),
                        help="scratch folder holding one index per size (kept, and reused)")
    parser.add_argument("--source-index", type=Path, default=Path("/tmp/idx-bbc"),
                        help="index of the BBC corpus whose chunks and vectors are recycled")
    parser.add_argument("--questions", type=Path, nargs="+", default=list(DEFAULT_QUESTIONS))
    parser.add_argument("--plot", type=Path, default=REPO / "docs/benchmarks-scale.png")
    parser.add_argument("--rebuild", action="store_true", help="build every index again")
    parser.add_argument("--no-ask", action="store_true", help="time retrieval only, not QAService.ask")
    parser.add_argument("--noise", type=float, default=0.01, help="Gaussian noise per dimension on copied vectors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-chunks", type=int, default=4096, help="paragraphs per write_articles call")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--_build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_queries", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work_dir.resolve()
    source_cache = work / "source.pkl"

    if args._build is not None:
        build_index(work / f"n{args._build}", args._build, source_cache, args.noise, args.seed, args.batch_chunks)
        return
    if args._serve is not None:
        serve_and_measure(args._serve, args._queries, args._out, ask=not args.no_ask)
        return

    sizes = sorted({parse_size(s) for s in args.sizes.split(",") if s.strip()})
    work.mkdir(parents=True, exist_ok=True)
    load_source(args.source_index, source_cache)
    for n in sizes:
        folder = work / f"n{n}"
        if args.rebuild and folder.exists():
            shutil.rmtree(folder)
        if build_complete(folder, n, args.noise, args.seed) is None:
            print(f"building {n:,} paragraphs in {folder}", file=sys.stderr)
            _child("--_build", str(n), "--work-dir", str(work), "--noise", str(args.noise),
                   "--seed", str(args.seed), "--batch-chunks", str(args.batch_chunks))
        else:
            print(f"reusing {folder}", file=sys.stderr)
    if args.build_only:
        return
    queries = query_vectors(args.questions, work / "queries.npz", source_model(source_cache))
    rows = []
    for n in sizes:
        folder = work / f"n{n}"
        out = folder / "serve.json"
        print(f"measuring {n:,} paragraphs in a fresh process", file=sys.stderr)
        serve = ["--_serve", str(folder), "--_queries", str(queries), "--_out", str(out),
                 *(["--no-ask"] if args.no_ask else [])]
        _child(*serve)
        build = build_complete(folder, n, args.noise, args.seed)
        rebuilt = json.loads(out.read_text()).get("keyword_rebuilt_s")
        if rebuilt is not None:
            # The product's keyword cache format changed since the build: the serving process rebuilt
            # and cached it. That is build time, not opening time: record it, and measure again.
            print(f"the keyword cache of {folder} was stale: rebuilt in {rebuilt:.0f} s; measuring again",
                  file=sys.stderr)
            info = json.loads((folder / "BUILD.json").read_text())
            info.update(keyword_s=round(rebuilt, 1), keyword_rebuilt_for_code_change=True,
                        generation=info["generation"])
            (folder / "BUILD.json").write_text(json.dumps(info, indent=1))
            build = info
            _child(*serve)
        rows.append({
            "n": n, "build": build, "serve": json.loads(out.read_text()),
            "disk_total": disk_usage(folder / "chroma") + disk_usage(folder / "keyword"),
            "disk_chroma": disk_usage(folder / "chroma"), "disk_keyword": disk_usage(folder / "keyword"),
        })
    code = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
    (work / "results.json").write_text(json.dumps({"code": code, "rows": rows}, indent=1))
    print(f"\nCode measured: {code} (index: {work})")
    report(rows, args.plot)


if __name__ == "__main__":
    main()
