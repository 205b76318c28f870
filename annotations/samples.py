"""Samples (a video and / or a short prompt), their responses and the responses' scores.

A sample is keyed by its content, not its path: ``content_key`` = sha256(video content hash,
short prompt). A text-only sample (Task 3) has ``video`` None -- the only "no video" value; an
empty string is refused here, at the store boundary -- and ``video_hash`` :data:`NO_VIDEO_HASH`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from annotations.active import refresh_for_responses
from annotations.common import check_in, check_task, get_row
from annotations.db import read_session, write_session
from annotations.errors import StoreError
from annotations.models import (
    NO_VIDEO_HASH,
    RESPONSE_SOURCES,
    TASKS,
    TEXT_ONLY_TASKS,
    Response,
    Sample,
    Score,
    content_key,
    core_table,
    stored_id,
    utcnow,
)


@dataclass(frozen=True)
class SampleInfo:
    """One sample as the miners list it; ``video`` is None for a text-only sample."""

    id: int
    video: str | None
    short_prompt: str | None
    split: str


def hash_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes: a sample is keyed by its video's content, not its path."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _check_video(video: str | None) -> None:
    # os.path.abspath("") is the cwd: an empty path would be stored as a directory, not "no video".
    if video is not None and not str(video).strip():
        raise StoreError(f"video {video!r} is not a path: a text-only sample has video=None")


def _sample_hash(video: str | None, short_prompt: str | None, video_hash: str | None) -> str:
    """The video's content hash, or NO_VIDEO_HASH for a text-only sample (which needs a short prompt)."""
    _check_video(video)
    if video is not None:
        return video_hash or hash_file(video)
    if video_hash:
        raise StoreError("video_hash given for a text-only sample (video=None)")
    if not short_prompt or not short_prompt.strip():
        raise StoreError("a text-only sample (video=None) needs a short prompt")
    return NO_VIDEO_HASH


# --------------------------------------------------------------------------- samples


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
    return stored_id(row.id)


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


@dataclass(frozen=True)
class SampleRow:
    """One sample to upsert with :func:`upsert_samples_in` (an import row, already checked)."""

    video: str | None
    short_prompt: str | None
    video_hash: str
    split: str = "train"
    detailed_prompt: str | None = None
    teacher_by_task: Mapping[int, str] | None = None


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
    """Session-level upsert of one sample; returns (sample_id, created)."""
    row = SampleRow(video, short_prompt, video_hash, split, detailed_prompt, teacher_by_task)
    return upsert_samples_in(session, [row])[0]


def _teachers(row: SampleRow) -> dict[int, str]:
    # The detailed prompt is the teacher response for every task (see annotations/importer.py for the
    # reading of the paper), for Task 3 only when there is no video; per-task overrides win.
    tasks = TASKS if row.video is not None else TEXT_ONLY_TASKS
    teachers = {t: row.detailed_prompt for t in tasks if row.detailed_prompt}
    teachers.update(row.teacher_by_task or {})
    if set(teachers) - set(tasks):
        raise StoreError(f"a text-only sample (video=None) has only task(s) {TEXT_ONLY_TASKS}")
    return teachers


def upsert_samples_in(session: Session, rows: Sequence[SampleRow]) -> list[tuple[int, bool]]:
    """Upsert many samples and their teacher responses in a few statements (the importer's write, one
    transaction of a chunk); returns (sample_id, created) per row, in order. A key seen twice is created once."""
    for row in rows:
        _check_video(row.video)
    keys = [content_key(r.video_hash, r.short_prompt) for r in rows]
    teachers = [_teachers(r) for r in rows]
    ids = _sample_ids(session, keys)
    new = {k: r for k, r in zip(keys, rows, strict=True) if k not in ids}
    if new:
        now = utcnow()
        session.execute(
            core_table(Sample).insert(),
            [
                dict(
                    video=os.path.abspath(r.video) if r.video is not None else None,
                    video_hash=r.video_hash,
                    content_key=k,
                    short_prompt=r.short_prompt,
                    split=r.split,
                    created_at=now,
                )
                for k, r in new.items()
            ],
        )
        ids.update(_sample_ids(session, list(new)))
    _add_teachers(session, [(ids[k], t) for k, t in zip(keys, teachers, strict=True)])
    seen: set[str] = set()
    out = []
    for key in keys:
        out.append((ids[key], key in new and key not in seen))
        seen.add(key)
    return out


def _sample_ids(session: Session, keys: Sequence[str]) -> dict[str, int]:
    query = select(Sample.content_key, Sample.id).where(col(Sample.content_key).in_(list(keys)))
    return {key: stored_id(sid) for key, sid in session.exec(query)}


