"""Headless chromium for the console's tests: Debian's browser driven by Playwright
(`executable_path`, never `playwright install`), and where screenshots go."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The machine's network is closed: without these chromium waits on connections it makes
# for itself (updates, sync, QUIC probes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS_ENV = "MOLDAU_CONSOLE_SCREENSHOTS"  # `make screenshots` sets docs/console


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser, closed on exit. Fails (never skips) without chromium."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: `make system-deps` installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot_dir(fallback: Path) -> Path:
    target = os.environ.get(SCREENSHOTS_ENV)
    path = Path(target) if target else fallback
    path.mkdir(parents=True, exist_ok=True)
    return path
