"""SQLModel tables: samples, responses, scores, pairs, annotators, judgements, leases, training runs.

Orientation conventions (export and stats rely on them):
- ``Pair.response_a_id`` is the response the evaluator / teacher preferred ("chosen" when mined),
  ``Pair.response_b_id`` the rejected one.
- ``Judgement.choice`` is stored NORMALISED to that orientation: ``a_better`` means the human
  preferred ``response_a``, whichever side it was shown on. ``shown_left_response_id`` records the
  side, so the raw click can always be reconstructed. ``store.record_judgement`` takes the choice
  relative to the SHOWN sides (A = left, B = right) and does the normalising in one place.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import Column, Index, Table, Text, UniqueConstraint, inspect
from sqlmodel import Field, SQLModel

TASKS = (1, 2, 3)
#: The one definition of which tasks see a video: Task 1 (video) and Task 2 (video + caption).
VIDEO_TASKS = (1, 2)
#: Tasks a text-only sample (video None) can have: Task 3 (beautify a short prompt).
TEXT_ONLY_TASKS = tuple(t for t in TASKS if t not in VIDEO_TASKS)
#: Tasks whose input includes the short prompt y_s (Task 2 as the caption, Task 3 as the input);
#: their instruction templates carry the ``{y_s}`` placeholder.
PROMPT_TASKS = (2, 3)
SHORT_PROMPT_PLACEHOLDER = "{y_s}"
#: ``Sample.video_hash`` of a text-only sample (no video): its key is then the short prompt's hash.
NO_VIDEO_HASH = ""
CHOICES = ("a_better", "b_better", "tie", "both_bad", "skip")
DECISIVE = ("a_better", "b_better")
ORIGINS = ("mined", "hallucination", "human_queue")
HDPO_TERMS = ("dpo", "response_hallucination", "input_hallucination", "task_hallucination")
ROLES = ("annotator", "admin")
RUN_STATUSES = ("queued", "running", "finished", "failed", "cancelled")
#: "teacher-unfaithful": the best of a best-of-N teacher's candidates when none kept the prompt's elements
#: (engine.teacher), kept so that a rerun does not sample it again; never read as a teacher response.
RESPONSE_SOURCES = ("teacher", "model", "hallucination", "human", "teacher-unfaithful")


def core_table(model: type[SQLModel]) -> Table:
    """The SQLAlchemy Core table of a table model, for Core statements. SQLModel's metaclass sets ``__table__``
    but declares no such attribute, so a type checker cannot see it; the mapper's table is the same object."""
    table = inspect(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def stored_id(value: int | None) -> int:
    """A primary key the database assigned. SQLModel types every ``id`` as ``int | None`` (None until the row is
    flushed); a row read back, or flushed, has one."""
    if value is None:
        raise ValueError("the row has no id: it was never flushed")
    return int(value)


def utcnow() -> datetime:
    """Aware UTC. SQLModel stores datetimes as UTC (timestamptz on PostgreSQL, offset-free text on
    SQLite) and returns them aware, so comparisons (lease expiry) work the same on both."""
    return datetime.now(UTC)


def content_key(video_hash: str, short_prompt: str | None) -> str:
    """``Sample.content_key``: sha256 of (video content hash, short prompt)."""
    return hashlib.sha256(f"{video_hash}\0{short_prompt or ''}".encode()).hexdigest()


class Sample(SQLModel, table=True):
    """One input: a video (path + content hash) and its short prompt, or a short prompt alone.

    A text-only sample (Task 3: beautify a prompt) has ``video`` None, never "", and ``video_hash`` ""
    (:data:`NO_VIDEO_HASH`), so it is keyed by its short prompt's hash alone.
    """

    id: int | None = Field(default=None, primary_key=True)
    video: str | None = None  # nullable since schema v3
    video_hash: str = Field(index=True)
    # sha256(video_hash, short_prompt): the same clip with another caption is another sample.
    content_key: str = Field(unique=True)
    short_prompt: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    split: str = Field(default="train", index=True)
    created_at: datetime = Field(default_factory=utcnow)


class Response(SQLModel, table=True):
    """A candidate output for one (sample, task): a teacher caption, a beam, a hallucinated copy."""

    __table_args__ = (Index("ix_response_sample_task", "sample_id", "task"),)

    id: int | None = Field(default=None, primary_key=True)
    sample_id: int = Field(foreign_key="sample.id")
    task: int
    text: str = Field(sa_column=Column(Text, nullable=False))
    source: str
    model: str | None = None
    checkpoint: str | None = None
    beam_rank: int | None = None
    # JSON record of what an augmentation changed (spans, categories), so training can reproduce it.
    meta_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class Score(SQLModel, table=True):
    """One evaluator's score of one response; re-scoring with the same evaluator overwrites."""

    __table_args__ = (UniqueConstraint("response_id", "evaluator"),)

    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="response.id", index=True)
    evaluator: str
    value: float
    created_at: datetime = Field(default_factory=utcnow)


