"""Headless Chromium for the UI tests: Debian's ``chromium`` driven by Playwright, never a
browser that Playwright downloads."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, Playwright, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Running as root on a closed network: no sandbox, and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Found from this file rather than through _live: bench scripts import this module as tests._browser.
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"
# The sizes issue 15 was seen at: a 1366 × 850 laptop window and a 390 × 844 phone.
LAPTOP = {"width": 1366, "height": 850}
# An answer of the extractive reader, streamed through Gradio on two busy cores.
ANSWER_TIMEOUT_MS = 30_000
PHONE = {"width": 390, "height": 844}


def launch_chromium(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` "
                           "(`make install-test` does)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for a test module (imported there as a fixture); each test opens its own context."""
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def new_page(browser: Browser, viewport: dict = LAPTOP, **options) -> Iterator[Page]:
    """A page in a browser context of its own, so no state leaks between tests; closed after."""
    context = browser.new_context(viewport=viewport, **options)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


class ChatPage:
    """The chat as a user drives it, plus what the page did that a user would not see: the
    dialogs it opened (dismissed) and the script errors it raised."""

    def __init__(self, page: Page, base_url: str, init_script: str | None = None) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        if init_script:
            page.add_init_script(init_script)
        page.goto(base_url)
        expect(self.question_box).to_be_editable(timeout=30_000)

    @property
    def question_box(self) -> Locator:
        return self.page.locator("#question-box textarea")

    @property
    def turns(self) -> Locator:
        return self.page.locator("#conversation .turn")

    @property
    def sources(self) -> Locator:
        return self.page.locator("#sources-panel .sources-body")

    def ask(self, question: str) -> Locator:
        """Send ``question`` and wait for its turn to finish; returns the turn."""
        count = self.turns.count()
        self.question_box.fill(question)
        self.question_box.press("Enter")
        turn = self.turns.nth(count)
        expect(turn).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS)
        return turn
