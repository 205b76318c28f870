"""Pair mining on the tiny random VLM: 2 rejected per (sample, task), lowest scores, idempotent reruns."""

from __future__ import annotations

import pytest
from sqlmodel import select

from annotations.db import open_db, read_session
from annotations.models import Pair, Response, Score
from annotations.store import upsert_sample
from engine.errors import ModelLoadError
from engine.evaluators.registry import get_preset
from engine.evaluators.tiny import ensure_tiny_evaluator
from engine.mining import ENSEMBLE_SCORE, JUDGE_SCORE, MiningConfig
from engine.service import Studio, StudioConfig
from tests.engine.conftest import ScriptedJudge

TINY = ("tiny-random-clip", "tiny-random-long-clip")


def fake_judge(prompts: list[str]) -> list[str]:
    """A deterministic stand-in for the LLM judge: a score from the description's length."""
    return [f"Evaluation evidence: ok.\nScore: {len(p) % 11}" for p in prompts]


@pytest.fixture
def db(tmp_path, sample_video, monkeypatch):
    for name in TINY:
        monkeypatch.setenv(get_preset(name).env_var, str(ensure_tiny_evaluator(name, root=tmp_path / "ev")))
    engine = open_db(f"sqlite:///{tmp_path / 'studio.db'}")
    upsert_sample(engine, str(sample_video), "a rabbit in a meadow", "train")
    upsert_sample(engine, str(sample_video), "a big bunny wakes up", "train", detailed_prompt="A large white rabbit.")
    upsert_sample(engine, str(sample_video), "held-out", "test")
    return engine


def rows(engine, model):
    with read_session(engine) as session:
        return list(session.exec(select(model)))


def studio() -> Studio:
    return Studio(StudioConfig(judge_model="judge"), backends={"judge": ScriptedJudge(fake_judge)})


def run(db):
    config = MiningConfig(tasks=(1, 3), model="tiny-random-vlm", evaluators=TINY, max_new_tokens=12)
    return studio().mine(db, config, progress=False)


def test_mining_writes_two_rejected_per_sample_and_is_idempotent(db):
    report = run(db)
    assert report.items == 4 and report.mined == 4 and report.short_of_rejected == 0
    pairs = rows(db, Pair)
    assert len(pairs) == report.pairs_written == 8  # 2 train samples x 2 tasks x 2 rejected
    responses = {r.id: r for r in rows(db, Response)}
    scores: dict[int, dict[str, float]] = {}
    for s in rows(db, Score):
        scores.setdefault(s.response_id, {})[s.evaluator] = s.value
    for sample_id, task in {(p.sample_id, p.task) for p in pairs}:
        group = [p for p in pairs if (p.sample_id, p.task) == (sample_id, task)]
        assert len(group) == 2 and len({p.response_a_id for p in group}) == 1
        assert all(p.origin == "mined" and p.hdpo_term == "dpo" for p in group)
        key = ENSEMBLE_SCORE if task == 1 else JUDGE_SCORE
        chosen = responses[group[0].response_a_id]
        candidates = [r for r in responses.values() if (r.sample_id, r.task, r.source) == (sample_id, task, "model")]
        if chosen.source == "teacher":
            assert chosen.text == "A large white rabbit."
            pool = sorted(scores[r.id][key] for r in candidates if r.text != chosen.text)
        else:  # no teacher: the best candidate is chosen
            assert scores[chosen.id][key] == max(scores[r.id][key] for r in candidates)
            pool = sorted(scores[r.id][key] for r in candidates if r.id != chosen.id)
        assert sorted(scores[p.response_b_id][key] for p in group) == pool[:2]  # the two lowest
        if task == 1:
            assert set(TINY) <= set(scores[group[0].response_b_id])  # every member's score kept
    assert {p.sample_id for p in pairs} == {1, 2}  # the test split is not mined

    n_responses, n_scores = len(responses), len(rows(db, Score))
    again = run(db)
    assert again.pairs_written == 0 and again.skipped_done == 4
    assert len(rows(db, Pair)) == 8 and len(rows(db, Response)) == n_responses and len(rows(db, Score)) == n_scores


def test_a_partial_run_is_completed_without_duplicates(db):
    run(db)
    with read_session(db) as session:
        victim = session.exec(select(Pair).where(Pair.task == 1)).first()
    from annotations.db import write_session

    with write_session(db) as session:
        session.delete(session.get(Pair, victim.id))
    report = run(db)
    assert report.pairs_written == 1 and report.skipped_done == 3
    assert len(rows(db, Pair)) == 8


def test_mine_pairs_cli(db, tmp_path, capsys):
    import json

    from engine.cli import main

    url = str(db.url)
    argv = ["mine-pairs", "--db", url, "--task", "1", "--model", "tiny-random-vlm", "--max-new-tokens", "8"]
    argv += ["--evaluator", "tiny-random-clip", "--no-progress", "--limit", "1", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["pairs_written"] == 2 and payload["items"] == 1
    assert main(["mine-pairs", "--db", url, "--rejected", "5", "--num-beams", "5"]) == 2
    assert "rejected must be" in capsys.readouterr().err


def test_text_only_samples_skip_video_tasks_and_instructions_are_recorded(db):
    from annotations.store import instructions
    from engine.tasks import instruction_templates

    upsert_sample(db, None, "a cat naps on a sofa", "train")  # text-only: video is None, never ""
    config = MiningConfig(tasks=(1,), model="tiny-random-vlm", evaluators=TINY, max_new_tokens=8)
    report = studio().mine(db, config, progress=False)
    assert report.items == 3 and report.mined == 2 and report.skipped_unusable == 1  # no video: no Task 1
    assert instructions(db) == instruction_templates()  # the export builds prompts from these


def test_an_unusable_evaluator_stops_mining_before_any_generation(db, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv(get_preset("long-clip-l").env_var, raising=False)
    config = MiningConfig(tasks=(1,), model="tiny-random-vlm", evaluators=(*TINY, "long-clip-l"))
    with pytest.raises(ModelLoadError, match="long-clip-l not used: .*VIDPROMPTER_EVALUATOR_LONG_CLIP_L"):
        studio().mine(db, config, progress=False)
    assert [r for r in rows(db, Response) if r.source == "model"] == []  # nothing generated, nothing stored
