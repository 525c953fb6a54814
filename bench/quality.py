"""Retrieval quality side by side: the product's pipeline beside BM25, dense, their fusion and LlamaIndex's default.

    .venv/bin/python -m bench.quality --index-dir /tmp/idx-all
    .venv/bin/python -m bench.quality --index-dir /tmp/idx-quality-small --limit 20   # a quick look

One run, one corpus, the same questions for every pipeline. The corpus is the paragraphs
``qa.parse_file`` makes of ``--squad``'s ``corpus/`` (411 files, one paragraph each) and of
``--bbc`` (2,225 articles, the distractors), files found by the product's own scan (so the BBC
folder's ``README.TXT`` is not an article). Only answerable questions count (these are
retrieval metrics), in three sets: ``squad2-500`` (``--squad``'s ``questions.jsonl``), and
``bbc-dev test`` / ``bbc-dev all``: the ``test`` half and both halves of ``--dev``
(tests/data/bbc_dev.jsonl, see tests/data/README.md).

Pipelines:

- **ours**: ``QAService(load_settings(index={"dir": INDEX_DIR})).ask(question, history, k=5,
  retrieve=10).retrieved``, through the public service so the numbers follow whatever retrieval
  does today. The index must hold the same folders; an empty ``--index-dir`` is built with
  ``QAService.ingest`` first (about 8 minutes on 2 cores for the full corpus). The product is
  always given the conversation history, as it is in use.
- **BM25**: bm25s over the plain paragraph texts (no title), ``bm25s.tokenize(texts,
  stopwords="en")`` and ``bm25s.BM25()`` defaults: what a user of bm25s would build.
- **dense**: the product's embedding model over the plain paragraph texts, exact cosine.
- **RRF**: reciprocal-rank fusion (k=60) of the top 100 of BM25 and of dense.
- **LlamaIndex default**: one ``Document`` per file (its source text), ``SentenceSplitter()``
  defaults, an in-memory ``VectorStoreIndex`` with the product's embedding model,
  ``as_retriever(similarity_top_k=10)``. Its chunks are about article-sized (1,024 tokens), so
  it is scored twice: *paragraph-level* (a chunk overlapping exactly one paragraph stands for
  that paragraph; any other chunk is a miss) and *article-level, lenient* (a hit is a chunk of
  the gold file containing a gold answer) — the lenient row is not comparable with the others.

The baselines search the question alone; on the dev set, whose follow-ups carry a ``history``,
the rows marked "+ last user turn" search the last user turn followed by the question.

Hit at k: one of the first k results is from the gold ``doc`` (or one of its ``also_docs``, the
other articles that answer it too) and contains a gold answer after SQuAD normalisation (``qa._metrics.first_hit_rank``, exactly what ``qa eval`` scores); MRR@10
likewise. Paragraph and chunk embeddings are cached in ``--cache-dir`` as ``.npy`` keyed by the
model and a hash of the texts. Prints the tables, the timings and the questions ours misses where
BM25 finds the paragraph; writes them to ``--out``/quality.md, every question's rank per
pipeline to ``--out``/quality-questions.jsonl, and the hit@k curves (k = 1..10, one panel per
question set) to ``--plot``.

``--limit N`` keeps the first N answerable questions of each question set (of each dev half) and
a corpus of their gold files plus N other files per folder, copied to ``--out``/corpus-subset so
that a fresh ``--index-dir`` can be built from exactly that subset (an index that holds other
articles is used as it is, with a warning: give each ``--limit`` its own index folder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from qa import QAService, load_settings
from qa._articles import SkipFile, parse_file, source_text
from qa._errors import QAError
from qa._eval import EvalQuestion
from qa._ingest import scan
from qa._metrics import first_hit_rank, hit_at, mean, reciprocal_rank
from qa._models import ChatTurn

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
DEPTH = 10  # ranks scored
FUSION_DEPTH = 100  # candidates of each ranking that RRF fuses
RRF_K = 60
KS = (1, 3, 5, 10)

# (key, label); "+turn" keys are the same pipeline searching "<last user turn> <question>".
PIPELINES = [
    ("ours", "ours (QAService.ask)"),
    ("bm25", "BM25 paragraphs (bm25s)"),
    ("dense", "dense MiniLM paragraphs"),
    ("rrf", "RRF (k=60) of BM25 + dense"),
    ("llama_para", "LlamaIndex default, paragraph-level"),
    ("llama_article", "LlamaIndex default, article-level (lenient)"),
]
BASELINES = ["bm25", "dense", "rrf", "llama_para", "llama_article"]
LABELS = dict(PIPELINES) | {f"{key}+turn": f"{dict(PIPELINES)[key]} + last user turn" for key in BASELINES}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- corpus and questions ----------------------------------------------------------


@dataclass(frozen=True)
class Para:
    doc: str
    number: int
    start: int
    end: int
    text: str


@dataclass
class File:
    doc: str
    path: Path
    text: str  # the source text paragraph spans index
    paragraphs: list[Para]


@dataclass
class Corpus:
    folders: list[Path]
    files: list[File]
    paragraphs: list[Para] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.paragraphs = [p for f in self.files for p in f.paragraphs]


def load_corpus(folders: Sequence[Path]) -> Corpus:
    """Every article of ``folders`` as the product parses it (same scan, same paragraphs)."""
    files: list[File] = []
    sources, _, _ = scan(folders)
    for source in sources:
        try:
            article = parse_file(source.path, source.root)
        except SkipFile:
            continue
        paragraphs = [Para(article.doc, p.number, p.start, p.end, p.text) for p in article.paragraphs]
        files.append(File(article.doc, source.path, source_text(source.path), paragraphs))
    return Corpus(list(folders), files)


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    doc: str
    history: tuple[ChatTurn, ...] = ()
    split: str | None = None
    also_docs: tuple[str, ...] = ()  # other files that answer it too (repeated stories)

    @property
    def gold_docs(self) -> set[str]:
        return {self.doc, *self.also_docs}

    @property
    def with_last_turn(self) -> str:
        users = [t.content.strip() for t in self.history if t.role == "user" and t.content.strip()]
        return f"{users[-1]} {self.question}" if users else self.question


def read_answerable(path: Path) -> list[Question]:
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        q = EvalQuestion.model_validate(raw)
        if q.answers and q.doc:
            questions.append(Question(q.id, q.question, tuple(q.answers), q.doc, tuple(q.history or ()),
                                      raw.get("split"), tuple(q.also_docs)))
    return questions


def question_sets(squad_questions: Path, dev: Path | None, limit: int | None) -> dict[str, list[Question]]:
    sets = {"squad2-500": read_answerable(squad_questions)[:limit]}
    if dev is not None:
        questions = read_answerable(dev)
        test = [q for q in questions if q.split == "test"][:limit]
        tune = [q for q in questions if q.split != "test"][:limit]
        chosen = {q.id for q in test + tune}
        sets["bbc-dev test"] = test
        sets["bbc-dev all"] = [q for q in questions if q.id in chosen]
    return sets


def stage_subset(folders: Sequence[Path], gold_docs: set[str], others: int, stage: Path) -> list[Path]:
    """Copy each folder's gold files plus ``others`` more to ``stage``, keeping relative paths
    (a file ingested alone would be named by its file name only)."""
    shutil.rmtree(stage, ignore_errors=True)
    staged = []
    for number, folder in enumerate(folders):
        sources, _, _ = scan([folder])
        relative = [s.path.relative_to(s.root).as_posix() for s in sources]
        keep = [r for r in relative if r in gold_docs] + [r for r in relative if r not in gold_docs][:others]
        target = stage / f"{number}-{folder.name}"
        for name in keep:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / name, target / name)
        staged.append(target)
    return staged


# -- embeddings, cached --------------------------------------------------------------


def embed_cached(embedder, texts: list[str], cache_dir: Path, label: str) -> tuple[np.ndarray, bool]:
    """Unit vectors for ``texts``, from ``cache_dir`` when the same model embedded the same texts."""
    digest = hashlib.sha256(
        f"{type(embedder).__name__}|{embedder.model_name}|{getattr(embedder, 'max_tokens', '')}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    path = cache_dir / f"{label}-{digest.hexdigest()[:24]}.npy"
    if path.is_file():
        try:
            vectors = np.load(path)
            if vectors.shape[0] == len(texts):
                return vectors, True
        except (OSError, ValueError):
            pass
    log(f"embedding {len(texts):,} {label} (cached in {cache_dir} afterwards)")
    parts, block = [], 1024
    for begin in range(0, len(texts), block):
        parts.append(np.asarray(embedder.embed(texts[begin:begin + block]), dtype=np.float32))
        if len(texts) > block:
            log(f"  {min(begin + block, len(texts)):,}/{len(texts):,}")
    vectors = np.concatenate(parts) if parts else np.zeros((0, 384), dtype=np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + f".{os.getpid()}.partial.npy")
    np.save(partial, vectors)
    os.replace(partial, path)
    return vectors, False


# -- the baselines ---------------------------------------------------------------------

Ranking = list[tuple[int, float]]  # (paragraph index, score), best first


class BM25Paragraphs:
    def __init__(self, texts: list[str]) -> None:
        import bm25s  # noqa: PLC0415

        self._bm25s = bm25s
        self._count = len(texts)
        self._retriever = bm25s.BM25()
        self._retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)

    def search(self, queries: list[str], depth: int) -> list[Ranking]:
        tokens = self._bm25s.tokenize(queries, stopwords="en", show_progress=False)
        ids, scores = self._retriever.retrieve(tokens, k=min(depth, self._count), show_progress=False)
        # Zero-score paragraphs share no term with the query: not retrieved, only padding.
        return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores) if s > 0]
                for row_ids, row_scores in zip(ids, scores)]


class DenseParagraphs:
    def __init__(self, embedder, vectors: np.ndarray) -> None:
        self._embedder = embedder
        self._vectors = vectors

    def search(self, queries: list[str], depth: int) -> list[Ranking]:
        scores = np.asarray(self._embedder.embed(queries), dtype=np.float32) @ self._vectors.T
        depth = min(depth, scores.shape[1])
        rankings = []
        for row in scores:
            top = np.argpartition(-row, depth - 1)[:depth]
            top = top[np.argsort(-row[top], kind="stable")]
            rankings.append([(int(i), float(row[i])) for i in top])
        return rankings


def rrf(*rankings: Ranking, k: int = RRF_K) -> Ranking:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (index, _) in enumerate(ranking, 1):
            fused[index] = fused.get(index, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: -item[1])


@dataclass(frozen=True)
class LlamaHit:
    doc: str
    chunk_text: str
    paragraph: Para | None  # the one paragraph the chunk overlaps, else None


class LlamaIndexDefault:
    """LlamaIndex as its documentation starts you: Documents, SentenceSplitter(), VectorStoreIndex."""

    def __init__(self, corpus: Corpus, embedder, cache_dir: Path) -> None:
        from llama_index.core import Document, VectorStoreIndex  # noqa: PLC0415
        from llama_index.core.node_parser import SentenceSplitter  # noqa: PLC0415
        from llama_index.core.schema import MetadataMode  # noqa: PLC0415

        documents = [Document(text=f.text, id_=f.doc) for f in corpus.files]
        nodes = SentenceSplitter().get_nodes_from_documents(documents)
        # What VectorStoreIndex would embed, embedded once and cached; it skips nodes that have one.
        vectors, self.cached = embed_cached(
            embedder, [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes], cache_dir, "llamaindex-chunks")
        for node, vector in zip(nodes, vectors):
            node.embedding = vector.tolist()
        self._index = VectorStoreIndex(nodes, embed_model=embedder)
        self._retriever = self._index.as_retriever(similarity_top_k=DEPTH)
        files = {f.doc: f for f in corpus.files}
        self._single: dict[str, Para | None] = {}
        for node in nodes:
            self._single[node.node_id] = self._only_paragraph(files[node.ref_doc_id], node.start_char_idx,
                                                              node.end_char_idx)
        self.chunks = len(nodes)
        self.single_paragraph_chunks = sum(1 for p in self._single.values() if p is not None)

    @staticmethod
    def _only_paragraph(file: File, start: int | None, end: int | None) -> Para | None:
        """The paragraph a chunk lies in, or that it is (text between paragraphs — a title line,
        blank lines — aside); None when the chunk spans several paragraphs or has no position."""
        if start is None or end is None:
            return None
        overlapping = [p for p in file.paragraphs if p.start < end and p.end > start]
        return overlapping[0] if len(overlapping) == 1 else None

    def search(self, query: str) -> list[LlamaHit]:
        return [LlamaHit(hit.node.ref_doc_id, hit.node.get_content(), self._single.get(hit.node.node_id))
                for hit in self._retriever.retrieve(query)]


# -- running and scoring ------------------------------------------------------------------


@dataclass
class Result:
    """One pipeline's answer to one question: the ranked (doc, text) scored, and what ranked first."""

    ranked: list[tuple[str, str]]
    top: str = ""
    rank: int | None = None


