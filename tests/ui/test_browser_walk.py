"""The app as its four kinds of users walk it (issue 26), in a real browser (Playwright driving Debian's
chromium) against an app with accounts: a demo user and an annotator (role annotator), a researcher and an admin
(role admin). Each journey ends with no console errors on its pages, and the app's log has no traceback for the
refusals they met.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.app_server import ADMIN, ANNOTATOR, REPO, SAMPLES, Server, seed_pairs, start_app
from tests.ui.browser import BROWSER_MARKS, PAGE_TIMEOUT_MS, VIEWPORT, open_tab, pick

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
    # No text-to-video weights on this host (an empty Hugging Face cache, no preset folders).
    env = {"HF_HOME": str(tmp_path_factory.mktemp("hf")), "VIDPROMPTER_ALLOW_DOWNLOAD": "0"}
    with pytest.MonkeyPatch.context() as mp:
        for name in ("COGVIDEOX_2B", "COGVIDEOX_5B", "WAN2_1_T2V_1_3B", "EASYANIMATE_V5_1_7B"):
            mp.delenv(f"VIDPROMPTER_T2V_{name}", raising=False)
        server = start_app(tmp_path_factory.mktemp("browser-walk"), auth=True, env=env)
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


def test_annotator_sees_only_what_the_role_can_use_and_reads_whole_words(walk) -> None:
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


def _bars(page) -> dict[str, float]:
    """The reward-gap chart's bars as drawn: condition -> height."""
    labels = page.eval_on_selector_all(
        "#viewer-gap-plot [aria-roledescription=bar]", "els => els.map(e => e.getAttribute('aria-label'))"
    )
    out = {}
    for label in labels:  # "condition: response hallucination; gap_vs_original: 5.456"
        condition, gap = (part.split(": ", 1)[1] for part in label.split("; "))
        out[condition] = float(gap.replace("−", "-"))
    return out


def _table_gaps(page) -> dict[str, float]:
    """The gaps table as shown: condition -> gap_vs_original (the cells read in order, four per row)."""
    cells = [line.strip() for line in page.locator("#viewer-gaps").inner_text().splitlines() if line.strip()]
    if "gap_vs_original" not in cells:
        return {}
    body = cells[cells.index("gap_vs_original") + 1 :]
    rows = [body[i : i + 4] for i in range(0, len(body) - 3, 4)]
    return {row[0]: float(row[3]) for row in rows if row[0] != "original"}


def test_researcher_reruns_the_gaps_and_grounds_long_text(walk) -> None:
    page = walk(ADMIN).page
    open_tab(page, "Hallucination viewer")
    pick(page, "viewer-gap-model", "tiny-random-lm")
    seed = page.locator("#viewer-gap-seed input")
    tables: list[dict[str, float]] = []
    for value in ("0", "1"):  # another setting: the chart must follow the table, no old bars left
        seed.fill(value)
        seed.press("Enter")
        page.locator("#viewer-gaps-run").click()
        deadline = time.monotonic() + 120
        while not (table := _table_gaps(page)) or table in tables:  # this run's table
            assert time.monotonic() < deadline, "the gaps table did not change"
            page.wait_for_timeout(500)
        tables.append(table)
        for _ in range(20):  # give the chart a moment to draw
            if _bars(page) == pytest.approx(table, abs=1e-3):
                break
            page.wait_for_timeout(250)
        assert _bars(page) == pytest.approx(table, abs=1e-3)
    assert tables[0] != tables[1]  # the seed changed the swaps, and the chart with them
    long_word = "A" + "b" * 300
    page.locator("#viewer-text textarea").fill(f"A rabbit sits in a meadow. {long_word} runs. The sun sets.")
    page.locator("#viewer-video-in input[type=file]").set_input_files(str(SAMPLES / "bunny.mp4"))
    page.locator("#viewer-video-in video").wait_for()
    page.locator("#viewer-ground-run").click()
    page.locator("#viewer-grounding .ground-row").first.wait_for(timeout=120_000)
    assert page.locator("#viewer-grounding").evaluate("el => el.scrollWidth <= el.clientWidth + 1")


