"""The whole loop: bad input stops it in one line with nothing written, human labels gate training, a kill
mid-stage resumes without duplicates, and the report holds Table 1 base vs trained and the curves."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlmodel import func, select

from annotations.db import open_db, read_session
from annotations.models import Pair, Response, Sample
from engine.evaluators.registry import TINY_EVALUATORS
from training.loop import LoopStop, main, run_loop
from training.loop_config import load_loop_config

REPO = Path(__file__).resolve().parents[2]
CLIPS = REPO / "assets" / "samples"
TEACHER = "A large grey rabbit stands up at its burrow, stretches and yawns in a green meadow at dawn."


def write_samples(folder: Path, rows: list[dict] | None = None) -> Path:
    """One video sample per split plus a text-only train sample, clips relative to the file."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(CLIPS / "bunny.mp4", folder / "bunny.mp4")
    rows = rows or [
        {"video": "bunny.mp4", "short_prompt": "A rabbit wakes up.", "detailed_prompt": TEACHER, "split": "train"},
        {"video": "bunny.mp4", "short_prompt": "A rabbit yawns.", "detailed_prompt": TEACHER, "split": "test"},
        {"short_prompt": "A cat naps.", "detailed_prompt": "A ginger cat sleeps on a grey sofa.", "split": "train"},
    ]
    path = folder / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_config(folder: Path, samples: Path, file: str = "loop.yaml", **over) -> Path:
    """A loop config as small as the loop allows: tiny models, 3 beams, 12-token budgets, 2 steps."""
    config = {
        "name": "test-loop",
        "samples": str(samples),
        "train": str(REPO / "configs" / "tiny-cpu.yaml"),
        "train_set": {"optim.max_steps": 2, "run.progress_bar": False, "run.checkpoint_every": 1},
        "teacher": {"model": "tiny-random-vlm", "max_new_tokens": 8},
        "mining": {
            "judge_model": "tiny-random-lm",
            "num_beams": 3,
            "num_rejected": 2,
            "max_new_tokens_cap": 12,
            "evaluators": list(TINY_EVALUATORS),  # the loop's sections default to engine's (the paper's three)
        },
        "evaluation": {"judge_model": "tiny-random-lm", "max_new_tokens": 12, "evaluators": list(TINY_EVALUATORS)},
        **over,
    }
    path = folder / file
    path.write_text(yaml.safe_dump(config))
    return path


def count(db_url: str, model: type, *where) -> int:
    engine = open_db(db_url)
    with read_session(engine) as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


