"""The vote path's raw-sqlite3 twin: ``next_pair`` / ``record_judgement`` / ``undo_last`` on a SQLite file.

The same statements as the SQLAlchemy Core path in :mod:`annotations.queue`, written out once as
DBAPI calls on a pooled raw sqlite3 connection (:func:`annotations.db.raw_write`: the flock
write gate, then ``BEGIN IMMEDIATE``). SQLAlchemy's per-statement work cost ~3.7 ms of CPU per
click; with 20 annotator processes on 2 cores a click then waited for a CPU while holding the
gate. This path gives vote p95 13-15 ms at ~1000 votes/s (docs/benchmarks.md).
``tests/annotations/test_store.py::test_sqlite_fast_path_matches_the_sqlalchemy_path`` runs one
scripted session through both paths and checks they return and store the same.

Functions here return plain tuples; :mod:`annotations.queue` builds the PairView from them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine

from annotations.db import raw_read, raw_write
from annotations.errors import LeaseLost, NotFoundError
from annotations.models import stored_id, utcnow
from annotations.queue_order import QUEUE_ORDER_KEY, stored_order

# Values are always bound (``?``); the origins list is bound as one JSON array and unpacked by
# json_each, so each statement's text is constant (and stays in sqlite3's statement cache).
_SQL_DELETE_EXPIRED_LEASES = "DELETE FROM pair_lease WHERE expires_at <= ?"
_SQL_HELD_LEASE = (
    "SELECT l.pair_id FROM pair_lease l WHERE l.annotator_id = ?1 AND l.expires_at > ?2"
    " AND NOT EXISTS (SELECT 1 FROM judgement j WHERE j.pair_id = l.pair_id AND j.annotator_id = ?1)"
    " ORDER BY l.expires_at DESC LIMIT 1"
)
_SQL_PICK_WHERE = (
    "SELECT p.id FROM pair p"
    " WHERE p.response_a_id <> p.response_b_id AND p.origin IN (SELECT value FROM json_each(?))"
    " AND p.n_judgements < ?"
    " AND NOT EXISTS (SELECT 1 FROM judgement j WHERE j.pair_id = p.id AND j.annotator_id = ?)"
    " AND p.n_judgements + (SELECT COUNT(*) FROM pair_lease l"
    " WHERE l.pair_id = p.id AND l.annotator_id <> ? AND l.expires_at > ?) < ?"
)
# Per queue order (annotations.queue_order), the same filter walked in another index order, stopping at the
# first fit: fifo = fewest judgements, then oldest (ix_pair_queue); active = fewest judgements, then the
# most uncertain label, then oldest (ix_pair_active).
_SQL_PICK_PAIR = {
    "fifo": _SQL_PICK_WHERE + " ORDER BY p.n_judgements, p.id LIMIT 1",
    "active": _SQL_PICK_WHERE + " ORDER BY p.n_judgements, p.uncertainty DESC, p.id LIMIT 1",
}
_SQL_QUEUE_ORDER = "SELECT value FROM project_setting WHERE key = ?"
_SQL_DELETE_LEASE = "DELETE FROM pair_lease WHERE pair_id = ? AND annotator_id = ?"
# Any lease row of the voter: a live one, or an expired one nobody has swept yet (every next_pair sweeps
# expired leases before it hands a pair out, so an unswept row means the pair went to no one else).
_SQL_HOLDS_LEASE = "SELECT 1 FROM pair_lease WHERE pair_id = ? AND annotator_id = ?"
_SQL_INSERT_LEASE = "INSERT INTO pair_lease (pair_id, annotator_id, expires_at) VALUES (?, ?, ?)"
# Is one of the pair's `overlap` slots still free for annotator ?2: its decisive votes plus everyone else's live
# leases below the overlap (the voter's own lease is the slot being filled).
_SQL_SLOT_OPEN = (
    "SELECT p.n_judgements + (SELECT COUNT(*) FROM pair_lease l"
    " WHERE l.pair_id = p.id AND l.annotator_id <> ?2 AND l.expires_at > ?3) < ?4 FROM pair p WHERE p.id = ?1"
)
_SQL_PAIR_VIEW = (
    "SELECT p.task, p.origin, p.sample_id, s.video, s.short_prompt,"
    " a.id, a.text, a.source, a.model, b.id, b.text, b.source, b.model"
    " FROM pair p JOIN sample s ON s.id = p.sample_id"
    " JOIN response a ON a.id = p.response_a_id JOIN response b ON b.id = p.response_b_id"
    " WHERE p.id = ?"
)
_SQL_SCORES_OF_TWO = "SELECT response_id, evaluator, value FROM score WHERE response_id IN (?, ?)"
_SQL_PAIR_SIDES = "SELECT response_a_id, response_b_id FROM pair WHERE id = ?"
_SQL_FIND_JUDGEMENT = "SELECT id, choice, shown_left_response_id FROM judgement WHERE pair_id = ? AND annotator_id = ?"
_SQL_INSERT_JUDGEMENT = (
    "INSERT INTO judgement (pair_id, annotator_id, choice, shown_left_response_id, seconds_taken, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SQL_UPDATE_JUDGEMENT = (
    "UPDATE judgement SET choice = ?, shown_left_response_id = ?, seconds_taken = ?, updated_at = ? WHERE id = ?"
)
_SQL_BUMP = "UPDATE pair SET n_judgements = n_judgements + ? WHERE id = ?"
_SQL_LAST_JUDGEMENT = (
    "SELECT id, pair_id, choice FROM judgement WHERE annotator_id = ? ORDER BY updated_at DESC, id DESC LIMIT 1"
)
_SQL_DELETE_JUDGEMENT = "DELETE FROM judgement WHERE id = ?"

#: (task, origin, sample_id, video, short_prompt) of a pair.
Head = tuple[int, str, int, str | None, str | None]
#: (response id, text, source, model) of one side.
Side = tuple[int, str, str, str | None]


def lease_lost_message(pair_id: int) -> str:
    """The one line a voter gets for a pair they do not hold: both vote paths say it."""
    return f"pair {pair_id} was reassigned to someone else (your lease on it expired); press Next pair"


def skipped_message(pair_id: int) -> str:
    """The one line for a vote on a pair the voter skipped (a second tab still showing it) after someone else
    took the slot the skip gave back to the queue."""
    return (
        f"you skipped pair {pair_id} (in this or another tab) and someone else has voted on it since; nothing was "
        "saved: press Next pair"
    )


def sqlite_ts(value: datetime) -> str:
    """A UTC datetime as SQLAlchemy stores it in SQLite (offset-free, microseconds), so raw-written
    and ORM-written timestamps compare and sort as the same strings and read back the same."""
    return f"{value:%Y-%m-%d %H:%M:%S.%f}"


def lease_next(
    engine: Engine, me: int, overlap: int, lease_seconds: float, origins: Sequence[str], order: str | None = None
) -> tuple[int, datetime] | None:
    """(pair id, lease expiry) of the pair leased to annotator ``me``, or None when the queue is done.
    ``order``: fifo / active; None reads the project's setting in the same transaction."""
    origins_json = json.dumps(list(origins))
    with raw_write(engine) as conn:
        now = utcnow()
        expires = now + timedelta(seconds=lease_seconds)
        now_s = sqlite_ts(now)
        conn.execute(_SQL_DELETE_EXPIRED_LEASES, (now_s,))
        row = conn.execute(_SQL_HELD_LEASE, (me, now_s)).fetchone()
        if row is None:
            pick = _SQL_PICK_PAIR[order or _project_order(conn)]
            row = conn.execute(pick, (origins_json, overlap, me, me, now_s, overlap)).fetchone()
        if row is None:
            return None
        pair_id = row[0]
        conn.execute(_SQL_DELETE_LEASE, (pair_id, me))
        conn.execute(_SQL_INSERT_LEASE, (pair_id, me, sqlite_ts(expires)))
    return pair_id, expires


