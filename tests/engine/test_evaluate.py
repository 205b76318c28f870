"""The evaluation harness: a Table-1 style comparison of two models on a 3-sample split."""

from __future__ import annotations

import csv

import pytest

from annotations.db import open_db
from annotations.store import upsert_sample
from engine.evaluate import EvalConfig
from engine.evaluators.registry import get_preset
from engine.evaluators.tiny import ensure_tiny_evaluator
from engine.service import Studio, StudioConfig
from tests.engine.conftest import ScriptedJudge

TINY = ("tiny-random-clip", "tiny-random-long-clip")


def fake_judge() -> ScriptedJudge:
    """Every other judgement (counted across calls) has no score: 7, unparsed, 7, ..."""
    calls: list[str] = []

    def reply(prompts: list[str]) -> list[str]:
        calls.extend(prompts)
        first = len(calls) - len(prompts)
        return [
            "Evaluation evidence: fine. Score: 7" if (first + i) % 2 == 0 else "no score" for i in range(len(prompts))
        ]

    return ScriptedJudge(reply)


@pytest.fixture(autouse=True)
def no_empty_generations(monkeypatch):
    """Random weights often decode to nothing (scored as "unscored"); give the harness some text to score."""
    from engine.backends.transformers_backend import TransformersBackend

    real = TransformersBackend.generate

    def generate(self, requests, params):
        return [[t or f"empty output {i}" for i, t in enumerate(c)] for c in real(self, requests, params)]

    monkeypatch.setattr(TransformersBackend, "generate", generate)


@pytest.fixture
def db(tmp_path, sample_video, monkeypatch):
    for name in TINY:
        monkeypatch.setenv(get_preset(name).env_var, str(ensure_tiny_evaluator(name, root=tmp_path / "ev")))
    engine = open_db(f"sqlite:///{tmp_path / 'studio.db'}")
    for prompt in ("a rabbit wakes up", "a bird in a tree", "a sunny meadow"):
        upsert_sample(engine, str(sample_video), prompt, "test")
    upsert_sample(engine, str(sample_video), "train only", "train")
    return engine


