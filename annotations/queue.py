"""The labelling queue: annotators, pair leases, votes, undo, progress (the SQLAlchemy path).

``next_pair`` / ``record_judgement`` / ``undo_last`` hold the write gate for as few statements as
possible. On a SQLite file made by ``make_engine`` they run the same statements as raw sqlite3
calls (:mod:`annotations.queue_sqlite`, the fast path); PostgreSQL and in-memory SQLite run the
SQLAlchemy Core statements here. Both paths return the same values and leave the same rows.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, exists, func, insert, update
from sqlmodel import Session, col, select

from annotations import queue_sqlite
from annotations.common import check_in, get_row, row_dict
from annotations.db import read_session, uses_raw_sqlite, write_connection, write_session
from annotations.errors import LeaseLost, NotFoundError, StoreError
from annotations.models import (
    CHOICES,
    ROLES,
    Annotator,
    Judgement,
    Pair,
    PairLease,
    ProjectSetting,
    Response,
    Sample,
    core_table,
    stored_id,
    utcnow,
)
from annotations.queue_order import QUEUE_ORDER_KEY, check_order, stored_order
from annotations.queue_sqlite import Head, Side, lease_lost_message, skipped_message
from annotations.samples import scores_for

# Pairs a human is asked about by default: hallucination pairs are correct by construction.
QUEUE_ORIGINS: tuple[str, ...] = ("mined", "human_queue")


@dataclass(frozen=True)
class AnnotatorInfo:
    id: int
    name: str
    role: str


@dataclass(frozen=True)
class PairView:
    """What the label tab shows: one pair, sides in a per-(pair, annotator) random order."""

    pair_id: int
    task: int
    origin: str
    sample_id: int
    video: str | None  # None for a text-only sample
    short_prompt: str | None
    left_response_id: int
    left_text: str
    left_scores: dict[str, float]
    right_response_id: int
    right_text: str
    right_scores: dict[str, float]
    lease_expires_at: datetime
    # Where each side came from (Response.source / .model): the label tab reveals them after the vote.
    left_source: str
    left_model: str | None
    right_source: str
    right_model: str | None


AnnotatorRef = int | str | AnnotatorInfo


# --------------------------------------------------------------------------- annotators


def _annotator_in(session: Session, name: str, role: str = "annotator") -> Annotator:
    row = session.exec(select(Annotator).where(Annotator.name == name)).first()
    if row is None:
        row = Annotator(name=name, role=role)
        session.add(row)
        session.flush()
    return row


def get_or_create_annotator(engine: Engine, name: str, role: str = "annotator") -> AnnotatorInfo:
    """The annotator called ``name``; an existing one keeps its role (no silent promotion)."""
    check_in(role, ROLES, "role")
    if not name or not name.strip():
        raise StoreError("annotator name is empty")
    with write_session(engine) as session:
        row = _annotator_in(session, name.strip(), role)
        return AnnotatorInfo(stored_id(row.id), row.name, row.role)


# Annotators are never deleted, so name -> id can be remembered per engine; this keeps the
# lookup out of the vote path's critical section.
_ANNOTATOR_IDS: weakref.WeakKeyDictionary[Engine, dict[int | str, int]] = weakref.WeakKeyDictionary()


def annotator_id(engine: Engine, annotator: AnnotatorRef) -> int:
    """Id of an annotator given by id, name or AnnotatorInfo; a new name is created (role annotator)."""
    if isinstance(annotator, AnnotatorInfo):
        return annotator.id
    cache = _ANNOTATOR_IDS.setdefault(engine, {})
    if annotator in cache:
        return cache[annotator]
    with read_session(engine) as session:
        column = Annotator.id if isinstance(annotator, int) else Annotator.name
        found = session.exec(select(Annotator.id).where(column == annotator)).first()
    if found is None:
        if isinstance(annotator, int):
            raise NotFoundError(f"no annotator with id {annotator}")
        found = get_or_create_annotator(engine, annotator).id
    cache[annotator] = int(found)
    return int(found)


def list_annotators(engine: Engine) -> list[AnnotatorInfo]:
    with read_session(engine) as session:
        rows = session.exec(select(Annotator).order_by(col(Annotator.id)))
        return [AnnotatorInfo(stored_id(r.id), r.name, r.role) for r in rows]


# --------------------------------------------------------------------------- queue


def _eligible(origins: Sequence[str]) -> Any:
    # Pairs whose two sides are the same response (input / task hallucination) have nothing
    # for a human to compare.
    return and_(col(Pair.response_a_id) != col(Pair.response_b_id), col(Pair.origin).in_(list(origins)))


_LEASE = core_table(PairLease)


def _held_lease(conn: Connection, annotator_id: int, now: datetime) -> int | None:
    judged = exists().where(col(Judgement.pair_id) == _LEASE.c.pair_id, col(Judgement.annotator_id) == annotator_id)
    query = select(_LEASE.c.pair_id).where(_LEASE.c.annotator_id == annotator_id, _LEASE.c.expires_at > now, ~judged)
    return conn.execute(query.order_by(_LEASE.c.expires_at.desc()).limit(1)).scalar()


def _pick_pair(
    conn: Connection, annotator_id: int, overlap: int, origins: Sequence[str], now: datetime, order: str
) -> int | None:
    judged_by_me = exists().where(col(Judgement.pair_id) == col(Pair.id), col(Judgement.annotator_id) == annotator_id)
    leased_by_others = (
        select(func.count(_LEASE.c.id))
        .where(_LEASE.c.pair_id == Pair.id, _LEASE.c.annotator_id != annotator_id, _LEASE.c.expires_at > now)
        .scalar_subquery()
    )
    query = (
        select(Pair.id)
        .where(_eligible(origins), Pair.n_judgements < overlap, ~judged_by_me)
        .where(Pair.n_judgements + leased_by_others < overlap)
        .order_by(*_ORDER_BY[order])
        .limit(1)
    )
    return conn.execute(query).scalar()


# fifo: fewest judgements, then oldest (walks ix_pair_queue); active: fewest judgements, then the most
# uncertain label, then oldest (walks ix_pair_active). Either stops at the first pair that fits.
_ORDER_BY = {
    "fifo": (col(Pair.n_judgements), col(Pair.id)),
    "active": (col(Pair.n_judgements), col(Pair.uncertainty).desc(), col(Pair.id)),
}
_SETTING = core_table(ProjectSetting)


def _project_order(conn: Connection) -> str:
    value = conn.execute(select(_SETTING.c.value).where(_SETTING.c.key == QUEUE_ORDER_KEY)).scalar()
    return stored_order(value)


def _lease(conn: Connection, pair_id: int, annotator_id: int, expires: datetime) -> None:
    conn.execute(delete(_LEASE).where(_LEASE.c.pair_id == pair_id, _LEASE.c.annotator_id == annotator_id))
    conn.execute(insert(_LEASE).values(pair_id=pair_id, annotator_id=annotator_id, expires_at=expires))


def _pair_view(session: Session, pair_id: int, annotator_id: int, expires: datetime) -> PairView:
    pair = get_row(session, Pair, pair_id, "pair")
    sample = get_row(session, Sample, pair.sample_id, "sample")
    a = get_row(session, Response, pair.response_a_id, "response")
    b = get_row(session, Response, pair.response_b_id, "response")
    head = (pair.task, pair.origin, sample.id, sample.video, sample.short_prompt)
    sides = [(r.id, r.text, r.source, r.model) for r in (a, b)]
    return _build_view(pair_id, annotator_id, expires, head, sides[0], sides[1], scores_for(session, [a.id, b.id]))


def _build_view(
    pair_id: int,
    annotator_id: int,
    expires: datetime,
    head: Head,
    a: Side,
    b: Side,
    scores: dict[int, dict[str, float]],
) -> PairView:
    """The PairView of both paths: ``head`` = (task, origin, sample_id, video, short_prompt), each side
    (response id, text, source, model), ``scores`` {response id: {evaluator: value}}."""
    task, origin, sample_id, video, short_prompt = head
    left, right = (a, b) if _shows_a_left(pair_id, annotator_id) else (b, a)
    return PairView(
        pair_id=pair_id,
        task=task,
        origin=origin,
        sample_id=sample_id,
        video=video,
        short_prompt=short_prompt,
        left_response_id=left[0],
        left_text=left[1],
        left_scores=scores[left[0]],
        right_response_id=right[0],
        right_text=right[1],
        right_scores=scores[right[0]],
        lease_expires_at=expires,
        left_source=left[2],
        left_model=left[3],
        right_source=right[2],
        right_model=right[3],
    )


def _shows_a_left(pair_id: int, annotator_id: int) -> bool:
    # Seeded per (pair, annotator): a reload shows the same sides, and half the annotators
    # see the evaluator's favourite on the left, so position bias averages out.
    return random.Random(f"{pair_id}:{annotator_id}").random() < 0.5


def next_pair(
    engine: Engine,
    annotator: AnnotatorRef,
    overlap: int = 1,
    lease_seconds: float = 120,
    origins: Sequence[str] = QUEUE_ORIGINS,
    order: str | None = None,
) -> PairView | None:
    """The next pair for ``annotator``, leased to them for ``lease_seconds``; None when done.

    A pair this annotator already holds a live lease on comes back first (a page reload does
    not burn a second pair). Otherwise: a pair they have not judged, fewest non-skip judgements
    first, while judgements + other annotators' live leases < ``overlap``. Skips do not count
    towards the overlap, so a skipped pair goes back to the queue for others. Among pairs with as
    many judgements, ``order`` decides: ``fifo`` oldest first, ``active`` the most uncertain label first
    (``pair.uncertainty``, ties oldest first); None: the project's setting (annotations.queue_order).
    """
    if overlap < 1:
        raise StoreError("overlap must be >= 1")
    if order is not None:
        check_order(order)
    me = annotator_id(engine, annotator)
    if uses_raw_sqlite(engine):
        leased = queue_sqlite.lease_next(engine, me, overlap, lease_seconds, origins, order)
        if leased is None:
            return None
        leased_id, expires = leased
        return _build_view(leased_id, me, expires, *queue_sqlite.pair_view_parts(engine, leased_id))
    with write_connection(engine) as conn:
        now = utcnow()
        expires = now + timedelta(seconds=lease_seconds)
        conn.execute(delete(_LEASE).where(_LEASE.c.expires_at <= now))
        pair_id = _held_lease(conn, me, now)
        if pair_id is None:
            pair_id = _pick_pair(conn, me, overlap, origins, now, order or _project_order(conn))
        if pair_id is None:
            return None
        _lease(conn, pair_id, me, expires)
    # Built after the write lock is released: pairs and responses are never modified, and the
    # lease is what makes the pair ours.
    with read_session(engine) as session:
        return _pair_view(session, pair_id, me, expires)


def normalise_choice(choice: str, shown_left_response_id: int, response_a_id: int) -> str:
    """Shown-relative choice (A = left) → pair-relative choice (a = ``response_a``)."""
    if shown_left_response_id == response_a_id or choice not in ("a_better", "b_better"):
        return choice
    return "b_better" if choice == "a_better" else "a_better"


def record_judgement(
    engine: Engine,
    pair_id: int,
    annotator: AnnotatorRef,
    choice: str,
    shown_left_response_id: int,
    seconds_taken: float | None = None,
    require_lease: bool = True,
    overlap: int = 1,
) -> int:
    """Record a vote; returns the judgement id.

    A vote that adds to the pair's count (a first vote, or a skip turned into a vote) is accepted only
    from the annotator holding its lease (``next_pair`` or ``undo_last`` gave it to them) on a slot still
    open at ``overlap`` (the queue's, as given to ``next_pair``): once a lease has expired and the pair went
    to someone else, the late vote raises LeaseLost ("reassigned ... press Next pair"); a vote on a pair the
    voter skipped (a second tab still showing it) after someone else took its slot raises LeaseLost ("you
    skipped pair N ..."). Nothing is
    written then, so one pair never gets two votes from a single overlap slot. ``require_lease=False`` is
    for seeding judgements that were not cast in this queue (tests, imports of labels made elsewhere).

    ``choice`` is relative to the SHOWN sides: ``a_better`` = the left response (labelled A)
    is better, ``b_better`` = the right one. It is stored normalised to the pair's mined
    orientation (see annotations/models.py). The same vote twice (a double click) changes
    nothing; a different vote on the same pair updates the row (a changed mind).
    """
    check_in(choice, CHOICES, "choice")
    me = annotator_id(engine, annotator)
    a_id, b_id = _pair_sides(engine, pair_id)  # pairs never change: read outside the lock
    if shown_left_response_id not in (a_id, b_id):
        raise StoreError(f"response {shown_left_response_id} is not part of pair {pair_id}")
    stored = normalise_choice(choice, shown_left_response_id, a_id)
    counts = int(stored != "skip")
    if uses_raw_sqlite(engine):
        return queue_sqlite.record(
            engine, pair_id, me, stored, counts, shown_left_response_id, seconds_taken, require_lease, overlap
        )
    j = core_table(Judgement)
    with write_connection(engine) as conn:
        row = conn.execute(
            select(j.c.id, j.c.choice, j.c.shown_left_response_id).where(
                j.c.pair_id == pair_id, j.c.annotator_id == me
            )
        ).first()
        if require_lease:
            _check_slot(conn, pair_id, me, row, counts, overlap)
        conn.execute(delete(_LEASE).where(_LEASE.c.pair_id == pair_id, _LEASE.c.annotator_id == me))
        now = utcnow()
        if row is None:
            values = dict(pair_id=pair_id, annotator_id=me, choice=stored, created_at=now, updated_at=now)
            result = conn.execute(
                insert(j).values(**values, shown_left_response_id=shown_left_response_id, seconds_taken=seconds_taken)
            )
            _bump(conn, pair_id, counts)
            key = result.inserted_primary_key  # None only for a statement that inserted nothing
            return stored_id(key[0] if key is not None else None)
        if (row.choice, row.shown_left_response_id) != (stored, shown_left_response_id):
            conn.execute(
                update(j)
                .where(j.c.id == row.id)
                .values(
                    choice=stored,
                    shown_left_response_id=shown_left_response_id,
                    seconds_taken=seconds_taken,
                    updated_at=now,
                )
            )
            _bump(conn, pair_id, counts - int(row.choice != "skip"))
        return int(row.id)


def _check_slot(conn: Connection, pair_id: int, me: int, row: Any, counts: int, overlap: int) -> None:
    """queue_sqlite._check_slot on the SQLAlchemy path: a changed mind between counted votes always stands; a skip
    turned into a vote only while a slot is open; a first vote needs the lease (and, if it counts, an open slot)."""
    if row is not None and (row.choice != "skip" or not counts):
        return
    if row is not None:
        if not _slot_open(conn, pair_id, me, overlap):
            raise LeaseLost(skipped_message(pair_id))
        return
    if not _holds_lease(conn, pair_id, me) or (counts and not _slot_open(conn, pair_id, me, overlap)):
        raise LeaseLost(lease_lost_message(pair_id))


def _slot_open(conn: Connection, pair_id: int, me: int, overlap: int) -> bool:
    """One of the pair's ``overlap`` slots is free for ``me``: its votes plus others' live leases below it."""
    others = (
        select(func.count(_LEASE.c.id))
        .where(_LEASE.c.pair_id == pair_id, _LEASE.c.annotator_id != me, _LEASE.c.expires_at > utcnow())
        .scalar_subquery()
    )
    taken = conn.execute(select(Pair.n_judgements + others).where(Pair.id == pair_id)).scalar()
    return taken is not None and taken < overlap


def _holds_lease(conn: Connection, pair_id: int, annotator_id: int) -> bool:
    """A lease row of this annotator on the pair: live, or expired and not yet swept by any next_pair
    (which sweeps before handing a pair out, so the pair has gone to no one else)."""
    query = select(_LEASE.c.id).where(_LEASE.c.pair_id == pair_id, _LEASE.c.annotator_id == annotator_id)
    return conn.execute(query.limit(1)).first() is not None


def _pair_sides(engine: Engine, pair_id: int) -> tuple[int, int]:
    if uses_raw_sqlite(engine):
        sides = queue_sqlite.pair_sides(engine, pair_id)
    else:
        with read_session(engine) as session:
            sides = session.exec(select(Pair.response_a_id, Pair.response_b_id).where(Pair.id == pair_id)).first()
    if sides is None:
        raise NotFoundError(f"no pair with id {pair_id}")
    return int(sides[0]), int(sides[1])


def _bump(conn: Connection | Session, pair_id: int, delta: int) -> None:
    if delta:
        conn.execute(update(Pair).where(col(Pair.id) == pair_id).values(n_judgements=Pair.n_judgements + delta))


def undo_last(engine: Engine, annotator: AnnotatorRef, lease_seconds: float = 120, overlap: int = 1) -> int | None:
    """Delete this annotator's most recent judgement; returns its pair id (None if none).

    The pair is leased back to them while one of its ``overlap`` slots is free, so the next ``next_pair``
    shows it again; an undone skip whose slot someone else filled meanwhile comes back without a lease
    (a vote on it is refused: the slot is theirs).
    """
    me = annotator_id(engine, annotator)
    if uses_raw_sqlite(engine):
        return queue_sqlite.undo(engine, me, lease_seconds, overlap)
    j = core_table(Judgement)
    with write_connection(engine) as conn:
        row = conn.execute(
            select(j.c.id, j.c.pair_id, j.c.choice)
            .where(j.c.annotator_id == me)
            .order_by(j.c.updated_at.desc(), j.c.id.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        _bump(conn, row.pair_id, -int(row.choice != "skip"))
        conn.execute(delete(j).where(j.c.id == row.id))
        conn.execute(delete(_LEASE).where(_LEASE.c.pair_id == row.pair_id, _LEASE.c.annotator_id == me))
        if _slot_open(conn, row.pair_id, me, overlap):
            _lease(conn, row.pair_id, me, utcnow() + timedelta(seconds=lease_seconds))
        return int(row.pair_id)


def progress(
    engine: Engine, annotator: AnnotatorRef, overlap: int = 1, origins: Sequence[str] = QUEUE_ORIGINS
) -> tuple[int, int]:
    """(done, total) for the label tab: done = this annotator's judgements (skips included),
    total = done + pairs the queue could still hand them at this overlap."""
    me = annotator_id(engine, annotator)
    with read_session(engine) as session:
        done = session.exec(select(func.count(col(Judgement.id))).where(Judgement.annotator_id == me)).one()
        judged_by_me = exists().where(col(Judgement.pair_id) == col(Pair.id), col(Judgement.annotator_id) == me)
        left = session.exec(
            select(func.count(col(Pair.id))).where(_eligible(origins), Pair.n_judgements < overlap, ~judged_by_me)
        ).one()
        return int(done), int(done) + int(left)


def recent_judgements(engine: Engine, limit: int = 50, annotator: AnnotatorRef | None = None) -> list[dict[str, Any]]:
    """Newest first: id, pair_id, task, annotator, choice (normalised), shown_left_response_id,
    seconds_taken, created_at, updated_at."""
    query = (
        select(Judgement, Annotator.name, Pair.task)
        .join(Annotator, col(Annotator.id) == Judgement.annotator_id)
        .join(Pair, col(Pair.id) == Judgement.pair_id)
        .order_by(col(Judgement.updated_at).desc(), col(Judgement.id).desc())
        .limit(limit)
    )
    with read_session(engine) as session:
        if annotator is not None:
            if isinstance(annotator, AnnotatorInfo):
                annotator = annotator.id
            column = Annotator.id if isinstance(annotator, int) else Annotator.name
            query = query.where(column == annotator)
        out = []
        for judgement, name_, task in session.exec(query):
            row = row_dict(judgement)
            row.update(annotator=name_, task=task)
            out.append(row)
        return out
