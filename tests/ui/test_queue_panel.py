"""The Admin tab's queue-order panel (issue 16 item 2): the setting round-trips through the database, only an
admin may change it (handler and API), bad values are one line, and the note counts what waits."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from gradio_client.exceptions import AppError

from annotations import store
from annotations.db import open_db
from tests.app_server import Server
from training.jobs import Jobs
from ui.common import AppContext, bind
from ui.queue_panel import current_order, order_note, set_queue_order

LOCAL = SimpleNamespace(username=None)
ANN = SimpleNamespace(username="ann")


@pytest.fixture()
def ctx(tmp_path: Path) -> AppContext:
    db_url = f"sqlite:///{tmp_path / 's.db'}"
    db = open_db(db_url)
    return AppContext(studio=None, db=db, jobs=Jobs(db, db_url), work_dir=tmp_path / "work")


@pytest.fixture()
def guarded(ctx: AppContext, tmp_path: Path) -> AppContext:
    """The same store behind accounts: ada (admin), ann (annotator)."""
    from ui.auth import Accounts, add_user

    add_user(tmp_path / "auth.json", "ada", "admin-password-1", role="admin", rounds=4)
    add_user(tmp_path / "auth.json", "ann", "annotator-password-1", role="annotator", rounds=4)
    accounts = Accounts.load(tmp_path / "auth.json")
    return AppContext(studio=None, db=ctx.db, jobs=ctx.jobs, work_dir=ctx.work_dir, accounts=accounts)


def _pair(ctx: AppContext, tag: str, a: dict, b: dict) -> int:
    sample = store.upsert_sample(ctx.db, None, f"prompt {tag}")
    ids = [store.add_response(ctx.db, sample, 3, f"{side} {tag}", "model") for side in "ab"]
    for rid, scores in zip(ids, (a, b), strict=True):
        if scores:
            store.add_scores(ctx.db, rid, scores)
    return store.add_pair(ctx.db, sample, 3, *ids)


def test_the_setting_round_trips_and_the_queue_follows(ctx: AppContext) -> None:
    sure = _pair(ctx, "sure", {"llm-judge": 9}, {"llm-judge": 2})
    close = _pair(ctx, "close", {"llm-judge": 6}, {"llm-judge": 6})
    assert current_order(ctx) == "fifo"
    assert "Queue order: **first in, first out** (the default; no admin has changed it)" in order_note(ctx)
    order, note = bind(set_queue_order, ctx)("active", LOCAL)
    assert order == "active" and current_order(ctx) == "active"
    assert note.startswith("✅ Saved. Queue order: **most uncertain first** · set by local at ")
    assert store.queue_order_info(ctx.db).updated_by == "local"
    assert store.next_pair(ctx.db, "ann").pair_id == close  # the annotators' queue follows the setting
    assert bind(set_queue_order, ctx)("fifo", LOCAL)[0] == "fifo"
    assert store.next_pair(ctx.db, "bob").pair_id == sure


def test_only_an_admin_can_change_it(guarded: AppContext) -> None:
    with pytest.raises(gr.Error, match="user 'ann' has role 'annotator'; this action needs the admin role"):
        bind(set_queue_order, guarded)("active", ANN)
    assert store.queue_order_info(guarded.db) == store.QueueOrder("fifo")  # nothing written
    assert bind(set_queue_order, guarded)("active", SimpleNamespace(username="ada"))[0] == "active"
    assert store.queue_order_info(guarded.db).updated_by == "ada"


def test_a_bad_order_is_one_line(ctx: AppContext) -> None:
    with pytest.raises(gr.Error) as info:
        bind(set_queue_order, ctx)("lifo", LOCAL)
    assert info.value.message == "queue order must be one of fifo, active; got 'lifo'"
    assert current_order(ctx) == "fifo"


def test_the_note_counts_what_waits(ctx: AppContext) -> None:
    _pair(ctx, "sure", {"llm-judge": 9}, {"llm-judge": 2})  # e^-7: certain
    close = _pair(ctx, "close", {"llm-judge": 6}, {"llm-judge": 6})  # 1: uncertain
    _pair(ctx, "bare", {}, {})  # no scores
    _pair(ctx, "tie", {"llm-judge": 5}, {"llm-judge": 5})  # 1: uncertain
    view = store.next_pair(ctx.db, "ann", order="active")
    assert view.pair_id == close  # ties at 1: the older first
    store.record_judgement(ctx.db, close, "ann", "a_better", view.left_response_id)  # it waits no more
    assert "3 pair(s) wait for a first vote: 1 uncertain (score ≥ 0.5), 1 without comparable scores." in order_note(
        ctx
    )


def test_api_refuses_an_annotator_and_serves_an_admin(annotator_client, admin_client, auth_app: Server) -> None:
    with pytest.raises(AppError, match="needs the admin role"):
        annotator_client.predict("active", api_name="/set_queue_order")
    engine = open_db(auth_app.db_url)
    try:
        assert store.queue_order(engine) == "fifo"
        order, note = admin_client.predict("active", api_name="/set_queue_order")
        assert order == "active" and "set by ada" in note
        assert store.queue_order_info(engine).updated_by == "ada"
    finally:
        store.set_queue_order(engine, "fifo", by="test")  # the app is shared with other tests
        engine.dispose()
