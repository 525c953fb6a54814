"""The library tab at a few thousand articles, in real headless Chromium against ``qa serve``.

The index is built from 2,500 generated articles, a line or a few each (about 15 s to embed),
so that search, every sort and paging have something to show; the same events are also called
as the browser calls them. Screenshots land in test-artifacts/ui/.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from _browser import PHONE, browser, new_page, screenshot_path  # noqa: F401  (browser: a fixture)
from _live import GradioSession, indexed_docs, qa_server, uploaded
from conftest import make_settings
from qa import QAService

ARTICLES = 2_500
PAGE_ROWS = 50  # ui.LIBRARY_PAGE_SIZE
FOLDERS = ("council", "harbour", "transport")
TOPICS = ("Bridge", "Ferry", "Library", "Market", "School", "Tram", "Water")
# The one word only these generated titles hold.
RARE_WORD = "Zephyrine"
RARE = (17, 1717, 2017)
UPLOAD_TIMEOUT_MS = 30_000
# The bench measures the second on the BBC index; here a busy test machine gets some slack.
WRITE_SECONDS = 2.0


@dataclass(frozen=True)
class Generated:
    doc: str
    title: str
    paragraphs: int

    @property
    def text(self) -> str:
        body = "\n\n".join(f"The {self.doc.split('/')[0]} noted item {self.doc[-8:-4]}, part {n}."
                           for n in range(1, self.paragraphs + 1))
        return f"{self.title}\n\n{body}\n"


def generated(number: int) -> Generated:
    folder = FOLDERS[number % len(FOLDERS)]
    # Titles in another order than the files, so sorting by either shows a different list.
    topic = RARE_WORD if number in RARE else TOPICS[(number * 5) % len(TOPICS)]
    return Generated(f"{folder}/{number:04d}.txt", f"{topic} {folder} notice {number:04d}", 1 + number % 4)


CORPUS = [generated(number) for number in range(ARTICLES)]
BY_TITLE = sorted(CORPUS, key=lambda a: (a.title.casefold(), a.doc))
BY_FILE = sorted(CORPUS, key=lambda a: a.doc)
# Most paragraphs first; ties by file name A–Z.
BY_PARAGRAPHS = sorted(BY_FILE, key=lambda a: a.paragraphs, reverse=True)

# Counts the progress indicators Gradio shows at once while an event runs, and where.
RECORD_PROGRESS = """
window.__progress = {most: 0, owners: []};
new MutationObserver(() => {
  const shown = Array.from(document.querySelectorAll('[data-testid="status-tracker"]'))
    .filter((node) => !node.classList.contains('hide') && node.getBoundingClientRect().height > 0
                      && node.closest('#library-tab'));
  window.__progress.most = Math.max(window.__progress.most, shown.length);
  shown.forEach((node) => {
    const owner = node.parentElement && node.parentElement.id;
    if (!window.__progress.owners.includes(owner)) window.__progress.owners.push(owner);
  });
}).observe(document, {subtree: true, childList: true, attributes: true});
"""


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("library")
    articles = root / "articles"
    for article in CORPUS:
        path = articles / article.doc
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(article.text, encoding="utf-8")
    settings = make_settings(root)
    QAService(settings).ingest([articles])
    env = {"QA_API_KEY": "", "QA_UI_PASSWORD": ""}
    with qa_server(settings.index.dir, settings.index.upload_dir, env=env,
                   log=screenshot_path("server-library").with_suffix(".log")) as url:
        yield url



@pytest.fixture
def cleanup(base_url: str) -> Iterator[list[str]]:
    """Files a test adds; deleted afterwards, so every test sees the generated articles alone."""
    names: list[str] = []
    yield names
    for document in httpx.get(f"{base_url}/v1/documents", timeout=30).json()["documents"]:
        if document["doc"] in names:
            httpx.delete(f"{base_url}/v1/documents/{document['id']}", timeout=60)


class LibraryTab:
    """The library as a user drives it."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        # Locators are looked up whenever they are used, so they hold across re-renders.
        self.rows = page.locator("#library-table tbody tr[data-article-id]")
        self.summary = page.locator("#library-table .library-summary")
        self.page_of = page.locator("#library-table .page-of")
        self.search_box = page.locator("#library-search textarea")
        self.status = page.locator("#library-status")
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.add_init_script(RECORD_PROGRESS)
        page.goto(base_url)
        page.get_by_role("tab", name="Library").click()
        expect(self.rows.first).to_be_visible(timeout=30_000)

    def pager(self, name: str) -> Locator:
        return self.page.locator(f'#library-table .library-pager button[aria-label="{name}"]')

    def header(self, column: str) -> Locator:
        return self.page.locator(f'#library-table th[data-column="{column}"]')

    def sort_by(self, column: str, direction: str) -> None:
        """Click ``column``'s header until it sorts in ``direction`` ("ascending"/"descending")."""
        for _ in range(2):
            if self.header(column).get_attribute("aria-sort") == direction:
                return
            before = self.header(column).get_attribute("aria-sort")
            self.header(column).locator("button").click()
            expect(self.header(column)).not_to_have_attribute("aria-sort", before)
        expect(self.header(column)).to_have_attribute("aria-sort", direction)

    def search(self, text: str, summary: str) -> None:
        self.search_box.fill(text)
        expect(self.summary).to_contain_text(summary)

    def column(self, name: str) -> list[str]:
        return [text.strip() for text in self.rows.locator(f".col-{name}").all_inner_texts()]

    def shot(self, name: str) -> None:
        self.page.screenshot(path=screenshot_path(name))


