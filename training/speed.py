"""Speed knobs of the policy: torch.compile of the repeated blocks (decoder layers, vision blocks), guarded
(model.compile=blocks), and freezing the vision encoder (model.freeze_vision).

Blocks, not the whole model: the model's forward has data-dependent Python (rope indices from the video
grid, the vision tower's window index) that would graph-break or recompile per batch, while each block is a
fixed sequence of matmuls, norms and attention - where fusion pays and shapes repeat (data.pad_to_multiple
makes them repeat more). Every block of one class shares its compiled code.

Guarded twice, so a machine without a working compiler trains as before, with one log line saying so:
- a probe compiles a two-op function with the chosen backend before any block is touched;
- a block whose compiled call fails to compile (a TorchDynamoException, at its first call, where torch
  compiles) switches every block back to eager and reruns that call eagerly; any other exception (out of
  memory, non-reentrant checkpointing's early-stop signal) passes through as it would without compile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch._dynamo.exc import TorchDynamoException

from annotations.errors import error_line

LOG = logging.getLogger("training.speed")


def compile_targets(model: Any) -> list[torch.nn.Module]:
    """The model's repeated blocks: modules whose class transformers lists in `_no_split_modules` (e.g.
    Qwen2_5_VLDecoderLayer and Qwen2_5_VLVisionBlock), found through DDP / PEFT wrappers."""
    inner = model
    while hasattr(inner, "module"):
        inner = inner.module
    inner = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
    names = set(getattr(inner, "_no_split_modules", None) or ())
    return [m for m in inner.modules() if type(m).__name__ in names]


def _probe(backend: str, device: torch.device) -> str | None:
    """None when `backend` compiles and runs a tiny function here, else why not (one line)."""
    try:
        fn = torch.compile(lambda x: torch.relu(x) * 2 + 1, backend=backend, dynamic=True)
        fn(torch.ones(4, device=device))
    except Exception as exc:  # noqa: BLE001 - any failure means: train eager
        return error_line(exc, limit=200)
    return None


class _Fallback:
    """Shared state of one compile_blocks call: the first failure turns every block back to eager."""

    def __init__(self, modules: list[torch.nn.Module], log: Callable[[str], None]) -> None:
        self.modules, self.log, self.failed = modules, log, False

    def guard(self, module: torch.nn.Module, compiled: Callable) -> Callable:
        def call(*args, **kwargs):
            if self.failed:
                return module._call_impl(*args, **kwargs)
            try:
                return compiled(*args, **kwargs)
            except TorchDynamoException as exc:  # compile failures only: checkpoint's early-stop exception
                self.fall_back(exc)  # and real errors (out of memory, bad input) pass through untouched
                return module._call_impl(*args, **kwargs)

        return call

    def fall_back(self, exc: Exception) -> None:
        self.failed = True
        for m in self.modules:
            m._compiled_call_impl = None
        self.log(f"model.compile=blocks: a compiled block failed ({type(exc).__name__}); training eager")


def compile_blocks(model: Any, backend: str, device: torch.device, log: Callable[[str], None] | None = None) -> int:
    """torch.compile every block of `model` in place (dynamic shapes); returns how many were compiled
    (0 after a failed probe, with one log line). Call it after the reference model is copied: a deepcopy
    of a compiled module would carry its compiled callables along."""
    log = log or LOG.warning
    reason = _probe(backend, device)
    modules = compile_targets(model)
    if reason is not None or not modules:
        why = reason or "the model lists no repeated blocks (_no_split_modules)"
        log(f"model.compile=blocks: torch.compile (backend {backend}) is not usable here ({why}); training eager")
        return 0
    fallback = _Fallback(modules, log)
    for m in modules:
        m.compile(backend=backend, dynamic=True)
        if m._compiled_call_impl is not None:  # what nn.Module.compile just set
            m._compiled_call_impl = fallback.guard(m, m._compiled_call_impl)
    return len(modules)


def freeze_vision_encoder(model: Any) -> int:
    """requires_grad=False on a VLM's vision encoder except its merger (the projector into the LM).

    Returns the number of frozen parameters (0 for a text-only model). Pixels never need gradients,
    so autograd then skips the whole tower's backward."""
    visual = getattr(getattr(model, "model", model), "visual", None) or getattr(model, "visual", None)
    if visual is None:
        return 0
    frozen = 0
    for name, p in visual.named_parameters():
        if not name.startswith("merger."):
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen
