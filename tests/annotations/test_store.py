"""The store suite: runs on a SQLite file and, when available, on PostgreSQL."""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import astuple
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from annotations import db, store
from annotations.db import write_session
from annotations.errors import NotFoundError, StoreError
from annotations.models import Judgement, Pair, Response, Sample


def _judgements(engine: Engine) -> list[Judgement]:
    with Session(engine) as session:
        return list(session.exec(select(Judgement)))


def _n_judgements(engine: Engine, pair_id: int) -> int:
    with Session(engine) as session:
        return session.get(Pair, pair_id).n_judgements


def test_unique_constraint_on_pair_and_annotator(engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(engine, video, 1)
    alice = store.get_or_create_annotator(engine, "alice")
    with Session(engine) as session:
        pair = session.get(Pair, pair_id)
        for _ in range(2):
            session.add(
                Judgement(
                    pair_id=pair_id, annotator_id=alice.id, choice="tie", shown_left_response_id=pair.response_a_id
                )
            )
        with pytest.raises(IntegrityError):
            session.commit()


def test_double_click_records_once_and_changed_mind_updates(engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(engine, video, 1)
    view = store.next_pair(engine, "alice")
    first = store.record_judgement(engine, pair_id, "alice", "a_better", view.left_response_id, 2.0)
    again = store.record_judgement(engine, pair_id, "alice", "a_better", view.left_response_id, 2.5)
    assert first == again and len(_judgements(engine)) == 1 and _n_judgements(engine, pair_id) == 1
    store.record_judgement(engine, pair_id, "alice", "b_better", view.left_response_id, 4.0)
    (row,) = _judgements(engine)
    assert row.id == first and row.seconds_taken == 4.0
    store.record_judgement(engine, pair_id, "alice", "skip", view.left_response_id)
    assert _n_judgements(engine, pair_id) == 0  # skips do not count towards the overlap


def test_choice_is_stored_normalised_to_mined_orientation(engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(engine, video, 1)
    with Session(engine) as session:
        pair = session.get(Pair, pair_id)
        a, b = pair.response_a_id, pair.response_b_id
    # b shown on the left, the annotator clicks "left (A) is better": b is better.
    store.record_judgement(engine, pair_id, "alice", "a_better", b, require_lease=False)
    store.record_judgement(engine, pair_id, "bob", "a_better", a, require_lease=False)
    choices = {j.annotator_id: (j.choice, j.shown_left_response_id) for j in _judgements(engine)}
    assert sorted(choices.values()) == sorted([("b_better", b), ("a_better", a)])
    assert store.normalise_choice("tie", b, a) == "tie"


def test_record_judgement_rejects_bad_input(engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(engine, video, 1)
    with pytest.raises(StoreError, match="choice must be one of"):
        store.record_judgement(engine, pair_id, "alice", "left", 1)
    with pytest.raises(StoreError, match="not part of pair"):
        store.record_judgement(engine, pair_id, "alice", "tie", 999)
    with pytest.raises(NotFoundError):
        store.record_judgement(engine, 12345, "alice", "tie", 1)
    assert _judgements(engine) == []


def test_queue_overlap_one_hands_distinct_pairs_and_respects_leases(engine: Engine, video: Path, make_pairs) -> None:
    pair_ids = make_pairs(engine, video, 2)
    a = store.next_pair(engine, "alice")
    b = store.next_pair(engine, "bob")
    assert {a.pair_id, b.pair_id} == set(pair_ids)
    assert store.next_pair(engine, "carol") is None  # both pairs are leased
    assert store.next_pair(engine, "alice").pair_id == a.pair_id  # a reload returns the held pair


def test_expired_lease_returns_pair_to_queue(engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(engine, video, 1)
    assert store.next_pair(engine, "alice", lease_seconds=-1).pair_id == pair_id
    assert store.next_pair(engine, "bob").pair_id == pair_id


def test_queue_concurrent_annotators_never_share_a_pair(engine: Engine, video: Path, make_pairs) -> None:
    pair_ids = make_pairs(engine, video, 24)
    handed: list[tuple[str, int]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def annotate(name: str) -> None:
        try:
            while (view := store.next_pair(engine, name)) is not None:
                with lock:
                    handed.append((name, view.pair_id))
                store.record_judgement(engine, view.pair_id, name, "a_better", view.left_response_id, 0.1)
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=annotate, args=(f"annotator{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(p for _, p in handed) == sorted(pair_ids)  # each pair exactly once
    assert len(_judgements(engine)) == len(pair_ids)


def test_overlap_three_shows_a_pair_to_three_annotators(engine: Engine, video: Path, make_pairs) -> None:
    first, second = make_pairs(engine, video, 2)
    views = {name: store.next_pair(engine, name, overlap=3) for name in ("a", "b", "c", "d")}
    assert [views[n].pair_id for n in "abc"] == [first] * 3
    assert views["d"].pair_id == second


def test_skip_returns_pair_to_others_not_to_skipper(engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(engine, video, 1)
    view = store.next_pair(engine, "alice")
    store.record_judgement(engine, pair_id, "alice", "skip", view.left_response_id)
    assert store.next_pair(engine, "alice") is None
    assert store.next_pair(engine, "bob").pair_id == pair_id


def test_undo_last(engine: Engine, video: Path, make_pairs) -> None:
    first, second = make_pairs(engine, video, 2)
    assert store.undo_last(engine, "alice") is None
    for _ in range(2):
        view = store.next_pair(engine, "alice")
        store.record_judgement(engine, view.pair_id, "alice", "a_better", view.left_response_id)
    assert store.progress(engine, "alice") == (2, 2)
    assert store.undo_last(engine, "alice") == second
    assert store.progress(engine, "alice") == (1, 2)
    assert _n_judgements(engine, second) == 0
    assert store.next_pair(engine, "bob") is None  # leased back to alice
    assert store.next_pair(engine, "alice").pair_id == second
    assert store.undo_last(engine, "alice") == first
    assert _judgements(engine) == []


def test_pair_view_sides_are_seeded_per_pair_and_annotator(engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(engine, video, 1)
    lefts = set()
    for i in range(12):
        view = store.next_pair(engine, f"a{i}", overlap=20)
        again = store.next_pair(engine, f"a{i}", overlap=20)
        assert (view.left_response_id, view.right_response_id) == (again.left_response_id, again.right_response_id)
        assert view.left_text != view.right_text
        assert set(view.left_scores) == {"clip", "judge"}
        lefts.add(view.left_response_id)
    assert len(lefts) == 2  # both orders occur


def test_hallucination_pairs_are_not_queued_and_are_validated(engine: Engine, video: Path) -> None:
    sample = store.upsert_sample(engine, str(video), "a clip", detailed_prompt="a detailed clip")
    with Session(engine) as session:
        teacher = session.exec(select(Response.id).where(Response.sample_id == sample, Response.task == 3)).one()
    fake = store.add_response(engine, sample, 3, "a detailed clap", "hallucination", meta={"edits": [1]})
    store.add_pair(engine, sample, 3, teacher, fake, "hallucination", "response_hallucination")
    store.add_pair(engine, sample, 3, teacher, teacher, "hallucination", "task_hallucination", rejected_task=1)
    assert store.next_pair(engine, "alice") is None
    with pytest.raises(StoreError, match="rejected_task"):
        store.add_pair(engine, sample, 3, teacher, teacher, "hallucination", "task_hallucination")
    with pytest.raises(StoreError, match="two different"):
        store.add_pair(engine, sample, 3, teacher, teacher)
    with pytest.raises(StoreError, match="origin"):
        store.add_pair(engine, sample, 3, teacher, fake, "found")
    assert store.pair_exists(engine, sample, 3, "hallucination")
    assert store.pair_exists(engine, sample, 3, "hallucination", "response_hallucination")
    assert not store.pair_exists(engine, sample, 3, "mined")


def test_mining_helpers_are_idempotent(engine: Engine, videos: list[Path]) -> None:
    s1 = store.upsert_sample(engine, str(videos[0]), "a clip", detailed_prompt="teacher text")
    assert store.upsert_sample(engine, str(videos[0]), "a clip", detailed_prompt="teacher text") == s1
    assert store.upsert_sample(engine, str(videos[0]), "another caption") != s1
    assert store.upsert_sample(engine, str(videos[1]), "a clip") != s1
    with pytest.raises(StoreError, match="already exists"):
        store.add_sample(engine, str(videos[0]), "a clip")
    with Session(engine) as session:
        teachers = session.exec(select(Response.task).where(Response.sample_id == s1, Response.source == "teacher"))
        assert sorted(teachers) == [1, 2, 3]
    r1 = store.add_response(engine, s1, 1, "beam", "model", model="m", checkpoint="c1", beam_rank=0)
    assert store.add_response(engine, s1, 1, "beam", "model", model="m", checkpoint="c1", beam_rank=0) == r1
    assert store.add_response(engine, s1, 1, "beam", "model", model="m", checkpoint="c2") != r1
    store.add_score(engine, r1, "clip", 0.1)
    store.add_score(engine, r1, "clip", 0.3)
    with Session(engine) as session:
        assert store.scores_for(session, [r1]) == {r1: {"clip": 0.3}}
    with pytest.raises(StoreError):
        store.add_response(engine, s1, 4, "x", "model")


def test_recent_judgements_and_progress(engine: Engine, video: Path, make_pairs) -> None:
    make_pairs(engine, video, 3)
    for name in ("alice", "bob"):
        view = store.next_pair(engine, name)
        store.record_judgement(engine, view.pair_id, name, "tie", view.left_response_id, 1.5)
    recent = store.recent_judgements(engine, limit=10)
    assert [r["annotator"] for r in recent] == ["bob", "alice"]
    assert recent[0]["choice"] == "tie" and recent[0]["task"] == 1
    assert [r["annotator"] for r in store.recent_judgements(engine, annotator="alice")] == ["alice"]
    assert store.progress(engine, "carol") == (0, 1)


def test_annotator_roles(engine: Engine) -> None:
    admin = store.get_or_create_annotator(engine, "root", "admin")
    assert store.get_or_create_annotator(engine, "root", "annotator") == admin  # no silent demotion
    with pytest.raises(StoreError):
        store.get_or_create_annotator(engine, "x", "boss")
    assert [a.name for a in store.list_annotators(engine)] == ["root"]


def test_runs_api(engine: Engine) -> None:
    run_id = store.create_run(engine, "hdpo-smoke", {"beta": 0.1}, total_steps=10)
    run = store.get_run(engine, run_id)
    assert run["status"] == "queued" and run["config"] == {"beta": 0.1} and run["started_at"] is None
    store.update_run(engine, run_id, status="running", pid=4242, progress=0.5, step=5)
    store.add_run_metrics(engine, run_id, 5, {"loss": 0.7, "reward_margin": 0.1})
    store.add_run_metrics(engine, run_id, 5, {"loss": 0.6})
    store.add_run_metrics(engine, run_id, 6, {"loss": 0.5})
    store.update_run(engine, run_id, status="failed", error="OOM")
    run = store.get_run(engine, run_id)
    assert run["status"] == "failed" and run["pid"] == 4242 and run["started_at"] and run["finished_at"]
    assert store.run_metrics(engine, run_id, "loss") == [
        {"step": 5, "name": "loss", "value": 0.6},
        {"step": 6, "name": "loss", "value": 0.5},
    ]
    assert len(store.run_metrics(engine, run_id)) == 3
    assert [r["id"] for r in store.list_runs(engine, status="failed")] == [run_id]
    assert store.get_run(engine, 999) is None
    with pytest.raises(StoreError, match="status"):
        store.update_run(engine, run_id, status="exploded")
    with pytest.raises(StoreError, match="unknown training run field"):
        store.update_run(engine, run_id, colour="red")


def test_counter_matches_judgements(engine: Engine, video: Path, make_pairs) -> None:
    pair_ids = make_pairs(engine, video, 3)
    for name, choice in [("a", "a_better"), ("b", "skip"), ("c", "tie")]:
        view = store.next_pair(engine, name, overlap=3)
        store.record_judgement(engine, view.pair_id, name, choice, view.left_response_id)
    with Session(engine) as session:
        for pid in pair_ids:
            real = session.exec(
                select(func.count(Judgement.id)).where(Judgement.pair_id == pid, Judgement.choice != "skip")
            ).one()
            assert session.get(Pair, pid).n_judgements == real


def test_text_only_sample_is_keyed_by_its_short_prompt(engine: Engine, video: Path) -> None:
    prompt = "a cat on a skateboard"
    sample = store.upsert_sample(engine, None, prompt, detailed_prompt="A tabby cat rides a board.")
    assert store.upsert_sample(engine, None, prompt, detailed_prompt="A tabby cat rides a board.") == sample
    assert store.upsert_sample(engine, None, "a dog on a skateboard") != sample
    assert store.upsert_sample(engine, str(video), prompt) != sample  # the same words with a video
    with Session(engine) as session:
        row = session.get(Sample, sample)
        assert row.video is None and row.video_hash == store.NO_VIDEO_HASH
        assert row.content_key == store.content_key(store.NO_VIDEO_HASH, prompt)
        teachers = session.exec(select(Response.task).where(Response.sample_id == sample))
        assert list(teachers) == [3]  # a text-only item is a Task 3 item
    with pytest.raises(StoreError, match="needs a short prompt"):
        store.upsert_sample(engine, None, "  ")
    with pytest.raises(StoreError, match="already exists"):
        store.add_sample(engine, None, prompt)
    with pytest.raises(StoreError, match="only task"), write_session(engine) as session:
        store.upsert_sample_in(session, None, "x", video_hash="", teacher_by_task={1: "needs a video"})
    # The queue serves text-only pairs, with no video.
    beam = store.add_response(engine, sample, 3, "A cat skates.", "model", model="m")
    teacher = store.add_response(engine, sample, 3, "A tabby cat rides a board.", "teacher")
    store.add_pair(engine, sample, 3, teacher, beam)
    view = store.next_pair(engine, "alice")
    assert view.video is None and view.short_prompt == prompt and view.task == 3


def test_pair_view_carries_each_sides_source_and_model(engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(engine, video, 1)
    for name in ("alice", "bob", "carol", "dave"):
        view = store.next_pair(engine, name, overlap=4)
        sides = {
            view.left_response_id: (view.left_source, view.left_model, view.left_text),
            view.right_response_id: (view.right_source, view.right_model, view.right_text),
        }
        assert sorted(sides.values()) == [("model", "m", "beam 0"), ("teacher", None, "teacher 0")]


def _queue_script(engine: Engine) -> list[object]:
    """A session of clicks touching every vote-path branch; returns what each call returned."""
    out: list[object] = []

    def view(name: str, **kw: object) -> tuple | None:
        v = store.next_pair(engine, name, **kw)
        return None if v is None else (*astuple(v)[:-5], *astuple(v)[-4:])  # all but lease_expires_at

    a = store.next_pair(engine, "alice")
    out += [view("alice"), view("bob"), view("carol", lease_seconds=-1)]
    out.append(store.record_judgement(engine, a.pair_id, "alice", "a_better", a.left_response_id, 1.0))
    out.append(store.record_judgement(engine, a.pair_id, "alice", "a_better", a.left_response_id, 2))  # double
    out.append(store.record_judgement(engine, a.pair_id, "alice", "skip", a.right_response_id, 3.0))  # changed mind
    out.append(store.record_judgement(engine, a.pair_id, "alice", "tie", a.left_response_id))
    out += [view("dave", overlap=2), view("alice"), store.undo_last(engine, "alice"), view("alice")]
    out += [store.undo_last(engine, "nobody"), store.progress(engine, "alice"), store.progress(engine, "erin", 2)]
    return out


def test_sqlite_fast_path_matches_the_sqlalchemy_path(tmp_path: Path, video: Path, make_pairs) -> None:
    """The raw sqlite3 vote path and the SQLAlchemy one (PostgreSQL's) leave the same rows."""
    results = {}
    for raw in (True, False):
        path = tmp_path / f"raw{raw}.db"
        engine = db.make_engine(f"sqlite:///{path}", raw_sqlite=raw)
        db.init_db(engine)
        assert db.uses_raw_sqlite(engine) is raw
        make_pairs(engine, video, 3)
        returned = _queue_script(engine)
        with sqlite3.connect(path) as conn:
            rows = [
                conn.execute(
                    "SELECT id, pair_id, annotator_id, choice, shown_left_response_id, seconds_taken FROM judgement"
                ).fetchall(),
                conn.execute("SELECT pair_id, annotator_id FROM pair_lease ORDER BY pair_id, annotator_id").fetchall(),
                conn.execute("SELECT id, n_judgements FROM pair").fetchall(),
            ]
            stamps = conn.execute(
                "SELECT created_at FROM judgement UNION ALL SELECT updated_at FROM judgement "
                "UNION ALL SELECT expires_at FROM pair_lease"
            ).fetchall()
        assert stamps and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", s) for (s,) in stamps)
        recent = store.recent_judgements(engine)  # the ORM reads the raw-written timestamps
        assert all(datetime.fromisoformat(r["updated_at"]).tzinfo is not None for r in recent)
        results[raw] = (returned, rows)
        engine.dispose()
    assert results[True] == results[False]


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_video_path_is_refused_at_the_store_boundary(engine: Engine, empty: str) -> None:
    # os.path.abspath("") is the cwd: an empty path must not become a sample whose video is a directory.
    refused = "is not a path: a text-only sample has video=None"
    with pytest.raises(StoreError, match=refused):
        store.upsert_sample(engine, empty, "a red kite", video_hash="text-only")
    with pytest.raises(StoreError, match=refused):
        store.add_sample(engine, empty, "a red kite")
    with pytest.raises(StoreError, match=refused), write_session(engine) as session:
        store.upsert_sample_in(session, empty, "a red kite", video_hash="h")
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Sample)).one() == 0
    sample = store.upsert_sample(engine, None, "a red kite")
    teacher = store.add_response(engine, sample, 3, "A red kite over a beach.", "teacher")
    with pytest.raises(StoreError, match="rejected_video '' is not a path"):
        store.add_pair(engine, sample, 3, teacher, teacher, "hallucination", "input_hallucination", rejected_video="")