def test_harness_table_for_two_models(db, tmp_path):
    out = tmp_path / "eval"
    config = EvalConfig(
        models=("tiny-random-vlm", "tiny-random-lm"),
        out_dir=str(out),
        tasks=(1, 3),
        evaluators=TINY,
        max_new_tokens=8,
    )
    judge = fake_judge()
    result = Studio(StudioConfig(judge_model="judge"), backends={"judge": judge}).evaluate(db, config, progress=False)
    assert len(judge.prompts) == 2 * 3  # one judge prompt per model and test sample
    headers = ["Task 1 tiny CLIP", "Task 1 tiny Long-CLIP", "Task 1 Averaged CLIP Score", "Task 3 Judge"]
    assert [h for _, _, h in result.columns] == headers
    vlm, lm = result.summary["tiny-random-vlm"], result.summary["tiny-random-lm"]
    assert vlm["Task 1 tiny CLIP"] is not None and vlm["Task 3 Judge"] == 7.0  # unparsed ones are not averaged
    # Table 2's column: the arithmetic mean of the task's CLIP-style columns
    assert vlm["Task 1 Averaged CLIP Score"] == pytest.approx(
        (vlm["Task 1 tiny CLIP"] + vlm["Task 1 tiny Long-CLIP"]) / 2
    )
    assert lm["Task 1 tiny CLIP"] is None and lm["Task 1 Averaged CLIP Score"] is None  # a text model: no video column
    md = (out / "table.md").read_text()
    assert "| Model | Task 1 tiny CLIP | Task 1 tiny Long-CLIP | Task 1 Averaged CLIP Score | Task 3 Judge |" in md
    assert "| tiny-random-lm | – | – | – | 7.00 |" in md
    with open(out / "table.csv") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["model", *headers] and [r[0] for r in table[1:]] == ["tiny-random-vlm", "tiny-random-lm"]
    assert float(table[1][3]) == pytest.approx(vlm["Task 1 Averaged CLIP Score"], abs=1e-4)
    with open(out / "scores.csv") as fh:
        per_sample = list(csv.DictReader(fh))
    assert {int(r["sample_id"]) for r in per_sample} == {1, 2, 3}  # the 3 test samples only
    assert len([r for r in per_sample if r["model"] == "tiny-random-vlm" and r["task"] == "1"]) == 3 * len(TINY)
    png = (out / "scores.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_evaluate_cli(db, tmp_path, capsys, monkeypatch):
    import json

    from engine.cli import main

    argv = ["evaluate", "--db", str(db.url), "--model", "tiny-random-vlm", "--task", "1", "--out", str(tmp_path / "o")]
    assert main([*argv, "--evaluator", "tiny-random-clip", "--max-new-tokens", "8", "--no-progress", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["files"]) == {"table_md", "table_csv", "scores_csv", "plot_png"}
    assert "tiny-random-vlm" in payload["markdown"]
    assert main([*argv[:-2], "--split", "nope", "--out", str(tmp_path / "p"), "--evaluator", "tiny-random-clip"]) == 2
    assert "no samples in split" in capsys.readouterr().err


def test_averaged_clip_score_is_the_mean_of_the_task_columns():
    """Table 2: the arithmetic mean of the CLIP, Long-CLIP and VideoCLIP-XL scores, per task, by hand."""
    from engine.evaluate import EvalResult, ScoreRow, markdown_table, summarise, table_columns
    from engine.evaluators.registry import PAPER_EVALUATORS

    clip, long_clip, xl = PAPER_EVALUATORS
    scores = {  # (task, evaluator) -> per-sample scores; paper's "+SFT" Task 1 row is 28.8 / 26.5 / 25.3
        (1, clip): [28.0, 29.6],
        (1, long_clip): [26.5],
        (1, xl): [25.0, 25.6],
        (2, clip): [30.0],
        (2, long_clip): [],  # nothing scored: no average either
        (2, xl): [20.0],
    }
    rows = [ScoreRow("m", i, t, e, v, "x") for (t, e), vs in scores.items() for i, v in enumerate(vs)]
    columns = table_columns((1, 2), PAPER_EVALUATORS)
    summary = summarise(rows, columns, ("m",))["m"]
    assert list(summary)[:4] == [
        "Task 1 CLIP",
        "Task 1 Long-CLIP",
        "Task 1 VideoCLIP-XL",
        "Task 1 Averaged CLIP Score",
    ]
    assert summary["Task 1 Averaged CLIP Score"] == pytest.approx((28.8 + 26.5 + 25.3) / 3)  # 26.8667
    assert summary["Task 2 Averaged CLIP Score"] is None
    md = markdown_table(EvalResult(rows, columns, {"m": summary}))
    assert "| m | 28.8 | 26.5 | 25.3 | 26.9 | 30.0 | – | 20.0 | – |" in md
    assert table_columns((1,), (clip,)) == [(1, clip, "Task 1 CLIP")]  # one evaluator: nothing to average


def test_faithfulness_column_and_the_output_cache(tmp_path, monkeypatch):
    """Task 3 scored by faithfulness to the stored tags; a second run with the same cache generates nothing."""
    from annotations.tags import set_tags
    from engine.evaluate import evaluate

    engine = open_db(f"sqlite:///{tmp_path / 'faith.db'}")
    cat = upsert_sample(engine, None, "a red cat", "test")
    dog = upsert_sample(engine, None, "a dog", "test")
    set_tags(engine, {cat: [{"kind": "object", "value": "cat"}, {"kind": "color", "value": "red", "object": "cat"}]})
    replies = {"a red cat": "A red cat naps on a warm sofa.", "a dog": "A cat sleeps."}
    calls: list[str] = []

    def reply(prompts: list[str]) -> list[str]:
        calls.extend(prompts)
        return [next(v for k, v in replies.items() if f"Input: {k}\n" in p) for p in prompts]

    studio = Studio(backends={"writer": ScriptedJudge(reply, model_name="writer")})
    config = EvalConfig(
        models=("writer",),
        out_dir=str(tmp_path / "out"),
        tasks=(3,),
        evaluators=(),
        task3_scorer="faithfulness",
        batch=4,
        max_new_tokens=32,
        cache_dir=str(tmp_path / "cache"),
    )
    result = evaluate(studio, engine, config, progress=False)
    assert result.summary == {"writer": {"Task 3 Faithful %": 50.0}}  # the dog prompt's output has no dog
    assert sorted(r.value for r in result.rows) == [0.0, 100.0] and {r.sample_id for r in result.rows} == {cat, dog}
    first = len(calls)
    assert first == 2
    again = evaluate(studio, engine, config, progress=False)
    assert len(calls) == first and again.summary == result.summary  # read from the cache, not generated
    # A decoding change (the end of turn untaxed: DECODING_VERSION 2) makes the cached outputs stale.
    monkeypatch.setattr("engine.models.DECODING_VERSION", 3)
    evaluate(studio, engine, config, progress=False)
    assert len(calls) == 2 * first