def describe(doc: str, paragraph: int | None, text: str) -> str:
    where = f"{doc} ¶{paragraph}" if paragraph else doc
    snippet = " ".join(text.split())
    return f"{where}: {snippet[:90]}{'…' if len(snippet) > 90 else ''}"


@contextmanager
def _timed(timings: dict, key: str, what: str) -> Iterator[None]:
    began = time.perf_counter()
    yield
    timings.setdefault(key, {})[what] = time.perf_counter() - began


def run_baselines(corpus: Corpus, embedder, questions: list[Question], cache_dir: Path,
                  timings: dict) -> dict[str, dict[str, Result]]:
    """results[pipeline key][question id] for BM25, dense, RRF and LlamaIndex, with and without the last turn."""
    texts = [p.text for p in corpus.paragraphs]
    with _timed(timings, "bm25", "build"):
        bm25 = BM25Paragraphs(texts)
    with _timed(timings, "dense", "build"):
        vectors, timings["dense_cached"] = embed_cached(embedder, texts, cache_dir, "paragraphs")
        dense = DenseParagraphs(embedder, vectors)
    with _timed(timings, "llama", "build"):
        llama = LlamaIndexDefault(corpus, embedder, cache_dir)
    timings["llama_cached"] = llama.cached
    timings["llama_chunks"] = (llama.chunks, llama.single_paragraph_chunks)

    queries = sorted({q.question for q in questions} | {q.with_last_turn for q in questions})
    with _timed(timings, "bm25", "queries"):
        bm25_rankings = dict(zip(queries, bm25.search(queries, FUSION_DEPTH)))
    with _timed(timings, "dense", "queries"):
        dense_rankings = dict(zip(queries, dense.search(queries, FUSION_DEPTH)))
    with _timed(timings, "rrf", "queries"):
        rrf_rankings = {q: rrf(bm25_rankings[q], dense_rankings[q]) for q in queries}
    with _timed(timings, "llama", "queries"):
        llama_hits = {q: llama.search(q) for q in queries}
    for key in ("bm25", "dense", "rrf", "llama"):
        timings[key]["count"] = len(queries)

    def paragraphs(ranking: Ranking) -> Result:
        chosen = [corpus.paragraphs[i] for i, _ in ranking[:DEPTH]]
        top = describe(chosen[0].doc, chosen[0].number, chosen[0].text) if chosen else "(nothing)"
        return Result([(p.doc, p.text) for p in chosen], top)

    def llama_paragraph_level(hits: list[LlamaHit]) -> Result:
        ranked = [(h.paragraph.doc, h.paragraph.text) if h.paragraph else (h.doc, "") for h in hits]
        top = describe(hits[0].doc, hits[0].paragraph.number if hits[0].paragraph else None,
                       hits[0].chunk_text) if hits else "(nothing)"
        return Result(ranked, top)

    def llama_article_level(hits: list[LlamaHit]) -> Result:
        return Result([(h.doc, h.chunk_text) for h in hits], describe(hits[0].doc, None, hits[0].chunk_text)
                      if hits else "(nothing)")

    results: dict[str, dict[str, Result]] = {}
    for suffix, query_of in (("", lambda q: q.question), ("+turn", lambda q: q.with_last_turn)):
        for q in questions:
            query = query_of(q)
            results.setdefault("bm25" + suffix, {})[q.id] = paragraphs(bm25_rankings[query])
            results.setdefault("dense" + suffix, {})[q.id] = paragraphs(dense_rankings[query])
            results.setdefault("rrf" + suffix, {})[q.id] = paragraphs(rrf_rankings[query])
            results.setdefault("llama_para" + suffix, {})[q.id] = llama_paragraph_level(llama_hits[query])
            results.setdefault("llama_article" + suffix, {})[q.id] = llama_article_level(llama_hits[query])
    return results


