"""Every tab recovers from an error (issue 25 item 4), in a real browser (Playwright driving Debian's chromium):
after an error, a refusal or a Stop, the Run and Stop (or Generate and Cancel) buttons return to idle, and
the next action works, without reloading the page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_server import Server, seed_pairs, start_app
from tests.ui.browser import BROWSER_MARKS, open_tab, pick

#: A seed past 2^63 - 1: the text-to-video handlers refuse it with a gr.Error (before any model loads).
HUGE_SEED = "10000000000000000000"
TINY_T2V = "tiny-random-cogvideox"

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_app(tmp_path_factory.mktemp("browser-recovery"))
    seed_pairs(server.db_url, 2)
    yield server
    server.stop()


def error_shown(page, text: str) -> None:
    """The error toast with `text` (then closed, so the next one is the next error's)."""
    toast = page.locator(".toast-body").filter(has_text=text).first
    toast.wait_for()
    page.locator(".toast-body .toast-close").first.click()


def idle(page, prefix: str, label: str) -> None:
    """The tab's Run button back to its label and on, its Stop button hidden."""
    script = (
        "([id, label]) => { const b = document.getElementById(id); return b && !b.disabled && b.innerText == label; }"
    )
    page.wait_for_function(script, arg=[f"{prefix}-run", label])
    page.locator(f"#{prefix}-stop").wait_for(state="hidden")


def test_beautify_recovers_from_an_empty_prompt_and_a_stop(page) -> None:
    page.locator("#beautify-run").click()
    error_shown(page, "the short prompt is empty")
    idle(page, "beautify", "Beautify")  # was stuck at "Running…" with "⏹ Stop" until a reload
    pick(page, "beautify-model", "tiny-random-lm")
    page.locator("#beautify-model-note").get_by_text("random weights").wait_for()
    page.locator("#beautify-prompt textarea").fill("A red kite flies over a windy beach.")
    page.locator("#beautify-run").click()
    page.locator("#beautify-stop").click()
    page.locator("#beautify-status").get_by_text("candidate(s) from").wait_for(timeout=120_000)
    idle(page, "beautify", "Beautify")


def test_beautify_video_buttons_recover_from_a_refusal(page) -> None:
    pick(page, "beautify-model", "tiny-random-lm")
    page.locator("#beautify-model-note").get_by_text("random weights").wait_for()
    page.locator("#beautify-prompt textarea").fill("A red kite flies over a windy beach.")
    page.locator("#beautify-run").click()
    page.locator("#beautify-status").get_by_text("candidate(s) from").wait_for(timeout=120_000)
    pick(page, "beautify-t2v-model", TINY_T2V)
    page.locator("#beautify-t2v-note").get_by_text("random weights").wait_for()
    seed = page.locator("#beautify-t2v input[type=number]").first
    seed.fill(HUGE_SEED)
    seed.press("Enter")
    page.wait_for_function("() => !document.querySelector('#beautify-t2v-1').disabled")
    page.locator("#beautify-t2v-1").click()
    error_shown(page, "the seed must be in")
    page.locator("#beautify-t2v-cancel").wait_for(state="hidden")
    page.wait_for_function("() => !document.querySelector('#beautify-t2v-1').disabled")


def test_describe_recovers_from_a_missing_video(page) -> None:
    open_tab(page, "Describe a video")
    pick(page, "describe-model", "tiny-random-vlm")
    page.locator("#describe-model-note").get_by_text("random weights").wait_for()
    page.locator("#describe-run").click()
    error_shown(page, "needs a video")
    idle(page, "describe", "Describe")


def test_caption_tab_recovers_from_a_missing_video(page) -> None:
    open_tab(page, "Video + caption")
    pick(page, "caption-model", "tiny-random-vlm")
    page.locator("#caption-model-note").get_by_text("random weights").wait_for()
    page.locator("#caption-run").click()
    error_shown(page, "needs a video")
    idle(page, "caption", "Describe with caption")


def test_viewer_recovers_from_an_empty_response(page) -> None:
    open_tab(page, "Hallucination viewer")
    page.locator("#viewer-text textarea").fill("")
    page.locator("#viewer-text-run").click()
    error_shown(page, "paste a response")
    page.locator("#viewer-text textarea").fill("Two boys throw a red ball to a brown dog.")
    page.locator("#viewer-text-run").click()
    page.locator("#viewer-swapped .highlighted").first.wait_for()


def test_label_video_buttons_recover_from_a_refusal(page) -> None:
    open_tab(page, "Label")
    page.locator("#label-input").get_by_text("Pair #").wait_for()
    page.locator("#label-t2v").get_by_text("Compare the videos A and B make").click()
    pick(page, "label-t2v-model", TINY_T2V)
    page.locator("#label-t2v-note").get_by_text("random weights").wait_for()
    seed = page.locator("#label-t2v input[type=number]").first
    seed.fill(HUGE_SEED)
    seed.press("Enter")
    page.wait_for_function("() => !document.querySelector('#label-t2v-run').disabled")
    page.locator("#label-t2v-run").click()
    error_shown(page, "the seed must be in")
    page.locator("#label-t2v-cancel").wait_for(state="hidden")
    page.wait_for_function("() => !document.querySelector('#label-t2v-run').disabled")


def test_data_tab_recovers_from_an_import_without_a_file(page, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"short_prompt": "A kite dances over a beach."}) + "\n")
    open_tab(page, "Data")
    page.get_by_text("Import / export (admin)").click()
    page.locator("#data-import").click()
    error_shown(page, "choose a JSONL, CSV or zip file")
    page.locator("#data-import-file input[type=file]").set_input_files(str(rows))
    page.wait_for_timeout(1000)
    page.locator("#data-import").click()
    page.locator("#data-io-status").get_by_text("Imported").wait_for()


def test_admin_mining_recovers_from_a_refusal(page) -> None:
    open_tab(page, "Admin")
    page.get_by_text("Mine pairs for imported samples").click()
    for task in ("1 · video", "2 · video + caption", "3 · short prompt"):
        page.get_by_label(task, exact=True).uncheck()
    page.locator("#admin-mine").click()
    error_shown(page, "pick at least one task")
    page.wait_for_function("() => !document.querySelector('#admin-mine').disabled")
    page.locator("#admin-mine-stop").wait_for(state="hidden")
