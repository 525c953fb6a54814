"""Time of one upload request of many small files, against the same files sent one per request;
and, with ``--index-dir``, of one small file uploaded and deleted on that index as a user does it.

    .venv/bin/python -m bench.upload --files 20
    .venv/bin/python -m bench.upload --index-dir /tmp/idx-bbc --runs 10

Issue 13 measured 90 s for 20 small files in one request (one ingest and one index reload
per file) and asks taking up to 7.5 s meanwhile. Both runs here go through
``QAService.upload`` over a fresh temporary index of ``seeds/`` in the same process: the
baseline sends the files one call each (what the old route did), then the same number of
other files go in one call, while a thread asks the seed question over and over; the table
gives both times, their ratio and the asks' latency during the batched upload.

With ``--index-dir`` (the BBC index: ``QA_INDEX_DIR=/tmp/idx-bbc .venv/bin/qa ingest
../shared/data/bbc seeds``), a copy of that index is served as ``qa serve`` serves it (the index
itself is left as it was), and one file of 170 bytes is uploaded and deleted ``--runs`` times:

* **in the page**, in headless Debian Chromium: from handing the file to the upload box until its
  ✓ line shows, and from clicking *Confirm delete* (after the row's *Delete*) until the ✓ Deleted
  line shows: what the user waits for, Gradio's upload route and event stream included;
* **over the HTTP API**: ``POST /v1/documents`` and ``DELETE /v1/documents/{id}``.

The issue-15 target is under a second for each.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

from qa import QAService, load_settings
from qa._metrics import percentile
from bench.library import served
from bench.speed import REPO
from tests._browser import launch_chromium, new_page

RESULT_TIMEOUT_MS = 60_000

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


def batched_against_one_per_request(files: int) -> None:
    with tempfile.TemporaryDirectory(prefix="qa-bench-upload-") as scratch:
        settings = load_settings(index={"dir": f"{scratch}/index", "upload_dir": f"{scratch}/uploads"})
        service = QAService(settings)
        service.ingest([REPO / "seeds"])
        service.ask(QUESTION)  # warm-up: the model and the snapshot are loaded before timing

        began = time.perf_counter()
        for number in range(files):
            service.upload([small_article("a", number)])
        one_per_request = time.perf_counter() - began

        stop, latencies = threading.Event(), []
        asker = threading.Thread(target=timed_asks, args=(service, stop, latencies))
        asker.start()
        began = time.perf_counter()
        outcomes, _ = service.upload([small_article("b", number) for number in range(files)])
        one_request = time.perf_counter() - began
        stop.set()
        asker.join()
        assert [o.status for o in outcomes] == ["added"] * files
    print(f"| {files} small files | one request per file (baseline) | one request | baseline / one request "
          f"| asks during it | ask p50 | ask max |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {files} | {one_per_request:.1f} s | {one_request:.1f} s | {one_per_request / one_request:.1f}× "
          f"| {len(latencies)} | {percentile(latencies, 50) * 1000:.0f} ms | {max(latencies) * 1000:.0f} ms |")


def upload_in_the_page(page: Page, name: str, content: bytes) -> float:
    status = page.locator("#library-status li.ok")
    began = time.perf_counter()
    page.locator("#upload-files input[type=file]").set_input_files(
        [{"name": name, "mimeType": "text/plain", "buffer": content}])
    expect(status).to_contain_text(f"{name}: “", timeout=RESULT_TIMEOUT_MS)
    return time.perf_counter() - began


def delete_in_the_page(page: Page, name: str) -> float:
    page.locator("#library-table tr", has_text=name).locator(".row-delete").click()
    expect(page.locator("#delete-confirm")).to_be_visible()
    began = time.perf_counter()
    page.locator("#confirm-delete").click()
    expect(page.locator("#library-status li.ok")).to_contain_text(f"Deleted {name}", timeout=RESULT_TIMEOUT_MS)
    return time.perf_counter() - began


def one_file_on_an_index(index_dir: Path, runs: int, port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="qa-bench-upload-") as scratch:
        copy = Path(scratch) / "index"
        shutil.copytree(index_dir, copy)
        loaded = load_settings(index={"dir": str(copy)})
        settings = loaded.model_copy(update={"server": loaded.server.model_copy(update={"host": "127.0.0.1",
                                                                                       "port": port})})
        service = QAService(settings)
        service.warm_up()  # as qa serve does before it answers
        timings: dict[str, list[float]] = {"page upload": [], "page delete": [], "API upload": [], "API delete": []}
        with served(service, settings) as base, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            with new_page(browser) as page:
                page.goto(base)
                page.get_by_role("tab", name="Library").click()
                expect(page.locator("#library-table tbody tr").first).to_be_visible(timeout=RESULT_TIMEOUT_MS)
                for number in range(runs):
                    name, content = small_article("page", number)
                    timings["page upload"].append(upload_in_the_page(page, name, content))
                    timings["page delete"].append(delete_in_the_page(page, name))
            browser.close()
            with httpx.Client(base_url=base, timeout=60) as http:
                for number in range(runs):
                    began = time.perf_counter()
                    response = http.post("/v1/documents", files=[("files", small_article("api", number))])
                    timings["API upload"].append(time.perf_counter() - began)
                    assert response.status_code == 201, response.text
                    began = time.perf_counter()
                    deleted = http.delete(f"/v1/documents/{response.json()['documents'][0]['id']}")
                    timings["API delete"].append(time.perf_counter() - began)
                    assert deleted.status_code == 200, deleted.text
        articles = len(service.snapshot().records)
    print(f"| one small file ({len(small_article('page', 0)[1])} bytes) on {articles:,} articles, {runs} runs "
          "| median | max |")
    print("|---|---|---|")
    for what, seconds in timings.items():
        print(f"| {what} | {statistics.median(seconds):.2f} s | {max(seconds):.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--index-dir", type=Path,
                        help="time one small file uploaded and deleted on a copy of this index instead")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--port", type=int, default=7934)
    args = parser.parse_args()
    if args.index_dir:
        one_file_on_an_index(args.index_dir, args.runs, args.port)
    else:
        batched_against_one_per_request(args.files)


if __name__ == "__main__":
    main()