def test_bad_config_keys_and_unknown_presets_are_one_line_and_write_nothing(tmp_path, capsys):
    samples = write_samples(tmp_path / "set")
    cases = [
        (write_config(tmp_path, samples, "c1.yaml", epochs=3), "unknown key(s) epochs"),
        (
            write_config(tmp_path, samples, "c2.yaml", teacher={"model": "vila-34b"}),
            "teacher.model: unknown model 'vila-34b'",
        ),
        (
            write_config(tmp_path, samples, "c3.yaml", mining={"evaluators": ["clip-b"]}),
            "mining.evaluators: unknown evaluator",
        ),
        (
            write_config(tmp_path, samples, "c4.yaml", train_set={"model.name": "nope"}),
            "policy (the training config's model",
        ),
        (write_config(tmp_path, samples, "c5.yaml", labels="maybe"), "labels: 'maybe' is not one of auto, human"),
    ]
    for config, message in cases:
        assert main(["--config", str(config), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
        assert not (tmp_path / "out").exists()  # nothing half-written


def test_a_missing_clip_is_one_line_and_imports_nothing(tmp_path, capsys):
    samples = write_samples(tmp_path / "set")
    (tmp_path / "set" / "bunny.mp4").unlink()
    out = tmp_path / "out"
    assert main(["--config", str(write_config(tmp_path, samples)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {samples}:1: missing video {tmp_path / 'set' / 'bunny.mp4'} (and 1 more bad rows); nothing imported"
    ]
    assert count(f"sqlite:///{out / 'loop.db'}", Sample) == 0
    assert json.loads((out / "state.json").read_text())["stages"]["import"]["status"] == "running"


def test_a_teacher_model_that_cannot_load_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv("VIDPROMPTER_MODEL_QWEN2_5_VL_7B", raising=False)
    samples = write_samples(tmp_path / "set", [{"video": "bunny.mp4", "short_prompt": "A rabbit.", "split": "train"}])
    config = write_config(tmp_path, samples, teacher={"model": "qwen2.5-vl-7b"})
    out = tmp_path / "out"
    assert main(["--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model 'qwen2.5-vl-7b' cannot load")
    assert count(f"sqlite:///{out / 'loop.db'}", Response) == 0


def test_human_labels_stop_the_loop_until_every_pair_has_its_votes(tmp_path):
    from annotations.store import record_judgement

    samples = write_samples(tmp_path / "set")
    config = load_loop_config(write_config(tmp_path, samples, labels="human", votes_per_pair=1))
    out = tmp_path / "out"
    with pytest.raises(LoopStop) as stop:
        run_loop(config, out, stop_after="export", echo=lambda _: None)
    db_url = f"sqlite:///{(out / 'loop.db').resolve()}"
    pairs = count(db_url, Pair)
    assert stop.value.code == 3 and pairs > 0
    assert str(stop.value).startswith(f"{pairs} of {pairs} mined pairs still need 1 vote(s) each: label them")
    engine = open_db(db_url)
    with read_session(engine) as session:
        mined = list(session.exec(select(Pair)))
    for pair in mined:  # the annotator prefers the mined rejected side: the export flips every pair
        record_judgement(engine, pair.id, "ann", "b_better", pair.response_a_id, require_lease=False)
    run = run_loop(config, out, stop_after="export", echo=lambda _: None)
    assert run.stage("labels")["counts"] == {"mode": "human", "pairs": pairs, "waiting": 0}
    rows = [json.loads(line) for line in (out / "export.jsonl").read_text().splitlines()]
    assert len(rows) == pairs and all(r["label_source"] == "human" and r["chosen_source"] == "model" for r in rows)


def _responses(db_url: str) -> list[tuple]:
    engine = open_db(db_url)
    with read_session(engine) as session:
        return [(r.sample_id, r.task, r.source, r.model, r.text) for r in session.exec(select(Response))]


@pytest.mark.slow
def test_a_loop_killed_mid_stage_resumes_and_finishes_without_duplicates(tmp_path):
    samples = write_samples(tmp_path / "set")
    config = write_config(tmp_path, samples)
    out = tmp_path / "out"
    db_url = f"sqlite:///{(out / 'loop.db').resolve()}"
    argv = [sys.executable, "-m", "training", "loop", "--config", str(config), "--out", str(out)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # kill once mining has stored its first beams
        if (out / "loop.db").exists() and count(db_url, Response, Response.source == "model") > 0:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((out / "state.json").read_text())
    assert state["stages"]["mine"]["status"] == "running" and state["stages"]["import"]["status"] == "done"

    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((out / "state.json").read_text())
    assert all(s["status"] == "done" for s in state["stages"].values())
    assert state["stages"]["mine"]["attempts"] == 2 and state["stages"]["import"]["attempts"] == 1
    responses = _responses(db_url)
    assert len(responses) == len(set(responses))  # no response stored twice
    engine = open_db(db_url)
    with read_session(engine) as session:
        pairs = [(p.sample_id, p.task, p.response_a_id, p.response_b_id) for p in session.exec(select(Pair))]
    assert len(pairs) == len(set(pairs)) and all(n <= 2 for n in _per_item(pairs).values())

    report = out / "report"
    table = (report / "table1.csv").read_text().splitlines()
    assert table[0].startswith("model,Task 1 tiny CLIP") and table[1].startswith("base (tiny-random-vlm)")
    trained = table[2].split(",")
    assert trained[0] == "trained (step-000002)" and trained[1] != ""  # the checkpoint's outputs were scored
    assert (report / "loss.png").stat().st_size > 0 and (report / "margin.png").stat().st_size > 0
    text = (report / "report.md").read_text()
    assert "random weights: this run checks the pipeline" in text and "| mine |" in text and "| train |" in text
    assert yaml.safe_load((report / "train.yaml").read_text())["optim"]["max_steps"] == 2


def _per_item(pairs: list[tuple]) -> dict[tuple, int]:
    out: dict[tuple, int] = {}
    for sample, task, *_ in pairs:
        out[(sample, task)] = out.get((sample, task), 0) + 1
    return out


def test_a_checkpoint_trained_from_random_weights_is_still_random_weights(tmp_path):
    from engine.models import resolve

    model = tmp_path / "checkpoints" / "step-000004" / "model"
    model.mkdir(parents=True)
    (model.parent / "state.json").write_text(json.dumps({"step": 4, "base_model": "tiny-random-vlm"}))
    preset = resolve(str(model))
    assert preset.random_weights and "pipeline check only" in preset.notes  # readable text of the asked length
    (model.parent / "state.json").write_text(json.dumps({"step": 4, "base_model": "qwen2.5-vl-7b"}))
    assert not resolve(str(model)).random_weights


@pytest.mark.parametrize("name", ["tiny.yaml", "hdpo.yaml"])
def test_the_shipped_loop_configs_load_and_name_known_models(name):
    from training.loop_config import check_models

    config = load_loop_config(REPO / "configs" / "loops" / name)
    policy = config.train_config().model.name
    check_models(config, policy)  # raises ConfigError naming the key of an unknown preset or evaluator
    assert policy == {"tiny.yaml": "tiny-random-vlm", "hdpo.yaml": "qwen2.5-vl-7b"}[name]