@pytest.fixture
def library(browser: Browser, base_url: str) -> Iterator[LibraryTab]:
    with new_page(browser) as page:
        yield LibraryTab(page, base_url)


def test_the_page_inlines_no_rows_and_the_tab_shows_one_page_at_a_time(library: LibraryTab, base_url: str) -> None:
    page_html = httpx.get(base_url, timeout=30).text
    assert "notice 0001" not in page_html and "council/0003.txt" not in page_html, "rows must not be inlined"

    expect(library.rows).to_have_count(PAGE_ROWS)
    expect(library.summary).to_have_text(f"{ARTICLES:,} articles · newest first · 1–50 shown")
    expect(library.page_of).to_have_text(f"Page 1 of {ARTICLES // PAGE_ROWS}")
    expect(library.pager("First")).to_be_disabled()
    expect(library.pager("Previous")).to_be_disabled()
    expect(library.header("indexed")).to_have_attribute("aria-sort", "descending")
    dates = library.column("date")
    assert dates == sorted(dates, reverse=True), "newest first"
    first_page = library.column("doc")
    library.shot("16-library-first-page")

    library.pager("Next").click()
    expect(library.page_of).to_have_text(f"Page 2 of {ARTICLES // PAGE_ROWS}")
    expect(library.summary).to_contain_text("51–100 shown")
    expect(library.rows).to_have_count(PAGE_ROWS)
    assert not set(library.column("doc")) & set(first_page)

    library.pager("Last").click()
    expect(library.page_of).to_have_text(f"Page {ARTICLES // PAGE_ROWS} of {ARTICLES // PAGE_ROWS}")
    expect(library.summary).to_contain_text(f"{ARTICLES - PAGE_ROWS + 1:,}–{ARTICLES:,} shown")
    expect(library.pager("Next")).to_be_disabled()
    expect(library.pager("Last")).to_be_disabled()
    library.shot("17-library-last-page")

    library.pager("First").click()
    expect(library.page_of).to_have_text(f"Page 1 of {ARTICLES // PAGE_ROWS}")
    assert library.column("doc") == first_page
    assert library.errors == []


