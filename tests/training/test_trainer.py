"""End to end on the tiny random VLM: training changes parameters, resume is exact, cancel checkpoints,
the reference cache is filled once and hit afterwards."""

from pathlib import Path

import pytest
import torch

from engine.models import load_model
from tests.toy_data import fake_frames, fake_text
from training.config import load_config
from training.data import Augmenters
from training.trainer import Trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAKES = Augmenters(text=fake_text, frames=fake_frames)


def _cfg(export, tmp_path, **over):
    base = {
        "data.path": str(export),
        "run.output_dir": str(tmp_path),
        "run.tensorboard": False,
        "data.tasks": [1, 2],
        "optim.max_steps": 4,
        "run.checkpoint_every": 2,
        "optim.batch_size": 2,
    }
    return load_config(CONFIGS / "tiny-cpu.yaml", {**base, **over})


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _e2e(export, tmp_path, max_steps):
    cfg = load_config(
        CONFIGS / "tiny-cpu.yaml",
        {"data.path": str(export), "run.output_dir": str(tmp_path), "optim.max_steps": max_steps},
    )
    result = Trainer(cfg, tmp_path / "run").train()  # real engine.hallucination augmenters (spaCy)
    assert result.status == "finished" and result.step == max_steps
    base = dict(load_model("tiny-random-vlm").model.named_parameters())
    trained = load_model(str(Path(result.checkpoint) / "model"))  # the engine loads the checkpoint
    changed = [n for n, p in trained.model.named_parameters() if not torch.equal(p, base[n])]
    assert len(changed) > 10
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == max_steps
    assert any((tmp_path / "run" / "tb").iterdir())
    return result


def test_tiny_cpu_config_trains_end_to_end_and_changes_parameters(tiny_export, tmp_path):
    _e2e(tiny_export, tmp_path, 2)


@pytest.mark.slow
def test_tiny_cpu_config_all_terms_end_to_end(full_export, tmp_path):
    result = _e2e(full_export, tmp_path, 4)
    seen = {k.split("/")[0] for m in result.metrics for k in m if "/" in k}
    assert seen == {"dpo", "response_hallucination", "input_hallucination", "task_hallucination"}


class Killed(Exception):
    pass


def test_resume_after_kill_gives_identical_losses(tiny_export, tmp_path):
    full = Trainer(_cfg(tiny_export, tmp_path), tmp_path / "a", augmenters=FAKES).train()
    losses = [m["loss"] for m in full.metrics]

    killed = Trainer(_cfg(tiny_export, tmp_path), tmp_path / "b", augmenters=FAKES)
    step = killed._optimizer_step

    def dies_at_step_3(i):
        if i == 3:
            raise Killed  # after the step-2 checkpoint, mid-run: like SIGKILL
        return step(i)

    killed._optimizer_step = dies_at_step_3
    with pytest.raises(Killed):
        killed.train()
    resumed = Trainer(_cfg(tiny_export, tmp_path), tmp_path / "b", augmenters=FAKES, resume=True).train()
    assert resumed.step == 4
    assert [m["loss"] for m in resumed.metrics] == pytest.approx(losses[2:], abs=1e-6)


def test_resuming_a_finished_run_returns_its_checkpoint_untouched(tiny_export, tmp_path):
    """A loop's later config resumes the shared SFT run, already at its last step: the trainer saved the model
    again, new file times made it "another model" to every output cache (the SFT dev outputs were lost)."""
    done = Trainer(_cfg(tiny_export, tmp_path), tmp_path / "f", augmenters=FAKES).train()
    files = {p: p.stat().st_mtime_ns for p in Path(done.checkpoint).rglob("*") if p.is_file()}
    again = Trainer(_cfg(tiny_export, tmp_path), tmp_path / "f", augmenters=FAKES, resume=True).train()
    assert (again.status, again.step, again.checkpoint) == ("finished", 4, done.checkpoint)
    assert {p: p.stat().st_mtime_ns for p in files} == files


