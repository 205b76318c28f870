"""Checkpoints: everything an exact resume needs, plus a model folder the engine can load.

checkpoints/step-000042/
    model/                 full FT: save_pretrained + processor (engine.models.load_model(path) loads it);
                           LoRA: the peft adapter + processor
    trainable.safetensors  the trainable parameters, by name (what resume loads back)
    trainer_state.pt       optimizer, scheduler, step
    rng-<rank>.pt          python / numpy / torch (/ cuda) RNG states of each process
    state.json             step, total steps, config fingerprint
Written to a temp folder and renamed, so a kill mid-save never leaves a half checkpoint.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from training.trainer import prune, rng_state, set_rng_state


def _trainable(model: Any) -> dict[str, torch.Tensor]:
    # named_parameters lists a tied weight once, so safetensors sees no shared storage.
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(trainer: Any, folder: Path, step: int) -> Path:
    acc = trainer.accelerator
    final = folder / f"step-{step:06d}"
    tmp = folder / f".step-{step:06d}.tmp"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng-{acc.process_index}.pt")
    if acc.is_main_process:
        _write_main(trainer, tmp, step)
    acc.wait_for_everyone()
    if acc.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        (folder / "latest").write_text(final.name)
        prune(folder, trainer.cfg.run.keep_checkpoints)
    acc.wait_for_everyone()
    return final


def _write_main(trainer: Any, tmp: Path, step: int) -> None:
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.save_pretrained(tmp / "model", safe_serialization=True)
    trainer.lm.processor.save_pretrained(tmp / "model")
    save_file(_trainable(model), str(tmp / "trainable.safetensors"))
    state = {"optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict(), "step": step}
    torch.save(state, tmp / "trainer_state.pt")
    info = {
        "step": step,
        "total_steps": trainer.total_steps,
        "config_fingerprint": trainer.cfg.fingerprint(),
        "lora": trainer.cfg.model.lora,
        "base_model": trainer.cfg.model.name,
        "saved_at": time.time(),
    }
    (tmp / "state.json").write_text(json.dumps(info, indent=2))


def latest_checkpoint(folder: Path) -> Path | None:
    pointer = folder / "latest"
    if pointer.exists() and (folder / pointer.read_text().strip() / "state.json").exists():
        return folder / pointer.read_text().strip()
    steps = sorted(p for p in folder.glob("step-*") if (p / "state.json").exists())
    return steps[-1] if steps else None


def load_checkpoint(trainer: Any, path: Path) -> None:
    """Restore weights, optimizer, scheduler, step and RNG: the next step is the one the run would have taken."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    saved = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in saved]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {len(missing)} trainable tensors (first: {missing[0]})")
    with torch.no_grad():
        for name, value in saved.items():
            params[name].copy_(value.to(params[name].device))
    state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.step = int(state["step"])
    rng = path / f"rng-{trainer.accelerator.process_index}.pt"
    if rng.exists():
        set_rng_state(torch.load(rng, weights_only=False))
