"""Evaluator presets: which checkpoint format each name loads, and where its weights come from.

No torch here: the UI's model picker and `evaluator_status` read this without loading weights.
Any preset can be pointed at a local weights file with `VIDPROMPTER_EVALUATOR_<NAME>`
(e.g. VIDPROMPTER_EVALUATOR_LONG_CLIP_L=/models/longclip-L.pt). Nothing is downloaded unless
VIDPROMPTER_ALLOW_DOWNLOAD=1; otherwise weights come from that file or the local HF cache.
Imports nothing from the loaders or the tiny builders (they import this).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.errors import ModelLoadError
from engine.models import downloads_allowed

Format = Literal["open_clip", "long_clip", "videoclip_xl"]


@dataclass(frozen=True)
class EvaluatorPreset:
    """A named video-text evaluator and its checkpoint format."""

    name: str
    format: Format
    """open_clip (model name + pretrained tag), long_clip (OpenAI-format state dict, 248 tokens),
    videoclip_xl (VideoCLIP-XL .bin: its video encoder + a Long-CLIP text encoder)."""
    label: str
    """Column header in tables (the paper's names)."""
    model_name: str | None = None
    """open_clip architecture name (open_clip format)."""
    pretrained: str | None = None
    """open_clip pretrained tag (open_clip format)."""
    hub_id: str | None = None
    """Hugging Face repo holding the weights file (long_clip / videoclip_xl)."""
    filename: str | None = None
    """Weights file inside hub_id."""
    builtin: str | None = None
    """Tiny random evaluator built in code (engine.evaluators.tiny, called by engine.evaluators.loading)."""
    num_frames: int = 8
    """Frames sampled per video."""

    @property
    def random_weights(self) -> bool:
        return self.builtin is not None

    @property
    def env_var(self) -> str:
        return "VIDPROMPTER_EVALUATOR_" + re.sub(r"[^A-Z0-9]+", "_", self.name.upper()).strip("_")


EVALUATOR_PRESETS: dict[str, EvaluatorPreset] = {
    p.name: p
    for p in [
        # hub_id mirrors open_clip's pretrained cfg for ViT-L-14/openai, so a status check needs no torch.
        EvaluatorPreset(
            "clip-vit-l-14",
            "open_clip",
            "CLIP",
            model_name="ViT-L-14",
            pretrained="openai",
            hub_id="timm/vit_large_patch14_clip_224.openai",
        ),
        EvaluatorPreset(
            "long-clip-l", "long_clip", "Long-CLIP", hub_id="BeichenZhang/LongCLIP-L", filename="longclip-L.pt"
        ),
        EvaluatorPreset(
            "videoclip-xl",
            "videoclip_xl",
            "VideoCLIP-XL",
            hub_id="alibaba-pai/VideoCLIP-XL",
            filename="VideoCLIP-XL.bin",
        ),
        EvaluatorPreset(
            "tiny-random-clip", "open_clip", "tiny CLIP", model_name="tiny-random-clip", builtin="tiny-random-clip"
        ),
        EvaluatorPreset("tiny-random-long-clip", "long_clip", "tiny Long-CLIP", builtin="tiny-random-long-clip"),
        EvaluatorPreset(
            "tiny-random-videoclip-xl", "videoclip_xl", "tiny VideoCLIP-XL", builtin="tiny-random-videoclip-xl"
        ),
    ]
}

#: The paper's three evaluators (section 3.5): the one definition of the default ensemble, used by
#: StudioConfig, MiningConfig, EvalConfig, the CLIs and the UI. And a tiny random stand-in of each format.
PAPER_EVALUATORS = ("clip-vit-l-14", "long-clip-l", "videoclip-xl")
TINY_EVALUATORS = ("tiny-random-clip", "tiny-random-long-clip", "tiny-random-videoclip-xl")


def list_evaluators() -> list[EvaluatorPreset]:
    return list(EVALUATOR_PRESETS.values())


def get_preset(name: str) -> EvaluatorPreset:
    if name not in EVALUATOR_PRESETS:
        raise ModelLoadError(f"unknown evaluator {name!r}: pick one of {', '.join(EVALUATOR_PRESETS)}")
    return EVALUATOR_PRESETS[name]


def _hf_cached(repo: str, filenames: tuple[str, ...]) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in filenames:
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return found
    return None


def _open_clip_hub_file(preset: EvaluatorPreset) -> tuple[str | None, str]:
    """(cached weights file or None, where open_clip would fetch them from) for an open_clip tag."""
    names = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    if preset.hub_id:  # known up front: no need to import open_clip (and torch) just to look
        return _hf_cached(preset.hub_id, names), preset.hub_id
    import open_clip

    cfg = open_clip.get_pretrained_cfg(preset.model_name, preset.pretrained) or {}
    hub = str(cfg.get("hf_hub", "")).rstrip("/")
    if not hub:
        return None, str(cfg.get("url") or f"{preset.model_name}/{preset.pretrained}")
    return _hf_cached(hub, names), hub


def _locate(preset: EvaluatorPreset) -> tuple[str | None, str]:
    """(weights, "") when found, (None, why not) when not. A builtin preset with no override is (None, ""):
    engine.evaluators.loading builds it in code; this module never builds anything."""
    override = os.environ.get(preset.env_var)
    if override and not Path(override).is_file():
        return None, f"{override} is not a file; fix {preset.env_var}"
    if override:
        return override, ""
    if preset.builtin:
        return None, ""
    if preset.format == "open_clip":
        cached, where = _open_clip_hub_file(preset)
    else:
        cached, where = _hf_cached(preset.hub_id or "", (preset.filename or "",)), f"{preset.hub_id}/{preset.filename}"
    if cached:
        return cached, ""
    if downloads_allowed():
        return "download", ""
    return None, (
        f"no local weights: {where} is not in the Hugging Face cache; set {preset.env_var}=/path/to/weights "
        "(or VIDPROMPTER_ALLOW_DOWNLOAD=1 with hub access)"
    )


def resolve_weights(preset: EvaluatorPreset) -> str | None:
    """The weights to load: the env-var file, a cached hub file, "download" (downloads on), or None for a
    builtin tiny preset (built by engine.evaluators.tiny).

    Raises ModelLoadError naming the preset and the variable to set; never substitutes another model.
    """
    weights, problem = _locate(preset)
    if problem:
        raise ModelLoadError(f"evaluator {preset.name!r}: {problem}")
    return weights


def evaluator_status(name: str) -> tuple[bool, str]:
    """(loadable?, one-line message) without loading weights: for the UI's notes and the CLIs."""
    try:
        preset = get_preset(name)
    except ModelLoadError as exc:
        return False, str(exc)
    _, problem = _locate(preset)
    if problem:
        return False, problem
    return True, ("random weights — pipeline check only" if preset.builtin else "ready")
