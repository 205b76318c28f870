"""Text-to-video in a real browser (Playwright driving Debian's chromium): without weights the "Generate video"
panel is one line naming the preset and the variable to set; a tiny-random-* model brings its buttons and players
and makes a clip from a Beautify candidate (progress, then the player); the Label tab makes the videos of A and B
side by side.

Screenshots (1400×1000) go to $VIDPROMPTER_SCREENSHOTS (the README's come from
`VIDPROMPTER_SCREENSHOTS=docs/screenshots pytest -m browser tests/ui/test_browser_t2v.py`), else to tmp.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from annotations import store
from annotations.db import open_db
from tests.app_server import Server, start_app
from tests.ui.browser import BROWSER_MARKS, open_tab, pick

TINY = "tiny-random-cogvideox"
REAL_PRESET_VARS = ("COGVIDEOX_2B", "COGVIDEOX_5B", "WAN2_1_T2V_1_3B", "EASYANIMATE_V5_1_7B")

pytestmark = BROWSER_MARKS


def seed_text_pair(db_url: str) -> int:
    engine = open_db(db_url)
    sample = store.upsert_sample(engine, None, "A kite over a beach.")
    a = store.add_response(engine, sample, 3, "A red kite flies high over a sunny beach.", "model", model="seed")
    b = store.add_response(engine, sample, 3, "A blue kite dives toward the sea at sunset.", "model", model="seed")
    pair = store.add_pair(engine, sample, 3, a, b, origin="human_queue")
    engine.dispose()
    return pair


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # No real T2V weights on this host (an empty Hugging Face cache): the default preset is off, with its reason.
    env = {"HF_HOME": str(tmp_path_factory.mktemp("hf")), "VIDPROMPTER_ALLOW_DOWNLOAD": "0"}
    with pytest.MonkeyPatch.context() as mp:
        for name in REAL_PRESET_VARS:
            mp.delenv(f"VIDPROMPTER_T2V_{name}", raising=False)
        server = start_app(tmp_path_factory.mktemp("browser-t2v"), env=env)
    seed_text_pair(server.db_url)
    yield server
    server.stop()


@pytest.fixture()
def page(page):
    """conftest's page, with a 60 s default wait: a tiny T2V clip on 2 shared cores can take that long."""
    page.set_default_timeout(60_000)
    return page


def video_src(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} video").first.get_attribute("src") or ""


def test_generate_a_clip_from_a_beautify_candidate(page, shots: Path) -> None:
    note = page.locator("#beautify-t2v-note")
    note.get_by_text("Generate video is off").wait_for()
    assert "cogvideox-2b" in note.inner_text() and "VIDPROMPTER_T2V_COGVIDEOX_2B" in note.inner_text()
    pick(page, "beautify-model", "tiny-random-lm")
    page.locator("#beautify-model-note").get_by_text("random weights").wait_for()
    page.get_by_text("Generation settings").click()
    tokens = page.locator("#beautify-max-tokens input[type=number]")
    tokens.fill("24")  # random-weight words spell out letter by letter in the tiny T5: keep under its 226 tokens
    tokens.press("Enter")
    page.locator("#beautify-prompt textarea").fill("A red kite flies over a windy beach.")
    page.locator("#beautify-run").click()
    page.locator("#beautify-status").get_by_text("candidate(s) from").wait_for(timeout=240_000)
    first = page.locator("#beautify-t2v-1")
    # The default preset cannot load here: the panel is its one line, no grey buttons, no empty players.
    assert not first.is_visible() and not page.locator("#beautify-t2v-latest").is_visible()

    pick(page, "beautify-t2v-model", TINY)
    note.get_by_text("random weights — pipeline check only").wait_for()
    first.wait_for(state="visible")
    page.wait_for_function("() => !document.querySelector('#beautify-t2v-1').disabled")
    assert page.locator("#beautify-t2v-short").is_visible() and page.locator("#beautify-t2v-3").is_visible()
    assert not page.locator("#beautify-t2v-4").is_visible()  # three candidates, three buttons
    first.click()
    page.locator("#beautify-t2v-status").get_by_text(re.compile("candidate #1 →")).wait_for(timeout=120_000)
    status = page.locator("#beautify-t2v-status").inner_text()
    assert "9 frames, 32×32 at 8 fps (seed 0, 4 steps)" in status and "pipeline check only" in status
    page.wait_for_function("() => document.querySelector('#beautify-t2v-latest video')?.src")
    assert video_src(page, "beautify-t2v-latest").endswith("candidate-1-s0.mp4")
    assert page.locator("#beautify-t2v-latest").get_by_text("Latest: candidate #1").is_visible()
    assert not page.locator("#beautify-t2v-cancel").is_visible() and first.is_enabled()
    # The budget panel now counts with the generator's own text encoder too: the count Generate video goes by.
    page.locator("#beautify-budget").get_by_text(f"Generate video ({TINY}) reads").first.wait_for()

    page.locator("#beautify-t2v-short").click()  # the short prompt's clip beside it, same seed
    page.locator("#beautify-t2v-status").get_by_text("the short prompt →").wait_for(timeout=120_000)
    page.wait_for_function("() => (document.querySelector('#beautify-t2v-before video')?.src || '').length > 0")
    assert video_src(page, "beautify-t2v-before").endswith("candidate-1-s0.mp4")
    assert video_src(page, "beautify-t2v-latest").endswith("short-s0.mp4")
    page.locator("#beautify-t2v").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "beautify-video.png"))


def test_label_tab_videos_of_a_and_b_side_by_side(page, shots: Path) -> None:
    open_tab(page, "Label")
    page.locator("#label-input").get_by_text("Pair #").wait_for()
    page.locator("#label-t2v").get_by_text("Compare the videos A and B make").click()
    pick(page, "label-t2v-model", TINY)
    page.locator("#label-t2v-note").get_by_text("random weights").wait_for()
    page.wait_for_function("() => !document.querySelector('#label-t2v-run').disabled")
    page.locator("#label-t2v-run").click()
    page.locator("#label-t2v-status").get_by_text("response B →").wait_for(timeout=120_000)
    page.wait_for_function("() => document.querySelector('#label-t2v-b video')?.src")
    assert re.search(r"pair\d+-A-s0\.mp4$", video_src(page, "label-t2v-a"))
    assert re.search(r"pair\d+-B-s0\.mp4$", video_src(page, "label-t2v-b"))
    box_a, box_b = (page.locator(f"#label-t2v-{s}").bounding_box() for s in "ab")
    assert box_a["x"] + box_a["width"] <= box_b["x"] + 1 and abs(box_a["y"] - box_b["y"]) < 2  # side by side
    page.locator("#label-t2v").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "label-videos.png"))
    page.locator("#vote-skip").click()  # the next pair (or the empty queue) clears the old videos
    page.wait_for_function("() => !document.querySelector('#label-t2v-a video')")
