"""The Admin tab's queue-order panel in a real browser (issue 16 item 2): an admin switches the labelling queue
to "most uncertain first", the Label tab then serves the pair the evaluators are least sure about, and a reload
shows the saved order. A screenshot of the panel goes to $VIDPROMPTER_SCREENSHOTS (else a tmp folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from annotations import store
from annotations.db import open_db
from tests.app_server import Server, start_app
from tests.ui.browser import BROWSER_MARKS, open_page, open_tab, wait_text

pytestmark = BROWSER_MARKS


def seed(db_url: str) -> dict[str, int]:
    """Three text-only pairs, oldest first: a sure one, one without scores, one the judge cannot split."""
    engine = open_db(db_url)
    out = {}
    for tag, a, b in (("sure", 9.0, 2.0), ("bare", None, None), ("close", 6.0, 6.0)):
        sample = store.upsert_sample(engine, None, f"A {tag} kite over a beach.")
        ids = [store.add_response(engine, sample, 3, f"A {tag} kite, take {s}.", "model", model="m") for s in "ab"]
        for rid, value in zip(ids, (a, b), strict=True):
            if value is not None:
                store.add_scores(engine, rid, {"llm-judge": value})
        out[tag] = store.add_pair(engine, sample, 3, *ids)
    engine.dispose()
    return out


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, int]]]:
    server = start_app(tmp_path_factory.mktemp("queue-order-app"))
    pairs = seed(server.db_url)
    yield server, pairs
    server.stop()


def test_admin_switches_to_most_uncertain_first(browser, app: tuple[Server, dict[str, int]], shots: Path) -> None:
    server, pairs = app
    page, _ = open_page(browser, server.url)
    open_tab(page, "Admin")
    page.get_by_text("Labelling queue order").click()
    note = wait_text(page, "#admin-queue-note", "first in, first out")
    assert "3 pair(s) wait for a first vote: 1 uncertain (score ≥ 0.5), 1 without comparable scores." in note
    assert page.get_by_label("First in, first out (default)", exact=False).is_checked()
    page.get_by_label("Most uncertain first (active)", exact=False).check()
    page.locator("#admin-queue-save").click()
    saved = wait_text(page, "#admin-queue-note", "Saved")
    assert "most uncertain first" in saved and "set by local" in saved
    engine = open_db(server.db_url)
    assert store.queue_order(engine) == "active"
    engine.dispose()
    page.locator("#admin-queue-panel").evaluate("el => el.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(shots / "admin-queue-order.png"))
    open_tab(page, "Label")  # the oldest pair is "sure"; the active order serves "close" first
    assert f"Pair #{pairs['close']} " in wait_text(page, "#label-input", "Pair #")
    page.context.close()
    again, _ = open_page(browser, server.url)  # a reload reads the saved order back
    open_tab(again, "Admin")
    again.get_by_text("Labelling queue order").click()
    wait_text(again, "#admin-queue-note", "most uncertain first")
    assert again.get_by_label("Most uncertain first (active)", exact=False).is_checked()
    again.context.close()
