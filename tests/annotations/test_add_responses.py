"""add_responses: a miner's item (beams, their length records, every score) is one transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from annotations import store
from annotations.errors import StoreError
from annotations.models import Response, Score


def test_beams_and_scores_land_together_and_repeats_are_reused(engine: Engine) -> None:
    sample = store.upsert_sample(engine, None, "a cat naps")
    teacher = store.add_response(engine, sample, 3, "A ginger cat sleeps.", "teacher")
    rows = [
        store.NewResponse("beam one", "model", model="m", beam_rank=0, meta={"at_limit": True}, scores={"j": 2.0}),
        store.NewResponse("beam two", "model", model="m", beam_rank=1, scores={"j": 5.0}),
    ]
    ids = store.add_responses(engine, sample, 3, rows, {teacher: {"j": 8.0}})
    assert store.add_responses(engine, sample, 3, rows) == ids  # the same beams again: the same rows
    with Session(engine) as session:
        scores = {(s.response_id, s.evaluator): s.value for s in session.exec(select(Score))}
        metas = [r.meta_json for r in session.exec(select(Response).where(Response.source == "model"))]
    assert scores == {(ids[0], "j"): 2.0, (ids[1], "j"): 5.0, (teacher, "j"): 8.0}
    assert metas == ['{"at_limit": true}', None]


def test_a_failure_part_way_writes_nothing(engine: Engine) -> None:
    sample = store.upsert_sample(engine, None, "a dog runs")
    beam = store.NewResponse("beam", "model", scores={"j": 1.0})
    with pytest.raises(StoreError, match="999"):
        store.add_responses(engine, sample, 3, [beam], {999: {"j": 1.0}})  # no response 999: all rolled back
    with Session(engine) as session:
        assert list(session.exec(select(Response))) == [] and list(session.exec(select(Score))) == []