def test_cancel_leaves_a_loadable_checkpoint(tiny_export, tmp_path):
    trainer = Trainer(_cfg(tiny_export, tmp_path, **{"run.checkpoint_every": 100}), tmp_path / "c", augmenters=FAKES)
    step = trainer._optimizer_step

    def sigterm_during_first_step(i):
        trainer.stop_signal = "SIGTERM"
        return step(i)

    trainer._optimizer_step = sigterm_during_first_step
    result = trainer.train()
    assert result.status == "cancelled" and result.step == 1
    lm = load_model(str(Path(result.checkpoint) / "model"))
    assert sum(p.numel() for p in lm.model.parameters()) > 0


def test_reference_cache_filled_once_then_hit(tiny_export, tmp_path):
    cfg = _cfg(tiny_export, tmp_path, **{"optim.epochs": 2, "optim.max_steps": None, "run.checkpoint_every": 100})
    first = Trainer(cfg, tmp_path / "d", augmenters=FAKES)
    result = first.train()
    n_seqs = len({s.key() for e in first.data.examples for s in e.seqs})
    assert result.step == 2 * first.data.steps_per_epoch  # two epochs ran
    assert first.ref_forwards >= 1 and first.reference.cache.misses == 0
    assert first.reference.cache.hits >= 2 * n_seqs  # every sequence looked up in both epochs
    second = Trainer(cfg, tmp_path / "e", augmenters=FAKES)
    second.train()
    assert second.ref_forwards == 0  # same model, same sequences: all from disk


def test_lora_and_resident_reference(tiny_export, tmp_path):
    cfg = _cfg(
        tiny_export,
        tmp_path,
        **{"model.lora": True, "model.lora_r": 4, "run.reference": "resident", "optim.max_steps": 2},
    )
    trainer = Trainer(cfg, tmp_path / "f", augmenters=FAKES)
    result = trainer.train()
    assert result.status == "finished" and trainer.ref_forwards == 2 * trainer.data.accum
    assert (Path(result.checkpoint) / "model" / "adapter_config.json").exists()


def test_cli_main_separate_training(tiny_export, tmp_path, capsys):
    from training.__main__ import main

    argv = [
        "--config",
        str(CONFIGS / "tiny-cpu.yaml"),
        "--run-dir",
        str(tmp_path / "sep"),
        "--set",
        f"data.path={tiny_export}",
        "--set",
        "data.separate_tasks=true",
        "--set",
        "optim.max_steps=1",
        "--set",
        "data.tasks=[1, 2]",
        "--set",
        "run.tensorboard=false",
        "--set",
        f"run.output_dir={tmp_path}",
    ]
    assert main(argv) == 0
    assert (tmp_path / "sep" / "task1" / "checkpoints" / "latest").exists()
    assert (tmp_path / "sep" / "task2" / "checkpoints" / "latest").exists()
    capsys.readouterr()
    # bad input: exit 2 and one line naming the key, no traceback (as the engine CLI does)
    assert main(["--config", str(CONFIGS / "tiny-cpu.yaml"), "--set", "optim.lr=-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "optim.lr" in err[0]


def test_freeze_vision_trains_the_merger_and_lm_but_not_the_vision_blocks(tiny_export, tmp_path):
    cfg = _cfg(tiny_export, tmp_path, **{"model.freeze_vision": True, "optim.max_steps": 2, "optim.lr": 1e-3})
    trainer = Trainer(cfg, tmp_path / "run", augmenters=FAKES)
    result = trainer.train()
    assert result.status == "finished"
    base = dict(load_model("tiny-random-vlm").model.named_parameters())
    trained = dict(load_model(str(Path(result.checkpoint) / "model")).model.named_parameters())
    changed = {n for n, p in trained.items() if not torch.equal(p, base[n])}
    blocks = [n for n in trained if ".visual." in f".{n}" and ".merger." not in n]
    merger = [n for n in trained if ".merger." in n]
    assert blocks and not changed & set(blocks)
    assert changed & set(merger)
    assert any("language_model" in n for n in changed)
