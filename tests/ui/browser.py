"""What the browser tests share: Debian's chromium under Playwright, the page they open, and small form helpers.

The fixtures built on these (`browser`, `page`, `shots`) live in tests/ui/conftest.py; a browser test module
sets `pytestmark = BROWSER_MARKS` and defines an `app` fixture (a tests.app_server.Server) for `page` to open.
Never `playwright install`: it downloads a browser, which fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}  # the README screenshots' size
PAGE_TIMEOUT_MS = 30_000

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
    ),
]


def open_page(browser, url: str, timeout_ms: int = PAGE_TIMEOUT_MS) -> tuple:
    """A fresh page on `url` (its own context: clipboard allowed), loaded, and the list of URLs it requests."""
    context = browser.new_context(viewport=VIEWPORT)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(url)
    page.get_by_text("single-user local mode").wait_for()
    return page, requests


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def pick(page, elem_id: str, value: str) -> None:
    """Type `value` into the dropdown `#elem_id` and take it with Enter."""
    box = page.locator(f"#{elem_id} input").first
    box.click()
    box.fill(value)
    box.press("Enter")


def set_slider(page, elem_id: str, value: float) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def wait_text(page, selector: str, text: str, timeout: float = 30_000) -> str:
    """Wait until the element's rendered text (hidden copies left out: Gradio tables keep one) has `text`."""
    page.wait_for_function(
        "([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
        arg=[selector, text],
        timeout=timeout,
    )
    return page.locator(selector).inner_text()
