"""The listing helpers the miners use: list_samples, teacher_response, mined_pairs (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from annotations import store
from annotations.errors import StoreError


def test_list_samples_by_split_in_id_order_with_limit(engine: Engine, videos: list[Path]) -> None:
    first = store.upsert_sample(engine, str(videos[0]), "a rabbit", split="train")
    held_out = store.upsert_sample(engine, str(videos[1]), "bikes", split="test")
    text_only = store.upsert_sample(engine, None, "a red kite", split="train")
    assert store.list_samples(engine, "train") == [
        store.SampleInfo(first, str(videos[0].resolve()), "a rabbit", "train"),
        store.SampleInfo(text_only, None, "a red kite", "train"),
    ]
    assert [s.id for s in store.list_samples(engine, None)] == [first, held_out, text_only]
    assert [s.id for s in store.list_samples(engine, None, limit=2)] == [first, held_out]
    assert store.list_samples(engine, "train", limit=0) == [] and store.list_samples(engine, "dev") == []
    with pytest.raises(StoreError, match="limit must be >= 0"):
        store.list_samples(engine, None, limit=-1)


def test_teacher_response_is_the_first_teacher_of_the_task(engine: Engine, video: Path) -> None:
    sample = store.upsert_sample(engine, str(video), "a rabbit")
    assert store.teacher_response(engine, sample, 1) is None
    store.add_response(engine, sample, 1, "a beam", "model", model="m")
    first = store.add_response(engine, sample, 1, "A big rabbit.", "teacher")
    store.add_response(engine, sample, 1, "A second teacher.", "teacher")
    store.add_response(engine, sample, 2, "Task two's teacher.", "teacher")
    assert store.teacher_response(engine, sample, 1) == (first, "A big rabbit.")
    assert store.teacher_response(engine, sample, 3) is None
    assert store.teacher_response(engine, sample + 1, 1) is None
    with pytest.raises(StoreError, match="task must be one of"):
        store.teacher_response(engine, sample, 4)


def test_mined_pairs_are_the_mined_dpo_pairs_of_a_sample_and_task(engine: Engine, video: Path) -> None:
    sample = store.upsert_sample(engine, str(video), "a rabbit")
    other = store.upsert_sample(engine, str(video), "another caption")
    teacher, *beams = (store.add_response(engine, sample, 1, text, "model") for text in ("t", "b1", "b2"))
    fake = store.add_response(engine, sample, 1, "t with a swapped word", "hallucination")
    store.add_pair(engine, sample, 1, teacher, beams[0])
    store.add_pair(engine, sample, 1, beams[1], beams[0])
    store.add_pair(engine, sample, 1, teacher, beams[1], origin="human_queue")  # not mined
    store.add_pair(engine, sample, 1, teacher, fake, "hallucination", "response_hallucination")  # not dpo
    t2, b2 = (store.add_response(engine, sample, 2, text, "model") for text in ("t", "b"))
    store.add_pair(engine, sample, 2, t2, b2)  # another task
    o1, o2 = (store.add_response(engine, other, 1, text, "model") for text in ("t", "b"))
    store.add_pair(engine, other, 1, o1, o2)  # another sample
    assert store.mined_pairs(engine, sample, 1) == {(teacher, beams[0]), (beams[1], beams[0])}
    assert store.mined_pairs(engine, sample, 2) == {(t2, b2)}
    assert store.mined_pairs(engine, sample, 3) == set()
