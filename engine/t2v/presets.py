"""Text-to-video presets: open T2V models that diffusers 0.42.1 ships pipelines for, and where their weights come from.

No torch here: the UI's "Generate video" button and `t2v_status` read this without loading weights.
Weights come, in this order, from `VIDPROMPTER_T2V_<NAME>` (a diffusers pipeline folder, e.g.
VIDPROMPTER_T2V_COGVIDEOX_2B=/models/CogVideoX-2b), a tiny random pipeline built in code (the
`tiny-random-*` presets), the local Hugging Face cache, or the hub when VIDPROMPTER_ALLOW_DOWNLOAD=1.
Anything else is refused with one line naming the preset and what to set; we never substitute another model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar, Literal

from engine.errors import ModelLoadError
from engine.presets import (
    RANDOM_WEIGHTS_LABEL,
    Preset,
    downloads_allowed,
    hf_cached,
    no_local_weights,
    require_path,
    status,
)

Family = Literal["cogvideox", "wan", "easyanimate"]

#: The diffusers pipeline class of each family (what `model_index.json` names in `_class_name`).
PIPELINE_CLASSES: dict[Family, str] = {
    "cogvideox": "CogVideoXPipeline",
    "wan": "WanPipeline",
    "easyanimate": "EasyAnimatePipeline",
}


@dataclass(frozen=True)
class T2VPreset(Preset):
    """A named text-to-video pipeline and its generation defaults (the model card's settings). hub_id: the
    diffusers-format repository; builtin: a tiny random pipeline built in code (engine.t2v.tiny); notes:
    engine.presets.Preset."""

    registry: ClassVar[str] = "t2v"
    family: Family
    """Which diffusers pipeline class loads it."""
    local_path: str | None = None
    """A diffusers pipeline folder (model_index.json inside); wins over hub_id."""
    frames: int = 49
    """Default clip length in frames."""
    frame_step: int = 4
    """Valid lengths are frame_step * k + 1: the VAE compresses time 4x; CogVideoX 1.0's VAE decodes latents in
    pairs, so only 8k + 1 frames come out as asked."""
    fps: float = 8.0
    """Frame rate the model was trained at (the written mp4's rate)."""
    height: int = 480
    width: int = 720
    size_multiple: int = 16
    """Heights and widths are multiples of this (VAE 8x downsampling x transformer patch 2)."""
    steps: int = 50
    """Denoising steps."""
    guidance: float = 6.0
    """Classifier-free guidance scale (<= 1 turns guidance off)."""
    max_tokens: int = 226
    """Text encoder tokens the pipeline reads (end token included); longer prompts are refused, not truncated."""
    vae_fp32: bool = False
    """Keep the VAE in fp32 under bf16 (Wan's model card: its VAE degrades in bf16)."""

    @property
    def pipeline_class(self) -> str:
        return PIPELINE_CLASSES[self.family]


T2V_PRESETS: dict[str, T2VPreset] = {
    p.name: p
    for p in [
        T2VPreset("cogvideox-2b", "cogvideox", hub_id="THUDM/CogVideoX-2b", frame_step=8, notes="T5-XXL text encoder"),
        T2VPreset("cogvideox-5b", "cogvideox", hub_id="THUDM/CogVideoX-5b", frame_step=8, notes="T5-XXL text encoder"),
        T2VPreset(
            "wan2.1-t2v-1.3b",
            "wan",
            hub_id="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            frames=81,
            fps=16.0,
            width=832,
            guidance=5.0,
            max_tokens=512,
            vae_fp32=True,
            notes="UMT5-XXL text encoder; VAE kept in fp32",
        ),
        T2VPreset(
            "easyanimate-v5.1-7b",
            "easyanimate",
            hub_id="alibaba-pai/EasyAnimateV5.1-7b-zh-diffusers",
            height=512,
            width=512,
            max_tokens=256,
            notes="the paper's Table-3 generator family; Qwen2-VL text encoder (chat-templated prompt)",
        ),
        T2VPreset(
            "tiny-random-cogvideox",
            "cogvideox",
            builtin="tiny-random-cogvideox",
            frames=9,
            frame_step=8,
            height=32,
            width=32,
            steps=4,
            notes="CogVideoX classes, ~0.1 M random weights: " + RANDOM_WEIGHTS_LABEL,
        ),
        T2VPreset(
            "tiny-random-wan",
            "wan",
            builtin="tiny-random-wan",
            frames=9,
            fps=16.0,
            height=32,
            width=32,
            steps=4,
            guidance=5.0,
            max_tokens=512,
            vae_fp32=True,
            notes="Wan 2.1 classes, ~0.1 M random weights: " + RANDOM_WEIGHTS_LABEL,
        ),
        T2VPreset(
            "tiny-random-easyanimate",
            "easyanimate",
            builtin="tiny-random-easyanimate",
            frames=9,
            height=32,
            width=32,
            steps=4,
            max_tokens=256,
            notes="EasyAnimate v5.1 classes (Qwen2-VL text encoder), ~0.2 M random weights: " + RANDOM_WEIGHTS_LABEL,
        ),
    ]
}

#: What `generate-video` uses without --model: the smallest real preset (refused here, with what to set).
DEFAULT_T2V_MODEL = "cogvideox-2b"


def list_t2v_presets() -> list[T2VPreset]:
    return list(T2V_PRESETS.values())


def resolve_t2v(name: str) -> T2VPreset:
    """A preset by name (env-var override applied), or an ad-hoc preset for a diffusers pipeline folder."""
    if name in T2V_PRESETS:
        preset = T2V_PRESETS[name]
        override = os.environ.get(preset.env_var)
        return replace(preset, local_path=override, builtin=None) if override else preset
    path = Path(name).expanduser()
    if path.is_dir():
        family = _family_of_folder(path, name)
        base = next(p for p in T2V_PRESETS.values() if p.family == family and not p.builtin)
        return replace(base, name=path.name, hub_id=None, local_path=str(path), notes="local pipeline folder")
    known = ", ".join(T2V_PRESETS)
    raise ModelLoadError(
        f"unknown text-to-video model {name!r}: pick one of {known}, or pass a diffusers pipeline folder"
    )


def folder_pipeline_class(path: Path) -> str | None:
    """The `_class_name` in a diffusers folder's model_index.json, or None when there is none."""
    try:
        return str(json.loads((path / "model_index.json").read_text())["_class_name"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _family_of_folder(path: Path, name: str) -> Family:
    cls = folder_pipeline_class(path)
    for family, pipeline in PIPELINE_CLASSES.items():
        if cls == pipeline:
            return family
    supported = ", ".join(PIPELINE_CLASSES.values())
    found = f"a {cls}" if cls else "no readable model_index.json"
    raise ModelLoadError(f"{name} holds {found}; a text-to-video folder holds one of {supported}")


def t2v_source(preset: T2VPreset) -> str:
    """The folder or hub id to load from, or a ModelLoadError naming the preset and what to set.

    Builds the tiny random pipeline (imports torch) when the preset is one.
    """
    if preset.local_path:
        return _checked_folder(preset)
    require_diffusers()
    if preset.builtin:
        from engine.t2v.tiny import ensure_tiny_t2v

        return str(ensure_tiny_t2v(preset.builtin))
    if preset.hub_id and (downloads_allowed() or hf_cached(preset.hub_id, ("model_index.json",))):
        return preset.hub_id
    subject = f"text-to-video model {preset.name!r} cannot load"
    raise ModelLoadError(no_local_weights(subject, str(preset.hub_id), preset.env_var, "/path/to/diffusers/folder"))


def _checked_folder(preset: T2VPreset) -> str:
    path = Path(preset.local_path or "")
    overridden = bool(os.environ.get(preset.env_var))  # resolve_t2v applied it: the variable is what to fix
    where = f"fix {preset.env_var}" if overridden else "pass a diffusers pipeline folder"
    if overridden:
        require_path(path, "folder", preset.env_var, f"text-to-video model {preset.name!r}")
    elif not path.is_dir():  # a folder passed by name, gone since
        raise ModelLoadError(f"text-to-video model {preset.name!r}: {path} is not a folder; {where}")
    cls = folder_pipeline_class(path)
    if cls is None:
        raise ModelLoadError(
            f"text-to-video model {preset.name!r}: {path} has no readable model_index.json (not a diffusers "
            f"pipeline folder); {where}"
        )
    if cls != preset.pipeline_class:
        raise ModelLoadError(
            f"text-to-video model {preset.name!r} needs a {preset.pipeline_class} folder, but {path} holds a {cls}; "
            f"{where}"
        )
    return str(path)


#: Text-to-video is an optional extra of the installed product: diffusers ships with it.
NO_DIFFUSERS = "text-to-video needs the t2v extra: pip install 'vidprompter-studio[t2v]' (diffusers 0.42.1)"


def require_diffusers() -> None:
    """ModelLoadError in one line when diffusers is not installed (a base `pip install .`)."""
    import importlib.util

    if importlib.util.find_spec("diffusers") is None:
        raise ModelLoadError(NO_DIFFUSERS)


def t2v_status(name: str) -> tuple[bool, str]:
    """(loadable?, message) without loading or building weights: for the app's "Generate video" button."""
    try:
        require_diffusers()
        preset = resolve_t2v(name)
    except ModelLoadError as exc:
        return False, str(exc)
    return status(preset, None if preset.builtin else lambda: t2v_source(preset))
