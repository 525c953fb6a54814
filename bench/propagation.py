"""How long one new article takes to be answered by every running worker (issue 16's figure).

    .venv/bin/python -m bench.propagation --index-dir /tmp/qa-scale/n100000 --workers 4
    .venv/bin/python -m bench.propagation --index-dir /tmp/qa-scale/n1000000 --chroma-server --via api

Starts ``--workers`` ``qa serve`` processes on the same index (each its own process with its
own Chroma client and keyword index, as several API workers are), waits until each answers
``/readyz``, and records each one's cold open time and RSS. With ``--chroma-server`` the
index's Chroma folder is served by one ``chroma run`` on loopback and every worker is its
client (the README's server mode; the server's own RSS is printed too); without it every
worker opens the folder embedded. Then the new article is written, by ``qa ingest`` in a
fresh process (``--via cli``) or by an upload to the first worker (``--via api``, as a
newsroom's uploads arrive), and from that moment every worker is asked over and over about
it (asking is what is measured, so this polling is the measurement, not a synchronisation)
until each cites it. Prints the write time, the time until the last worker answered, and per
worker RSS before and after.

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
    parser.add_argument("--via", choices=["cli", "api"], default="cli", help="who writes the new article")
    parser.add_argument("--chroma-server", action="store_true", help="workers are clients of one `chroma run`")
    args = parser.parse_args()
    environment = {**os.environ, "QA_INDEX_DIR": str(args.index_dir), "QA_API_KEY": "", "QA_UI_PASSWORD": ""}
    workers: list[tuple[subprocess.Popen, str, float]] = []
    chroma: subprocess.Popen | None = None
    with tempfile.TemporaryDirectory(prefix="qa-propagation-") as scratch:
        try:
            if args.chroma_server:
                chroma, chroma_port = _start_chroma(args.index_dir / "chroma", Path(scratch) / "chroma.log")
                environment.update({"QA_VECTOR_STORE_MODE": "http", "QA_VECTOR_STORE_HOST": "127.0.0.1",
                                    "QA_VECTOR_STORE_PORT": str(chroma_port)})
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
            writer = _write(args.via, folder / doc, workers[0][1], environment)
            answered: dict[str, float] = {}
            write_s = None
            while len(answered) < len(workers) and time.perf_counter() - began < args.timeout:
                if write_s is None and writer.poll() is not None:
                    write_s = time.perf_counter() - began
                    if writer.returncode != 0:
                        sys.exit(f"the write failed: {writer.stderr.read()}")
                for _, url, _ in workers:
                    if url not in answered and _cites(url, question, doc):
                        answered[url] = time.perf_counter() - began
            writer.wait()
            write_s = write_s or time.perf_counter() - began
            rss_after = [_rss_mb(p.pid) for p, _, _ in workers]
            chroma_rss = _rss_mb(chroma.pid) if chroma else None
        finally:
            for process in [p for p, _, _ in workers] + ([chroma] if chroma else []):
                process.terminate()
            for process in [p for p, _, _ in workers] + ([chroma] if chroma else []):
                process.wait(timeout=60)
    last = max(answered.values()) if len(answered) == len(workers) else None
    store = "chroma run" if args.chroma_server else "embedded"
    writer_name = "qa ingest of 1 article" if args.via == "cli" else "upload of 1 article to worker 1"
    print(f"| index | store | workers | cold open per worker | {writer_name} | until every worker cites it "
          f"| each worker cites it at | RSS per worker before / after |" + (" chroma run RSS |" if chroma_rss else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if chroma_rss else ""))
    opens = ", ".join(f"{o:.1f}" for _, _, o in workers)
    each = ", ".join(f"{answered[url]:.1f}" if url in answered else "—" for _, url, _ in workers)
    rss = ", ".join(f"{b / 1024:.2f}/{a / 1024:.2f}" for b, a in zip(rss_before, rss_after))
    print(f"| {args.index_dir} | {store} | {len(workers)} | {opens} s | {write_s:.1f} s | "
          f"{f'{last:.1f} s' if last is not None else f'not within {args.timeout:.0f} s'} | {each} s | {rss} GB |"
          + (f" {chroma_rss / 1024:.2f} GB |" if chroma_rss else ""))


def _start_chroma(path: Path, log: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    process = subprocess.Popen([str(Path(sys.executable).with_name("chroma")), "run", "--path", str(path),
                                "--host", "127.0.0.1", "--port", str(port)],
                               stdout=open(log, "w"), stderr=subprocess.STDOUT)
    while True:
        if process.poll() is not None:
            sys.exit(f"chroma run exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=5).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def _write(via: str, path: Path, first_worker: str, environment: dict[str, str]) -> subprocess.Popen:
    """The new article's write, in a child process either way, so both are timed alike."""
    if via == "cli":
        command = [sys.executable, "-m", "qa.cli", "ingest", str(path.parent)]
    else:
        command = [sys.executable, "-c",
                   "import sys, httpx; reply = httpx.post(sys.argv[1] + '/v1/documents', timeout=600, "
                   "files={'files': (sys.argv[2], open(sys.argv[3], 'rb'), 'text/plain')}); "
                   "sys.exit(0 if reply.status_code == 201 else reply.text)", first_worker, path.name, str(path)]
    return subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


if __name__ == "__main__":
    main()
