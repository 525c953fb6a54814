"""Load test of ``POST /v1/ask``: many questions, several in flight, against a real server.

Run from the repository root:

    .venv/bin/python -m bench.load --index-dir /tmp/idx-bbc --corpus /work/shared/data/bbc
    .venv/bin/python -m bench.load --url http://127.0.0.1:8000 --corpus /work/shared/data/bbc

Without ``--url`` it starts ``qa serve`` itself over ``--index-dir`` (ingesting ``--corpus``
there first when the folder holds no index) and waits for ``/readyz``. Questions are
built from the article titles of ``--corpus`` (or of ``GET /v1/documents`` without one).
It prints latency percentiles, throughput and errors, and exits 1 if any request failed.
Not a test: its figures depend on the machine; docs/api.md records them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from tests._live import REPO, qa_server

QUESTION_TEMPLATES = (
    "What happened: {title}?",
    "What is the story behind \"{title}\"?",
    "Who is involved in {title}?",
    "Why does it matter that {title}?",
    "What are the details of {title}?",
)


@dataclass(frozen=True)
class Outcome:
    seconds: float
    status: int  # 0 when no HTTP response came back
    error: str = ""
    abstained: bool = False
    server_ms: float = 0.0


def titles_from_corpus(corpus: Path) -> list[str]:
    titles = []
    for path in sorted(corpus.rglob("*")):
        if path.suffix in {".txt", ".md"} and path.is_file():
            first_line = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[:1]
            if first_line and first_line[0].strip():
                titles.append(first_line[0].strip().lstrip("# "))
    return titles


def titles_from_server(client: httpx.Client) -> list[str]:
    response = client.get("/v1/documents")
    response.raise_for_status()
    return [document["title"] for document in response.json()["documents"] if document["title"]]


def make_questions(titles: list[str], count: int, seed: int) -> list[str]:
    if not titles:
        raise SystemExit("no article titles to build questions from; pass --corpus or index some articles")
    rng = random.Random(seed)
    chosen = rng.sample(titles, count) if len(titles) >= count else [rng.choice(titles) for _ in range(count)]
    return [QUESTION_TEMPLATES[i % len(QUESTION_TEMPLATES)].format(title=title) for i, title in enumerate(chosen)]


def ask_once(client: httpx.Client, question: str) -> Outcome:
    began = time.perf_counter()
    try:
        response = client.post("/v1/ask", json={"question": question})
    except httpx.HTTPError as exc:
        return Outcome(time.perf_counter() - began, 0, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - began
    if response.status_code != 200:
        return Outcome(seconds, response.status_code, response.text[:200])
    body = response.json()
    if not body.get("answer"):
        return Outcome(seconds, response.status_code, "200 without an answer")
    return Outcome(seconds, 200, abstained=body["abstained"], server_ms=body["timings"].get("total", 0.0))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run(base_url: str, questions: list[str], concurrency: int, api_key: str | None) -> tuple[list[Outcome], float]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=base_url, headers=headers, timeout=120, limits=limits) as client:
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            outcomes = list(pool.map(lambda q: ask_once(client, q), questions))
        return outcomes, time.perf_counter() - began


def report(outcomes: list[Outcome], wall_seconds: float, concurrency: int) -> str:
    latencies_ms = [o.seconds * 1000 for o in outcomes]
    failures = [o for o in outcomes if o.status != 200]
    answered = [o for o in outcomes if o.status == 200]
    lines = [
        f"requests      {len(outcomes)} ({concurrency} in flight)",
        f"errors        {len(failures)}",
        f"latency p50   {percentile(latencies_ms, 0.50):.0f} ms",
        f"latency p95   {percentile(latencies_ms, 0.95):.0f} ms",
        f"latency p99   {percentile(latencies_ms, 0.99):.0f} ms",
        f"latency max   {max(latencies_ms):.0f} ms",
        f"throughput    {len(outcomes) / wall_seconds:.1f} requests/s ({wall_seconds:.1f} s in all)",
    ]
    if answered:
        lines.append(f"service time  {statistics.mean(o.server_ms for o in answered):.0f} ms mean inside "
                     f"QAService.ask (the rest is HTTP and waiting for a worker thread)")
        lines.append(f"abstained     {sum(o.abstained for o in answered)} of {len(answered)}")
    for failure in failures[:5]:
        lines.append(f"error: HTTP {failure.status}: {failure.error}")
    return "\n".join(lines)


def index_exists(index_dir: Path) -> bool:
    return (index_dir / "chroma" / "chroma.sqlite3").exists()


def ingest(index_dir: Path, corpus: Path) -> None:
    print(f"No index in {index_dir}: ingesting {corpus} (this takes a few minutes)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "qa.cli", "ingest", str(corpus)], cwd=REPO, check=True,
                   env={**os.environ, "QA_INDEX_DIR": str(index_dir)})


@contextlib.contextmanager
def target_server(args: argparse.Namespace) -> Iterator[str]:
    if args.url:
        yield args.url.rstrip("/")
        return
    index_dir = args.index_dir.resolve()
    if not index_exists(index_dir):
        if args.corpus is None:
            raise SystemExit(f"{index_dir} holds no index; pass --corpus to build one")
        ingest(index_dir, args.corpus)
    print(f"Starting qa serve over {index_dir}", file=sys.stderr)
    with qa_server(index_dir, log=args.server_log, wait_for="/readyz") as base_url:
        yield base_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running server's base URL, e.g. http://127.0.0.1:8000")
    where.add_argument("--index-dir", type=Path, help="start qa serve over this index folder")
    parser.add_argument("--corpus", type=Path, help="articles to take question titles from (and to ingest)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--server-log", type=Path, help="where the started server writes its log")
    args = parser.parse_args(argv)
    api_key = os.environ.get("QA_API_KEY") or None

    with target_server(args) as base_url:
        if args.corpus is not None:
            titles = titles_from_corpus(args.corpus)
        else:
            with httpx.Client(base_url=base_url, timeout=60,
                              headers={"Authorization": f"Bearer {api_key}"} if api_key else {}) as client:
                titles = titles_from_server(client)
        questions = make_questions(titles, args.requests, args.seed)
        outcomes, wall_seconds = run(base_url, questions, args.concurrency, api_key)
    print(report(outcomes, wall_seconds, args.concurrency))
    return 1 if any(o.status != 200 for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
