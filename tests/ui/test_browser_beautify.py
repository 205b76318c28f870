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


def card_texts(page) -> list[str]:
    """The texts of the Beautify cards (each card's paragraph, without its label line)."""
    return page.locator("#beautify-results .cand-text").all_inner_texts()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_default_beautify_cards_have_no_fragment_run_or_repeated_sentence(page, prompt) -> None:
    page.locator("#beautify-prompt textarea").fill(prompt)
    page.locator("#beautify-prompt textarea").press("Enter")
    status = page.locator("#beautify-status")
    status.get_by_text(re.compile("the best of \\d+ drawn")).wait_for(timeout=300_000)
    texts = card_texts(page)
    assert texts, "no candidate cards"
    for text in texts:
        reader = read_text(text, prompt)
        assert reader.repeated == 0, f"repeated sentence in: {text}"
        assert reader.junk_runs == 0, f"junk run in: {text}"
        assert reader.fragment_share <= 0.25, f"fragment sentences in: {text}"
    page.locator("#beautify-run").get_by_text("Beautify").wait_for()
