"""How long one new article takes to be answered by every running worker (issue 16's figure).

    .venv/bin/python -m bench.propagation --index-dir /tmp/qa-scale/n100000 --workers 4

Starts ``--workers`` ``qa serve`` processes on the same embedded index (each its own process
with its own Chroma client and keyword index, as several API workers are), waits until each
answers ``/readyz``, and records each one's cold open time and RSS. Then it runs
``qa ingest`` of one new article in a fresh process and, from the moment the ingest starts,
asks every worker over and over about the new article (asking is what is measured, so this
polling is the measurement, not a synchronisation) until each cites it. Prints the ingest
time, the time until the last worker answered, and per worker RSS before and after.

The index is modified: the article stays in it (run ``qa`` delete on its id to take it out,
or pass a new ``--tag`` so every run adds an article of its own).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.scale import REPO

QUESTION = "How many weeks did the Quelmora {tag} harbour crane repairs take?"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cites(url: str, question: str, doc: str) -> bool:
    reply = httpx.post(f"{url}/v1/ask", json={"question": question}, timeout=120)
    return reply.status_code == 200 and any(c["doc"] == doc for c in reply.json()["citations"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tag", default=str(int(time.time())))
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    environment = {**os.environ, "QA_INDEX_DIR": str(args.index_dir), "QA_API_KEY": "", "QA_UI_PASSWORD": ""}
    workers: list[tuple[subprocess.Popen, str, float]] = []
    with tempfile.TemporaryDirectory(prefix="qa-propagation-") as scratch:
        try:
            for _ in range(args.workers):
                port = _free_port()
                log = open(Path(scratch) / f"worker-{port}.log", "w")
                began = time.perf_counter()
                process = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--port", str(port)], cwd=REPO,
                                           env=environment, stdout=log, stderr=subprocess.STDOUT)
                url = f"http://127.0.0.1:{port}"
                while True:  # one worker at a time, so each cold open is measured alone
                    if process.poll() is not None:
                        sys.exit(f"a worker exited with {process.returncode}; see {log.name}")
                    try:
                        if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.2)
                workers.append((process, url, time.perf_counter() - began))
            rss_before = [_rss_mb(p.pid) for p, _, _ in workers]

            folder = Path(scratch) / "new"
            folder.mkdir()
            doc = f"quelmora-{args.tag}.txt"
            (folder / doc).write_text(
                f"Quelmora {args.tag} harbour crane repaired\n\nThe Quelmora {args.tag} harbour crane was repaired "
                f"in eleven weeks, the port authority said on Tuesday.\n", encoding="utf-8")
            question = QUESTION.format(tag=args.tag)
            began = time.perf_counter()
            ingest = subprocess.Popen([sys.executable, "-m", "qa.cli", "ingest", str(folder)], cwd=REPO,
                                      env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            answered: dict[str, float] = {}
            ingest_s = None
            while len(answered) < len(workers) and time.perf_counter() - began < args.timeout:
                if ingest_s is None and ingest.poll() is not None:
                    ingest_s = time.perf_counter() - began
                    if ingest.returncode != 0:
                        sys.exit(f"qa ingest failed: {ingest.stderr.read()}")
                for _, url, _ in workers:
                    if url not in answered and _cites(url, question, doc):
                        answered[url] = time.perf_counter() - began
            ingest.wait()
            ingest_s = ingest_s or time.perf_counter() - began
            rss_after = [_rss_mb(p.pid) for p, _, _ in workers]
        finally:
            for process, _, _ in workers:
                process.terminate()
            for process, _, _ in workers:
                process.wait(timeout=60)
    last = max(answered.values()) if len(answered) == len(workers) else None
    print(f"| index | workers | cold open per worker | qa ingest of 1 article | until every worker cites it "
          f"| RSS per worker before / after |")
    print("|---|---|---|---|---|---|")
    opens = ", ".join(f"{o:.1f}" for _, _, o in workers)
    rss = ", ".join(f"{b / 1024:.2f}/{a / 1024:.2f}" for b, a in zip(rss_before, rss_after))
    print(f"| {args.index_dir} | {len(workers)} | {opens} s | {ingest_s:.1f} s | "
          f"{f'{last:.1f} s' if last is not None else f'not within {args.timeout:.0f} s'} | {rss} GB |")


if __name__ == "__main__":
    main()
