"""The app in a real browser (Playwright driving Debian's chromium): beautify, label with the keyboard,
undo, the viewer's highlighted swaps and two videos, and an admin's tiny CPU training run.

Screenshots of each tab go to $VIDPROMPTER_SCREENSHOTS (the README's come from
`VIDPROMPTER_SCREENSHOTS=docs/screenshots pytest -m browser tests/ui`), else to a tmp folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ui.app_server import SAMPLES, Server, judgements, seed_pairs, start_app

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

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
    ),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_app(tmp_path_factory.mktemp("browser-app"))
    seed_pairs(server.db_url, 4)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, app: Server) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(app.url)
    page.get_by_text("single-user local mode").wait_for()
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = Path(os.environ.get("VIDPROMPTER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def pick(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    box.press("Enter")


def test_beautify_a_prompt(page, shots: Path) -> None:
    page.locator("#beautify-model-note").get_by_text("smollm2-135m").wait_for()  # default model status on load
    page.locator("#beautify-prompt textarea").fill("A dog runs on the beach.")
    pick(page, "beautify-model", "tiny-random-lm")
    page.locator("#beautify-model-note").get_by_text("random weights").wait_for()
    page.locator("#beautify-run").click()
    page.get_by_text(re.compile(r"1 candidate\(s\) from")).wait_for()
    assert page.locator(".task-status").first.inner_text().count("pipeline check only") == 1


def test_beautify_with_the_embedded_default_smollm2(page, shots: Path) -> None:
    """The demo path: the packaged real model, no label, English text in the candidates table."""
    page.locator("#beautify-model-note").get_by_text("smollm2-135m").wait_for()
    page.locator("#beautify-prompt textarea").fill("A little dog plays in the snow.")
    page.locator("#beautify-run").click()
    page.get_by_text(re.compile(r"1 candidate\(s\) from")).wait_for(timeout=120_000)
    status = page.locator(".task-status").first.inner_text()
    assert "smollm2-135m" in status and "pipeline check only" not in status
    words = re.findall(r"[A-Za-z]+", page.locator("#beautify-results").inner_text())
    assert len(words) >= 20
    page.screenshot(path=str(shots / "beautify.png"), full_page=True)


def test_describe_tab_says_why_default_cannot_load(page, shots: Path) -> None:
    open_tab(page, "Describe a video")
    page.locator("#describe-model-note").get_by_text("cannot load here").wait_for()
    page.screenshot(path=str(shots / "describe.png"), full_page=True)


def _wait_for_vote(page, pair_before: str) -> str:
    page.locator("#label-reveal").get_by_text(f"Your vote on pair #{pair_before}").wait_for()
    return _pair_on_screen(page)


def _pair_on_screen(page) -> str:
    page.locator("#label-input").get_by_text("Pair #").wait_for()
    return re.search(r"Pair #(\d+)", page.locator("#label-input").inner_text()).group(1)


def test_label_three_pairs_with_the_keyboard_and_undo(page, app: Server, shots: Path) -> None:
    open_tab(page, "Label")
    page.locator("#label-legend").get_by_text("Keyboard").wait_for()
    pair = _pair_on_screen(page)
    page.locator("#label-legend").click()  # focus off the tab strip, on a non-editable element
    for key in ("1", "2", "0"):
        page.wait_for_timeout(400)  # a reader's pause; faster votes are taken for a double click's tail
        page.keyboard.press(key)
        pair = _wait_for_vote(page, pair)
    votes = judgements(app.db_url, "local")
    assert sorted(v["choice"] for v in votes) == sorted(["a_better", "b_better", "tie"]) or len(votes) == 3
    page.screenshot(path=str(shots / "label.png"), full_page=True)
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
    open_tab(page, "Beautify a prompt")
    page.locator("#beautify-prompt textarea").type("1 2 0 9 s")
    page.wait_for_timeout(500)
    assert len(judgements(app.db_url, "local")) == before


def test_viewer_highlights_and_two_videos(page, shots: Path) -> None:
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
    page.screenshot(path=str(shots / "viewer.png"), full_page=True)


def test_data_tab(page, shots: Path) -> None:
    open_tab(page, "Data")
    page.locator("#data-counts").get_by_text("judgements").first.wait_for()
    page.screenshot(path=str(shots / "data.png"), full_page=True)


def test_admin_runs_tiny_cpu_to_finished(page, shots: Path) -> None:
    open_tab(page, "Admin")
    page.locator("#admin-device").get_by_text(re.compile("GPU")).wait_for()
    page.locator("#admin-launch").click()
    page.locator("#admin-status").get_by_text("launched").wait_for()
    page.locator("#admin-status").get_by_text("finished").wait_for(timeout=240_000)
    page.wait_for_timeout(1500)  # let the line plots draw
    page.screenshot(path=str(shots / "admin.png"), full_page=True)
