"""Preference pairs, stored in mined orientation (a = preferred, b = rejected), and the miners' look-ups.

Adding a pair is idempotent: the same question (sample, task, both responses, origin, HDPO term and
the rejected side's conditioning) asked again returns the stored pair's id, so pressing "Send to
labelling queue" twice, or a resumed miner, never makes annotators judge a duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, and_, or_
from sqlmodel import Session, col, select

from annotations.active import uncertainty_of
from annotations.common import check_in, check_task, get_row
from annotations.db import read_session, write_session
from annotations.errors import StoreError
from annotations.models import HDPO_TERMS, ORIGINS, TASKS, Pair, Response, stored_id


def _validate_pair(
    a: Response, b: Response, sample_id: int, task: int, hdpo_term: str, rejected: tuple[Any, Any, Any]
) -> None:
    rejected_video, rejected_short_prompt, rejected_task = rejected
    for resp in (a, b):
        if resp.sample_id != sample_id or resp.task != task:
            where = f"sample {resp.sample_id} task {resp.task}"
            raise StoreError(f"response {resp.id} belongs to {where}, not sample {sample_id} task {task}")
    if a.id == b.id and hdpo_term not in ("input_hallucination", "task_hallucination"):
        raise StoreError(f"a {hdpo_term} pair needs two different responses")
    if rejected_video is not None and not str(rejected_video).strip():
        raise StoreError(f"rejected_video {rejected_video!r} is not a path: use None for no rejected video")
    if hdpo_term == "input_hallucination" and not (rejected_video or rejected_short_prompt):
        raise StoreError("an input_hallucination pair needs rejected_video or rejected_short_prompt")
    if hdpo_term == "task_hallucination" and rejected_task not in set(TASKS) - {task}:
        raise StoreError("a task_hallucination pair needs rejected_task, another task than the pair's")


def add_pair(
    engine: Engine,
    sample_id: int,
    task: int,
    response_a_id: int,
    response_b_id: int,
    origin: str = "mined",
    hdpo_term: str = "dpo",
    *,
    rejected_video: str | None = None,
    rejected_short_prompt: str | None = None,
    rejected_task: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> int:
    """Add a pair in mined orientation: ``response_a`` preferred, ``response_b`` rejected.

    ``rejected_*`` give the rejected side's conditioning for input / task hallucination terms
    (the response is then usually the same as ``a``).
    """
    check_task(task)
    check_in(origin, ORIGINS, "origin")
    check_in(hdpo_term, HDPO_TERMS, "hdpo_term")
    rejected = (rejected_video, rejected_short_prompt, rejected_task)
    with write_session(engine) as session:  # the only writer: the look-up and the insert are one step
        a = get_row(session, Response, response_a_id, "response")
        b = get_row(session, Response, response_b_id, "response")
        _validate_pair(a, b, sample_id, task, hdpo_term, rejected)
        existing = _same_pair(session, sample_id, task, (response_a_id, response_b_id), origin, hdpo_term, rejected)
        if existing is not None:
            return existing
        row = Pair(
            sample_id=sample_id,
            task=task,
            response_a_id=response_a_id,
            response_b_id=response_b_id,
            origin=origin,
            hdpo_term=hdpo_term,
            rejected_video=rejected_video,
            rejected_short_prompt=rejected_short_prompt,
            rejected_task=rejected_task,
            meta_json=json.dumps(meta, sort_keys=True) if meta else None,
            uncertainty=uncertainty_of(session, response_a_id, response_b_id),  # the active queue order's key
        )
        session.add(row)
        session.flush()
        return stored_id(row.id)


def _same_pair(
    session: Session,
    sample_id: int,
    task: int,
    sides: tuple[int, int],
    origin: str,
    hdpo_term: str,
    rejected: tuple[Any, Any, Any],
) -> int | None:
    """Id of a stored pair asking the same question, or None. Human-queue pairs are unordered (annotators
    see the sides in random order); every other origin's order means "a is preferred"."""
    orders = [sides, sides[::-1]] if origin == "human_queue" else [sides]
    same_sides = or_(*(and_(col(Pair.response_a_id) == a, col(Pair.response_b_id) == b) for a, b in orders))
    query = select(Pair.id).where(
        Pair.sample_id == sample_id,
        Pair.task == task,
        Pair.origin == origin,
        Pair.hdpo_term == hdpo_term,
        same_sides,
        _equals(Pair.rejected_video, rejected[0]),
        _equals(Pair.rejected_short_prompt, rejected[1]),
        _equals(Pair.rejected_task, rejected[2]),
    )
    found = session.exec(query.order_by(col(Pair.id)).limit(1)).first()
    return None if found is None else int(found)


def find_pair(
    engine: Engine,
    sample_id: int,
    task: int,
    response_a_id: int,
    response_b_id: int,
    origin: str = "mined",
    hdpo_term: str = "dpo",
    *,
    rejected_video: str | None = None,
    rejected_short_prompt: str | None = None,
    rejected_task: int | None = None,
) -> int | None:
    """Id of the stored pair that `add_pair` with these arguments would return, or None if it would add one."""
    rejected = (rejected_video, rejected_short_prompt, rejected_task)
    with read_session(engine) as session:
        return _same_pair(session, sample_id, task, (response_a_id, response_b_id), origin, hdpo_term, rejected)


def _equals(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def pair_sides(engine: Engine, pair_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """pair id -> (response_a_id, response_b_id), the stored (mined) orientation; unknown ids are left out.

    With a judgement's ``shown_left_response_id`` this turns a stored choice back into the one the
    annotator clicked (``queue.normalise_choice`` is its own inverse)."""
    if not pair_ids:
        return {}
    query = select(Pair.id, Pair.response_a_id, Pair.response_b_id).where(col(Pair.id).in_(list(pair_ids)))
    with read_session(engine) as session:
        return {stored_id(pid): (int(a), int(b)) for pid, a, b in session.exec(query)}


def pair_exists(engine: Engine, sample_id: int, task: int, origin: str, hdpo_term: str | None = None) -> bool:
    """Whether a pair of this (sample, task, origin[, term]) exists: lets miners resume."""
    query = select(Pair.id).where(Pair.sample_id == sample_id, Pair.task == task, Pair.origin == origin)
    if hdpo_term is not None:
        query = query.where(Pair.hdpo_term == hdpo_term)
    with read_session(engine) as session:
        return session.exec(query.limit(1)).first() is not None


def mined_pairs(engine: Engine, sample_id: int, task: int) -> set[tuple[int, int]]:
    """(response_a_id, response_b_id) of the sample's mined DPO pairs for ``task``: what a resumed
    miner must not add again."""
    check_task(task)
    query = select(Pair.response_a_id, Pair.response_b_id).where(
        Pair.sample_id == sample_id, Pair.task == task, Pair.origin == "mined", Pair.hdpo_term == "dpo"
    )
    with read_session(engine) as session:
        return {(int(a), int(b)) for a, b in session.exec(query)}
