"""Tags of a sample's short prompt (what the faithfulness metric checks), stored beside the sample.

The tags are plain JSON mappings in engine.faithfulness.tags's format; annotations never reads their
meaning (it never imports the engine), it only keeps them: `set_tags` on import (a rows file's `tags`
column, annotations.importer), `tags_by_sample` for the teacher, the miners and the evaluation harness.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from annotations.db import read_session, write_session
from annotations.errors import StoreError
from annotations.models import SampleTags

#: Most tags kept per sample (a short prompt names a handful of things).
MAX_TAGS = 64


def set_tags(engine: Engine, tags: Mapping[int, Sequence[Mapping[str, Any]]]) -> int:
    """Store (replace) each sample's tag list in one transaction; returns the number of samples tagged."""
    with write_session(engine) as session:
        for sample_id, items in tags.items():
            if len(items) > MAX_TAGS:
                raise StoreError(f"sample {sample_id}: {len(items)} tags; the limit is {MAX_TAGS}")
            row = session.get(SampleTags, sample_id)
            blob = json.dumps(list(items), ensure_ascii=False)
            if row is None:
                session.add(SampleTags(sample_id=sample_id, tags_json=blob))
            else:
                row.tags_json = blob
                session.add(row)
    return len(tags)


def tags_by_sample(engine: Engine, sample_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """sample id -> its tag list, for the samples that have one."""
    ids = list(dict.fromkeys(sample_ids))
    out: dict[int, list[dict[str, Any]]] = {}
    with read_session(engine) as session:
        for start in range(0, len(ids), 500):
            rows = session.exec(select(SampleTags).where(col(SampleTags.sample_id).in_(ids[start : start + 500])))
            out.update({r.sample_id: json.loads(r.tags_json) for r in rows})
    return out
