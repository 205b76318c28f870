"""The SFT stage's data: every teacher response as a training row, before any pair exists.

The paper fine-tunes on the chosen responses first (section 3.4, "+SFT"), then mines its rejected beams from
that SFT model. Pairs do not exist yet at that point, so `export_teacher_rows` writes one row per (sample,
task) teacher response in the export's row format (training.data reads it): `chosen` is the teacher
response, `rejected` repeats it and `hdpo_term` is "sft", so no preference term can use the row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import col, select

from annotations.db import read_session
from annotations.files import atomic_write
from annotations.models import Response, Sample, stored_id

SFT_TERM = "sft"


def export_teacher_rows(engine: Engine, out_path: str | os.PathLike[str], split: str | None = None) -> int:
    """Write the teacher responses (of `split`, or all) as SFT rows to a JSONL file; returns the row count.
    The newest teacher response of a (sample, task) wins; the file is replaced atomically."""
    with read_session(engine) as session:
        query = select(Response, Sample).join(Sample, col(Sample.id) == col(Response.sample_id))
        query = query.where(Response.source == "teacher").order_by(col(Response.id))
        if split is not None:
            query = query.where(Sample.split == split)
        latest: dict[tuple[int, int], tuple[Response, Sample]] = {}
        for response, sample in session.exec(query):
            latest[(stored_id(sample.id), response.task)] = (response, sample)
    rows = [
        {
            "task": response.task,
            "video": sample.video,
            "short_prompt": sample.short_prompt,
            "sample_id": sample.id,
            "chosen": response.text,
            "rejected": response.text,
            "hdpo_term": SFT_TERM,
            "split": sample.split,
            "chosen_response_id": response.id,
        }
        for response, sample in (latest[k] for k in sorted(latest))
    ]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)