def test_search_finds_articles_by_title_words_or_by_file_name(library: LibraryTab) -> None:
    library.search("zephyrine", f"3 of {ARTICLES:,} articles match “zephyrine”")
    expect(library.rows).to_have_count(len(RARE))
    assert sorted(library.column("title")) == sorted(generated(n).title for n in RARE)
    expect(library.page_of).to_have_text("Page 1 of 1")
    library.shot("18-library-search")

    wanted = generated(1234)
    library.search(wanted.doc, f"1 of {ARTICLES:,} articles match “{wanted.doc}”")  # pasted, not typed
    assert library.column("doc") == [wanted.doc]
    assert library.column("title") == [wanted.title]

    # Words in any order, each in the title or the file name.
    words = "ferry harbour/00"
    library.search(words, f"match “{words}”")
    expected = [a for a in CORPUS if all(w in f"{a.title}\n{a.doc}".casefold() for w in words.split())]
    assert 0 < len(expected) < PAGE_ROWS
    expect(library.summary).to_contain_text(f"{len(expected):,} of {ARTICLES:,} articles match")
    assert sorted(library.column("doc")) == sorted(a.doc for a in expected)

    library.search("no such article", f"No article of {ARTICLES:,} matches “no such article”")
    expect(library.rows).to_have_count(0)
    expect(library.page.locator("#library-table .no-match")).to_have_text("No article matches “no such article”.")

    library.search("", f"{ARTICLES:,} articles · newest first")
    expect(library.rows).to_have_count(PAGE_ROWS)


def test_every_column_sorts_both_ways_from_its_header_and_paging_keeps_the_order(library: LibraryTab) -> None:
    library.sort_by("title", "ascending")
    expect(library.summary).to_contain_text("title A–Z")
    assert library.column("title") == [a.title for a in BY_TITLE[:PAGE_ROWS]]
    library.shot("19-library-sorted-by-title")
    library.pager("Next").click()
    expect(library.page_of).to_contain_text("Page 2 of")
    assert library.column("title") == [a.title for a in BY_TITLE[PAGE_ROWS:2 * PAGE_ROWS]]

    library.sort_by("title", "descending")  # a new order starts on page 1
    expect(library.page_of).to_contain_text("Page 1 of")
    assert library.column("title") == [a.title for a in BY_TITLE[::-1][:PAGE_ROWS]]

    library.sort_by("doc", "ascending")
    assert library.column("doc") == [a.doc for a in BY_FILE[:PAGE_ROWS]]
    library.sort_by("doc", "descending")
    assert library.column("doc") == [a.doc for a in BY_FILE[::-1][:PAGE_ROWS]]

    library.header("paragraphs").locator("button").click()  # most first on the first click
    expect(library.header("paragraphs")).to_have_attribute("aria-sort", "descending")
    assert library.column("doc") == [a.doc for a in BY_PARAGRAPHS[:PAGE_ROWS]]
    assert set(library.column("count")) == {"4"}
    library.sort_by("paragraphs", "ascending")
    assert set(library.column("count")) == {"1"}

    library.header("indexed").locator("button").click()
    expect(library.header("indexed")).to_have_attribute("aria-sort", "descending")
    expect(library.summary).to_contain_text("newest first")

    # Sorting applies within a search too.
    library.sort_by("title", "descending")
    library.search("zephyrine", "match “zephyrine”")
    assert library.column("title") == sorted((generated(n).title for n in RARE), reverse=True)
    assert library.errors == []