def run_ours(service: QAService, questions: list[Question], timings: dict) -> tuple[dict[str, Result], list[str]]:
    results: dict[str, Result] = {}
    errors: list[str] = []
    service.ask(questions[0].question)  # loads the model, the snapshot and the keyword index
    with _timed(timings, "ours", "queries"):
        for q in questions:
            try:
                response = service.ask(q.question, list(q.history) or None, k=5, retrieve=DEPTH)
            except QAError as exc:
                errors.append(f"{q.id}: {exc.message}")
                results[q.id] = Result([], f"(error: {exc.message})")
                continue
            retrieved = response.retrieved[:DEPTH]
            top = describe(retrieved[0].doc, retrieved[0].paragraph, retrieved[0].text) if retrieved else "(nothing)"
            results[q.id] = Result([(p.doc, p.text) for p in retrieved], top)
    timings["ours"]["count"] = len(questions)
    return results, errors


def score(results: dict[str, dict[str, Result]], questions: list[Question]) -> None:
    for by_question in results.values():
        for q in questions:
            result = by_question[q.id]
            result.rank = first_hit_rank(result.ranked, q.gold_docs, q.answers)


def summary(ranks: list[int | None]) -> dict:
    row = {"n": len(ranks)}
    for k in KS:
        row[f"hit@{k}"] = mean([hit_at(r, k) for r in ranks])
    row["mrr@10"] = mean([reciprocal_rank(r, DEPTH) for r in ranks])
    row["curve"] = [mean([hit_at(r, k) for r in ranks]) for k in range(1, DEPTH + 1)]
    return row


