"""A real browser for the page tests: Playwright driving Debian's Chromium, headless.

Playwright's own browser downloads cannot work on these machines, so the fixture launches the
system `chromium` (`apt-get install chromium`); without it, or without the `playwright`
package (the `browser` extra), the browser tests skip and say which is missing; in CI
(CI set, as .ci/run is run) they fail instead, so that a broken install cannot pass as green."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs both in .ci/run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("browser tests need the `playwright` package: pip install -e '.[browser]'")
    executable = shutil.which("chromium")
    if executable is None:
        _missing("browser tests need Debian's Chromium: apt-get install -y chromium")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - any launch failure is a reason to skip
            _missing(f"Chromium at {executable} did not start: {exc}")
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium):
    """A fresh tab that records console errors and uncaught exceptions in `.errors`."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    yield tab
    context.close()
