"""Memory of a server on an embedded index while another process keeps committing (issue 16).

    .venv/bin/python -m bench.reopen_memory --index-dir /tmp/qa-scale/n100000 --commits 5

A worker process opens ``QAService`` on a copy of ``--index-dir``, answers a question, then
``--commits`` times: a separate ``qa ingest`` adds one small article, and the worker answers a
question about it (which makes it open a new Chroma client, since an embedded client never sees
another process's writes). It prints the worker's RSS after each answer and how long that
answer took. The baseline is the same run with :func:`qa._store.release_dropped_clients` made a
no-op, each in a fresh copy of the index, so that both start from the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import qa._service
from bench.scale import rss_now_mb
from qa import QAService, load_settings

QUESTION = "For how much did the Porthaven harbour trust sell quay number {n}?"
ARTICLE = "Porthaven quay {n} sold\n\nThe Porthaven harbour trust sold quay number {n} for £{price}m on Tuesday.\n"


def worker(index_dir: Path, commits: int, release: bool) -> list[dict]:
    if not release:
        qa._service.release_dropped_clients = lambda: None
    service = QAService(load_settings(index={"dir": str(index_dir)}))
    service.warm_up()
    service.ask("How many anti-ballistic missiles will encompass Russia?")
    rows = [{"commit": 0, "rss_mb": rss_now_mb(), "answer_s": None, "cited": None}]
    articles = index_dir.parent / "articles"
    articles.mkdir(exist_ok=True)
    environment = {**os.environ, "QA_INDEX_DIR": str(index_dir)}
    for n in range(1, commits + 1):
        article = articles / f"quay-{n}.txt"
        article.write_text(ARTICLE.format(n=n, price=n + 2), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "qa.cli", "ingest", str(article)], env=environment,
                       check=True, capture_output=True)
        began = time.perf_counter()
        answer = service.ask(QUESTION.format(n=n))
        rows.append({"commit": n, "rss_mb": rss_now_mb(), "answer_s": time.perf_counter() - began,
                     "cited": answer.citations[0].doc if answer.citations else None})
    return rows


def run(source: Path, commits: int, release: bool) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="qa-reopen-memory-") as scratch:
        copy = Path(scratch) / "index"
        shutil.copytree(source, copy)
        done = subprocess.run(
            [sys.executable, "-m", "bench.reopen_memory", "--_worker", str(copy), "--commits", str(commits),
             *([] if release else ["--no-release"])],
            capture_output=True, text=True, check=True)
        return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path)
    parser.add_argument("--commits", type=int, default=5)
    parser.add_argument("--_worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-release", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        print(json.dumps(worker(args._worker, args.commits, not args.no_release)))
        return
    if args.index_dir is None:
        parser.error("--index-dir is required")
    released = run(args.index_dir, args.commits, release=True)
    kept = run(args.index_dir, args.commits, release=False)
    header = ["commits", "RSS, dropped clients released (MB)", "RSS, baseline (MB)", "ratio",
              "answer after the commit: released / baseline (s)", "cited"]
    lines = [header, ["---"] * len(header)]
    for mine, base in zip(released, kept):
        timing = "—" if mine["answer_s"] is None else f"{mine['answer_s']:.2f} / {base['answer_s']:.2f}"
        lines.append([str(mine["commit"]), f"{mine['rss_mb']:.0f}", f"{base['rss_mb']:.0f}",
                      f"{mine['rss_mb'] / base['rss_mb']:.2f}", timing, mine["cited"] or "—"])
    print(f"Worker RSS on {args.index_dir} after each commit by another process and a question about it:\n")
    print("\n".join(f"| {' | '.join(cells)} |" for cells in lines))


if __name__ == "__main__":
    main()
