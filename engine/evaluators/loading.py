"""Load one evaluator preset: find its weights (building a tiny one in code), pick the format's loader.

No cache here: `Studio` (through its `Ensemble`) is the only place loaded evaluators are kept.
Imports point one way: loading -> {tiny, clip, videoclip_xl} -> {checkpoints, base, registry}.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.evaluators.base import VideoTextEvaluator
from engine.evaluators.registry import EvaluatorPreset, Format, get_preset, resolve_weights
from engine.models import pick_device

Loader = Callable[[EvaluatorPreset, str, str], VideoTextEvaluator]


def _loader(fmt: Format) -> Loader:
    """The format's loader, imported on demand (each pulls open_clip and its model classes)."""
    if fmt == "videoclip_xl":
        from engine.evaluators.videoclip_xl import load_videoclip_xl_evaluator

        return load_videoclip_xl_evaluator
    from engine.evaluators.clip import load_long_clip_evaluator, load_open_clip_evaluator

    return load_long_clip_evaluator if fmt == "long_clip" else load_open_clip_evaluator


def _weights(preset: EvaluatorPreset) -> str:
    """The weights file (or "download"); a builtin tiny preset is built once and its open_clip config registered."""
    weights = resolve_weights(preset)
    if preset.builtin:
        from engine.evaluators.tiny import ensure_tiny_evaluator, register_tiny_configs

        register_tiny_configs()  # open_clip's model-config registry lives in memory, per process
        return weights or str(ensure_tiny_evaluator(preset.builtin))
    assert weights is not None  # resolve_weights raises for a real preset without weights
    return weights


def load_evaluator(name: str, device: str | None = None) -> VideoTextEvaluator:
    """Load an evaluator preset (a new instance each call). Raises ModelLoadError with one clear line."""
    preset = get_preset(name)
    device = pick_device(device)
    return _loader(preset.format)(preset, _weights(preset), device)
