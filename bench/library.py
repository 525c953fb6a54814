"""The library's page weight and the time to open its tab, at 2,226 and at 100,000 articles.

    .venv/bin/python -m bench.library --index-dir /tmp/idx-bbc            # 2,226 and 100,000
    .venv/bin/python -m bench.library --index-dir /tmp/idx-bbc --articles 2226 --runs 3

``--index-dir`` holds the BBC corpus and the seed article (``QA_INDEX_DIR=/tmp/idx-bbc
.venv/bin/qa ingest ../shared/data/bbc seeds``: 2,226 articles). Each case serves the app that
``qa serve`` serves (``qa._server.create_app``, uvicorn in this process, on ``--port``) and opens
it in headless Debian Chromium, ``--runs`` times in a fresh browser context each:

* **chat page**: every byte the browser received (Chrome's ``encodedDataLength``: headers and
  bodies as sent, over every request) from opening the page until the header shows the article
  count and every request but Gradio's two event streams (open as long as the page is) has
  finished;  the HTML document alone beside it;
* **library tab**: the bytes received from clicking the *Library* tab until its requests have finished, and the time from the click until the first row of the table is visible;
* the time from typing a search (and from emptying it), from clicking the *Title* header, and
  from clicking *Last* until the table shows the result: one page of rows comes back each time.

The 100,000-article case is built in memory, not in Chroma: a service whose snapshot holds the
index's records and copies of them (new article ids, files under ``copy-NNN/``, an ingest time a
minute apart each, so "newest first" orders them) up to the count. The page, the library's
listing, sorting, search and paging read that snapshot exactly as they read a real one; nothing
is embedded or written, so the case builds in about a second. Questions are not asked, so the
copies needing no vectors changes nothing measured here.
"""

from __future__ import annotations

import argparse
import re
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator

import contextlib

import uvicorn
from playwright.sync_api import Page, expect, sync_playwright

from qa import ArticleRecord, QAService, Settings, load_settings
from qa._retrieval import IndexSnapshot
from qa._server import create_app
from tests._browser import launch_chromium, new_page

DEFAULT_COUNTS = (2226, 100_000)
OPEN_TIMEOUT_MS = 120_000
FIRST_ROW = "#library-table tbody tr"
STREAMS = re.compile(r"/gradio_api/(heartbeat/|queue/data)")


def copied_records(records: dict[str, ArticleRecord], count: int) -> dict[str, ArticleRecord]:
    """``records`` and copies of them, ``count`` in all: the copies under ``copy-NNN/``, each
    ingested a minute before the one listed before it."""
    originals = sorted(records.values(), key=lambda record: record.doc)
    newest = max(datetime.fromisoformat(record.ingested_at) for record in originals)
    many = dict(records)
    while len(many) < count:
        number = len(many) - len(originals)
        template = originals[number % len(originals)]
        copy = number // len(originals) + 1
        article_id = f"{template.article_id}-copy{copy:03d}"
        many[article_id] = template._replace(
            article_id=article_id, doc=f"copy-{copy:03d}/{template.doc}",
            path=f"{template.root}/copy-{copy:03d}/{template.doc}",
            ingested_at=(newest - timedelta(minutes=number + 1)).isoformat())
    return many


class CopiedArticlesService(QAService):
    """The index's service, whose snapshot lists ``count`` articles: the real ones and copies."""

    def __init__(self, settings: Settings, count: int) -> None:
        super().__init__(settings)
        self.count = count
        self._copied: IndexSnapshot | None = None

    def indexed(self) -> int:
        """How many articles the index itself holds."""
        return len(super().snapshot().records)

    def snapshot(self) -> IndexSnapshot:
        real = super().snapshot()
        if self._copied is None or self._copied.generation != real.generation:
            self._copied = IndexSnapshot.of(real.generation, copied_records(real.records, self.count),
                                            real.keyword, real.embedding_model)
        return self._copied


