"""The teacher step: writes what is missing, resumes, shards without doing a sample twice, fails in one line."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from annotations.db import open_db, read_session
from annotations.models import Response
from annotations.store import add_response, upsert_sample
from engine.errors import InputError
from engine.service import Studio
from engine.shards import Shard, resolve_shard
from engine.teacher import TeacherConfig, write_teacher_responses
from tests.engine.conftest import ScriptedJudge


@pytest.fixture
def db(tmp_path, sample_video):
    engine = open_db(f"sqlite:///{tmp_path / 'studio.db'}")
    first = upsert_sample(engine, str(sample_video), "a rabbit in a meadow", "train")
    upsert_sample(engine, str(sample_video), "a big bunny wakes up", "test")
    upsert_sample(engine, None, "a cat naps on a sofa", "train")  # text-only: Task 3 alone
    add_response(engine, first, 1, "An existing VILA caption.", "teacher")
    return engine


def teacher_rows(engine) -> list[tuple[int, int, str]]:
    with read_session(engine) as session:
        rows = session.exec(select(Response).where(Response.source == "teacher"))
        return sorted((r.sample_id, r.task, r.text) for r in rows)


class Counter(ScriptedJudge):
    """A teacher double: a numbered caption per request; raises after `stop_after` requests."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__(self.reply, model_name="double")
        self.calls, self.stop_after = 0, stop_after

    def reply(self, prompts: list[str]) -> list[str]:
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt  # a kill between two items
        return [f"A detailed caption number {self.calls}." for _ in prompts]


def test_teacher_writes_what_is_missing_and_a_rerun_writes_nothing(db):
    studio = Studio(backends={"double": Counter()})
    report = write_teacher_responses(studio, db, TeacherConfig(model="double"), progress=False)
    # sample 1: tasks 2, 3 (task 1 had one); sample 2: tasks 1-3; text-only sample 3: task 3 only
    assert (report.written, report.skipped_done, report.skipped_unusable) == (6, 1, 2)
    assert report.models == ["double"]
    rows = teacher_rows(db)
    assert [(s, t) for s, t, _ in rows] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3), (3, 3)]
    assert (1, 1, "An existing VILA caption.") in rows
    again = write_teacher_responses(studio, db, TeacherConfig(model="double"), progress=False)
    assert (again.written, again.skipped_done) == (0, 7) and teacher_rows(db) == rows


def test_a_killed_run_resumes_without_duplicates(db):
    with pytest.raises(KeyboardInterrupt):
        write_teacher_responses(Studio(backends={"double": Counter(stop_after=2)}), db, TeacherConfig(model="double"))
    assert len(teacher_rows(db)) == 1 + 2  # the existing one and the two written before the kill
    report = write_teacher_responses(Studio(backends={"double": Counter()}), db, TeacherConfig(model="double"))
    assert report.written == 4 and len(teacher_rows(db)) == 7
    assert len({(s, t) for s, t, _ in teacher_rows(db)}) == 7  # one per (sample, task)


def test_shards_split_the_samples_and_together_do_each_once(db):
    reports = [
        write_teacher_responses(
            Studio(backends={"double": Counter()}), db, TeacherConfig(model="double", shard=Shard(i, 2)), False
        )
        for i in (0, 1)
    ]
    assert [r.shard for r in reports] == ["shard 0/2", "shard 1/2"]
    assert [r.written for r in reports] == [3, 3]  # sample 2 (tasks 1-3) | samples 1 (tasks 2, 3) and 3 (task 3)
    rows = teacher_rows(db)
    assert len(rows) == 7 and len({(s, t) for s, t, _ in rows}) == 7


def test_the_real_path_with_a_tiny_model_and_a_task3_teacher(db):
    config = TeacherConfig(model="tiny-random-vlm", text_model="tiny-random-lm", max_new_tokens=6, split="train")
    report = write_teacher_responses(Studio(), db, config, progress=False)
    assert report.written == 3 and sorted(report.models) == ["tiny-random-lm", "tiny-random-vlm"]
    with read_session(db) as session:
        models = {
            (r.sample_id, r.task): r.model
            for r in session.exec(select(Response).where(Response.source == "teacher", Response.model.is_not(None)))
        }
    assert models == {(1, 2): "tiny-random-vlm", (1, 3): "tiny-random-lm", (3, 3): "tiny-random-lm"}


