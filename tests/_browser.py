"""Headless Chromium for the UI tests: Debian's ``chromium`` driven by Playwright, never a
browser that Playwright downloads."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

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
