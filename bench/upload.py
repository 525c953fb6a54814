"""Time of one upload request of many small files, against the same files sent one per request.

    .venv/bin/python -m bench.upload --files 20

Issue 13 measured 90 s for 20 small files in one request (one ingest and one index reload
per file) and asks taking up to 7.5 s meanwhile. Both runs here go through
``QAService.upload`` over a fresh temporary index of ``seeds/`` in the same process: the
baseline sends the files one call each (what the old route did), then the same number of
other files go in one call, while a thread asks the seed question over and over; the table
gives both times, their ratio and the asks' latency during the batched upload.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

from qa import QAService, load_settings
from qa._metrics import percentile
from bench.speed import REPO

QUESTION = "Which country deployed THAAD?"


def small_article(batch: str, number: int) -> tuple[str, bytes]:
    text = (f"Harbour report {batch} {number}\n\nThe harbour authority said on Monday that crane {number} "
            f"of batch {batch} would be repaired within {number + 2} weeks.\n\nShipping was not affected, "
            f"the authority added.\n")
    return f"harbour {batch} {number}.txt", text.encode()


def timed_asks(service: QAService, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        began = time.perf_counter()
        service.ask(QUESTION)
        latencies.append(time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qa-bench-upload-") as scratch:
        settings = load_settings(index={"dir": f"{scratch}/index", "upload_dir": f"{scratch}/uploads"})
        service = QAService(settings)
        service.ingest([REPO / "seeds"])
        service.ask(QUESTION)  # warm-up: the model and the snapshot are loaded before timing

        began = time.perf_counter()
        for number in range(args.files):
            service.upload([small_article("a", number)])
        one_per_request = time.perf_counter() - began

        stop, latencies = threading.Event(), []
        asker = threading.Thread(target=timed_asks, args=(service, stop, latencies))
        asker.start()
        began = time.perf_counter()
        outcomes, _ = service.upload([small_article("b", number) for number in range(args.files)])
        one_request = time.perf_counter() - began
        stop.set()
        asker.join()
        assert [o.status for o in outcomes] == ["added"] * args.files
    print(f"| {args.files} small files | one request per file (baseline) | one request | baseline / one request "
          f"| asks during it | ask p50 | ask max |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.files} | {one_per_request:.1f} s | {one_request:.1f} s | {one_per_request / one_request:.1f}× "
          f"| {len(latencies)} | {percentile(latencies, 50) * 1000:.0f} ms | {max(latencies) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