def metrics_for(results: dict[str, dict[str, Result]], sets: dict[str, list[Question]]) -> dict[str, dict[str, dict]]:
    table: dict[str, dict[str, dict]] = {}
    for name, questions in sets.items():
        with_history = any(q.history for q in questions)
        keys = [key for key, _ in PIPELINES] + ([f"{key}+turn" for key in BASELINES] if with_history else [])
        table[name] = {key: summary([results[key][q.id].rank for q in questions]) for key in keys}
    return table


# -- reporting ---------------------------------------------------------------------------


def markdown_table(rows: dict[str, dict]) -> str:
    lines = ["| pipeline | n | " + " | ".join(f"hit@{k}" for k in KS) + " | MRR@10 |",
             "|---|---|" + "---|" * (len(KS) + 1)]
    for key, row in rows.items():
        values = " | ".join(f"{row[f'hit@{k}']:.3f}" for k in KS)
        lines.append(f"| {LABELS[key]} | {row['n']} | {values} | {row['mrr@10']:.3f} |")
    return "\n".join(lines)


def timing_table(timings: dict, built: str) -> str:
    def per_query(key: str) -> str:
        entry = timings.get(key, {})
        count = entry.get("count") or 1
        return f"{entry.get('queries', 0.0):.1f} s | {entry.get('queries', 0.0) / count * 1000:.1f} ms"

    chunks, single = timings["llama_chunks"]
    cached = {True: "embeddings from cache", False: "embedded now"}
    lines = [
        "| pipeline | build | queries | per query |", "|---|---|---|---|",
        f"| ours | {built} | {per_query('ours')} |",
        f"| BM25 | {timings['bm25']['build']:.1f} s (index) | {per_query('bm25')} |",
        f"| dense | {timings['dense']['build']:.1f} s ({cached[timings['dense_cached']]}) | {per_query('dense')} |",
        f"| RRF | — (fuses the two above) | {per_query('rrf')} |",
        f"| LlamaIndex default | {timings['llama']['build']:.1f} s (split into {chunks:,} chunks, "
        f"{single:,} of them within one paragraph; {cached[timings['llama_cached']]}) | {per_query('llama')} |",
    ]
    return "\n".join(lines)


