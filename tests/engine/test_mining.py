"""Pair mining on the tiny random VLM: 2 rejected per (sample, task), lowest scores, idempotent reruns."""

from __future__ import annotations

import json

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
from engine.types import Task
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
        key = ENSEMBLE_SCORE  # every task of a sample with a video, Task 3 included (section 3.5)
        chosen = responses[group[0].response_a_id]
        candidates = [r for r in responses.values() if (r.sample_id, r.task, r.source) == (sample_id, task, "model")]
        if chosen.source == "teacher":
            assert chosen.text == "A large white rabbit."
            pool = sorted(scores[r.id][key] for r in candidates if r.text != chosen.text)
        else:  # no teacher: the best candidate is chosen
            assert scores[chosen.id][key] == max(scores[r.id][key] for r in candidates)
            pool = sorted(scores[r.id][key] for r in candidates if r.id != chosen.id)
        assert sorted(scores[p.response_b_id][key] for p in group) == pool[:2]  # the two lowest
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
    report = run(db)  # killed between its two pair writes: its unpaired usable beam is paired now
    assert report.pairs_written == 1 and report.skipped_done == 3
    assert len(rows(db, Pair)) == 8


def test_an_item_mined_short_of_rejected_is_not_mined_again(db):
    """Beam search is deterministic: an item that ended with fewer usable rejected beams than asked got the same
    beams again on every rerun, stored as new rows (the HDPO loop re-mined 20 such prompts after the DPO loop).
    An item whose stored beams are all paired is done; `remine` mines it again."""
    from annotations.db import write_session

    run(db)
    with write_session(db) as session:  # item (2, Task 1) as if its beams had held one distinct usable text
        pairs = session.exec(select(Pair).where(Pair.task == 1, Pair.sample_id == 2)).all()
        kept = pairs[0].response_b_id
        session.delete(pairs[1])
    gone = [r.id for r in rows(db, Response) if (r.sample_id, r.task, r.source) == (2, 1, "model") and r.id != kept]
    with write_session(db) as session:
        for score in session.exec(select(Score).where(Score.response_id.in_(gone))):  # type: ignore[attr-defined]
            session.delete(score)
    with write_session(db) as session:
        for r in session.exec(select(Response).where(Response.id.in_(gone))):  # type: ignore[union-attr]
            session.delete(r)
    n_responses = len(rows(db, Response))
    report = run(db)
    assert (report.pairs_written, report.skipped_done, report.skipped_mined_before) == (0, 3, 1)
    assert len(rows(db, Response)) == n_responses and len(rows(db, Pair)) == 7
    # Beams of another checkpoint that shares the name (".../model") are not this model's.
    from engine.mining import Miner

    config = MiningConfig(tasks=(1, 3), model="tiny-random-vlm", evaluators=TINY, max_new_tokens=12)
    existing = {(p.response_a_id, p.response_b_id) for p in rows(db, Pair) if (p.sample_id, p.task) == (2, 1)}
    assert Miner(studio(), db, config).mined_before(2, Task(1), None, existing)
    with write_session(db) as session:
        for r in session.exec(select(Response).where(Response.id == kept)):
            r.meta_json = json.dumps({**json.loads(r.meta_json or "{}"), "mined_by": "other/run/model"})
            session.add(r)
    assert not Miner(studio(), db, config).mined_before(2, Task(1), None, existing)
    remine = MiningConfig(tasks=(1, 3), model="tiny-random-vlm", evaluators=TINY, max_new_tokens=12, remine=True)
    assert studio().mine(db, remine, progress=False).mined == 1


def test_mine_pairs_cli(db, tmp_path, capsys):
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


# -- issue 12 items 1, 2, 7: the ensemble scores Task 3 where there is a video, beams come from the policy,
# the budget covers the teacher and a beam that reaches it is never a rejected response --------------------


def test_task3_is_scored_against_the_video_and_the_judge_only_scores_text_only_samples(db):
    upsert_sample(db, None, "a cat naps on a sofa", "train", detailed_prompt="A ginger cat sleeps on a sofa.")
    judge = ScriptedJudge(fake_judge)
    config = MiningConfig(tasks=(3,), model="tiny-random-vlm", evaluators=TINY, max_new_tokens=8)
    report = Studio(StudioConfig(judge_model="judge"), backends={"judge": judge}).mine(db, config, progress=False)
    assert report.scorers == {"ensemble": 2, "judge": 1}
    scorers = {(p.sample_id, json.loads(p.meta_json)["scorer"]) for p in rows(db, Pair)}
    assert scorers == {(1, "ensemble:" + "+".join(TINY)), (2, "ensemble:" + "+".join(TINY)), (4, JUDGE_SCORE)}
    judged = {line for prompt in judge.prompts for line in prompt.splitlines() if line.startswith("Description:")}
    assert "Description: A ginger cat sleeps on a sofa." in judged
    assert "Description: A large white rabbit." not in judged  # the video sample's teacher: never judged

    explicit = MiningConfig(
        tasks=(3,), model="tiny-random-vlm", evaluators=TINY, max_new_tokens=8, split="test", task3_scorer="judge"
    )
    again = Studio(StudioConfig(judge_model="judge"), backends={"judge": ScriptedJudge(fake_judge)})
    assert again.mine(db, explicit, progress=False).scorers == {"judge": 1}  # only when asked for


