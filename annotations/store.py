"""The store's functions: samples, responses, scores, pairs, the labelling queue, runs.

Every public function takes an engine and opens its own short transaction (writes through
:func:`annotations.db.write_session`), and returns plain values or dataclasses, never ORM
objects, so callers (the UI, the miners, the trainer) cannot trip over detached instances.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, exists, func, insert, update
from sqlmodel import Session, col, select

from annotations.db import raw_read, raw_write, read_session, uses_raw_sqlite, write_connection, write_session
from annotations.errors import NotFoundError, StoreError
from annotations.models import (
    CHOICES,
    HDPO_TERMS,
    ORIGINS,
    RESPONSE_SOURCES,
    ROLES,
    RUN_STATUSES,
    TASKS,
    Annotator,
    Judgement,
    Pair,
    PairLease,
    Response,
    RunMetric,
    Sample,
    Score,
    TrainingRun,
    utcnow,
)

# Pairs a human is asked about by default: hallucination pairs are correct by construction.
QUEUE_ORIGINS: tuple[str, ...] = ("mined", "human_queue")
TERMINAL_STATUSES = ("finished", "failed", "cancelled")


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


# --------------------------------------------------------------------------- helpers


def hash_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes: a sample is keyed by its video's content, not its path."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


#: Tasks a text-only sample can have: Task 3 (beautify a short prompt) needs no video.
TEXT_ONLY_TASKS = (3,)
#: ``Sample.video_hash`` of a text-only sample (no video): its key is then the short prompt's hash.
NO_VIDEO_HASH = ""


def content_key(video_hash: str, short_prompt: str | None) -> str:
    return hashlib.sha256(f"{video_hash}\0{short_prompt or ''}".encode()).hexdigest()


def _sample_hash(video: str | None, short_prompt: str | None, video_hash: str | None) -> str:
    """The video's content hash, or NO_VIDEO_HASH for a text-only sample (which needs a short prompt)."""
    if video is not None:
        return video_hash or hash_file(video)
    if video_hash:
        raise StoreError("video_hash given for a text-only sample (video=None)")
    if not short_prompt or not short_prompt.strip():
        raise StoreError("a text-only sample (video=None) needs a short prompt")
    return NO_VIDEO_HASH


def _check_task(task: int) -> int:
    if task not in TASKS:
        raise StoreError(f"task must be one of {TASKS}, got {task!r}")
    return int(task)


def _check_in(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise StoreError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _row_dict(row: Any) -> dict[str, Any]:
    data = row.model_dump()
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in data.items()}


def _get(session: Session, model: type, row_id: int, what: str) -> Any:
    row = session.get(model, row_id)
    if row is None:
        raise NotFoundError(f"no {what} with id {row_id}")
    return row


# --------------------------------------------------------------------------- samples, responses, scores


def _find_sample(session: Session, key: str) -> int | None:
    return session.exec(select(Sample.id).where(Sample.content_key == key)).first()


def _insert_sample(session: Session, video: str | None, video_hash: str, short_prompt: str | None, split: str) -> int:
    row = Sample(
        video=os.path.abspath(video) if video is not None else None,
        video_hash=video_hash,
        content_key=content_key(video_hash, short_prompt),
        short_prompt=short_prompt,
        split=split,
    )
    session.add(row)
    session.flush()
    return int(row.id)  # type: ignore[arg-type]


def add_sample(
    engine: Engine,
    video: str | None,
    short_prompt: str | None = None,
    split: str = "train",
    *,
    video_hash: str | None = None,
) -> int:
    """Insert a new sample; StoreError if the same (video content, short prompt) exists.

    ``video=None`` makes a text-only sample, keyed by its short prompt alone.
    """
    video_hash = _sample_hash(video, short_prompt, video_hash)
    with write_session(engine) as session:
        if _find_sample(session, content_key(video_hash, short_prompt)) is not None:
            raise StoreError(f"sample already exists for {video or 'no video'} with this short prompt")
        return _insert_sample(session, video, video_hash, short_prompt, split)


