"""The app as its four kinds of users walk it (issue 26), in a real browser (Playwright driving Debian's
chromium) against an app with accounts: a demo user and an annotator (role annotator), a researcher and an admin
(role admin). Each journey ends with no console errors on its pages, and the app's log has no traceback for the
refusals they met.

Screenshots (1400×1000) go to $VIDPROMPTER_SCREENSHOTS (the README's come from
`VIDPROMPTER_SCREENSHOTS=docs/screenshots pytest -m browser tests/ui/test_browser_walk.py`), else to tmp.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.browser import BROWSER_MARKS, PAGE_TIMEOUT_MS, VIEWPORT, open_tab
from ui.app_server import ADMIN, ANNOTATOR, Server, seed_pairs, start_app

pytestmark = BROWSER_MARKS

#: Words of a text on screen whose letters sit on two lines (a word broken mid-word by the wrapping).
BROKEN_WORDS_JS = """(sel) => {
  const broken = [];
  for (const root of document.querySelectorAll(sel)) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set(Array.from(range.getClientRects()).map((r) => Math.round(r.top)));
        if (tops.size > 1) broken.push(m[0]);
      }
    }
  }
  return broken;
}"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_app(tmp_path_factory.mktemp("browser-walk"), auth=True)
    seed_pairs(server.db_url, 4)
    yield server
    server.stop()


class Walk:
    """A signed-in page and the console errors it logged."""

    def __init__(self, browser, app: Server, account: tuple[str, str]) -> None:
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(app.url)
        self.page.get_by_label("username").fill(account[0])
        self.page.get_by_label("password").fill(account[1])
        self.page.get_by_role("button", name="Login").click()
        self.page.locator("#header").get_by_text(f"signed in as {account[0]}").wait_for()

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"console errors: {self.errors}"


@pytest.fixture()
def walk(browser, app: Server) -> Iterator:
    """walk(account) -> a signed-in Walk; each is closed (and checked for console errors) after the test."""
    walks: list[Walk] = []

    def sign_in(account: tuple[str, str]) -> Walk:
        walks.append(Walk(browser, app, account))
        return walks[-1]

    log_start = len(app.log.read_text())
    yield sign_in
    for one in walks:
        one.close()
    assert "Traceback" not in app.log.read_text()[log_start:]


def test_annotator_sees_only_what_the_role_can_use_and_reads_whole_words(walk, shots: Path) -> None:
    page = walk(ANNOTATOR).page
    assert page.get_by_role("tab", name="Label").is_visible()
    page.wait_for_timeout(1000)  # the page's load events have run
    assert not page.get_by_role("tab", name="Admin").is_visible()  # no tab header that opens a blank page
    open_tab(page, "Data")
    page.locator("#data-counts").get_by_text("votes").first.wait_for()
    assert not page.get_by_text("Import / export (admin)").is_visible()
    open_tab(page, "Label")
    page.locator("#label-input").get_by_text("Pair #").wait_for()
    assert "Task 1" in page.locator("#label-input").inner_text()
    assert "A rabbit in a meadow" not in page.locator("#label-input").inner_text()  # Task 1 reads no caption
    page.set_viewport_size({"width": 800, "height": 1000})
    page.wait_for_timeout(500)
    assert page.evaluate(BROKEN_WORDS_JS, "#label-left, #label-right") == []  # "reflects t|he" no more
    page.set_viewport_size(VIEWPORT)


def test_admin_sees_the_admin_tab(walk) -> None:
    page = walk(ADMIN).page
    page.get_by_role("tab", name="Admin").wait_for()
    open_tab(page, "Admin")
    page.locator("#admin-device").get_by_text("GPU").wait_for()
    open_tab(page, "Data")
    assert page.get_by_text("Import / export (admin)").is_visible()
