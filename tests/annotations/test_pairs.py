"""Pair creation is idempotent (issue 11 item 6): the same input and candidates never make a second pair,
and the Data tab can read back each pair's stored sides to show votes as the annotator saw them."""

from __future__ import annotations

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from annotations import store
from annotations.models import Pair
from annotations.pairs import find_pair, pair_sides


def _pair_count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(Pair)).one())


def _sample_with_two(engine: Engine) -> tuple[int, int, int]:
    sample = store.upsert_sample(engine, None, "a cat naps on a sofa")
    first = store.add_response(engine, sample, 3, "A grey cat naps on a red sofa.", "model", model="m")
    second = store.add_response(engine, sample, 3, "A grey cat sleeps on a red sofa.", "model", model="m")
    return sample, first, second


def test_the_same_pair_twice_is_one_pair(engine: Engine) -> None:
    sample, first, second = _sample_with_two(engine)
    pid = store.add_pair(engine, sample, 3, first, second, origin="human_queue", meta={"queued_by": "ann"})
    again = store.add_pair(engine, sample, 3, first, second, origin="human_queue", meta={"queued_by": "bob"})
    assert again == pid and _pair_count(engine) == 1


def test_a_human_queue_pair_is_the_same_pair_in_either_order(engine: Engine) -> None:
    """Sides are shown in random order to annotators, so (a, b) and (b, a) ask the same question."""
    sample, first, second = _sample_with_two(engine)
    assert find_pair(engine, sample, 3, second, first, origin="human_queue") is None
    pid = store.add_pair(engine, sample, 3, first, second, origin="human_queue")
    assert find_pair(engine, sample, 3, second, first, origin="human_queue") == pid
    assert find_pair(engine, sample, 3, second, first, origin="mined") is None
    assert store.add_pair(engine, sample, 3, second, first, origin="human_queue") == pid
    assert _pair_count(engine) == 1


def test_different_origin_term_or_conditioning_is_a_different_pair(engine: Engine) -> None:
    sample, first, second = _sample_with_two(engine)
    ids = {
        store.add_pair(engine, sample, 3, first, second, origin="human_queue"),
        store.add_pair(engine, sample, 3, first, second, origin="mined"),
        store.add_pair(engine, sample, 3, second, first, origin="mined"),  # mined order means "a preferred"
        store.add_pair(engine, sample, 3, first, first, "hallucination", "task_hallucination", rejected_task=1),
        store.add_pair(engine, sample, 3, first, first, "hallucination", "task_hallucination", rejected_task=2),
    }
    assert len(ids) == 5 and _pair_count(engine) == 5


def test_pair_sides_reads_the_stored_orientation(engine: Engine) -> None:
    sample, first, second = _sample_with_two(engine)
    pid = store.add_pair(engine, sample, 3, second, first)
    assert pair_sides(engine, [pid, 987654]) == {pid: (second, first)}
    assert pair_sides(engine, []) == {}
