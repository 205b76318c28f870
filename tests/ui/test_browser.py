"""The app in a real browser (Playwright driving Debian's chromium), as its users see it: beautify streaming
with Stop, copy and queue buttons; the describe tab's notes; the viewer's swaps, videos and reward gaps; the
Label tab's keys, undo, diff highlighting, empty queue and text-only pairs rendered as text; the Data tab;
the Admin tab's history, mining and loop report; and the whole journey on a fresh database.

Screenshots of each tab (1400×1000) go to $VIDPROMPTER_SCREENSHOTS (the README's come from
`VIDPROMPTER_SCREENSHOTS=docs/screenshots pytest -m browser tests/ui/test_browser.py`), else to a tmp folder.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from annotations import store
from annotations.db import open_db
from tests.app_server import SAMPLES, Server, judgements, seed_pairs, start_app
from tests.ui.browser import BROWSER_MARKS, open_page, open_tab, pick, set_slider, wait_text

EVIL_HOST = "evil.test"
EVIL_PROMPT = f"A cat <img src=http://{EVIL_HOST}/x.png> naps ![x](http://{EVIL_HOST}/y.png)"
WET = "A grey cat naps on a wet red sofa in the afternoon sun."
DAMP = "A grey cat naps on a damp red sofa in the afternoon sun."
VOTE_BUTTONS = ("vote-a", "vote-b", "vote-tie", "vote-bad", "vote-skip")

pytestmark = BROWSER_MARKS


def seed_text_only_pair(db_url: str) -> int:
    """A Task-3 pair whose short prompt carries markup and whose responses differ in one word."""
    engine = open_db(db_url)
    sample = store.upsert_sample(engine, None, EVIL_PROMPT)
    wet = store.add_response(engine, sample, 3, WET, "model", model=f"m <img src=http://{EVIL_HOST}/m.png>")
    damp = store.add_response(engine, sample, 3, DAMP, "model", model="m")
    pair = store.add_pair(engine, sample, 3, wet, damp, origin="human_queue")
    engine.dispose()
    return pair


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_app(tmp_path_factory.mktemp("browser-app"))
    seed_pairs(server.db_url, 4)
    seed_text_only_pair(server.db_url)
    yield server
    server.stop()


def fits(page, selector: str) -> bool:
    """No horizontal overflow: the element's content is not wider than its box."""
    return page.locator(selector).first.evaluate("el => el.scrollWidth <= el.clientWidth + 1")


def status(page, prefix: str) -> str:
    return page.locator(f"#{prefix}-status").inner_text()


def wait_done(page, prefix: str, timeout: float = 240_000) -> str:
    page.locator(f"#{prefix}-status").get_by_text("candidate(s) from").wait_for(timeout=timeout)
    return status(page, prefix)


# -- Beautify ---------------------------------------------------------------------------------------------


def test_beautify_streams_into_cards_and_stops(page) -> None:
    """The embedded SmolLM2: Run off and Stop on while it writes, text growing in the cards, Stop keeps it."""
    from playwright.sync_api import expect

    page.locator("#beautify-model-note").get_by_text("smollm2-135m").wait_for()
    page.locator("#beautify-prompt textarea").fill("A little dog plays in the snow.")
    page.locator("#beautify-run").click()
    page.locator("#beautify-stop").wait_for(state="visible")
    assert page.locator("#beautify-run").is_disabled()
    page.locator("#beautify-status").get_by_text("writing").wait_for(timeout=180_000)
    first = page.locator("#beautify-results").inner_text()
    page.wait_for_function(
        "n => document.querySelector('#beautify-results').innerText.length > n", arg=len(first) + 10, timeout=60_000
    )  # the same run's text grew on screen: streamed, not shown at the end
    page.locator("#beautify-stop").click()
    final = wait_done(page, "beautify", 60_000)
    assert "3 candidate(s) from smollm2-135m" in final and "stopped early" in final
    # The buttons swap in the event after the last status update: wait for it rather than race it.
    expect(page.locator("#beautify-run")).to_be_enabled(timeout=10_000)
    expect(page.locator("#beautify-stop")).to_be_hidden(timeout=10_000)
    page.locator("#header").get_by_text("models loaded: smollm2-135m").wait_for()  # the header is live