def upsert_sample_in(
    session: Session,
    video: str | None,
    short_prompt: str | None,
    split: str = "train",
    detailed_prompt: str | None = None,
    *,
    video_hash: str,
    teacher_by_task: Mapping[int, str] | None = None,
) -> tuple[int, bool]:
    """Session-level upsert used by import; returns (sample_id, created)."""
    sample_id = _find_sample(session, content_key(video_hash, short_prompt))
    created = sample_id is None
    if sample_id is None:
        sample_id = _insert_sample(session, video, video_hash, short_prompt, split)
    # The detailed prompt is the teacher response for every task (see annotations/io.py for
    # the reading of the paper), for Task 3 only when there is no video; per-task overrides win.
    tasks = TASKS if video is not None else TEXT_ONLY_TASKS
    teachers = {t: detailed_prompt for t in tasks if detailed_prompt}
    teachers.update(teacher_by_task or {})
    if set(teachers) - set(tasks):
        raise StoreError(f"a text-only sample (video=None) has only task(s) {TEXT_ONLY_TASKS}")
    for task, text_ in teachers.items():
        _add_response_in(session, sample_id, task, text_, "teacher")
    return sample_id, created


def upsert_sample(
    engine: Engine,
    video: str | None,
    short_prompt: str | None,
    split: str = "train",
    detailed_prompt: str | None = None,
    *,
    video_hash: str | None = None,
) -> int:
    """Sample id for (video content, short prompt), creating it if new.

    ``video=None`` is a text-only sample (Task-3-only items), keyed by the short prompt's hash;
    it needs a short prompt. A ``detailed_prompt`` is stored once per task as a ``teacher``
    response (idempotent).
    """
    video_hash = _sample_hash(video, short_prompt, video_hash)
    with write_session(engine) as session:
        sample_id, _ = upsert_sample_in(session, video, short_prompt, split, detailed_prompt, video_hash=video_hash)
        return sample_id