def test_an_upload_lands_on_top_highlighted_with_one_progress_indicator_and_the_result_in_view(
        library: LibraryTab, cleanup: list[str]) -> None:
    # Far from the default view first: another sort, a search, page 2.
    library.sort_by("title", "ascending")
    library.search("council", "match “council”")
    library.pager("Next").click()
    expect(library.page_of).to_contain_text("Page 2 of")
    library.page.evaluate("window.__progress = {most: 0, owners: []}")
    cleanup.append("quayside-crane.txt")

    began = time.perf_counter()
    library.page.locator("#upload-files input[type=file]").set_input_files([{
        "name": "quayside-crane.txt", "mimeType": "text/plain",
        "buffer": b"Quayside crane repaired\n\nThe quayside crane was repaired on Monday.\n"}])
    expect(library.status.locator("li.ok")).to_have_text(
        "✓ quayside-crane.txt: “Quayside crane repaired”, 1 paragraph indexed", timeout=UPLOAD_TIMEOUT_MS)
    seconds = time.perf_counter() - began

    expect(library.status).to_be_in_viewport()
    expect(library.summary).to_have_text(f"{ARTICLES + 1:,} articles · newest first · 1–50 shown")
    expect(library.search_box).to_have_value("")
    newest = library.rows.first
    expect(newest.locator(".col-title")).to_have_text("Quayside crane repaired")
    expect(newest).to_have_class("is-new")
    expect(newest.locator(".tag")).to_have_text(["new", "uploaded"])
    expect(library.rows.locator(".tag-new")).to_have_count(1)
    expect(newest).to_be_in_viewport()
    progress = library.page.evaluate("window.__progress")
    assert progress == {"most": 1, "owners": ["upload-files"]}, progress
    assert seconds < WRITE_SECONDS + 1, f"the upload took {seconds:.1f} s in the browser"
    library.shot("20-library-upload-on-top")
    assert library.errors == []


def test_delete_from_a_row_asks_first_and_the_outcome_shows_where_the_reader_is(
        library: LibraryTab, base_url: str, cleanup: list[str]) -> None:
    cleanup.append("zephyrine-ferry.txt")
    uploaded(base_url, "zephyrine-ferry.txt", "Zephyrine ferry timetable\n\nThe Zephyrine ferry sails hourly.\n")
    library.sort_by("title", "descending")
    library.search("zephyrine", f"4 of {ARTICLES + 1:,} articles match “zephyrine”")
    row = library.rows.filter(has_text="zephyrine-ferry.txt")
    confirm_box = library.page.locator("#delete-confirm")

    row.locator(".row-delete").click()
    expect(confirm_box).to_be_in_viewport()
    expect(library.page.locator("#delete-question")).to_contain_text(
        "Delete zephyrine-ferry.txt (“Zephyrine ferry timetable”, 1 paragraph)?")
    assert "zephyrine-ferry.txt" in indexed_docs(base_url), "Delete alone must not delete"
    library.shot("21-library-delete-from-row-asks")

    library.page.locator("#cancel-delete").click()
    expect(library.status.locator("li.ok")).to_have_text("✓ Kept zephyrine-ferry.txt: nothing was deleted.")
    expect(confirm_box).to_be_hidden()
    expect(row).to_have_count(1)

    row.locator(".row-delete").click()
    library.page.locator("#confirm-delete").click()
    expect(library.status.locator("li.ok")).to_have_text("✓ Deleted zephyrine-ferry.txt (“Zephyrine ferry timetable”).")
    expect(library.status).to_be_in_viewport()
    expect(row).to_have_count(0)
    # The search and the order the reader chose are still there.
    expect(library.summary).to_have_text(f"3 of {ARTICLES:,} articles match “zephyrine” · title Z–A · 1–3 shown")
    assert "zephyrine-ferry.txt" not in indexed_docs(base_url)
    assert library.dialogs == [], "the confirmation is part of the page, not a browser dialog"
    library.shot("22-library-delete-from-row-done")


def test_on_a_phone_the_table_scrolls_in_its_box_and_a_delete_low_in_the_list_shows_its_question(
        browser: Browser, base_url: str) -> None:
    with new_page(browser, PHONE, has_touch=True, is_mobile=True) as page:
        library = LibraryTab(page, base_url)
        assert library.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        scroller = library.page.locator("#library-table .library-scroll")
        assert scroller.evaluate("(box) => box.scrollWidth > box.clientWidth"), "the table scrolls sideways in its box"
        for control in (library.rows.nth(0).locator(".row-delete"), library.pager("Next"),
                        library.header("title").locator("button")):
            assert control.bounding_box()["height"] >= 44, "a touch target"
        library.shot("23-library-phone")

        library.rows.nth(40).locator(".row-delete").tap()
        expect(library.page.locator("#delete-confirm")).to_be_in_viewport()
        library.page.locator("#cancel-delete").tap()
        expect(library.status.locator("li.ok")).to_contain_text("nothing was deleted")


