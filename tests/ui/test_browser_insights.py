"""Sentence grounding, the perturbation-strength meter and token budgets in a real browser (Playwright driving
Debian's chromium), as users see them: bars per sentence with the least-supported one marked (Describe tab,
viewer, Label tab), the strength table beside the reward gaps, and Beautify's token count with the part past
the target's budget struck through, then a run within the budget.

Screenshots (1400×1000) go to $VIDPROMPTER_SCREENSHOTS (the README's come from
`VIDPROMPTER_SCREENSHOTS=docs/screenshots pytest -m browser tests/ui/test_browser_insights.py`), else to tmp.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from annotations import store
from annotations.db import open_db
from tests.app_server import SAMPLES, Server, start_app
from tests.ui.browser import BROWSER_MARKS, open_tab, pick, set_slider

PROMPT = (
    "A big white rabbit wakes up in a green meadow and stretches under a tall tree. "
    "Two butterflies flutter around its head in the morning sun. "
    "A red sports car <b>speeds</b> down a wet city street at night. "
    "The camera slowly pulls back to a wide shot of the hills."
)

pytestmark = BROWSER_MARKS


def seed_video_pair(db_url: str) -> int:
    """A Task-1 pair on the bunny clip whose responses have several sentences each."""
    engine = open_db(db_url)
    sample = store.upsert_sample(engine, str(SAMPLES / "bunny.mp4"), "A rabbit in a meadow.")
    a = store.add_response(engine, sample, 1, PROMPT, "model", model="seed")
    b = store.add_response(engine, sample, 1, "A rabbit sits in a meadow. It looks at a butterfly.", "model")
    pair = store.add_pair(engine, sample, 1, a, b, origin="human_queue")
    engine.dispose()
    return pair


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_app(tmp_path_factory.mktemp("browser-insights"))
    seed_video_pair(server.db_url)
    yield server
    server.stop()


def bars(page, box: str) -> list[str]:
    """The sentences of a grounding box, as shown."""
    page.locator(f"{box} .ground-row").first.wait_for(timeout=120_000)
    return page.locator(f"{box} .ground-row td:last-child").all_inner_texts()


def upload(page, elem_id: str, clip: str = "bunny.mp4") -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(SAMPLES / clip))
    page.locator(f"#{elem_id} video").wait_for()


# -- the viewer: grounding and strength ----------------------------------------------------------------------


def test_viewer_grounds_a_prompt_and_measures_strength(page, shots: Path) -> None:
    open_tab(page, "Hallucination viewer")
    page.locator("#viewer-text textarea").fill(PROMPT)
    upload(page, "viewer-video-in")
    page.locator("#viewer-ground-run").click()
    sentences = bars(page, "#viewer-grounding")
    assert len(sentences) == 4 and sentences[2].endswith(
        "A red sports car <b>speeds</b> down a wet city street at night."
    )
    assert page.locator("#viewer-grounding b").count() == 0  # the prompt's <b> is text, not markup
    assert page.locator("#viewer-grounding .ground-flag").count() <= 1
    assert "random weights" in page.locator("#viewer-grounding .ground-legend").inner_text()
    page.locator("#viewer-grounding").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "grounding.png"))
    page.locator("#viewer-strength-run").click()
    page.locator("#viewer-strength-note").get_by_text("drop").first.wait_for(timeout=120_000)
    table = page.locator("#viewer-strength").inner_text()
    for change in ("response", "video", "prompt"):
        assert change in table
    page.locator("#viewer-strength").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "strength.png"))


# -- Describe: one bar set per candidate ----------------------------------------------------------------------


def test_describe_grounds_each_candidate(page) -> None:
    open_tab(page, "Describe a video")
    pick(page, "describe-model", "tiny-random-vlm")
    pick(page, "describe-evals", "tiny-random-clip")
    upload(page, "describe-video")
    page.locator("#describe-settings").get_by_text("Generation settings").click()
    set_slider(page, "describe-max-tokens", 24)
    page.locator("#describe-run").click()
    page.locator("#describe-grounding").get_by_text("Candidate #1").wait_for(timeout=180_000)
    assert page.locator("#describe-grounding .ground-row").count() >= 1
    assert "tiny-random-clip" in page.locator("#describe-grounding .ground-legend").inner_text()


# -- Label: A and B of a video pair ------------------------------------------------------------------------------


def test_label_grounds_both_responses_on_request(page) -> None:
    open_tab(page, "Label")
    page.locator("#label-input").get_by_text("Pair #").wait_for()
    page.get_by_text("Sentence grounding (evaluators)").click()
    page.locator("#label-ground-run").click()
    page.locator("#label-grounding").get_by_text("Response B").wait_for(timeout=120_000)
    shown = page.locator("#label-grounding").inner_text()
    assert "Response A" in shown and "It looks at a butterfly." in shown
    page.wait_for_timeout(400)
    page.locator("#vote-skip").click()  # the next pair: the old bars go
    page.locator("#label-reveal").get_by_text("Your vote on pair").wait_for()
    page.wait_for_function("() => !document.querySelector('#label-grounding').innerText.includes('Response A')")


# -- Beautify: token budget ----------------------------------------------------------------------------------------


def test_beautify_shows_the_budget_and_generates_within_it(page, shots: Path) -> None:
    page.locator("#beautify-model-note").get_by_text("smollm2-135m").wait_for()
    page.locator("#beautify-settings").get_by_text("Generation settings").click()
    set_slider(page, "beautify-max-tokens", 160)
    page.locator("#beautify-prompt textarea").fill("A dog runs on the beach.")
    page.locator("#beautify-run").click()
    page.locator("#beautify-budget").get_by_text("/ 77 tokens").first.wait_for(timeout=300_000)
    panel = page.locator("#beautify-budget").inner_text()
    assert "/ 77 tokens" in panel and "CLIP BPE" in panel
    if "over: the highlighted part is cut" in panel:
        assert page.locator("#beautify-budget mark.budget-cut").count() >= 1
    page.locator("#beautify-settings").get_by_text("Generation settings").click()  # folded for the picture
    page.locator("#beautify-budget").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "budgets.png"))
    page.locator("#beautify-fit").get_by_role("checkbox").check()
    page.locator("#beautify-run").click()
    page.locator("#beautify-status").get_by_text("max new tokens").wait_for(timeout=300_000)
    page.wait_for_function("() => !document.querySelector('#beautify-budget').innerText.includes('over:')")
    assert page.locator("#beautify-budget mark.budget-cut").count() == 0  # every candidate fits now
