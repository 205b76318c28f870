"""Issue 16 item 2: the active queue order (most uncertain label first), its score, its setting, and every
queue guarantee with it on: on the raw-sqlite3 path, the SQLAlchemy path on SQLite, and PostgreSQL."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from annotations import active, db, queue_sqlite, store
from annotations.errors import LeaseLost, StoreError

ROOT = Path(__file__).resolve().parents[2]
E = math.exp


def scored_pair(engine: Engine, tag: str, a: Mapping[str, float], b: Mapping[str, float]) -> int:
    """A mined pair on its own text-only sample whose sides carry these scores (scores written first)."""
    sample = store.upsert_sample(engine, None, f"prompt {tag}")
    ids = [store.add_response(engine, sample, 3, f"{side} {tag}", "model", model="m") for side in "ab"]
    for rid, scores in zip(ids, (a, b), strict=True):
        if scores:
            store.add_scores(engine, rid, scores)
    return store.add_pair(engine, sample, 3, ids[0], ids[1])


def stored_uncertainty(engine: Engine) -> dict[int, float]:
    with engine.connect() as conn:
        return {pid: u for pid, u in conn.execute(text("SELECT id, uncertainty FROM pair"))}


def served(engine: Engine, order: str | None, n: int, overlap: int = 1) -> list[int]:
    """Pair ids handed to n fresh annotators in turn (each keeps their lease)."""
    views = [store.next_pair(engine, f"ann{i}", overlap=overlap, order=order) for i in range(n)]
    return [v.pair_id if v is not None else None for v in views]  # type: ignore[misc]


# --------------------------------------------------------------------------- the score, by hand


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # d_E = mean(4, 0) = 2 points, tau 2: c = e^-1; both members agree (the 0 is neither side): g = 0.
        ({"m1": 30, "m2": 28}, {"m1": 26, "m2": 28}, E(-1)),
        # Members split 1:1 (diffs 4, -2): g = 1, whatever the margin.
        ({"m1": 30, "m2": 20}, {"m1": 26, "m2": 22}, 1.0),
        # Diffs 3, 3, -3: d_E = 1, c = e^-0.5; g = 2 * 1 / 3; u = 1 - (1 - c)(1 - 2/3).
        ({"m1": 3, "m2": 3, "m3": 0}, {"m1": 0, "m2": 0, "m3": 3}, 1 - (1 - E(-0.5)) / 3),
        # Text-only: the judge's margin, 2 judge points with tau 1: c = e^-2.
        ({"llm-judge": 8}, {"llm-judge": 6}, E(-2)),
        # Judge and ensemble disagree (d_E = +10, d_J = -3): h = 1.
        ({"m1": 30, "llm-judge": 4}, {"m1": 20, "llm-judge": 7}, 1.0),
        # Judge agrees: only the ensemble margin counts (c = e^-5), the judge's is not used.
        ({"m1": 30, "llm-judge": 9}, {"m1": 20, "llm-judge": 7}, E(-5)),
        # Only the miner's stored ensemble mean: its margin (1 point, c = e^-0.5).
        ({"ensemble": 25.0}, {"ensemble": 24.0}, E(-0.5)),
        # The members' margin wins over a stored mean ("mean", as the task tabs name it).
        ({"m1": 30, "mean": 30}, {"m1": 28, "mean": 0}, E(-1)),
        # Equal scores: margin 0, c = 1.
        ({"llm-judge": 5}, {"llm-judge": 5}, 1.0),
        # Nothing comparable: 0 (served after every scored pair, FIFO among themselves).
        ({"m1": 1}, {"m2": 2}, 0.0),
        ({}, {}, 0.0),
        ({"llm-judge": 5}, {}, 0.0),
    ],
)
def test_pair_uncertainty_by_hand(a: dict, b: dict, expected: float) -> None:
    assert active.pair_uncertainty(a, b) == pytest.approx(expected, abs=1e-12)
    assert active.pair_uncertainty(b, a) == pytest.approx(expected, abs=1e-12)  # symmetric


def test_score_names_match_what_the_miner_stores() -> None:
    from engine.mining import ENSEMBLE_SCORE, JUDGE_SCORE

    assert ENSEMBLE_SCORE in active.AGGREGATE_SCORES and JUDGE_SCORE in active.JUDGE_SCORES


# --------------------------------------------------------------------------- the column follows the scores


def test_uncertainty_is_written_with_the_pair_and_follows_rescoring(engine: Engine) -> None:
    pid = scored_pair(engine, "x", {"m1": 30, "m2": 28}, {"m1": 26, "m2": 28})
    assert stored_uncertainty(engine)[pid] == pytest.approx(E(-1))
    bare = scored_pair(engine, "y", {}, {})
    assert stored_uncertainty(engine)[bare] == 0.0
    a_id, b_id = _sides(engine, bare)
    store.add_scores(engine, a_id, {"llm-judge": 7})
    assert stored_uncertainty(engine)[bare] == 0.0  # one side scored: nothing comparable yet
    store.add_scores(engine, b_id, {"llm-judge": 6})
    assert stored_uncertainty(engine)[bare] == pytest.approx(E(-1))
    store.add_scores(engine, b_id, {"llm-judge": 7})  # re-scored: overwrites, the pair follows
    assert stored_uncertainty(engine)[bare] == pytest.approx(1.0)
    assert stored_uncertainty(engine)[pid] == pytest.approx(E(-1))  # another sample's pair untouched


def _sides(engine: Engine, pair_id: int) -> tuple[int, int]:
    from annotations.pairs import pair_sides

    return pair_sides(engine, [pair_id])[pair_id]


def test_add_responses_refreshes_the_pairs_of_rescored_responses(engine: Engine) -> None:
    sample = store.upsert_sample(engine, None, "a kite")
    old = store.add_responses(
        engine, sample, 3, [store.NewResponse(t, "model", scores={"llm-judge": 5}) for t in "ab"]
    )
    pid = store.add_pair(engine, sample, 3, *old)
    assert stored_uncertainty(engine)[pid] == 1.0  # 5 vs 5
    store.add_responses(engine, sample, 3, [store.NewResponse("c", "model")], {old[0]: {"llm-judge": 9}})
    assert stored_uncertainty(engine)[pid] == pytest.approx(E(-4))


def test_migration_backfills_uncertainty_and_adds_the_index(sqlite_url: str) -> None:
    engine = db.open_db(sqlite_url)
    pid = scored_pair(engine, "x", {"llm-judge": 8}, {"llm-judge": 6})
    with db.write_session(engine) as session:  # back to a v4 file: no column, no index, no setting table
        session.execute(text("DROP INDEX ix_pair_active"))
        session.execute(text("ALTER TABLE pair DROP COLUMN uncertainty"))
        session.execute(text("DROP TABLE project_setting"))
        session.execute(text("UPDATE schema_version SET version = 4"))  # a fresh file is stamped once
    engine.dispose()
    engine = db.make_engine(sqlite_url)
    assert db.init_db(engine) == db.SCHEMA_VERSION == 5
    assert stored_uncertainty(engine) == {pid: pytest.approx(E(-2))}
    with engine.connect() as conn:
        indexes = {row[1] for row in conn.execute(text("PRAGMA index_list(pair)"))}
    assert "ix_pair_active" in indexes
    assert store.queue_order(engine) == "fifo"
    engine.dispose()


# --------------------------------------------------------------------------- the order


def _four_pairs(engine: Engine) -> list[int]:
    """Ids in creation order with uncertainty e^-5, 1 (split members), 0 (unscored), e^-1."""
    return [
        scored_pair(engine, "sure", {"m1": 30, "m2": 30}, {"m1": 20, "m2": 20}),
        scored_pair(engine, "split", {"m1": 30, "m2": 20}, {"m1": 26, "m2": 22}),
        scored_pair(engine, "bare", {}, {}),
        scored_pair(engine, "close", {"llm-judge": 7}, {"llm-judge": 6}),
    ]


def test_active_serves_the_most_uncertain_first_and_unscored_last(vote_engine: Engine) -> None:
    sure, split, bare, close = _four_pairs(vote_engine)
    assert served(vote_engine, "active", 5) == [split, close, sure, bare, None]


def test_fifo_is_the_default_and_keeps_creation_order(vote_engine: Engine) -> None:
    pairs = _four_pairs(vote_engine)
    assert served(vote_engine, None, 5) == [*pairs, None]


def test_ties_and_unscored_pairs_fall_back_to_fifo(vote_engine: Engine) -> None:
    tie1 = scored_pair(vote_engine, "t1", {"llm-judge": 6}, {"llm-judge": 5})
    bare1 = scored_pair(vote_engine, "b1", {}, {})
    tie2 = scored_pair(vote_engine, "t2", {"llm-judge": 2}, {"llm-judge": 3})
    bare2 = scored_pair(vote_engine, "b2", {"m1": 1}, {"m2": 1})  # scored, but by different evaluators
    top = scored_pair(vote_engine, "top", {"llm-judge": 4}, {"llm-judge": 4})
    assert served(vote_engine, "active", 5) == [top, tie1, tie2, bare1, bare2]


def test_fewest_judgements_still_come_first_under_active(vote_engine: Engine) -> None:
    sure, split, _bare, close = _four_pairs(vote_engine)
    view = store.next_pair(vote_engine, "alice", overlap=2, order="active")
    assert view.pair_id == split
    store.record_judgement(vote_engine, split, "alice", "a_better", view.left_response_id)
    # split has a judgement now: a pair without one comes before its second, however uncertain split is.
    assert served(vote_engine, "active", 1, overlap=2) == [close]


def test_setting_round_trips_and_next_pair_follows_it(vote_engine: Engine) -> None:
    sure, split, *_ = _four_pairs(vote_engine)
    assert store.queue_order_info(vote_engine) == store.QueueOrder("fifo")
    set_ = store.set_queue_order(vote_engine, "active", by="boss")
    info = store.queue_order_info(vote_engine)
    assert (info.order, info.updated_by) == ("active", "boss") and info.updated_at is not None
    assert set_.order == "active"
    assert store.next_pair(vote_engine, "alice").pair_id == split  # no order given: the project's
    store.set_queue_order(vote_engine, "fifo", by="boss")
    assert store.queue_order(vote_engine) == "fifo"
    assert store.next_pair(vote_engine, "bob").pair_id == sure
    assert store.next_pair(vote_engine, "bob", order="active").pair_id == sure  # a held lease comes back first


def test_bad_order_is_one_line(vote_engine: Engine) -> None:
    with pytest.raises(StoreError, match=r"^queue order must be one of fifo, active; got 'random'$"):
        store.set_queue_order(vote_engine, "random")
    with pytest.raises(StoreError, match=r"^queue order must be one of fifo, active; got 'lifo'$"):
        store.next_pair(vote_engine, "alice", order="lifo")
    assert store.queue_order(vote_engine) == "fifo"


# --------------------------------------------------------------------------- guarantees with active on


def test_active_overlap_leases_and_expiry(vote_engine: Engine) -> None:
    store.set_queue_order(vote_engine, "active", by="boss")
    sure, split, _bare, close = _four_pairs(vote_engine)
    # Overlap 3: the most uncertain pair goes to three annotators, the fourth gets the next one.
    assert served(vote_engine, None, 4, overlap=3) == [split, split, split, close]
    assert store.next_pair(vote_engine, "ann0", overlap=3).pair_id == split  # a reload: the held lease
    # A short lease expires and its pair goes back to the queue, first in line again.
    late = store.next_pair(vote_engine, "zed", lease_seconds=0.05)
    assert late.pair_id == sure  # at overlap 1, split and close are held by others: sure is next
    time.sleep(0.1)
    assert store.next_pair(vote_engine, "yan").pair_id == sure
    with pytest.raises(LeaseLost):
        store.record_judgement(vote_engine, sure, "zed", "a_better", late.left_response_id)


def test_active_undo_skip_and_progress(vote_engine: Engine) -> None:
    store.set_queue_order(vote_engine, "active", by="boss")
    sure, split, bare, close = _four_pairs(vote_engine)
    order = []
    for _ in range(2):
        view = store.next_pair(vote_engine, "alice")
        store.record_judgement(vote_engine, view.pair_id, "alice", "a_better", view.left_response_id)
        order.append(view.pair_id)
    assert order == [split, close]
    assert store.undo_last(vote_engine, "alice") == close
    assert store.next_pair(vote_engine, "bob").pair_id == sure  # close is leased back to alice
    assert store.next_pair(vote_engine, "alice").pair_id == close
    view = store.next_pair(vote_engine, "carol")
    assert view.pair_id == bare
    store.record_judgement(vote_engine, bare, "carol", "skip", view.left_response_id)
    assert store.next_pair(vote_engine, "carol") is None  # split is judged, close and sure are held
    assert store.progress(vote_engine, "alice") == (1, 4)


# --------------------------------------------------------------------------- concurrency


def test_active_queue_threads_never_share_a_pair(vote_engine: Engine) -> None:
    """Six annotator threads on one engine (every backend): each pair voted exactly once, nothing lost."""
    pairs = [scored_pair(vote_engine, str(i), {"llm-judge": 5 + i % 4}, {"llm-judge": 5}) for i in range(18)]
    store.set_queue_order(vote_engine, "active", by="boss")
    handed: list[int] = []
    errors: list[BaseException] = []

    def annotate(name: str) -> None:
        try:
            while (view := store.next_pair(vote_engine, name)) is not None:
                store.record_judgement(vote_engine, view.pair_id, name, "b_better", view.left_response_id, 0.1)
                handed.append(view.pair_id)  # list.append is atomic under the GIL
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=annotate, args=(f"t{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(handed) == sorted(pairs)
    assert sorted(j["pair_id"] for j in store.recent_judgements(vote_engine, 100)) == sorted(pairs)


# --------------------------------------------------------------------------- concurrency: processes


VOTER = """
import sys
from annotations import store
from annotations.db import make_engine
url, name, raw = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
engine = make_engine(url, raw_sqlite=raw)
while (view := store.next_pair(engine, name)) is not None:
    store.record_judgement(engine, view.pair_id, name, "a_better", view.left_response_id, 0.1)
    print(view.pair_id, flush=True)
