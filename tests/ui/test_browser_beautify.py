"""Beautify with its defaults, in a real browser, on the embedded model (issue 25): the cards a demo user sees
read as prompts (no fragment runs, no repeated sentence, no junk), and the status says what was drawn.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from engine.text_quality import read_text
from tests.app_server import Server, start_app
from tests.ui.browser import BROWSER_MARKS

pytestmark = [*BROWSER_MARKS, pytest.mark.slow]

#: Short prompts a demo user types (not the page's examples).
PROMPTS = ["a cat sleeping on a windowsill in the rain", "an old lighthouse at night during a storm"]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_app(tmp_path_factory.mktemp("browser-beautify"), timeout=180.0)
    yield server
    server.stop()


def app_log_tail(app: Server) -> str:
    return app.log.read_text(errors="replace")[-1500:] if app.log.is_file() else ""


def card_texts(page) -> list[str]:
    """The texts of the Beautify cards (each card's paragraph, without its label line)."""
    return page.locator("#beautify-results .cand-text").all_inner_texts()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_default_beautify_cards_have_no_fragment_run_or_repeated_sentence(page, app, prompt) -> None:
    page.locator("#beautify-prompt textarea").fill(prompt)
    page.locator("#beautify-prompt textarea").press("Enter")
    status = page.locator("#beautify-status")
    status.get_by_text("candidate(s) from").wait_for(timeout=600_000)  # the final status line
    shown = status.inner_text()
    assert re.search("the best of \\d+ drawn", shown), f"status: {shown!r}; app log: {app_log_tail(app)}"
    texts = card_texts(page)
    assert texts, "no candidate cards"
    for text in texts:
        reader = read_text(text, prompt)
        assert reader.repeated == 0, f"repeated sentence in: {text}"
        assert reader.junk_runs == 0, f"junk run in: {text}"
        assert reader.fragment_share <= 0.25, f"fragment sentences in: {text}"
