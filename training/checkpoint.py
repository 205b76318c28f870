"""Checkpoints: everything an exact resume needs, plus a model folder the engine can load.

checkpoints/step-000042/
    model/                 full FT: save_pretrained + processor (engine.models.load_model(path) loads it);
                           LoRA: the peft adapter + processor
    trainable.safetensors  the trainable parameters, by name (what resume loads back)
    trainer_state.pt       optimizer, scheduler, step
    rng-<rank>.pt          python / numpy / torch (/ cuda) RNG states of each process
    state.json             step, saved_at, plus the caller's info (total steps, config fingerprint, ...)
Written to a temp folder and renamed, so a kill mid-save never leaves a half checkpoint.

Plain state in, plain state out: a `TrainState` (model, optimizer, scheduler, processor) and the
processes' coordination (`Processes`, which accelerate's Accelerator is); nothing here knows the trainer.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file


class Processes(Protocol):
    """The coordination a checkpoint needs from the launcher (accelerate.Accelerator has it)."""

    is_main_process: bool
    process_index: int

    def wait_for_everyone(self) -> None: ...


@dataclass
class TrainState:
    """What a checkpoint saves and restores, besides the step and the RNG."""

    model: Any
    """The policy, unwrapped from DDP (a PEFT model with LoRA: only its adapters are trainable)."""
    optimizer: torch.optim.Optimizer
    scheduler: Any
    """The LR scheduler (anything with state_dict / load_state_dict)."""
    processor: Any
    """Saved beside the model so engine.models.load_model(<checkpoint>/model) loads both."""


# --------------------------------------------------------------------------- RNG and pruning


def rng_state() -> dict[str, Any]:
    """This process's python / numpy / torch (/ cuda) RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def prune(folder: Path, keep: int) -> None:
    """Remove all but the newest `keep` step-* checkpoints."""
    steps = sorted(p for p in folder.glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- save / load


def _trainable(model: Any) -> dict[str, torch.Tensor]:
    # named_parameters lists a tied weight once, so safetensors sees no shared storage.
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    folder: Path, step: int, state: TrainState, procs: Processes, info: dict[str, Any] | None = None, keep: int = 2
) -> Path:
    """Write <folder>/step-<step> (every process writes its RNG; the main process the rest), keep `keep`."""
    final = folder / f"step-{step:06d}"
    # A name every process derives alone (each writes its RNG state into it), so not annotations.files.atomic_dir's
    # random one; one run owns `folder`.
    tmp = folder / f".step-{step:06d}.tmp"
    if procs.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    procs.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng-{procs.process_index}.pt")
    if procs.is_main_process:
        _write_main(tmp, step, state, info or {})
    procs.wait_for_everyone()
    if procs.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        (folder / "latest").write_text(final.name)
        prune(folder, keep)
    procs.wait_for_everyone()
    return final


def _write_main(tmp: Path, step: int, state: TrainState, info: dict[str, Any]) -> None:
    state.model.save_pretrained(tmp / "model", safe_serialization=True)
    state.processor.save_pretrained(tmp / "model")
    save_file(_trainable(state.model), str(tmp / "trainable.safetensors"))
    trainer_state = {
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "step": step,
    }
    torch.save(trainer_state, tmp / "trainer_state.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **info, "saved_at": time.time()}, indent=2))


def latest_checkpoint(folder: Path) -> Path | None:
    pointer = folder / "latest"
    if pointer.exists() and (folder / pointer.read_text().strip() / "state.json").exists():
        return folder / pointer.read_text().strip()
    steps = sorted(p for p in folder.glob("step-*") if (p / "state.json").exists())
    return steps[-1] if steps else None


def load_checkpoint(path: Path, state: TrainState, process_index: int = 0) -> int:
    """Restore weights, optimizer, scheduler and this process's RNG; returns the step to continue from.

    The next step is then the one the run would have taken."""
    saved = load_file(str(path / "trainable.safetensors"))
    params = dict(state.model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in saved]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {len(missing)} trainable tensors (first: {missing[0]})")
    with torch.no_grad():
        for name, value in saved.items():
            params[name].copy_(value.to(params[name].device))
    trainer_state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
    state.optimizer.load_state_dict(trainer_state["optimizer"])
    state.scheduler.load_state_dict(trainer_state["scheduler"])
    rng = path / f"rng-{process_index}.pt"
    if rng.exists():
        set_rng_state(torch.load(rng, weights_only=False))
    return int(trainer_state["step"])
