"""Checkpoints save and load plain state (model, optimizer, scheduler, RNG, step, processor, info): no trainer."""

import ast
import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from training.checkpoint import TrainState, latest_checkpoint, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
ONE_PROCESS = SimpleNamespace(is_main_process=True, process_index=0, wait_for_everyone=lambda: None)


class Tiny(torch.nn.Module):
    """A two-layer model with the save_pretrained a checkpoint calls; the second layer is frozen."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)
        self.b.requires_grad_(False)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))

    def save_pretrained(self, path, safe_serialization=True):
        Path(path).mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(path) / "model.safetensors"))


class Processor:
    def save_pretrained(self, path):
        (Path(path) / "processor.json").write_text("{}")


def _state(seed: int) -> TrainState:
    torch.manual_seed(seed)
    model = Tiny()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    return TrainState(model, optimizer, scheduler, Processor())


def _step(state: TrainState) -> None:
    x = torch.randn(5, 3)  # draws from the torch RNG: a restored RNG must give the same batch
    state.model(x).pow(2).mean().backward()
    state.optimizer.step()
    state.scheduler.step()
    state.optimizer.zero_grad()


def test_resume_from_a_checkpoint_continues_exactly(tmp_path):
    state = _state(0)
    _step(state), _step(state)
    path = save_checkpoint(tmp_path, 2, state, ONE_PROCESS, {"total_steps": 9, "lora": False})
    _step(state)
    expected = {n: p.detach().clone() for n, p in state.model.named_parameters()}
    expected_draws = (random.random(), float(np.random.rand()))

    fresh = _state(0)  # the base weights a run loads; then no optimizer moments, scheduler at 0
    with torch.no_grad():
        fresh.model.a.weight.add_(1.0)  # and trainable weights that are not the checkpoint's
    assert load_checkpoint(path, fresh) == 2
    assert fresh.scheduler.last_epoch == 2
    _step(fresh)
    for name, value in fresh.model.named_parameters():
        assert torch.equal(value, expected[name]), name
    assert (random.random(), float(np.random.rand())) == expected_draws
    info = json.loads((path / "state.json").read_text())
    assert (info["step"], info["total_steps"], info["lora"]) == (2, 9, False)
    assert {p.name for p in (path / "model").iterdir()} == {"model.safetensors", "processor.json"}


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    state = _state(0)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, state, ONE_PROCESS, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-000002", "step-000003"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-000003"
    assert latest_checkpoint(tmp_path / "none") is None


def test_a_checkpoint_of_another_model_is_refused_in_one_line(tmp_path):
    path = save_checkpoint(tmp_path, 1, _state(0), ONE_PROCESS)
    other = _state(0)
    other.model.b.requires_grad_(True)  # now b is trainable too, and the checkpoint lacks it
    with pytest.raises(ValueError, match=r"lacks 2 trainable tensors \(first: b\.weight\)"):
        load_checkpoint(path, other)


def _imports(path: Path) -> set[str]:
    """training.* modules a file imports, at module level and inside functions alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("training.")}


def test_training_modules_import_no_circle():
    modules = {f"training.{p.stem}": p for p in (ROOT / "training").glob("*.py") if p.stem != "__init__"}
    graph = {m: _imports(p) & set(modules) for m, p in modules.items()}
    assert "training.trainer" not in graph["training.checkpoint"]

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(n == target or (n not in seen and reaches(n, target, seen | {n})) for n in graph[start])

    assert [m for m in graph if reaches(m, m, set())] == []