@contextlib.contextmanager
def served(service: QAService, settings: Settings) -> Iterator[str]:
    """The app ``qa serve`` serves, over ``service``, on the settings' port; its base URL."""
    app = create_app(settings, service, environ={})
    server = uvicorn.Server(uvicorn.Config(app, host=settings.server.host, port=settings.server.port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on port {settings.server.port}")
        time.sleep(0.05)  # polling interval: the loop checks server.started itself
    try:
        yield f"http://{settings.server.host}:{settings.server.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class ReceivedBytes:
    """What the browser received over the network, from Chrome's own accounting (CDP)."""

    def __init__(self, page: Page) -> None:
        self.session = page.context.new_cdp_session(page)
        self.finished: dict[str, int] = {}
        self.streamed: dict[str, int] = {}  # requests still open (an event stream): bytes so far
        self.documents: set[str] = set()
        self.open: dict[str, str] = {}  # request id: URL, of the requests not finished yet
        self.session.on("Network.requestWillBeSent", self._sent)
        self.session.on("Network.responseReceived", self._response)
        self.session.on("Network.dataReceived", self._data)
        self.session.on("Network.loadingFinished", self._finished)
        self.session.send("Network.enable")

    def _sent(self, event: dict) -> None:
        self.open[event["requestId"]] = event["request"]["url"]

    def _response(self, event: dict) -> None:
        if event["type"] == "Document":
            self.documents.add(event["requestId"])

    def _data(self, event: dict) -> None:
        self.streamed[event["requestId"]] = self.streamed.get(event["requestId"], 0) + event["encodedDataLength"]

    def _finished(self, event: dict) -> None:
        self.finished[event["requestId"]] = int(event["encodedDataLength"])
        self.streamed.pop(event["requestId"], None)
        self.open.pop(event["requestId"], None)

    def settle(self, page: Page, timeout_s: float = 60) -> None:
        """Wait until every request has finished but Gradio's two event streams (its heartbeat and
        ``queue/data``), which stay open as long as the page does, so Playwright's "networkidle"
        never comes; what they brought so far is counted."""
        deadline = time.monotonic() + timeout_s
        while any(not STREAMS.search(url) for url in self.open.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"requests still open: {sorted(self.open.values())}")
            page.wait_for_timeout(20)  # lets Playwright deliver the network events the loop checks

    def total(self) -> int:
        return sum(self.finished.values()) + sum(self.streamed.values())

    def document(self) -> int:
        return sum(self.finished.get(request, 0) for request in self.documents)

    def reset(self) -> None:
        self.finished.clear()
        self.streamed.clear()


@dataclass
class Run:
    chat_page: int
    document: int
    library_tab: int
    open_tab_ms: float
    actions_ms: dict[str, float]


def timed(action: Callable[[], None], done: Callable[[], None]) -> float:
    began = time.perf_counter()
    action()
    done()
    return (time.perf_counter() - began) * 1000


def one_run(page: Page, base: str, count: int) -> Run:
    received = ReceivedBytes(page)
    page.goto(base)
    expect(page.locator("#app-header")).to_contain_text(f"{count:,} articles", timeout=OPEN_TIMEOUT_MS)
    received.settle(page)
    chat_page, document = received.total(), received.document()
    received.reset()
    open_tab_ms = timed(lambda: page.get_by_role("tab", name="Library").click(),
                        lambda: expect(page.locator(FIRST_ROW).first).to_be_visible(timeout=OPEN_TIMEOUT_MS))
    received.settle(page)
    library_tab = received.total()
    summary = page.locator("#library-table .library-summary")
    search = page.locator("#library-search textarea")
    title = page.locator('#library-table th[data-column="title"]')
    pager = page.locator("#library-table .library-pager")
    actions = {
        "search": timed(lambda: search.fill("rugby"),
                        lambda: expect(summary).to_contain_text("match “rugby”", timeout=OPEN_TIMEOUT_MS)),
        "clear the search": timed(lambda: search.fill(""),
                                  lambda: expect(summary).not_to_contain_text("match", timeout=OPEN_TIMEOUT_MS)),
        "sort by title": timed(lambda: title.locator("button").click(),
                               lambda: expect(title).to_have_attribute("aria-sort", "ascending",
                                                                       timeout=OPEN_TIMEOUT_MS)),
        "last page": timed(lambda: pager.locator('[aria-label="Last"]').click(),
                           lambda: expect(pager.locator('[aria-label="Next"]')).to_be_disabled(timeout=OPEN_TIMEOUT_MS)),
    }
    return Run(chat_page, document, library_tab, open_tab_ms, actions)


def kb(size: float) -> str:
    return f"{size / 1000:,.1f} kB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, default=Path("/tmp/idx-bbc"))
    parser.add_argument("--articles", type=int, nargs="+", default=list(DEFAULT_COUNTS),
                        help="article counts to measure; above the index's own count, copies fill it up")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--port", type=int, default=7931)
    args = parser.parse_args()
    base_settings = load_settings(index={"dir": str(args.index_dir)})
    settings = base_settings.model_copy(update={"server": base_settings.server.model_copy(
        update={"host": "127.0.0.1", "port": args.port})})
    rows = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for count in args.articles:
            service = CopiedArticlesService(settings, count)
            held = service.indexed()
            if count < held:
                raise SystemExit(f"{args.index_dir} holds {held:,} articles, more than {count:,}")
            service.warm_up()
            with served(service, settings) as base:
                runs = []
                for _ in range(args.runs):
                    with new_page(browser) as page:
                        runs.append(one_run(page, base, count))
            rows.append((count, runs))
        browser.close()
    print(f"| articles | chat page (HTML document) | library tab | open the tab, median of {args.runs} (min–max) "
          f"| {' / '.join(rows[0][1][0].actions_ms)}, median |")
    print("|---|---|---|---|---|")
    for count, runs in rows:
        opens = [run.open_tab_ms for run in runs]
        actions = " / ".join(f"{statistics.median(run.actions_ms[name] for run in runs):.0f} ms"
                             for name in runs[0].actions_ms) or "—"
        print(f"| {count:,} | {kb(statistics.median(r.chat_page for r in runs))} "
              f"({kb(statistics.median(r.document for r in runs))}) | {kb(statistics.median(r.library_tab for r in runs))} "
              f"| {statistics.median(opens):.0f} ms ({min(opens):.0f}–{max(opens):.0f}) | {actions} |")


if __name__ == "__main__":
    main()