def _add_teachers(session: Session, wanted: Sequence[tuple[int, dict[int, str]]]) -> None:
    """Teacher responses (no model, no checkpoint) not stored yet, inserted in one statement."""
    sample_ids = sorted({sid for sid, teachers in wanted if teachers})
    if not sample_ids:
        return
    query = select(Response.sample_id, Response.task, Response.text).where(
        col(Response.sample_id).in_(sample_ids),
        Response.source == "teacher",
        col(Response.model).is_(None),
        col(Response.checkpoint).is_(None),
    )
    have = set(session.exec(query))
    now, missing = utcnow(), []
    for sid, teachers in wanted:
        for task, text_ in teachers.items():
            if (sid, task, text_) not in have:
                have.add((sid, task, text_))
                missing.append(dict(sample_id=sid, task=task, text=text_, source="teacher", created_at=now))
    if missing:
        session.execute(core_table(Response).insert(), missing)


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


def list_samples(engine: Engine, split: str | None, limit: int | None = None) -> list[SampleInfo]:
    """Samples of ``split`` (None: every split), ordered by id, at most ``limit`` of them."""
    if limit is not None and limit < 0:
        raise StoreError(f"limit must be >= 0, got {limit}")
    query = select(Sample).order_by(col(Sample.id))
    if split is not None:
        query = query.where(Sample.split == split)
    if limit is not None:
        query = query.limit(limit)
    with read_session(engine) as session:
        return [SampleInfo(stored_id(s.id), s.video, s.short_prompt, s.split) for s in session.exec(query)]


# --------------------------------------------------------------------------- responses


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
    return stored_id(row.id)


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
    check_task(task)
    check_in(source, RESPONSE_SOURCES, "source")
    if not text or not text.strip():
        raise StoreError("response text is empty")
    with write_session(engine) as session:
        get_row(session, Sample, sample_id, "sample")
        return _add_response_in(session, sample_id, task, text, source, model, checkpoint, beam_rank, meta)


@dataclass(frozen=True)
class NewResponse:
    """One response to store with `add_responses`, and its scores (evaluator -> value)."""

    text: str
    source: str
    model: str | None = None
    beam_rank: int | None = None
    meta: Mapping[str, Any] | None = None
    scores: Mapping[str, float] | None = None


def add_responses(
    engine: Engine,
    sample_id: int,
    task: int,
    responses: Sequence[NewResponse],
    scores_of: Mapping[int, Mapping[str, float]] | None = None,
) -> list[int]:
    """Store responses of one (sample, task) with their scores, plus scores of responses already stored
    (``scores_of``: response id -> scores), in ONE transaction: a miner's item is one commit, not one per
    beam and score, and a kill never leaves beams without their scores. Ids in order; identical ones reused."""
    check_task(task)
    for r in responses:
        check_in(r.source, RESPONSE_SOURCES, "source")
        if not r.text or not r.text.strip():
            raise StoreError("response text is empty")
    with write_session(engine) as session:
        get_row(session, Sample, sample_id, "sample")
        ids = [
            _add_response_in(session, sample_id, task, r.text, r.source, r.model, None, r.beam_rank, r.meta)
            for r in responses
        ]
        for response_id, values in [*zip(ids, (r.scores for r in responses), strict=True), *(scores_of or {}).items()]:
            if values:
                get_row(session, Response, response_id, "response")
                for evaluator, value in values.items():
                    _add_score_in(session, response_id, evaluator, value)
        _refresh_pairs(session, [*ids, *(scores_of or {})])
        return ids


def teacher_response(engine: Engine, sample_id: int, task: int, source: str = "teacher") -> tuple[int, str] | None:
    """(id, text) of the sample's first ``source`` response for ``task`` (a teacher's by default), or None."""
    check_task(task)
    query = (
        select(Response.id, Response.text)
        .where(Response.sample_id == sample_id, Response.task == task, Response.source == source)
        .order_by(col(Response.id))
        .limit(1)
    )
    with read_session(engine) as session:
        row = session.exec(query).first()
        return (stored_id(row[0]), row[1]) if row is not None else None


def stored_beams(engine: Engine, sample_id: int, task: int, model: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, text, meta) of the beams `model` stored for the sample's ``task`` (source "model"), in id order:
    what a resumed miner checks before generating the same beams again."""
    check_task(task)
    query = (
        select(Response.id, Response.text, Response.meta_json)
        .where(
            Response.sample_id == sample_id, Response.task == task, Response.source == "model", Response.model == model
        )
        .order_by(col(Response.id))
    )
    with read_session(engine) as session:
        return [(stored_id(i), t, json.loads(m) if m else {}) for i, t, m in session.exec(query)]


# --------------------------------------------------------------------------- scores


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
        get_row(session, Response, response_id, "response")
        for evaluator, value in scores.items():
            _add_score_in(session, response_id, evaluator, value)
        _refresh_pairs(session, [response_id])


def _refresh_pairs(session: Session, response_ids: Sequence[int]) -> None:
    """The scores of these responses changed: their pairs' uncertainty (the active queue order) follows."""
    session.flush()
    refresh_for_responses(session, response_ids)


def scores_for(session: Session, response_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    """{response_id: {evaluator: value}} for the given responses (an empty dict for unscored ones)."""
    out: dict[int, dict[str, float]] = {rid: {} for rid in response_ids}
    if not response_ids:
        return out
    rows = session.exec(select(Score).where(col(Score.response_id).in_(list(response_ids))))
    for row in rows:
        out[row.response_id][row.evaluator] = row.value
    return out