"""


def test_active_queue_loses_and_duplicates_nothing_across_processes(vote_engine: Engine) -> None:
    """Four annotator processes (separate interpreters) on each vote path, PostgreSQL included."""
    _bulk_pairs(vote_engine, 120)
    store.set_queue_order(vote_engine, "active", by="boss")
    url, raw = vote_engine.url.render_as_string(hide_password=False), db.uses_raw_sqlite(vote_engine)
    procs = [
        subprocess.Popen([sys.executable, "-c", VOTER, url, f"p{i}", str(int(raw))], stdout=subprocess.PIPE, cwd=ROOT)
        for i in range(4)
    ]
    acked = [int(line) for p in procs for line in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    with vote_engine.connect() as conn:
        voted = [pid for (pid,) in conn.execute(text("SELECT pair_id FROM judgement"))]
        by_uncertainty = [pid for (pid,) in conn.execute(text("SELECT id FROM pair ORDER BY uncertainty DESC, id"))]
        first_voted = [pid for (pid,) in conn.execute(text("SELECT pair_id FROM judgement ORDER BY id LIMIT 4"))]
    assert sorted(acked) == sorted(voted) == sorted(by_uncertainty)  # each pair once: 0 lost, 0 duplicated
    # Leases go out in uncertainty order and a process holds one at a time, so the first 4 votes committed
    # were on pairs among the first 8 leased.
    assert set(first_voted) <= set(by_uncertainty[:8])


def _bulk_pairs(engine: Engine, n: int) -> None:
    """n text-only pairs in one transaction, judge scores spread so every uncertainty differs."""
    from annotations.models import Pair, Response, Sample, Score

    with db.write_session(engine) as session:
        for i in range(n):
            sample = Sample(video=None, video_hash="", content_key=f"k{i}", short_prompt=f"p{i}")
            session.add(sample)
            session.flush()
            a, b = (Response(sample_id=sample.id, task=3, text=f"{s}{i}", source="model") for s in "ab")
            session.add_all([a, b])
            session.flush()
            session.add_all([Score(response_id=a.id, evaluator="llm-judge", value=5 + (i * 37 % n) / n)])
            session.add_all([Score(response_id=b.id, evaluator="llm-judge", value=5.0)])
            session.flush()
            u = active.uncertainty_of(session, a.id, b.id)
            session.add(Pair(sample_id=sample.id, task=3, response_a_id=a.id, response_b_id=b.id, uncertainty=u))


def test_the_active_pick_walks_its_index(sqlite_engine: Engine) -> None:
    """The pick stays cheap: SQLite walks ix_pair_active in order and sorts nothing."""
    with db.raw_read(sqlite_engine) as conn:
        plan = " | ".join(
            row[-1]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN " + queue_sqlite._SQL_PICK_PAIR["active"], ('["mined"]', 1, 1, 1, "2025", 1)
            )
        )
    assert "ix_pair_active" in plan and "TEMP B-TREE" not in plan


def test_fast_path_matches_the_sqlalchemy_path_with_active_on(tmp_path: Path) -> None:
    """The scripted session of every vote-path branch, active order on: both SQLite paths return and store the same,
    and differently from FIFO (the active order is in force)."""
    from tests.annotations.test_store import _queue_script

    results = {}
    for raw, order in ((True, "active"), (False, "active"), (True, "fifo")):
        path = tmp_path / f"{raw}-{order}.db"
        engine = db.make_engine(f"sqlite:///{path}", raw_sqlite=raw)
        db.init_db(engine)
        _four_pairs(engine)
        store.set_queue_order(engine, order, by="boss")
        returned = _queue_script(engine)
        with sqlite3.connect(path) as conn:
            rows = [
                conn.execute("SELECT pair_id, annotator_id, choice, shown_left_response_id FROM judgement").fetchall(),
                conn.execute("SELECT pair_id, annotator_id FROM pair_lease ORDER BY pair_id, annotator_id").fetchall(),
                conn.execute("SELECT id, n_judgements, uncertainty FROM pair").fetchall(),
            ]
        results[raw, order] = (returned, rows)
        engine.dispose()
    assert results[True, "active"] == results[False, "active"]
    assert results[True, "active"][0] != results[True, "fifo"][0]