def misses_table(results: dict[str, dict[str, Result]], questions: list[Question], limit: int = 15) -> tuple[str, int]:
    """Questions BM25 answers at rank 1 (or in its top 10 when ours misses altogether) that ours ranks worse."""
    rows = []
    for q in questions:
        ours, bm25 = results["ours"][q.id], results["bm25"][q.id]
        if bm25.rank is None:
            continue
        if not (ours.rank is None or (bm25.rank == 1 and ours.rank > 1)):
            continue
        rows.append((0 if ours.rank is None else 1, bm25.rank, q, ours, bm25))
    rows.sort(key=lambda r: (r[0], r[1]))
    lines = ["| id | question | gold doc | answer | BM25 rank | ours rank | ours ranked first |", "|---|---|---|---|---|---|---|"]
    for _, _, q, ours, bm25 in rows[:limit]:
        cells = [q.id, q.question.strip(), q.doc, q.answers[0], str(bm25.rank), str(ours.rank or "—"), ours.top]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines), len(rows)


def plot(metrics: dict[str, dict[str, dict]], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(metrics)
    figure, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.4), sharey=True, squeeze=False)
    ks = list(range(1, DEPTH + 1))
    styles = {"ours": ("black", "-", "o"), "bm25": ("tab:blue", "-", "s"), "dense": ("tab:orange", "-", "^"),
              "rrf": ("tab:green", "-", "D"), "llama_para": ("tab:red", "-", "v"),
              "llama_article": ("tab:red", "--", "v")}
    for axis, name in zip(axes[0], names):
        rows = metrics[name]
        for key, (colour, line, marker) in styles.items():
            axis.plot(ks, rows[key]["curve"], color=colour, linestyle=line, marker=marker, markersize=4,
                      label=LABELS[key], linewidth=2.2 if key == "ours" else 1.4)
        axis.set_title(f"{name} (n={rows['ours']['n']})")
        axis.set_xlabel("k")
        axis.set_xticks(ks)
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("hit@k")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -- main ----------------------------------------------------------------------------------


