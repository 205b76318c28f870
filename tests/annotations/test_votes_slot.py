"""Issue 24 item 3: one decisive vote per overlap slot, also with two tabs per annotator.

A vote that adds to a pair's count is valid only under the caller's live lease on a slot that is still
open; everything else is refused in one line and writes nothing. Every vote path: raw sqlite3,
SQLAlchemy on SQLite, PostgreSQL (the `vote_engine` fixture)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine

from annotations import store
from annotations.errors import LeaseLost

REASSIGNED = r"pair \d+ was reassigned to someone else \(your lease on it expired\); press Next pair"
SKIPPED = r"you skipped pair \d+ \(in this or another tab\) and someone else has voted on it since; nothing was saved"


def _decisive(engine: Engine, pair_id: int) -> list[str]:
    rows = store.recent_judgements(engine, 100)
    return sorted(r["annotator"] for r in rows if r["pair_id"] == pair_id and r["choice"] != "skip")


def _count(engine: Engine, pair_id: int) -> int:
    """pair.n_judgements as the queue reads it (must match the decisive rows)."""
    from sqlmodel import select

    from annotations.db import read_session
    from annotations.models import Pair

    with read_session(engine) as session:
        return int(session.exec(select(Pair.n_judgements).where(Pair.id == pair_id)).one())


def test_skip_in_one_tab_then_vote_in_another_after_someone_else_voted(
    vote_engine: Engine, video: Path, make_pairs
) -> None:
    (pair_id,) = make_pairs(vote_engine, video, 1)
    tab1 = store.next_pair(vote_engine, "alice")
    tab2 = store.next_pair(vote_engine, "alice")  # the held lease comes back: both tabs show the pair
    assert tab1.pair_id == tab2.pair_id == pair_id
    store.record_judgement(vote_engine, pair_id, "alice", "skip", tab1.left_response_id)
    bob = store.next_pair(vote_engine, "bob")
    assert bob.pair_id == pair_id
    store.record_judgement(vote_engine, pair_id, "bob", "a_better", bob.left_response_id)
    with pytest.raises(LeaseLost, match=SKIPPED):
        store.record_judgement(vote_engine, pair_id, "alice", "b_better", tab2.left_response_id)
    assert _decisive(vote_engine, pair_id) == ["bob"]
    assert _count(vote_engine, pair_id) == 1


def test_skip_then_someone_votes_then_undo_then_vote_is_refused(vote_engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(vote_engine, video, 1)
    mine = store.next_pair(vote_engine, "alice")
    store.record_judgement(vote_engine, pair_id, "alice", "skip", mine.left_response_id)
    bob = store.next_pair(vote_engine, "bob")
    store.record_judgement(vote_engine, pair_id, "bob", "a_better", bob.left_response_id)
    assert store.undo_last(vote_engine, "alice") == pair_id  # the skip is gone ...
    with pytest.raises(LeaseLost, match=REASSIGNED):  # ... but the slot is bob's: no lease came back
        store.record_judgement(vote_engine, pair_id, "alice", "b_better", mine.left_response_id)
    assert _decisive(vote_engine, pair_id) == ["bob"]
    assert _count(vote_engine, pair_id) == 1
    assert store.next_pair(vote_engine, "alice") is None  # nothing left for her at overlap 1


def test_undo_of_a_skip_gives_the_slot_back_while_it_is_open(vote_engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(vote_engine, video, 1)
    mine = store.next_pair(vote_engine, "alice")
    store.record_judgement(vote_engine, pair_id, "alice", "skip", mine.left_response_id)
    assert store.undo_last(vote_engine, "alice") == pair_id
    store.record_judgement(vote_engine, pair_id, "alice", "tie", mine.left_response_id)
    assert _decisive(vote_engine, pair_id) == ["alice"]


def test_overlap_two_leaves_a_second_slot_for_the_undone_skip(vote_engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(vote_engine, video, 1)
    mine = store.next_pair(vote_engine, "alice", overlap=2)
    store.record_judgement(vote_engine, pair_id, "alice", "skip", mine.left_response_id, overlap=2)
    bob = store.next_pair(vote_engine, "bob", overlap=2)
    store.record_judgement(vote_engine, pair_id, "bob", "a_better", bob.left_response_id, overlap=2)
    assert store.undo_last(vote_engine, "alice", overlap=2) == pair_id
    store.record_judgement(vote_engine, pair_id, "alice", "b_better", mine.left_response_id, overlap=2)
    assert _decisive(vote_engine, pair_id) == ["alice", "bob"]
    assert _count(vote_engine, pair_id) == 2


def test_two_sessions_per_annotator_never_give_a_pair_two_votes(vote_engine: Engine, video: Path, make_pairs) -> None:
    """The probe's shape: 4 annotators x 2 tabs, each tab skipping, undoing and voting as it goes."""
    pair_ids = make_pairs(vote_engine, video, 12)
    errors: list[BaseException] = []

    def tab(name: str, seed: int) -> None:
        import random

        rng = random.Random(seed)
        for _ in range(30):
            try:
                view = store.next_pair(vote_engine, name)
                if view is None:
                    return
                choice = rng.choice(["skip", "a_better", "b_better", "skip"])
                store.record_judgement(vote_engine, view.pair_id, name, choice, view.left_response_id)
                if rng.random() < 0.3:
                    store.undo_last(vote_engine, name)
            except LeaseLost:
                continue
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=tab, args=(f"ann{i % 4}", i)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for pair_id in pair_ids:
        assert len(_decisive(vote_engine, pair_id)) <= 1, pair_id
        assert _count(vote_engine, pair_id) == len(_decisive(vote_engine, pair_id))