def test_cards_fit_copy_and_queue_once(page, app: Server) -> None:
    """tiny-random-lm, 3 sampled candidates: cards wrap inside the page with scores and labels visible;
    Copy copies a candidate; queueing twice adds the pairs once."""
    pick(page, "beautify-model", "tiny-random-lm")
    page.locator("#beautify-model-note").get_by_text("random weights").wait_for()
    page.locator("#beautify-prompt textarea").fill("A red kite flies over a windy beach.")
    page.locator("#beautify-run").click()
    assert "pipeline check only" in wait_done(page, "beautify")
    assert page.locator("#beautify-results .cand-card").count() == 3
    assert fits(page, "#beautify-results") and fits(page, "#beautify-results .cand-text")
    label = page.locator("#beautify-results .cand-label").first
    box, viewport = label.bounding_box(), page.viewport_size
    assert label.is_visible() and box["x"] + box["width"] <= viewport["width"]
    page.locator("#beautify-results .cand-copy").first.click()
    page.locator("#beautify-results .cand-copy").first.get_by_text("Copied").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.locator("#beautify-results .cand-text").first.inner_text() and copied
    before = _queued(app)
    page.locator("#beautify-queue").click()
    page.locator("#beautify-queue-status").get_by_text("Queued 2 pair(s)").wait_for()
    page.locator("#beautify-queue").click()
    page.locator("#beautify-queue-status").get_by_text("Already queued").wait_for()
    assert _queued(app) == before + 2


def _queued(app: Server) -> int:
    """Pairs sent to the labelling queue from the task tabs."""
    from annotations.stats import compute_stats

    engine = open_db(app.db_url)
    try:
        return compute_stats(engine)["counts"]["pairs_by_origin"].get("human_queue", 0)
    finally:
        engine.dispose()


def test_one_candidate_explains_the_queue_button(page) -> None:
    pick(page, "beautify-model", "tiny-random-lm")
    page.get_by_text("Generation settings").click()
    set_slider(page, "beautify-temp", 0)
    set_slider(page, "beautify-n", 1)
    page.locator("#beautify-prompt textarea").fill("A woman is walking.")
    page.locator("#beautify-run").click()
    wait_done(page, "beautify")
    page.locator("#beautify-queue-hint").get_by_text("needs two different candidates").wait_for()
    assert page.locator("#beautify-queue").is_disabled()


def test_an_example_runs_on_click(page, shots: Path) -> None:
    page.locator("#beautify-model-note").get_by_text("smollm2-135m").wait_for()
    page.get_by_text("Generation settings").click()
    set_slider(page, "beautify-max-tokens", 64)
    page.get_by_text("A dog runs on the beach.").click()
    final = wait_done(page, "beautify", 240_000)
    assert page.locator("#beautify-prompt textarea").input_value() == "A dog runs on the beach."
    assert "3 candidate(s) from smollm2-135m" in final
    words = re.findall(r"[A-Za-z]+", page.locator("#beautify-results").inner_text())
    assert len(words) >= 30
    assert "stopped" not in final
    page.get_by_text("Generation settings").click()  # folded again for the picture
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "beautify.png"))


# -- Describe ------------------------------------------------------------------------------------------------