def _few(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" … ({len(names) - shown} more)" if len(names) > shown else "")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, required=True,
                        help="the product's index over the same folders (built here when empty)")
    parser.add_argument("--squad", type=Path, default=DATA / "squad2-500",
                        help="folder with corpus/ and questions.jsonl")
    parser.add_argument("--bbc", type=Path, default=DATA / "bbc", help="the distractor articles")
    parser.add_argument("--dev", type=Path, default=REPO / "tests" / "data" / "bbc_dev.jsonl",
                        help="the BBC development questions (split tune/test)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/qa-bench-cache"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/qa-bench-quality"))
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "benchmarks-quality.png")
    parser.add_argument("--limit", type=int, default=None,
                        help="N questions per set and a corpus of their files plus N others per folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> dict:
    """Run the benchmark; returns {"markdown", "metrics", "plot"}. ``environ`` replaces os.environ
    for the product's settings (tests pass {})."""
    args = parse_args(argv)
    began = time.perf_counter()
    sets = question_sets(args.squad / "questions.jsonl", args.dev, args.limit)
    questions = list({q.id: q for qs in sets.values() for q in qs}.values())
    folders = [args.squad.resolve() / "corpus", args.bbc.resolve()]
    if args.limit is not None:
        folders = stage_subset(folders, {d for q in questions for d in q.gold_docs}, args.limit, args.out.resolve() / "corpus-subset")
    corpus = load_corpus(folders)
    log(f"corpus: {len(corpus.files):,} files, {len(corpus.paragraphs):,} paragraphs; "
        f"{len(questions)} answerable questions")

    service = QAService(load_settings(environ=environ, index={"dir": str(args.index_dir)}))
    notes: list[str] = []
    if not service.documents():
        log(f"{args.index_dir} is empty: ingesting {', '.join(map(str, folders))}")
        start = time.perf_counter()
        report = service.ingest(folders)
        built = f"{time.perf_counter() - start:.1f} s (ingest of {len(report.added):,} articles)"
    else:
        built = "existing index"
    indexed = {r.doc for r in service.documents()}
    in_corpus = {f.doc for f in corpus.files}
    if indexed != in_corpus:
        extra, missing = sorted(indexed - in_corpus), sorted(in_corpus - indexed)
        if extra:
            notes.append(f"The index also holds {len(extra)} article(s) outside the benchmark corpus, "
                         f"which ours searches too: {_few(extra)}.")
        if missing:
            notes.append(f"The index lacks {len(missing)} article(s) of the benchmark corpus: {_few(missing)}.")
        for note in notes:
            log("warning: " + note)
    missing_gold = sorted({q.doc for q in questions} - in_corpus)
    if missing_gold:
        raise SystemExit(f"gold files missing from the corpus: {', '.join(missing_gold[:10])}")

    timings: dict = {}
    log("baselines …")
    results = run_baselines(corpus, service.embedder, questions, args.cache_dir, timings)
    log("ours …")
    results["ours"], errors = run_ours(service, questions, timings)
    if errors:
        notes.append(f"ours failed on {len(errors)} question(s), counted as misses: {'; '.join(errors[:5])}")
    score(results, questions)
    metrics = metrics_for(results, sets)

    lines = [
        "# Retrieval quality, side by side",
        "",
        f"Corpus: {len(corpus.files):,} files, {len(corpus.paragraphs):,} paragraphs "
        f"({', '.join(str(f) for f in folders)}); ours over the index in `{args.index_dir}` "
        f"({len(indexed):,} articles). Only answerable questions count. A hit is a retrieved paragraph "
        "from the gold file (or from one of its `also_docs`, other articles that answer it too) containing "
        "a gold answer; the LlamaIndex article-level row counts whole chunks "
        "(mostly whole articles) instead, so it is lenient and not comparable with the other rows. "
        "Ours is always given the conversation history; the baselines search the question alone, "
        "or with the last user turn prepended in the \"+ last user turn\" rows.",
        "",
    ]
    lines += [f"Note: {note}" for note in notes] + ([""] if notes else [])
    for name, rows in metrics.items():
        lines += [f"## {name}", "", markdown_table(rows), ""]
    lines += ["## Time", "", timing_table(timings, built), ""]
    shown = [name for name in sets if name != "bbc-dev test"]
    for name in shown:
        table, count = misses_table(results, sets[name])
        lines += [f"## {name}: where BM25 does better than ours", "",
                  f"{count} question(s) that BM25 answers at rank 1 while ours ranks the paragraph lower, "
                  "or that BM25 finds in its top 10 while ours does not at all (misses first):", "", table, ""]
    elapsed = time.perf_counter() - began
    lines.append(f"Whole run: {elapsed:.0f} s.")
    markdown = "\n".join(lines) + "\n"

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.md").write_text(markdown, encoding="utf-8")
    with (args.out / "quality-questions.jsonl").open("w", encoding="utf-8") as handle:
        for q in questions:
            line = {"id": q.id, "question": q.question, "doc": q.doc, "answers": list(q.answers),
                    "split": q.split, "follow_up": bool(q.history),
                    "rank": {key: by_q[q.id].rank for key, by_q in results.items()},
                    "first": {key: results[key][q.id].top for key in ("ours", "bm25", "dense", "rrf")}}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    plot(metrics, args.plot)
    print(markdown)
    print(f"Wrote {args.out / 'quality.md'}, {args.out / 'quality-questions.jsonl'} and {args.plot}.")
    return {"markdown": markdown, "metrics": metrics, "plot": args.plot}


if __name__ == "__main__":
    main()
