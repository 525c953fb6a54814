"""Headless Chromium for the UI tests: Debian's ``chromium`` driven by Playwright, never a
browser that Playwright downloads."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Playwright

from _live import REPO

CHROMIUM = Path("/usr/bin/chromium")
# Running as root on a closed network: no sandbox, and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "ui"
# The sizes issue 15 was seen at: a 1366 × 850 laptop window and a 390 × 844 phone.
LAPTOP = {"width": 1366, "height": 850}
PHONE = {"width": 390, "height": 844}


def launch_chromium(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` "
                           "(`make install-test` does)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"
