"""A real browser for HTML reports: Debian's chromium, headless, driven by Playwright (which
is given the executable: it downloads no browser). .ci/run installs chromium; elsewhere the
tests that need it skip, saying why."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# What a headless chromium needs on a machine without a network or a sandbox of its own.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


@contextmanager
def page(path: Path) -> Iterator[tuple[Any, list[str]]]:
    """The file at ``path`` open in headless chromium; the console's errors and the page's
    uncaught exceptions gather in the list."""
    from playwright.sync_api import sync_playwright

    exe = chromium()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=FLAGS)
        try:
            tab = browser.new_page()
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.on(
                "request",
                lambda r: (
                    errors.append(f"network: {r.url}")
                    if not r.url.startswith(("file:", "data:", "about:"))
                    else None
                ),
            )
            tab.goto(path.resolve().as_uri())
            yield tab, errors
        finally:
            browser.close()