def test_describe_tab_says_why_the_default_cannot_load(page, shots: Path) -> None:
    open_tab(page, "Describe a video")
    note = page.locator("#describe-model-note")
    note.get_by_text("cannot load here").wait_for()
    assert note.inner_text().count("cannot load") == 1 and "\n" not in note.inner_text().strip()
    assert page.locator("#describe-run").is_disabled()  # nothing to run while the model cannot load
    lines = [line for line in page.locator("#describe-eval-note").inner_text().splitlines() if line.strip()]
    assert len(lines) == 3 and all(len(line) < 100 for line in lines)  # one short line per evaluator
    for clip in ("bunny.mp4", "bikes.mp4"):
        page.locator("#describe-video").locator("xpath=..").get_by_text(clip).first.wait_for()
    pick(page, "describe-model", "tiny-random-vlm")
    page.locator("#describe-model-note").get_by_text("random weights").wait_for()
    assert page.locator("#describe-run").is_enabled()
    pick(page, "describe-model", "qwen2.5-vl-3b")
    page.locator("#describe-model-note").get_by_text("cannot load here").wait_for()
    page.screenshot(path=str(shots / "describe.png"))


# -- Viewer --------------------------------------------------------------------------------------------------


def test_viewer_highlights_videos_and_gaps(page, shots: Path) -> None:
    open_tab(page, "Hallucination viewer")
    page.locator("#viewer-text-run").click()
    swapped = page.locator("#viewer-swapped")
    swapped.locator(".highlighted").first.wait_for()
    labels = [t.lower() for t in swapped.locator(".highlighted .label").all_inner_texts()]
    assert labels and set(labels) <= {"noun", "number", "color", "direction", "verb"}
    assert page.locator("#viewer-original .highlighted").count() == len(labels)
    page.locator("#viewer-video-in input[type=file]").set_input_files(str(SAMPLES / "bunny.mp4"))
    page.locator("#viewer-video-in video").wait_for()
    page.locator("#viewer-video-run").click()
    for elem in ("#viewer-video-original video", "#viewer-video-perturbed video"):
        page.locator(elem).wait_for()
        assert page.locator(elem).get_attribute("src")
    page.locator("#viewer-text").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "viewer.png"))
    # A clip is loaded above, but "Task 3 only" scores the text alone with a text model: no video task error.
    pick(page, "viewer-gap-model", "tiny-random-lm")
    page.locator("#viewer-gaps-run").click()
    note = page.locator("#viewer-gaps-note")
    note.get_by_text("(no video)").wait_for(timeout=120_000)
    assert "Two boys in white shirts" in note.inner_text() and "tiny-random-lm" in note.inner_text()
    wait_text(page, "#viewer-gaps", "response_hallucination")
    page.get_by_role("button", name="Show the response under the three task instructions").click()
    wait_text(page, "#viewer-views", "Output:")
    assert fits(page, "#viewer-views")  # the long instructions wrap: no sideways scrolling


# -- Label ---------------------------------------------------------------------------------------------------


def _wait_for_vote(page, pair_before: str) -> str:
    page.locator("#label-reveal").get_by_text(f"Your vote on pair #{pair_before}").wait_for()
    return _pair_on_screen(page)


def _pair_on_screen(page) -> str:
    page.locator("#label-input").get_by_text(re.compile("Pair #|All done")).first.wait_for()
    found = re.search(r"Pair #(\d+)", page.locator("#label-input").inner_text())
    return found.group(1) if found else ""


def test_label_three_pairs_with_the_keyboard_and_undo(page, app: Server, shots: Path) -> None:
    open_tab(page, "Label")
    page.locator("#label-legend").get_by_text("Keyboard").wait_for()
    pair = _pair_on_screen(page)
    page.locator("#label-legend").click()  # focus off the tab strip, on a non-editable element
    for key in ("1", "2", "0"):
        page.wait_for_timeout(400)  # a reader's pause; faster votes are taken for a double click's tail
        page.keyboard.press(key)
        pair = _wait_for_vote(page, pair)
    assert len(judgements(app.db_url, "local")) == 3
    page.screenshot(path=str(shots / "label.png"))
    page.locator("#label-undo").click()
    page.locator("#label-reveal").get_by_text("Undid your vote").wait_for()
    assert len(judgements(app.db_url, "local")) == 2


