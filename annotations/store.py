"""The annotation store's public functions, in one place: ``from annotations import store``.

Every function takes an engine and opens its own short transaction (writes through
:func:`annotations.db.write_session`), and returns plain values or dataclasses, never ORM
objects, so callers (the UI, the miners, the trainer) cannot trip over detached instances.

Where each subject lives:

- :mod:`annotations.samples`: samples (keyed by video content + short prompt; text-only samples
  have ``video=None``), responses, scores, and the listing helpers ``list_samples`` /
  ``teacher_response``;
- :mod:`annotations.pairs`: preference pairs and ``mined_pairs`` (what a resumed miner skips);
- :mod:`annotations.queue`: annotators and the labelling queue (leases, votes, undo, progress),
  with its raw-sqlite3 fast path in :mod:`annotations.queue_sqlite`; the project's queue order (fifo or
  active) in :mod:`annotations.queue_order`, the active order's uncertainty score in :mod:`annotations.active`;
- :mod:`annotations.runs`: training runs and their metrics;
- :mod:`annotations.instructions`: the task instruction templates the export builds prompts from.
"""

from __future__ import annotations

from annotations.instructions import instructions, record_instructions
from annotations.models import TEXT_ONLY_TASKS, VIDEO_TASKS
from annotations.pairs import add_pair, mined_pairs, pair_exists
from annotations.queue import (
    QUEUE_ORIGINS,
    AnnotatorInfo,
    AnnotatorRef,
    PairView,
    annotator_id,
    get_or_create_annotator,
    list_annotators,
    next_pair,
    normalise_choice,
    progress,
    recent_judgements,
    record_judgement,
    undo_last,
)
from annotations.queue_order import QUEUE_ORDERS, QueueOrder, queue_order, queue_order_info, set_queue_order
from annotations.runs import (
    TERMINAL_STATUSES,
    add_run_metrics,
    create_run,
    get_run,
    list_runs,
    run_metrics,
    update_run,
)
from annotations.samples import (
    NO_VIDEO_HASH,
    NewResponse,
    SampleInfo,
    add_response,
    add_responses,
    add_sample,
    add_score,
    add_scores,
    content_key,
    hash_file,
    list_samples,
    scores_for,
    stored_beams,
    teacher_response,
    upsert_sample,
    upsert_sample_in,
)

__all__ = [
    "NO_VIDEO_HASH",
    "QUEUE_ORDERS",
    "QUEUE_ORIGINS",
    "TERMINAL_STATUSES",
    "TEXT_ONLY_TASKS",
    "VIDEO_TASKS",
    "AnnotatorInfo",
    "AnnotatorRef",
    "NewResponse",
    "PairView",
    "QueueOrder",
    "SampleInfo",
    "add_pair",
    "add_response",
    "add_responses",
    "add_run_metrics",
    "add_sample",
    "add_score",
    "add_scores",
    "annotator_id",
    "content_key",
    "create_run",
    "get_or_create_annotator",
    "get_run",
    "hash_file",
    "instructions",
    "list_annotators",
    "list_runs",
    "list_samples",
    "mined_pairs",
    "next_pair",
    "normalise_choice",
    "pair_exists",
    "progress",
    "queue_order",
    "queue_order_info",
    "recent_judgements",
    "record_instructions",
    "record_judgement",
    "run_metrics",
    "scores_for",
    "set_queue_order",
    "stored_beams",
    "teacher_response",
    "undo_last",
    "update_run",
    "upsert_sample",
    "upsert_sample_in",
]