def test_cli_teacher_sharded_json_and_a_model_that_cannot_load(db, capsys, monkeypatch, tmp_path):
    from engine.cli import main

    url = str(db.url)
    argv = ["teacher", "--db", url, "--model", "tiny-random-vlm", "--max-new-tokens", "4", "--no-progress"]
    assert main([*argv, "--shard", "1/2", "--task", "3", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["shard"], payload["written"]) == ("shard 1/2", 2)  # samples 1 and 3, task 3
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv("VIDPROMPTER_MODEL_QWEN2_5_VL_7B", raising=False)
    before = teacher_rows(db)
    assert main(["teacher", "--db", url, "--model", "qwen2.5-vl-7b", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model 'qwen2.5-vl-7b' cannot load")
    assert "VIDPROMPTER_MODEL_QWEN2_5_VL_7B" in err[0] and teacher_rows(db) == before  # nothing written
    assert main([*argv, "--shard", "2/2"]) == 2
    assert "shard must be i/n with 0 <= i < n, got 2/2" in capsys.readouterr().err


def test_the_shard_comes_from_the_launcher_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_shard(None) == Shard(3, 4, local_rank=1)
    assert resolve_shard("0/2") == Shard(0, 2)  # an explicit --shard wins
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert resolve_shard(None) == Shard(0, 1)
    with pytest.raises(InputError, match="must look like i/n"):
        Shard.parse("half")
    assert [s for s in range(10) if Shard(1, 3).owns(s)] == [1, 4, 7]


@pytest.mark.postgres
def test_shards_on_postgresql_write_each_teacher_response_once(sample_video):
    """Shards on many machines share a PostgreSQL database: the same split, the same single writes."""
    from threading import Thread

    from annotations.db import init_db
    from tests.annotations.conftest import _pg_engine

    engine = _pg_engine()
    try:
        init_db(engine)
        for i in range(4):
            upsert_sample(engine, str(sample_video), f"caption {i}", "train")
        upsert_sample(engine, None, "a text-only prompt", "train")
        reports = {}

        def shard(i: int) -> None:
            config = TeacherConfig(model="double", shard=Shard(i, 2))
            reports[i] = write_teacher_responses(Studio(backends={"double": Counter()}), engine, config, False)

        threads = [Thread(target=shard, args=(i,)) for i in (0, 1)]  # concurrently, as two machines would
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert reports[0].written + reports[1].written == 4 * 3 + 1
        rows = teacher_rows(engine)
        assert len(rows) == 13 and len({(s, t) for s, t, _ in rows}) == 13
    finally:
        from sqlalchemy import text

        engine.dispose()
        with engine.admin.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(text(f"DROP SCHEMA {engine.info_schema} CASCADE"))  # type: ignore[attr-defined]


class BestOf:
    """A sampling double: every request gets the same candidates (as many as asked)."""

    model_name, random_weights = "sampler", False

    def __init__(self, candidates: list[str]) -> None:
        self.candidates, self.asked = candidates, []

    def generate(self, requests, params):
        self.asked.append((len(requests), params.num_return_sequences, params.do_sample))
        return [list(self.candidates[: params.num_return_sequences]) for _ in requests]

    @property
    def tokenizer(self):
        return lambda text, add_special_tokens=False: {"input_ids": text.split()}


def test_best_of_n_keeps_the_faithful_tidied_candidate_and_skips_prompts_none_keeps(tmp_path):
    from annotations.tags import set_tags

    engine = open_db(f"sqlite:///{tmp_path / 'studio.db'}")
    cat = upsert_sample(engine, None, "a grey cat naps on a red sofa", "train")
    upsert_sample(engine, None, "three dogs run in a park", "train")  # tags read off it: three dogs
    set_tags(engine, {cat: [{"kind": "object", "value": "cat"}, {"kind": "color", "value": "red", "object": "sofa"}]})
    candidates = [
        "A cat sleeps. The sea. The sea.",  # drops the red sofa
        "A grey cat naps on a red sofa by the window while rain taps the glass. The camera slowly pushes in. "
        "The room is warm. The room is warm.",  # keeps both; its repeat is tidied away
        "A dog runs in a field of flowers under a blue sky.",
    ] * 3
    backend = BestOf(candidates)
    config = TeacherConfig(model="sampler", best_of=8, batch=4, max_new_tokens=64)
    report = write_teacher_responses(Studio(backends={"sampler": backend}), engine, config, progress=False)
    assert backend.asked == [(2, 8, True)]  # one batched sampling call for both text-only samples
    assert (report.written, report.skipped_unfaithful) == (1, 1)  # no candidate has three dogs
    [(sample, task, text)] = teacher_rows(engine)
    assert (sample, task) == (cat, 3)
    assert text == candidates[1].removesuffix(" The room is warm.")
    with read_session(engine) as session:
        meta = json.loads(session.exec(select(Response.meta_json).where(Response.sample_id == cat)).one())
    assert meta["best_of"] == 8 and meta["all_kept"] and meta["tidied"] and meta["tags"] == "stored"


def test_a_prompt_no_sample_keeps_is_recorded_and_not_sampled_again(tmp_path):
    """A rerun (another loop over the same database) sampled the dropped prompts again: 33 prompts x 8 samples,
    12 minutes, each time. The drop is now a `teacher-unfaithful` response; a rerun skips it, and
    `retry_unfaithful` samples it again."""
    from dataclasses import replace

    engine = open_db(f"sqlite:///{tmp_path / 'studio.db'}")
    dogs = upsert_sample(engine, None, "three dogs run in a park", "train")
    backend = BestOf(["A cat sleeps on a sofa.", "A dog runs in a field."] * 4)
    studio = Studio(backends={"sampler": backend})
    config = TeacherConfig(model="sampler", best_of=8, batch=4, max_new_tokens=64)
    first = write_teacher_responses(studio, engine, config, progress=False)
    assert (first.written, first.skipped_unfaithful) == (0, 1) and len(backend.asked) == 1
    with read_session(engine) as session:
        [(source, sample)] = session.exec(select(Response.source, Response.sample_id)).all()
    assert (source, sample) == ("teacher-unfaithful", dogs)
    assert teacher_rows(engine) == []  # never a teacher response: SFT and mining do not see it
    again = write_teacher_responses(studio, engine, config, progress=False)
    assert (again.items, again.skipped_unfaithful_before, len(backend.asked)) == (0, 1, 1)  # not sampled again
    write_teacher_responses(studio, engine, replace(config, retry_unfaithful=True), progress=False)
    assert len(backend.asked) == 2


def test_focus_words_ends_the_chosen_response_once_the_prompt_is_said(tmp_path):
    """Issue 21: SFT on whole best-of-8 samples (their drift into unrelated people and noun lists included)
    taught SmolLM2 to drift: 74 % of its outputs repeated a sentence. With focus_words the chosen response is
    its leading sentences that say every element, then full sentences up to the cap."""
    engine = open_db(f"sqlite:///{tmp_path / 'studio.db'}")
    cat = upsert_sample(engine, None, "a cat naps on a sofa", "train")
    said = "A cat naps on a soft sofa by the window. Rain taps the glass while the light fades slowly."
    drift = " The beauty of the room. A man in a hat reads a newspaper in the corner of the kitchen."
    backend = BestOf([said + drift] * 8)
    config = TeacherConfig(model="sampler", best_of=8, max_new_tokens=64, focus_words=30)
    write_teacher_responses(Studio(backends={"sampler": backend}), engine, config, progress=False)
    [(sample, _, text)] = teacher_rows(engine)
    assert (sample, text) == (cat, said)
    with read_session(engine) as session:
        meta = json.loads(session.exec(select(Response.meta_json).where(Response.sample_id == cat)).one())
    assert meta["focus_words"] == 30