def rows_of(table: str) -> int:
    return table.count("<tr data-article-id=")


def test_the_library_events_called_as_the_browser_calls_them_send_one_page(base_url: str, cleanup: list[str]) -> None:
    tab = GradioSession(base_url)
    try:
        tab.open_page()
        open_tab = tab.fn_index("library-tab", "select")
        navigate = tab.fn_index("library-table", "click")
        search = tab.fn_index("library-search", "change")
        ask_to_delete = tab.fn_index("library-table", "select")
        confirm = tab.fn_index("confirm-delete", "click")
        upload = tab.fn_index("upload-files", "upload")
        pages = ARTICLES // PAGE_ROWS

        table, _ = tab.call(open_tab, [None])
        assert rows_of(table) == PAGE_ROWS and len(table) < 40_000, len(table)
        assert f"Page 1 of {pages}" in table
        assert f"Page 2 of {pages}" in tab.call(navigate, [None], {"page": 2})[0]
        assert f"Page {pages} of {pages}" in tab.call(navigate, [None], {"page": 10**12})[0], "clamped"
        # What the page's script would never send changes nothing, and fails nothing.
        for odd in ({"page": "2"}, {"page": True}, {"sort": "<script>"}, {"sort": ["title"]}, {}, None):
            assert f"Page {pages} of {pages}" in tab.call(navigate, [None], odd)[0], odd
        by_title = tab.call(navigate, [None], {"sort": "title"})[0]
        assert by_title.index(BY_TITLE[0].title) < by_title.index(BY_TITLE[1].title)
        assert 'data-column="title" aria-sort="ascending"' in by_title and "Page 1 of" in by_title

        found = tab.call(search, ["zephyrine", None])[0]
        assert rows_of(found) == len(RARE) and "match “zephyrine”" in found
        hostile = tab.call(search, ["<img src=x onerror=alert(1)>", None])[0]
        assert "<img" not in hostile and "&lt;img src=x onerror=alert(1)&gt;" in hostile
        assert rows_of(tab.call(search, [None, None])[0]) == PAGE_ROWS, "no text: no search"

        for odd in ({"article_id": 42}, {"article_id": ""}, {}, None):
            status, box, _, _ = tab.call(ask_to_delete, [], odd)
            assert "Choose an article to delete first." in status and box.get("visible") is False, odd
        status, *_ = tab.call(ask_to_delete, [], {"article_id": "no-such-article"})
        assert "No indexed article has id" in status
        assert "No delete is waiting" in tab.call(confirm, [None, None])[0]

        cleanup.append("pier-lights.txt")
        stored = tab.http.post("/gradio_api/upload", files=[("files", (
            "pier-lights.txt", b"Pier lights restored\n\nThe pier lights were restored on Friday.\n"))]).json()
        began = time.perf_counter()
        report, header, table, _, search_box, _ = tab.call(upload, [[{"path": stored[0], "meta": {"_type": "gradio.FileData"}}]])
        upload_seconds = time.perf_counter() - began
        assert "✓ pier-lights.txt: “Pier lights restored”, 1 paragraph indexed" in report
        assert f"{ARTICLES + 1:,} articles" in header and search_box == ""
        first_row = table.split("<tr data-article-id=", 2)[1]
        assert "Pier lights restored" in first_row and "tag-new" in first_row, "on top, highlighted"
        article_id = first_row.split('"', 2)[1]

        tab.call(ask_to_delete, [], {"article_id": article_id})
        began = time.perf_counter()
        report, header, table, *_ = tab.call(confirm, [None, None])
        delete_seconds = time.perf_counter() - began
        assert "✓ Deleted pier-lights.txt" in report and "Pier lights restored" not in table
        assert f"{ARTICLES:,} articles" in header and "pier-lights.txt" not in indexed_docs(base_url)
        assert upload_seconds < WRITE_SECONDS and delete_seconds < WRITE_SECONDS, (upload_seconds, delete_seconds)
    finally:
        tab.close()
