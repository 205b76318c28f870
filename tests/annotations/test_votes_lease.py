"""Issue 13 item 9: a vote counts only from the annotator holding the pair's lease, on every vote path
(raw sqlite3, SQLAlchemy on SQLite, PostgreSQL)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from annotations import store
from annotations.errors import LeaseLost

REASSIGNED = r"pair \d+ was reassigned to someone else \(your lease on it expired\); press Next pair"


def _judgements(engine: Engine) -> list[tuple[str, str]]:
    return sorted((j["annotator"], j["choice"]) for j in store.recent_judgements(engine))


def test_expired_and_reassigned_lease_refuses_the_late_vote(vote_engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(vote_engine, video, 1)
    late = store.next_pair(vote_engine, "alice", lease_seconds=0.05)
    time.sleep(0.1)
    bob = store.next_pair(vote_engine, "bob")  # alice's lease expired: the pair is bob's now
    assert late.pair_id == bob.pair_id == pair_id
    with pytest.raises(LeaseLost, match=REASSIGNED):
        store.record_judgement(vote_engine, pair_id, "alice", "a_better", late.left_response_id)
    store.record_judgement(vote_engine, pair_id, "bob", "b_better", bob.left_response_id)
    assert [a for a, _ in _judgements(vote_engine)] == ["bob"]  # one vote, no draw
    assert store.progress(vote_engine, "alice") == (0, 0)


def test_a_vote_on_a_pair_never_leased_is_refused(vote_engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(vote_engine, video, 1)
    held = store.next_pair(vote_engine, "alice")
    with pytest.raises(LeaseLost, match=REASSIGNED):
        store.record_judgement(vote_engine, pair_id, "mallory", "a_better", held.left_response_id)
    assert _judgements(vote_engine) == []


def test_lease_holder_votes_double_clicks_and_changes_mind(vote_engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(vote_engine, video, 1)
    view = store.next_pair(vote_engine, "alice")
    first = store.record_judgement(vote_engine, pair_id, "alice", "a_better", view.left_response_id)
    # The lease went with the vote; the same annotator's second click and changed mind still land.
    assert store.record_judgement(vote_engine, pair_id, "alice", "a_better", view.left_response_id) == first
    assert store.record_judgement(vote_engine, pair_id, "alice", "tie", view.left_response_id) == first
    assert _judgements(vote_engine) == [("alice", "tie")]


def test_an_expired_lease_nobody_took_still_counts(vote_engine: Engine, video: Path, make_pairs) -> None:
    """Every next_pair sweeps expired leases before handing a pair out: an unswept one went to no one."""
    (pair_id,) = make_pairs(vote_engine, video, 1)
    view = store.next_pair(vote_engine, "alice", lease_seconds=0.05)
    time.sleep(0.1)
    store.record_judgement(vote_engine, pair_id, "alice", "a_better", view.left_response_id)
    assert [a for a, _ in _judgements(vote_engine)] == ["alice"]


def test_undo_leases_the_pair_back_so_the_vote_can_be_recast(vote_engine: Engine, video: Path, make_pairs) -> None:
    (pair_id,) = make_pairs(vote_engine, video, 1)
    view = store.next_pair(vote_engine, "alice")
    store.record_judgement(vote_engine, pair_id, "alice", "a_better", view.left_response_id)
    assert store.undo_last(vote_engine, "alice") == pair_id
    store.record_judgement(vote_engine, pair_id, "alice", "skip", view.left_response_id)
    assert _judgements(vote_engine) == [("alice", "skip")]