def test_demo_user_runs_with_enter_reads_the_judge_note_and_describes_a_clip(walk) -> None:
    page = walk(ANNOTATOR).page
    assert "Enter runs" in page.locator("#beautify-prompt").inner_text()  # said on the page
    t2v_note = page.locator("#beautify-t2v-note")  # no text-to-video weights here: one line on how to enable it
    t2v_note.get_by_text("Generate video is off").wait_for()
    assert "VIDPROMPTER_T2V_COGVIDEOX_2B" in t2v_note.inner_text()
    for part in ("#beautify-t2v-buttons", "#beautify-t2v-latest", "#beautify-t2v-before"):
        assert not page.locator(part).is_visible()  # no empty players, no grey buttons
    page.locator("#beautify-judge input").check()
    note = page.locator("#beautify-judge-note")
    note.get_by_text("smollm2-135m").wait_for()  # before it runs: which judge, how slow, how often it fails
    assert "no 0-10 score" in note.inner_text()
    page.locator("#beautify-judge input").uncheck()
    pick(page, "beautify-model", "tiny-random-lm")
    page.locator("#beautify-model-note").get_by_text("random weights").wait_for()
    box = page.locator("#beautify-prompt textarea")
    box.fill("A red kite flies over a windy beach.")
    box.press("Enter")  # Enter runs (it used to take Shift+Enter)
    page.locator("#beautify-status").get_by_text("candidate(s) from").wait_for(timeout=120_000)
    assert box.input_value() == "A red kite flies over a windy beach."  # no newline typed into the prompt
    open_tab(page, "Describe a video")
    pick(page, "describe-model", "tiny-random-vlm")
    page.locator("#describe-model-note").get_by_text("random weights").wait_for()
    page.locator("#describe-video input[type=file]").set_input_files(str(SAMPLES / "bunny.mp4"))
    page.locator("#describe-video video").wait_for()
    page.locator("#describe-run").click()  # the default evaluators, none with weights here
    status = page.locator("#describe-status")
    status.get_by_text("candidate(s) from").wait_for(timeout=120_000)
    assert "none of the chosen evaluators can load here" in status.inner_text()
    assert page.locator("#describe-results .cand-card").count() >= 1


def test_admin_mines_while_an_annotator_grounds_and_resume_names_the_reason(walk, app: Server) -> None:
    """Issue 26 items 4 and 5: Mine pairs says its plan before it starts and runs off the request queue, so an
    annotator's "Ground A and B" answers while it works (it waited over 300 s behind it); Resume on a finished
    run is refused at once, naming why."""
    from annotations import store
    from annotations.db import open_db
    from annotations.io import import_rows

    engine = open_db(app.db_url)
    import_rows(engine, REPO / "assets" / "sampleset" / "samples.jsonl")
    finished = store.create_run(engine, "done-run", status="finished")
    engine.dispose()
    admin = walk(ADMIN).page
    open_tab(admin, "Admin")
    admin.get_by_text("Mine pairs for imported samples").click()
    admin.get_by_label("3 · short prompt").uncheck()
    pick(admin, "admin-mine-model", "tiny-random-vlm")
    pick(admin, "admin-mine-evaluators", "tiny-random-clip")
    plan = admin.locator("#admin-mine-plan")
    plan.get_by_text("to mine with tiny-random-vlm").wait_for()
    assert "not measured yet" in plan.inner_text()  # before it starts: what it will do, and how long
    admin.locator("#admin-mine").click()
    result = admin.locator("#admin-mine-result")
    result.get_by_text("Mining run #1").wait_for()
    assert admin.locator("#admin-mine").is_disabled() and admin.locator("#admin-mine-stop").is_visible()

    annotator = walk(ANNOTATOR).page
    open_tab(annotator, "Label")
    annotator.locator("#label-input").get_by_text("Pair #").wait_for()
    annotator.get_by_text("Sentence grounding (evaluators)").click()
    started = time.monotonic()
    annotator.locator("#label-ground-run").click()
    annotator.locator("#label-grounding .ground-row").first.wait_for(timeout=120_000)
    seconds = time.monotonic() - started
    # Mining was still at work meanwhile. The status may be mid-refresh: Gradio then puts its pending overlay
    # ("0.0s", "processing | 0.1/0.1s", "queue: 1/2 | 0.3s") on lines before the text, so the run's line is
    # looked for after any of it.
    assert re.search(r"(?:^|\s)⛏ Mining run #1", result.inner_text())
    assert seconds < 60, f"grounding took {seconds:.0f} s while mining ran"

    admin.locator("#admin-mine-stop").click()
    result.get_by_text("stopped at").wait_for(timeout=60_000)
    admin.wait_for_function("() => !document.querySelector('#admin-mine').disabled")
    run_id = admin.locator("#admin-run-id input")
    run_id.fill(str(finished))
    run_id.press("Enter")
    admin.get_by_role("button", name="Resume run").click()
    admin.locator(".toast-body").get_by_text("is finished: Resume restarts a cancelled or failed run").wait_for()