def test_double_click_records_one_vote(page, app: Server) -> None:
    open_tab(page, "Label")
    pair = _pair_on_screen(page)
    before = len(judgements(app.db_url, "local"))
    page.wait_for_timeout(400)
    page.locator("#vote-skip").dblclick()
    _wait_for_vote(page, pair)
    page.wait_for_timeout(1500)  # let a second event, if any, land
    assert len(judgements(app.db_url, "local")) == before + 1


def test_keys_ignored_while_typing(page, app: Server) -> None:
    before = len(judgements(app.db_url, "local"))
    page.locator("#beautify-prompt textarea").type("1 2 0 9 s")
    page.wait_for_timeout(500)
    assert len(judgements(app.db_url, "local")) == before


def test_text_only_pair_is_text_with_a_word_diff_then_the_queue_empties(browser, app: Server) -> None:
    """Markup in a queued prompt and a model name fetches nothing; no video box for Task 3; 'wet' vs 'damp'
    highlighted; then the empty queue: buttons off, today's count, what to do next."""
    page, requests = open_page(browser, app.url)
    open_tab(page, "Label")
    pair = _pair_on_screen(page)
    while pair and "naps" not in page.locator("#label-input").inner_text():
        page.wait_for_timeout(400)
        page.locator("#vote-skip").click()
        pair = _wait_for_vote(page, pair)
    assert "<img src=" in page.locator("#label-input").inner_text()  # shown as the text it is
    assert not page.locator("#label-video").is_visible()
    marked = {page.locator(f"#label-{side} .highlighted").inner_text().strip() for side in ("left", "right")}
    assert marked == {"wet", "damp"}
    page.wait_for_timeout(400)
    page.locator("#vote-a").click()
    page.locator("#label-reveal").get_by_text("source: model m <img").wait_for()  # the reveal's name, as text
    pair = _pair_on_screen(page)
    while pair:
        page.wait_for_timeout(400)
        page.locator("#vote-skip").click()
        pair = _wait_for_vote(page, pair)
    page.locator("#label-input").get_by_text(re.compile(r"All done — \d+ votes? today")).wait_for()
    assert "Send to labelling queue" in page.locator("#label-input").inner_text()
    assert all(page.locator(f"#{b}").is_disabled() for b in VOTE_BUTTONS)
    images = page.eval_on_selector_all("img", "els => els.map(e => e.src)")
    assert not [src for src in images if EVIL_HOST in src]
    assert not [url for url in requests if EVIL_HOST in url]
    page.context.close()


# -- Data ----------------------------------------------------------------------------------------------------


def test_data_tab_in_words_and_reachable_at_800px(page, app: Server, shots: Path, tmp_path: Path) -> None:
    open_tab(page, "Data")
    page.locator("#data-counts").get_by_text("votes").first.wait_for()
    counts = page.locator("#data-counts").inner_text()
    assert "not computable yet" in counts and "None" not in counts
    recent = wait_text(page, "#data-recent", "A is better")
    assert "B is better" in recent  # the keys pressed, as the annotator saw them
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s", recent)
    assert not re.search(r"\d+\.\d{3,}", recent)  # no 16-digit seconds
    page.screenshot(path=str(shots / "data.png"))
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "rows.jsonl", json.dumps({"video": "clips/bikes.mp4", "short_prompt": "People ride bikes."}) + "\n"
        )
        zf.write(SAMPLES / "bikes.mp4", "clips/bikes.mp4")
    page.get_by_text("Import / export (admin)").click()
    page.locator("#data-import-file input[type=file]").set_input_files(str(archive))
    page.wait_for_timeout(1000)
    page.locator("#data-import").click()
    page.locator("#data-io-status").get_by_text("Imported").wait_for()
    message = page.locator("#data-io-status").inner_text()
    assert "Imported 1 new sample(s)" in message and "Next:" in message and "{" not in message
    page.set_viewport_size({"width": 800, "height": 1000})
    for name in ("Beautify a prompt", "Describe a video", "Hallucination viewer", "Label", "Data", "Admin"):
        assert page.get_by_role("tab", name=name).is_visible()


