"""Speed of ingest and of answering, printed as Markdown tables (issue figures, not tests).

    .venv/bin/python -m bench.speed ingest --corpus ../shared/data/bbc
    .venv/bin/python -m bench.speed query --index-dir /tmp/idx-bbc --questions tests/data/bbc_dev.jsonl

``ingest`` embeds the corpus's chunks with the model alone (the baseline), then runs the
whole ingest (read, parse, chunk, embed, store in Chroma, commit) into a fresh temporary
index in the same process, and prints both times, their ratio and tokens per second.
``query`` answers every question in-process over an existing index (retrieval plus
extractive answer, after one warm-up) and prints p50/p95 beside the same questions answered by
a reader without answer types (the baseline, interleaved in the same process), then times
``qa ask`` as a fresh process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qa import QAService, load_settings
from qa._chunking import chunk_article
from qa._eval import read_questions
from qa._ingest import scan
from qa._articles import parse_file
from qa._metrics import percentile

REPO = Path(__file__).resolve().parent.parent


def bench_ingest(corpus: Path, batch_size: int | None) -> None:
    overrides = {"embedding": {"batch_size": batch_size}} if batch_size else {}
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as scratch:
        settings = load_settings(index={"dir": scratch}, **overrides)
        service = QAService(settings)
        embedder = service.embedder
        files, _, _ = scan([corpus])
        began = time.perf_counter()
        texts = []
        for source in files:
            article = parse_file(source.path, source.root)
            texts.extend(c.indexed_text for c in chunk_article(article, settings.chunking.max_words,
                                                                settings.chunking.min_words))
        parse_seconds = time.perf_counter() - began
        tokens = embedder.count_tokens(texts)
        began = time.perf_counter()
        embedder.embed(texts)
        embed_seconds = time.perf_counter() - began
        began = time.perf_counter()
        report = service.ingest([corpus])
        ingest_seconds = time.perf_counter() - began
    print(f"| corpus | articles | chunks | tokens | parse+chunk | embedding alone | whole ingest | ingest / embedding |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {corpus.name} | {len(report.added)} | {len(texts)} | {tokens:,} | {parse_seconds:.1f} s | "
          f"{embed_seconds:.1f} s ({tokens / embed_seconds:,.0f} tokens/s) | "
          f"{ingest_seconds:.1f} s ({tokens / ingest_seconds:,.0f} tokens/s) | {ingest_seconds / embed_seconds:.2f}× |")


def bench_query(index_dir: Path, questions: Path, fresh_runs: int) -> None:
    settings = load_settings(index={"dir": str(index_dir)})
    service = QAService(settings)
    # The baseline, in the same process and interleaved question by question so that load from
    # elsewhere falls on both alike: the reader without answer types (no spaCy).
    untyped = QAService(load_settings(index={"dir": str(index_dir)}, answer={"answer_types": False}))
    asked = [q.question for q in read_questions(questions)]
    for warm in (service, untyped):
        warm.ask(asked[0])  # loads the models, the snapshot and the keyword index
    totals, baseline, stages = [], [], {}
    for question in asked:
        began = time.perf_counter()
        untyped.ask(question)
        baseline.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        response = service.ask(question)
        totals.append((time.perf_counter() - began) * 1000)
        for stage, ms in response.timings.items():
            stages.setdefault(stage, []).append(ms)
    print(f"In-process, {len(asked)} questions over {len(service.documents())} articles:")
    print("| measure | p50 | p95 |")
    print("|---|---|---|")
    print(f"| ask() wall time | {percentile(totals, 50):.1f} ms | {percentile(totals, 95):.1f} ms |")
    print(f"| ask() wall time, reader without answer types (baseline) | {percentile(baseline, 50):.1f} ms | "
          f"{percentile(baseline, 95):.1f} ms |")
    print(f"| ratio | {percentile(totals, 50) / percentile(baseline, 50):.2f}× | "
          f"{percentile(totals, 95) / percentile(baseline, 95):.2f}× |")
    for stage, values in stages.items():
        print(f"| stage: {stage} | {percentile(values, 50):.1f} ms | {percentile(values, 95):.1f} ms |")
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    runs = []
    for _ in range(fresh_runs):
        began = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("qa")), "ask", asked[1]], env=env, cwd=REPO,
                       check=True, capture_output=True)
        runs.append(time.perf_counter() - began)
    print(f"\n`qa ask` as a fresh process: median {statistics.median(runs):.2f} s over {fresh_runs} runs "
          f"(min {min(runs):.2f} s, max {max(runs):.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    ingest = sub.add_parser("ingest")
    ingest.add_argument("--corpus", type=Path, required=True)
    ingest.add_argument("--batch-size", type=int, default=None)
    query = sub.add_parser("query")
    query.add_argument("--index-dir", type=Path, required=True)
    query.add_argument("--questions", type=Path, required=True)
    query.add_argument("--fresh-runs", type=int, default=5)
    args = parser.parse_args()
    if args.what == "ingest":
        bench_ingest(args.corpus, args.batch_size)
    else:
        bench_query(args.index_dir, args.questions, args.fresh_runs)


if __name__ == "__main__":
    main()