def _project_order(conn: sqlite3.Connection) -> str:
    row = conn.execute(_SQL_QUEUE_ORDER, (QUEUE_ORDER_KEY,)).fetchone()
    return stored_order(row[0] if row else None)


def pair_view_parts(engine: Engine, pair_id: int) -> tuple[Head, Side, Side, dict[int, dict[str, float]]]:
    """(head, side a, side b, {response id: {evaluator: value}}) of a pair; a read outside the gate."""
    with raw_read(engine) as conn:
        row = conn.execute(_SQL_PAIR_VIEW, (pair_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no pair with id {pair_id}")
        head, a, b = tuple(row[:5]), tuple(row[5:9]), tuple(row[9:])
        scores: dict[int, dict[str, float]] = {a[0]: {}, b[0]: {}}
        for response_id, evaluator, value in conn.execute(_SQL_SCORES_OF_TWO, (a[0], b[0])).fetchall():
            scores[response_id][evaluator] = value
    return head, a, b, scores


def pair_sides(engine: Engine, pair_id: int) -> tuple[int, int] | None:
    """(response_a_id, response_b_id) of a pair, or None if there is no such pair."""
    with raw_read(engine) as conn:
        return conn.execute(_SQL_PAIR_SIDES, (pair_id,)).fetchone()


def record(
    engine: Engine,
    pair_id: int,
    me: int,
    stored: str,
    counts: int,
    shown_left: int,
    seconds: float | None,
    require_lease: bool = True,
    overlap: int = 1,
) -> int:
    """record_judgement's write: insert, or update a changed mind; keeps pair.n_judgements in step.
    A first vote needs the voter's lease on the pair, and a vote that adds to the count (a first vote, or a skip
    turned into a vote) a slot still open at ``overlap`` (LeaseLost otherwise, nothing written)."""
    seconds = float(seconds) if seconds is not None else None
    with raw_write(engine) as conn:
        row = conn.execute(_SQL_FIND_JUDGEMENT, (pair_id, me)).fetchone()
        if require_lease:
            _check_slot(conn, pair_id, me, row, counts, overlap)
        conn.execute(_SQL_DELETE_LEASE, (pair_id, me))
        now_s = sqlite_ts(utcnow())
        if row is None:
            cur = conn.execute(_SQL_INSERT_JUDGEMENT, (pair_id, me, stored, shown_left, seconds, now_s, now_s))
            if counts:
                conn.execute(_SQL_BUMP, (counts, pair_id))
            return stored_id(cur.lastrowid)
        row_id, old_choice, old_shown_left = row
        if (old_choice, old_shown_left) != (stored, shown_left):
            conn.execute(_SQL_UPDATE_JUDGEMENT, (stored, shown_left, seconds, now_s, row_id))
            delta = counts - int(old_choice != "skip")
            if delta:
                conn.execute(_SQL_BUMP, (delta, pair_id))
        return int(row_id)


def _check_slot(conn: sqlite3.Connection, pair_id: int, me: int, row: tuple | None, counts: int, overlap: int) -> None:
    """LeaseLost unless this vote may stand: a changed mind between counted votes always may; a skip turned into
    a vote only while a slot is still open (the skip gave its slot back to the queue); a first vote needs the
    voter's lease (and, if it counts, an open slot)."""
    if row is not None and (row[1] != "skip" or not counts):
        return
    if row is not None:
        if not slot_open(conn, pair_id, me, overlap):  # someone took the slot the skip gave back
            raise LeaseLost(skipped_message(pair_id))
        return
    held = conn.execute(_SQL_HOLDS_LEASE, (pair_id, me)).fetchone() is not None
    if not held or (counts and not slot_open(conn, pair_id, me, overlap)):
        raise LeaseLost(lease_lost_message(pair_id))


def slot_open(conn: sqlite3.Connection, pair_id: int, me: int, overlap: int) -> bool:
    """Whether one of the pair's ``overlap`` slots is free for ``me`` (inside the write transaction)."""
    row = conn.execute(_SQL_SLOT_OPEN, (pair_id, me, sqlite_ts(utcnow()), overlap)).fetchone()
    return bool(row and row[0])


def undo(engine: Engine, me: int, lease_seconds: float, overlap: int = 1) -> int | None:
    """undo_last's write: delete the newest judgement of ``me`` and lease its pair back to them while one of its
    ``overlap`` slots is free (an undone skip whose slot someone else has filled comes back without a lease)."""
    with raw_write(engine) as conn:
        row = conn.execute(_SQL_LAST_JUDGEMENT, (me,)).fetchone()
        if row is None:
            return None
        row_id, pair_id, choice = row
        if choice != "skip":
            conn.execute(_SQL_BUMP, (-1, pair_id))
        conn.execute(_SQL_DELETE_JUDGEMENT, (row_id,))
        conn.execute(_SQL_DELETE_LEASE, (pair_id, me))
        if slot_open(conn, pair_id, me, overlap):
            expires = sqlite_ts(utcnow() + timedelta(seconds=lease_seconds))
            conn.execute(_SQL_INSERT_LEASE, (pair_id, me, expires))
        return int(pair_id)