# -- Admin ---------------------------------------------------------------------------------------------------


def test_admin_history_mining_and_report(page, app: Server) -> None:
    engine = open_db(app.db_url)
    run = store.create_run(engine, "seeded", status="finished")
    store.add_run_metrics(engine, run, 1, {"loss": 0.7, "dpo/loss": 0.7, "dpo/margin": 0.1})
    store.add_run_metrics(engine, run, 2, {"loss": 0.5, "dpo/loss": 0.5, "dpo/margin": 0.4})
    engine.dispose()
    report = app.workdir / "runs" / "loop-demo" / "report"
    report.mkdir(parents=True)
    (report / "report.md").write_text("# Loop report\n\nBase vs trained, on the bundled set.\n")
    open_tab(page, "Admin")
    page.locator("#admin-status").get_by_text(f"Run #{run}").wait_for()  # no Refresh: it loads with the tab
    wait_text(page, "#admin-history", "seeded")
    page.locator("#admin-loss img").wait_for()
    page.get_by_text("Mine pairs for imported samples").click()
    page.get_by_label("1 · video", exact=True).check()
    page.get_by_label("2 · video + caption").uncheck()
    page.get_by_label("3 · short prompt").uncheck()
    pick(page, "admin-mine-model", "tiny-random-vlm")
    pick(page, "admin-mine-evaluators", "tiny-random-clip")
    page.locator("#admin-mine").click()
    page.locator("#admin-mine-result").get_by_text(re.compile("loading models|mining")).first.wait_for()  # progress
    mined = wait_text(page, "#admin-mine-result", "pair(s) written", 180_000)
    assert re.search(r"Mined \d+ of \d+ \(sample, task\) item\(s\)", mined) and "Label" in mined
    page.get_by_text("Loop report of a finished run").click()  # the newest report is picked when the tab opens
    page.locator("#admin-report").get_by_text("Base vs trained").wait_for()


# -- the journey ---------------------------------------------------------------------------------------------


def test_journey_beautify_queue_label_train(browser, tmp_path_factory: pytest.TempPathFactory, shots: Path) -> None:
    """Fresh database: beautify (3 candidates) -> Send to labelling queue -> label with the keys -> launch
    tiny-cpu from Admin -> the run finishes (issue 11: it used to fail on the text-only samples' video "")."""
    server = start_app(tmp_path_factory.mktemp("journey"))
    try:
        page, _ = open_page(browser, server.url)
        page.locator("#beautify-model-note").get_by_text("smollm2-135m").wait_for()
        page.get_by_text("Generation settings").click()
        set_slider(page, "beautify-max-tokens", 48)
        page.locator("#beautify-prompt textarea").fill("A cat jumps onto a table.")
        page.locator("#beautify-run").click()
        assert "3 candidate(s) from smollm2-135m" in wait_done(page, "beautify", 300_000)
        page.locator("#beautify-queue").click()
        page.locator("#beautify-queue-status").get_by_text(re.compile(r"Queued [12] pair")).wait_for()
        open_tab(page, "Label")
        pair = _pair_on_screen(page)
        page.locator("#label-legend").click()
        keys = iter("12" * 5)
        while pair:
            page.wait_for_timeout(400)
            page.keyboard.press(next(keys))
            pair = _wait_for_vote(page, pair)
        assert len(judgements(server.db_url, "local")) >= 1
        open_tab(page, "Admin")
        page.locator("#admin-device").get_by_text(re.compile("GPU")).wait_for()
        page.locator("#admin-launch").click()
        page.locator("#admin-status").get_by_text("launched").wait_for()
        page.locator("#admin-status").get_by_text("finished").wait_for(timeout=300_000)
        page.locator("#admin-margins img").wait_for()
        page.locator("#admin-status").evaluate("el => el.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(shots / "admin.png"))
        page.context.close()
    finally:
        server.stop()
