"""The paper's recipe by default (issue 22): an SFT stage, no silent stand-ins, one frame count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from training.config import ConfigError
from training.loop import main
from training.loop_config import LoopRun, load_loop_config
from training.stand_ins import apply_stand_ins

REPO = Path(__file__).resolve().parents[2]
PAPER = str(REPO / "configs" / "loops" / "hdpo.yaml")
SAMPLES = str(REPO / "assets" / "sampleset" / "samples.jsonl")


def test_a_paper_config_with_models_unset_refuses_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--config", PAPER, "--samples", SAMPLES, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: paper config with models unset")
    for role in ("teacher.model", "teacher.text_model", "mining.judge_model", "evaluation.judge_model"):
        assert role in err
    assert "--allow-stand-ins" in err and not out.exists()


def test_default_stand_ins_name_each_unset_role():
    config = apply_stand_ins(load_loop_config(PAPER), "default")
    assert [n.split(":")[0] for n in config.stand_in_notes] == [
        "teacher.model unset",
        "teacher.text_model unset",
        "mining.judge_model unset",
        "evaluation.judge_model unset",
    ]
    named = load_loop_config(PAPER, {"teacher": {"model": "a", "text_model": "b"}})
    with pytest.raises(ConfigError, match="mining.judge_model") as refused:  # the judges are still unset
        apply_stand_ins(named, "none")
    assert "teacher.model" not in str(refused.value)


@pytest.mark.slow
def test_the_paper_loop_runs_sft_then_mines_and_trains_from_it(tmp_path):
    """With tiny stand-ins the paper config goes SFT -> mine (from the SFT checkpoint) -> HDPO (pi_ref = SFT)
    -> evaluate in one command, and every report names the stand-ins."""
    out = tmp_path / "run"
    args = ["--config", PAPER, "--samples", SAMPLES, "--out", str(out), "--allow-stand-ins", "tiny"]
    assert main(args) == 0
    state = json.loads((out / "state.json").read_text())
    stages = state["stages"]
    assert [s for s in stages if stages[s]["status"] == "done"] == list(stages)
    sft_model = str(Path(stages["sft"]["counts"]["checkpoint"]) / "model")
    assert stages["mine"]["counts"]["model"] == sft_model  # the rejected beams come from the SFT model
    train_cfg = yaml.safe_load((out / "train" / "config.yaml").read_text())
    assert train_cfg["model"]["name"] == sft_model  # HDPO starts from SFT: its reference pass is pi_ref = SFT
    assert train_cfg["loss"]["kind"] == "sigmoid" and train_cfg["loss"]["response_hallucination"]
    assert set(stages["evaluate"]["counts"]["models"]) == {"base", "sft", "trained"}
    report = (out / "report" / "report.md").read_text()
    table = (out / "eval" / "table.md").read_text()
    for text in (report, table):
        assert "Stand-in models (not the paper's)" in text and "tiny-random-vlm" in text


@pytest.mark.slow
def test_an_sft_only_loop_skips_the_preference_stages(tmp_path):
    config = tmp_path / "sft-only.yaml"
    sft_set = {
        "loss.kind": "sft",
        "loss.dpo": False,
        "loss.response_hallucination": False,
        "loss.input_hallucination": False,
        "loss.task_hallucination": False,
        "optim.max_steps": 2,
        "run.progress_bar": False,
    }
    config.write_text(
        yaml.safe_dump(
            {
                "name": "sft-only",
                "samples": SAMPLES,
                "train": None,
                "teacher": {"model": "tiny-random-vlm", "max_new_tokens": 16},
                "sft": {"enabled": True, "train": "configs/tiny-cpu.yaml", "train_set": sft_set},
                "evaluation": {
                    "evaluators": ["tiny-random-clip"],
                    "judge_model": "tiny-random-lm",
                    "max_new_tokens": 8,
                    "limit": 2,
                },
            }
        )
    )
    out = tmp_path / "run"
    assert main(["--config", str(config), "--out", str(out)]) == 0
    stages = json.loads((out / "state.json").read_text())["stages"]
    for name in ("mine", "labels", "export", "train"):
        assert stages[name]["counts"] == {"skipped": "no preference stage (train: null)"}
    assert stages["sft"]["counts"]["steps"] == 2
    assert set(stages["evaluate"]["counts"]["models"]) == {"base", "sft"}
    assert "sft (step-000002)" in (out / "report" / "report.md").read_text()


def test_the_loop_reads_frames_as_training_does(tmp_path):
    config = load_loop_config(PAPER)
    run = LoopRun(config, tmp_path, "sqlite://", config.base_policy())
    assert run.studio.config.num_frames == config.train_config().data.num_frames
    over = load_loop_config(PAPER, {"train_set": {"data.num_frames": 5}})
    assert LoopRun(over, tmp_path, "sqlite://", "x").studio.config.num_frames == 5