class Pair(SQLModel, table=True):
    """A preference pair in mined orientation: a = preferred, b = rejected."""

    __table_args__ = (
        Index("ix_pair_queue", "n_judgements", "id"),
        Index("ix_pair_sample_task", "sample_id", "task", "origin"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sample_id: int = Field(foreign_key="sample.id")
    task: int
    response_a_id: int = Field(foreign_key="response.id")
    response_b_id: int = Field(foreign_key="response.id")
    origin: str = "mined"
    hdpo_term: str = "dpo"
    # The rejected side's conditioning when it differs from the sample's (HDPO Eq. 9-13):
    # a perturbed video or short prompt (input hallucination), or another task (task hallucination).
    rejected_video: str | None = None
    rejected_short_prompt: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    rejected_task: int | None = None
    meta_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Non-skip judgements so far; kept in step by record_judgement / undo_last in the same
    # transaction, so the queue can walk an index instead of counting per pair.
    n_judgements: int = 0
    # How uncertain the pair's label is from its scores, in [0, 1] (0: no comparable scores); the active
    # queue order serves the highest first. Written with the pair and its scores (annotations.active).
    uncertainty: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=utcnow)


# The active queue order's walk (fewest judgements, then most uncertain, then oldest); since schema v5.
_pair_columns = core_table(Pair).c
Index("ix_pair_active", _pair_columns.n_judgements, _pair_columns.uncertainty.desc(), _pair_columns.id)


class TaskInstruction(SQLModel, table=True):
    """The instruction template q a task's pairs are generated under (since schema v4).

    The export builds each row's ``prompt`` from it, ``{y_s}`` replaced by the short prompt, so
    annotations never needs the engine's task definitions. The engine records them
    (``engine.tasks.record_instructions``) through ``instructions.record_instructions``.
    """

    __tablename__ = "task_instruction"

    task: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    template: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class Annotator(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    role: str = "annotator"
    created_at: datetime = Field(default_factory=utcnow)


class Judgement(SQLModel, table=True):
    """One annotator's verdict on one pair; changing one's mind updates the row."""

    __table_args__ = (UniqueConstraint("pair_id", "annotator_id"),)

    id: int | None = Field(default=None, primary_key=True)
    pair_id: int = Field(foreign_key="pair.id", index=True)
    annotator_id: int = Field(foreign_key="annotator.id", index=True)
    choice: str  # normalised to the pair's a/b orientation, see module docstring
    shown_left_response_id: int = Field(foreign_key="response.id")
    seconds_taken: float | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class PairLease(SQLModel, table=True):
    """A pair handed to an annotator and not yet judged; expires after ``lease_seconds``."""

    __tablename__ = "pair_lease"
    __table_args__ = (UniqueConstraint("pair_id", "annotator_id"),)

    id: int | None = Field(default=None, primary_key=True)
    pair_id: int = Field(foreign_key="pair.id", index=True)
    annotator_id: int = Field(foreign_key="annotator.id", index=True)
    expires_at: datetime = Field(index=True)


class ProjectSetting(SQLModel, table=True):
    """A setting of this annotation project (one database = one project), set by an admin (since schema v5)."""

    __tablename__ = "project_setting"

    key: str = Field(primary_key=True)
    value: str
    updated_by: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class TrainingRun(SQLModel, table=True):
    __tablename__ = "training_run"

    id: int | None = Field(default=None, primary_key=True)
    name: str
    config_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    status: str = Field(default="queued", index=True)
    pid: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    checkpoint_dir: str | None = None
    log_path: str | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    progress: float = 0.0
    step: int = 0
    total_steps: int | None = None


class RunMetric(SQLModel, table=True):
    __tablename__ = "run_metric"
    __table_args__ = (UniqueConstraint("run_id", "step", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="training_run.id", index=True)
    step: int
    name: str
    value: float


class SampleTags(SQLModel, table=True):
    """The tagged elements of a sample's short prompt (engine.faithfulness.tags format), as JSON: what a
    detailed prompt written from it must keep. A new table (created by create_all), so no schema step."""

    __tablename__ = "sample_tags"

    sample_id: int = Field(foreign_key="sample.id", primary_key=True)
    tags_json: str = Field(sa_column=Column(Text, nullable=False))