def _add_response_in(
    session: Session,
    sample_id: int,
    task: int,
    text_: str,
    source: str,
    model: str | None = None,
    checkpoint: str | None = None,
    beam_rank: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> int:
    # Re-running a miner must not duplicate its responses: the same text from the same
    # source / model / checkpoint for the same (sample, task) is the same response.
    existing = session.exec(
        select(Response.id).where(
            Response.sample_id == sample_id,
            Response.task == task,
            Response.source == source,
            Response.model == model if model is not None else col(Response.model).is_(None),
            Response.checkpoint == checkpoint if checkpoint is not None else col(Response.checkpoint).is_(None),
            Response.text == text_,
        )
    ).first()
    if existing is not None:
        return int(existing)
    row = Response(
        sample_id=sample_id,
        task=task,
        text=text_,
        source=source,
        model=model,
        checkpoint=checkpoint,
        beam_rank=beam_rank,
        meta_json=json.dumps(meta, sort_keys=True) if meta else None,
    )
    session.add(row)
    session.flush()
    return int(row.id)  # type: ignore[arg-type]


def add_response(
    engine: Engine,
    sample_id: int,
    task: int,
    text: str,
    source: str,
    model: str | None = None,
    checkpoint: str | None = None,
    beam_rank: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> int:
    """Response id; an identical (sample, task, source, model, checkpoint, text) is reused.

    ``source`` ∈ teacher / model / hallucination / human; ``meta`` is a JSON-able record of an
    augmentation's edits.
    """
    _check_task(task)
    _check_in(source, RESPONSE_SOURCES, "source")
    if not text or not text.strip():
        raise StoreError("response text is empty")
    with write_session(engine) as session:
        _get(session, Sample, sample_id, "sample")
        return _add_response_in(session, sample_id, task, text, source, model, checkpoint, beam_rank, meta)


def _add_score_in(session: Session, response_id: int, evaluator: str, value: float) -> None:
    row = session.exec(select(Score).where(Score.response_id == response_id, Score.evaluator == evaluator)).first()
    if row is None:
        session.add(Score(response_id=response_id, evaluator=evaluator, value=float(value)))
    else:
        row.value, row.created_at = float(value), utcnow()
        session.add(row)


def add_score(engine: Engine, response_id: int, evaluator: str, value: float) -> None:
    """Record (or overwrite) one evaluator's score of a response."""
    add_scores(engine, response_id, {evaluator: value})


def add_scores(engine: Engine, response_id: int, scores: Mapping[str, float]) -> None:
    """Record several evaluators' scores of one response in one transaction."""
    with write_session(engine) as session:
        _get(session, Response, response_id, "response")
        for evaluator, value in scores.items():
            _add_score_in(session, response_id, evaluator, value)


def scores_for(session: Session, response_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {rid: {} for rid in response_ids}
    if not response_ids:
        return out
    rows = session.exec(select(Score).where(col(Score.response_id).in_(list(response_ids))))
    for row in rows:
        out[row.response_id][row.evaluator] = row.value
    return out


# --------------------------------------------------------------------------- pairs


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
    _check_task(task)
    _check_in(origin, ORIGINS, "origin")
    _check_in(hdpo_term, HDPO_TERMS, "hdpo_term")
    with write_session(engine) as session:
        a = _get(session, Response, response_a_id, "response")
        b = _get(session, Response, response_b_id, "response")
        _validate_pair(a, b, sample_id, task, hdpo_term, (rejected_video, rejected_short_prompt, rejected_task))
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
        )
        session.add(row)
        session.flush()
        return int(row.id)  # type: ignore[arg-type]


def pair_exists(engine: Engine, sample_id: int, task: int, origin: str, hdpo_term: str | None = None) -> bool:
    """Whether a pair of this (sample, task, origin[, term]) exists: lets miners resume."""
    query = select(Pair.id).where(Pair.sample_id == sample_id, Pair.task == task, Pair.origin == origin)
    if hdpo_term is not None:
        query = query.where(Pair.hdpo_term == hdpo_term)
    with read_session(engine) as session:
        return session.exec(query.limit(1)).first() is not None


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
    _check_in(role, ROLES, "role")
    if not name or not name.strip():
        raise StoreError("annotator name is empty")
    with write_session(engine) as session:
        row = _annotator_in(session, name.strip(), role)
        return AnnotatorInfo(int(row.id), row.name, row.role)  # type: ignore[arg-type]


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
        rows = session.exec(select(Annotator).order_by(Annotator.id))
        return [AnnotatorInfo(int(r.id), r.name, r.role) for r in rows]  # type: ignore[arg-type]


# --------------------------------------------------------------------------- queue

# The vote path's statements for the raw sqlite3 fast path (annotations.db.raw_write): the same
# queries as the SQLAlchemy Core ones below, written out once. Values are always bound (``?``);
# the origins list is bound as one JSON array and unpacked by json_each, so the text is constant.
_SQL_DELETE_EXPIRED_LEASES = "DELETE FROM pair_lease WHERE expires_at <= ?"
_SQL_HELD_LEASE = (
    "SELECT l.pair_id FROM pair_lease l WHERE l.annotator_id = ?1 AND l.expires_at > ?2"
    " AND NOT EXISTS (SELECT 1 FROM judgement j WHERE j.pair_id = l.pair_id AND j.annotator_id = ?1)"
    " ORDER BY l.expires_at DESC LIMIT 1"
)
_SQL_PICK_PAIR = (
    "SELECT p.id FROM pair p"
    " WHERE p.response_a_id <> p.response_b_id AND p.origin IN (SELECT value FROM json_each(?))"
    " AND p.n_judgements < ?"
    " AND NOT EXISTS (SELECT 1 FROM judgement j WHERE j.pair_id = p.id AND j.annotator_id = ?)"
    " AND p.n_judgements + (SELECT COUNT(*) FROM pair_lease l"
    " WHERE l.pair_id = p.id AND l.annotator_id <> ? AND l.expires_at > ?) < ?"
    # Fewest judgements first, then oldest: walks ix_pair_queue and stops at the first fit.
    " ORDER BY p.n_judgements, p.id LIMIT 1"
)
_SQL_DELETE_LEASE = "DELETE FROM pair_lease WHERE pair_id = ? AND annotator_id = ?"
_SQL_INSERT_LEASE = "INSERT INTO pair_lease (pair_id, annotator_id, expires_at) VALUES (?, ?, ?)"
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


def _sqlite_ts(value: datetime) -> str:
    """A UTC datetime as SQLAlchemy stores it in SQLite (offset-free, microseconds), so raw-written
    and ORM-written timestamps compare and sort as the same strings and read back the same."""
    return f"{value:%Y-%m-%d %H:%M:%S.%f}"


def _eligible(origins: Sequence[str]) -> Any:
    # Pairs whose two sides are the same response (input / task hallucination) have nothing
    # for a human to compare.
    return and_(Pair.response_a_id != Pair.response_b_id, col(Pair.origin).in_(list(origins)))


_LEASE = PairLease.__table__  # type: ignore[attr-defined]


def _held_lease(conn: Connection, annotator_id: int, now: datetime) -> int | None:
    judged = exists().where(Judgement.pair_id == _LEASE.c.pair_id, Judgement.annotator_id == annotator_id)
    query = select(_LEASE.c.pair_id).where(_LEASE.c.annotator_id == annotator_id, _LEASE.c.expires_at > now, ~judged)
    return conn.execute(query.order_by(_LEASE.c.expires_at.desc()).limit(1)).scalar()


def _pick_pair(conn: Connection, annotator_id: int, overlap: int, origins: Sequence[str], now: datetime) -> int | None:
    judged_by_me = exists().where(Judgement.pair_id == Pair.id, Judgement.annotator_id == annotator_id)
    leased_by_others = (
        select(func.count(_LEASE.c.id))
        .where(_LEASE.c.pair_id == Pair.id, _LEASE.c.annotator_id != annotator_id, _LEASE.c.expires_at > now)
        .scalar_subquery()
    )
    query = (
        select(Pair.id)
        .where(_eligible(origins), Pair.n_judgements < overlap, ~judged_by_me)
        .where(Pair.n_judgements + leased_by_others < overlap)
        # Fewest judgements first, then oldest: walks ix_pair_queue and stops at the first fit.
        .order_by(col(Pair.n_judgements), col(Pair.id))
        .limit(1)
    )
    return conn.execute(query).scalar()


def _lease(conn: Connection, pair_id: int, annotator_id: int, expires: datetime) -> None:
    conn.execute(delete(_LEASE).where(_LEASE.c.pair_id == pair_id, _LEASE.c.annotator_id == annotator_id))
    conn.execute(insert(_LEASE).values(pair_id=pair_id, annotator_id=annotator_id, expires_at=expires))


def _pair_view(session: Session, pair_id: int, annotator_id: int, expires: datetime) -> PairView:
    pair = _get(session, Pair, pair_id, "pair")
    sample = _get(session, Sample, pair.sample_id, "sample")
    a = _get(session, Response, pair.response_a_id, "response")
    b = _get(session, Response, pair.response_b_id, "response")
    scores = scores_for(session, [a.id, b.id])
    left, right = (a, b) if _shows_a_left(pair_id, annotator_id) else (b, a)
    return PairView(
        pair_id=pair_id,
        task=pair.task,
        origin=pair.origin,
        sample_id=sample.id,
        video=sample.video,
        short_prompt=sample.short_prompt,
        left_response_id=left.id,
        left_text=left.text,
        left_scores=scores[left.id],
        right_response_id=right.id,
        right_text=right.text,
        right_scores=scores[right.id],
        lease_expires_at=expires,
        left_source=left.source,
        left_model=left.model,
        right_source=right.source,
        right_model=right.model,
    )


def _shows_a_left(pair_id: int, annotator_id: int) -> bool:
    # Seeded per (pair, annotator): a reload shows the same sides, and half the annotators
    # see the evaluator's favourite on the left, so position bias averages out.
    return random.Random(f"{pair_id}:{annotator_id}").random() < 0.5


def _pair_view_raw(engine: Engine, pair_id: int, annotator_id: int, expires: datetime) -> PairView:
    conn = raw_read(engine)
    row = conn.execute(_SQL_PAIR_VIEW, (pair_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no pair with id {pair_id}")
    task, origin, sample_id, video, short_prompt, *sides = row
    a, b = sides[:4], sides[4:]  # (id, text, source, model) each
    scores: dict[int, dict[str, float]] = {a[0]: {}, b[0]: {}}
    for response_id, evaluator, value in conn.execute(_SQL_SCORES_OF_TWO, (a[0], b[0])).fetchall():
        scores[response_id][evaluator] = value
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


def next_pair(
    engine: Engine,
    annotator: AnnotatorRef,
    overlap: int = 1,
    lease_seconds: float = 120,
    origins: Sequence[str] = QUEUE_ORIGINS,
) -> PairView | None:
    """The next pair for ``annotator``, leased to them for ``lease_seconds``; None when done.

    A pair this annotator already holds a live lease on comes back first (a page reload does
    not burn a second pair). Otherwise: a pair they have not judged, fewest non-skip judgements
    first, while judgements + other annotators' live leases < ``overlap``. Skips do not count
    towards the overlap, so a skipped pair goes back to the queue for others.
    """
    if overlap < 1:
        raise StoreError("overlap must be >= 1")
    me = annotator_id(engine, annotator)
    if uses_raw_sqlite(engine):
        return _next_pair_raw(engine, me, overlap, lease_seconds, origins)
    with write_connection(engine) as conn:
        now = utcnow()
        expires = now + timedelta(seconds=lease_seconds)
        conn.execute(delete(_LEASE).where(_LEASE.c.expires_at <= now))
        pair_id = _held_lease(conn, me, now)
        if pair_id is None:
            pair_id = _pick_pair(conn, me, overlap, origins, now)
        if pair_id is None:
            return None
        _lease(conn, pair_id, me, expires)
    # Built after the write lock is released: pairs and responses are never modified, and the
    # lease is what makes the pair ours.
    with read_session(engine) as session:
        return _pair_view(session, pair_id, me, expires)


def _next_pair_raw(
    engine: Engine, me: int, overlap: int, lease_seconds: float, origins: Sequence[str]
) -> PairView | None:
    """next_pair's SQLite fast path: the same statements as the SQLAlchemy path above, as DBAPI calls."""
    origins_json = json.dumps(list(origins))
    with raw_write(engine) as conn:
        now = utcnow()
        expires = now + timedelta(seconds=lease_seconds)
        now_s = _sqlite_ts(now)
        conn.execute(_SQL_DELETE_EXPIRED_LEASES, (now_s,))
        row = conn.execute(_SQL_HELD_LEASE, (me, now_s)).fetchone()
        if row is None:
            row = conn.execute(_SQL_PICK_PAIR, (origins_json, overlap, me, me, now_s, overlap)).fetchone()
        if row is None:
            return None
        pair_id = row[0]
        conn.execute(_SQL_DELETE_LEASE, (pair_id, me))
        conn.execute(_SQL_INSERT_LEASE, (pair_id, me, _sqlite_ts(expires)))
    return _pair_view_raw(engine, pair_id, me, expires)


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
) -> int:
    """Record a vote; returns the judgement id.

    ``choice`` is relative to the SHOWN sides: ``a_better`` = the left response (labelled A)
    is better, ``b_better`` = the right one. It is stored normalised to the pair's mined
    orientation (see annotations/models.py). The same vote twice (a double click) changes
    nothing; a different vote on the same pair updates the row (a changed mind).
    """
    _check_in(choice, CHOICES, "choice")
    me = annotator_id(engine, annotator)
    a_id, b_id = _pair_sides(engine, pair_id)  # pairs never change: read outside the lock
    if shown_left_response_id not in (a_id, b_id):
        raise StoreError(f"response {shown_left_response_id} is not part of pair {pair_id}")
    stored = normalise_choice(choice, shown_left_response_id, a_id)
    counts = int(stored != "skip")
    if uses_raw_sqlite(engine):
        return _record_raw(engine, pair_id, me, stored, counts, shown_left_response_id, seconds_taken)
    j = Judgement.__table__  # type: ignore[attr-defined]
    with write_connection(engine) as conn:
        row = conn.execute(
            select(j.c.id, j.c.choice, j.c.shown_left_response_id).where(
                j.c.pair_id == pair_id, j.c.annotator_id == me
            )
        ).first()
        conn.execute(delete(_LEASE).where(_LEASE.c.pair_id == pair_id, _LEASE.c.annotator_id == me))
        now = utcnow()
        if row is None:
            values = dict(pair_id=pair_id, annotator_id=me, choice=stored, created_at=now, updated_at=now)
            result = conn.execute(
                insert(j).values(**values, shown_left_response_id=shown_left_response_id, seconds_taken=seconds_taken)
            )
            _bump(conn, pair_id, counts)
            return int(result.inserted_primary_key[0])
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


def _record_raw(
    engine: Engine, pair_id: int, me: int, stored: str, counts: int, shown_left: int, seconds: float | None
) -> int:
    """record_judgement's SQLite fast path: the same statements as the SQLAlchemy path above."""
    seconds = float(seconds) if seconds is not None else None
    with raw_write(engine) as conn:
        row = conn.execute(_SQL_FIND_JUDGEMENT, (pair_id, me)).fetchone()
        conn.execute(_SQL_DELETE_LEASE, (pair_id, me))
        now_s = _sqlite_ts(utcnow())
        if row is None:
            cur = conn.execute(_SQL_INSERT_JUDGEMENT, (pair_id, me, stored, shown_left, seconds, now_s, now_s))
            if counts:
                conn.execute(_SQL_BUMP, (counts, pair_id))
            return int(cur.lastrowid)  # type: ignore[arg-type]
        row_id, old_choice, old_shown_left = row
        if (old_choice, old_shown_left) != (stored, shown_left):
            conn.execute(_SQL_UPDATE_JUDGEMENT, (stored, shown_left, seconds, now_s, row_id))
            delta = counts - int(old_choice != "skip")
            if delta:
                conn.execute(_SQL_BUMP, (delta, pair_id))
        return int(row_id)


def _pair_sides(engine: Engine, pair_id: int) -> tuple[int, int]:
    if uses_raw_sqlite(engine):
        sides = raw_read(engine).execute(_SQL_PAIR_SIDES, (pair_id,)).fetchone()
    else:
        with read_session(engine) as session:
            sides = session.exec(select(Pair.response_a_id, Pair.response_b_id).where(Pair.id == pair_id)).first()
    if sides is None:
        raise NotFoundError(f"no pair with id {pair_id}")
    return int(sides[0]), int(sides[1])


def _bump(conn: Connection | Session, pair_id: int, delta: int) -> None:
    if delta:
        conn.execute(update(Pair).where(col(Pair.id) == pair_id).values(n_judgements=Pair.n_judgements + delta))


def undo_last(engine: Engine, annotator: AnnotatorRef, lease_seconds: float = 120) -> int | None:
    """Delete this annotator's most recent judgement; returns its pair id (None if none).

    The pair is leased back to them, so the next ``next_pair`` shows it again.
    """
    me = annotator_id(engine, annotator)
    if uses_raw_sqlite(engine):
        return _undo_raw(engine, me, lease_seconds)
    j = Judgement.__table__  # type: ignore[attr-defined]
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
        _lease(conn, row.pair_id, me, utcnow() + timedelta(seconds=lease_seconds))
        return int(row.pair_id)


def _undo_raw(engine: Engine, me: int, lease_seconds: float) -> int | None:
    """undo_last's SQLite fast path: the same statements as the SQLAlchemy path above."""
    with raw_write(engine) as conn:
        row = conn.execute(_SQL_LAST_JUDGEMENT, (me,)).fetchone()
        if row is None:
            return None
        row_id, pair_id, choice = row
        if choice != "skip":
            conn.execute(_SQL_BUMP, (-1, pair_id))
        conn.execute(_SQL_DELETE_JUDGEMENT, (row_id,))
        conn.execute(_SQL_DELETE_LEASE, (pair_id, me))
        conn.execute(_SQL_INSERT_LEASE, (pair_id, me, _sqlite_ts(utcnow() + timedelta(seconds=lease_seconds))))
        return int(pair_id)


def progress(
    engine: Engine, annotator: AnnotatorRef, overlap: int = 1, origins: Sequence[str] = QUEUE_ORIGINS
) -> tuple[int, int]:
    """(done, total) for the label tab: done = this annotator's judgements (skips included),
    total = done + pairs the queue could still hand them at this overlap."""
    me = annotator_id(engine, annotator)
    with read_session(engine) as session:
        done = session.exec(select(func.count(Judgement.id)).where(Judgement.annotator_id == me)).one()
        judged_by_me = exists().where(Judgement.pair_id == Pair.id, Judgement.annotator_id == me)
        left = session.exec(
            select(func.count(Pair.id)).where(_eligible(origins), Pair.n_judgements < overlap, ~judged_by_me)
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
            row = _row_dict(judgement)
            row.update(annotator=name_, task=task)
            out.append(row)
        return out


# --------------------------------------------------------------------------- training runs

_RUN_FIELDS = set(TrainingRun.model_fields) - {"id"}


def _run_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(fields)
    if "config" in values:
        config = values.pop("config")
        values["config_json"] = config if isinstance(config, str) else json.dumps(config, sort_keys=True)
    unknown = set(values) - _RUN_FIELDS
    if unknown:
        raise StoreError(f"unknown training run field(s): {', '.join(sorted(unknown))}")
    if "status" in values:
        _check_in(values["status"], RUN_STATUSES, "status")
        now = utcnow()
        if values["status"] == "running":
            values.setdefault("started_at", now)
        if values["status"] in TERMINAL_STATUSES:
            values.setdefault("finished_at", now)
    return values


def _run_dict(row: TrainingRun) -> dict[str, Any]:
    data = _row_dict(row)
    try:
        data["config"] = json.loads(row.config_json)
    except ValueError:
        data["config"] = None
    return data


def create_run(engine: Engine, name: str, config: Mapping[str, Any] | str | None = None, **fields: Any) -> int:
    """A new training run (status ``queued`` unless given); returns its id."""
    values = _run_values({"config": config or {}, **fields})
    with write_session(engine) as session:
        row = TrainingRun(name=name, **values)
        session.add(row)
        session.flush()
        return int(row.id)  # type: ignore[arg-type]


def update_run(engine: Engine, run_id: int, **fields: Any) -> None:
    """Set fields of a run. Status ``running`` stamps started_at, a terminal one finished_at."""
    values = _run_values(fields)
    with write_session(engine) as session:
        row = _get(session, TrainingRun, run_id, "training run")
        for key, value in values.items():
            setattr(row, key, value)
        session.add(row)


def get_run(engine: Engine, run_id: int) -> dict[str, Any] | None:
    with read_session(engine) as session:
        row = session.get(TrainingRun, run_id)
        return _run_dict(row) if row is not None else None


def list_runs(engine: Engine, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first."""
    query = select(TrainingRun).order_by(col(TrainingRun.id).desc()).limit(limit)
    if status is not None:
        query = query.where(TrainingRun.status == status)
    with read_session(engine) as session:
        return [_run_dict(r) for r in session.exec(query)]


def add_run_metrics(engine: Engine, run_id: int, step: int, metrics: Mapping[str, float]) -> None:
    """Record metric values at a step; writing the same (step, name) again overwrites."""
    with write_session(engine) as session:
        _get(session, TrainingRun, run_id, "training run")
        existing = {
            m.name: m
            for m in session.exec(
                select(RunMetric).where(
                    RunMetric.run_id == run_id, RunMetric.step == step, col(RunMetric.name).in_(list(metrics))
                )
            )
        }
        for name, value in metrics.items():
            row = existing.get(name) or RunMetric(run_id=run_id, step=step, name=name, value=0.0)
            row.value = float(value)
            session.add(row)


def run_metrics(engine: Engine, run_id: int, name: str | None = None) -> list[dict[str, Any]]:
    """[{step, name, value}] ordered by step then name."""
    query = select(RunMetric).where(RunMetric.run_id == run_id).order_by(col(RunMetric.step), col(RunMetric.name))
    if name is not None:
        query = query.where(RunMetric.name == name)
    with read_session(engine) as session:
        return [{"step": m.step, "name": m.name, "value": m.value} for m in session.exec(query)]
