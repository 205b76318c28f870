"""Evaluator presets: which checkpoint format each name loads, and where its weights come from.

No torch here: the UI's model picker and `evaluator_status` read this without loading weights.
Any preset can be pointed at a local weights file with `VIDPROMPTER_EVALUATOR_<NAME>`
(e.g. VIDPROMPTER_EVALUATOR_LONG_CLIP_L=/models/longclip-L.pt). Nothing is downloaded unless
VIDPROMPTER_ALLOW_DOWNLOAD=1; otherwise weights come from that file or the local HF cache.
Imports nothing from the loaders or the tiny builders (they import this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from engine.errors import ModelLoadError
from engine.presets import Preset, downloads_allowed, env_path, hf_cached, no_local_weights, status

Format = Literal["open_clip", "long_clip", "videoclip_xl"]


@dataclass(frozen=True)
class EvaluatorPreset(Preset):
    """A named video-text evaluator and its checkpoint format. hub_id: the repository holding the weights file;
    builtin: a tiny random evaluator built in code (engine.evaluators.tiny, called by engine.evaluators.loading);
    notes: engine.presets.Preset."""

    registry: ClassVar[str] = "evaluator"
    format: Format
    """open_clip (model name + pretrained tag), long_clip (OpenAI-format state dict, 248 tokens),
    videoclip_xl (VideoCLIP-XL .bin: its video encoder + a Long-CLIP text encoder)."""
    label: str
    """Column header in tables (the paper's names)."""
    model_name: str | None = None
    """open_clip architecture name (open_clip format)."""
    pretrained: str | None = None
    """open_clip pretrained tag (open_clip format)."""
    filename: str | None = None
    """Weights file inside hub_id (long_clip / videoclip_xl)."""
    num_frames: int = 8
    """Frames sampled per video."""


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


def _open_clip_hub_file(preset: EvaluatorPreset) -> tuple[str | None, str]:
    """(cached weights file or None, where open_clip would fetch them from) for an open_clip tag."""
    names = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    if preset.hub_id:  # known up front: no need to import open_clip (and torch) just to look
        return hf_cached(preset.hub_id, names), preset.hub_id
    import open_clip

    cfg = open_clip.get_pretrained_cfg(preset.model_name, preset.pretrained) or {}
    hub = str(cfg.get("hf_hub", "")).rstrip("/")
    if not hub:
        return None, str(cfg.get("url") or f"{preset.model_name}/{preset.pretrained}")
    return hf_cached(hub, names), hub


def _locate(preset: EvaluatorPreset) -> str | None:
    """The weights, or None for a builtin preset with no override (engine.evaluators.loading builds it in code;
    this module never builds anything). Raises ModelLoadError saying why there are none."""
    override = env_path(preset.env_var, "file")
    if override or preset.builtin:
        return override
    if preset.format == "open_clip":
        cached, where = _open_clip_hub_file(preset)
    else:
        cached, where = hf_cached(preset.hub_id, (preset.filename or "",)), f"{preset.hub_id}/{preset.filename}"
    if cached:
        return cached
    if downloads_allowed():
        return "download"
    raise ModelLoadError(no_local_weights("no local weights", where, preset.env_var, "/path/to/weights"))


def resolve_weights(preset: EvaluatorPreset) -> str | None:
    """The weights to load: the env-var file, a cached hub file, "download" (downloads on), or None for a
    builtin tiny preset (built by engine.evaluators.tiny).

    Raises ModelLoadError naming the preset and the variable to set; never substitutes another model.
    """
    try:
        return _locate(preset)
    except ModelLoadError as exc:
        raise ModelLoadError(f"evaluator {preset.name!r}: {exc}") from None


def evaluator_status(name: str) -> tuple[bool, str]:
    """(loadable?, one-line message) without loading weights: for the UI's notes and the CLIs."""
    try:
        preset = get_preset(name)
    except ModelLoadError as exc:
        return False, str(exc)
    return status(preset, lambda: _locate(preset))