def test_mining_defaults_to_the_policy_the_training_config_names(db, tmp_path, capsys):
    import yaml

    from engine.cli import main
    from engine.mining import policy_model

    assert MiningConfig().generation_model() == "qwen2.5-vl-7b"  # configs/hdpo.yaml's model.name
    assert MiningConfig(model="tiny-random-vlm").generation_model() == "tiny-random-vlm"  # --model wins
    assert MiningConfig(train_config=None).generation_model() is None  # opt out: the Studio's per-task default
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"model": {"name": "tiny-random-vlm"}}))
    (tmp_path / "child.yaml").write_text(yaml.safe_dump({"base": "base.yaml", "optim": {"lr": 1e-3}}))
    assert policy_model(tmp_path / "child.yaml") == "tiny-random-vlm"
    argv = ["mine-pairs", "--db", str(db.url), "--config", str(tmp_path / "child.yaml"), "--task", "1"]
    argv += ["--evaluator", "tiny-random-clip", "--max-new-tokens", "6", "--limit", "1", "--no-progress", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["model"] == "tiny-random-vlm" and payload["pairs_written"] == 2
    models = {r.model for r in rows(db, Response) if r.source == "model"}
    assert models == {"tiny-random-vlm"}
    assert main(["mine-pairs", "--db", str(db.url), "--config", str(tmp_path / "none.yaml")]) == 2
    assert "training config" in capsys.readouterr().err


class Beams:
    """A generation double (not random weights) with a whitespace tokenizer: fixed beams, records budgets."""

    name = "double"

    def __init__(self, beams: list[str], random_weights: bool = False) -> None:
        self.beams, self.random_weights, self.model_name = beams, random_weights, "beams"
        self.budgets: list[int] = []

    def tokenizer(self, text: str, add_special_tokens: bool = False) -> dict[str, list[str]]:
        return {"input_ids": text.split()}

    def generate(self, requests, params):  # type: ignore[no-untyped-def]
        self.budgets.append(params.max_new_tokens)
        return [list(self.beams) for _ in requests]


# Beam i repeats the word f"w{i}"; the judge likes short texts, so the two longest beams score lowest.
LENGTHS = {"w0": 100, "w1": 99, "w2": 60, "w3": 40, "w4": 20}
BEAMS = [" ".join([w] * n) for w, n in LENGTHS.items()]
TEACHER = " ".join(["teacher"] * 50)


def by_length(prompts: list[str]) -> list[str]:
    words = [len(p.split("Description:")[1].split("Please evaluate")[0].split()) for p in prompts]
    return [f"Evaluation evidence: ok.\nScore: {10 - n // 12}" for n in words]


def mine_with(db, beams: Beams) -> tuple[object, dict[int, str]]:
    sample = upsert_sample(db, None, "a long prompt", "train", detailed_prompt=TEACHER)
    backends = {"beams": beams, "judge": ScriptedJudge(by_length)}
    config = MiningConfig(tasks=(3,), model="beams", split="train", limit=None)
    studio = Studio(StudioConfig(judge_model="judge"), backends=backends)
    from engine.mining import Miner

    miner = Miner(studio, db, config)
    from annotations.store import list_samples

    info = next(s for s in list_samples(db, "train") if s.id == sample)
    miner.mine_one(info, Task(3))
    texts = {r.id: r.text for r in rows(db, Response)}
    return miner.report, {p.response_b_id: texts[p.response_b_id].split()[0] for p in rows(db, Pair)}


def test_the_budget_covers_the_teacher_and_beams_at_the_limit_are_never_rejected(db):
    beams = Beams(BEAMS)
    report, rejected = mine_with(db, beams)
    assert beams.budgets == [100]  # 50 teacher tokens x 2 (the old fixed 160 knew nothing of the teacher)
    assert sorted(rejected.values()) == ["w2", "w3"]  # not w0 / w1, the lowest-scored but cut at the budget
    assert report.at_limit == 2
    metas = {r.text.split()[0]: json.loads(r.meta_json) for r in rows(db, Response) if r.source == "model"}
    assert metas["w0"] == {"at_limit": True, "max_new_tokens": 100, "tokens": 100, "mined_by": "beams"}
    assert metas["w1"]["at_limit"] and not metas["w2"]["at_limit"]


def test_random_weight_generators_keep_at_limit_beams(db):
    _, rejected = mine_with(db, Beams(BEAMS, random_weights=True))  # the backend forces their length
    assert sorted(rejected.values()) == ["w0", "w1"]


def test_generation_budget_rule():
    from engine.mining import at_limit, generation_budget

    assert generation_budget(200, 2.0, 512, 256) == 400
    assert generation_budget(300, 2.0, 512, 256) == 512  # capped
    assert generation_budget(10, 2.0, 512, 256) == 64  # a floor for very short teachers
    assert generation_budget(None, 2.0, 512, 256) == 256  # no teacher
    assert at_limit(98, 100) and not at_limit(97, 100) and at_limit(392, 400) and not at_limit(391, 400)


def test_evaluation_budget_covers_the_teacher_too(db, tmp_path):
    from annotations.store import list_samples
    from engine.evaluate import EvalConfig, Harness

    upsert_sample(db, None, "a long prompt", "test", detailed_prompt=TEACHER)
    studio = Studio(backends={"beams": Beams(BEAMS)})
    sample = next(s for s in list_samples(db, "test") if s.video is None)
    harness = Harness(studio, db, EvalConfig(models=("beams",), out_dir=str(tmp_path)))
    assert harness.budget("beams", sample, Task(3)) == 100  # the old fixed 160 ignored the reference
    fixed = Harness(studio, db, EvalConfig(models=("beams",), out_dir=str(tmp_path), max_new_tokens=7))
    assert fixed.budget("beams", sample, Task(3)) == 7
