"""Text-to-video: diffusers presets (CogVideoX, Wan 2.1, EasyAnimate), tiny random pipelines, seeded clip
generation with atomic mp4 output, and frame-quality metrics (paper section 4.5, Table 3).

Importing this package does not import torch (the UI reads presets and `t2v_status`); loading a pipeline does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.t2v.presets import (
    DEFAULT_T2V_MODEL,
    RANDOM_WEIGHTS_LABEL,
    T2V_PRESETS,
    T2VPreset,
    list_t2v_presets,
    resolve_t2v,
    t2v_status,
)

if TYPE_CHECKING:
    from engine.t2v.backend import ClipRequest, GeneratedClip, T2VPipeline, generate_clip, load_t2v
    from engine.t2v.quality import FrameQuality, frame_quality

_LAZY = {
    "ClipRequest": "engine.t2v.backend",
    "GeneratedClip": "engine.t2v.backend",
    "T2VPipeline": "engine.t2v.backend",
    "generate_clip": "engine.t2v.backend",
    "load_t2v": "engine.t2v.backend",
    "FrameQuality": "engine.t2v.quality",
    "frame_quality": "engine.t2v.quality",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine.t2v' has no attribute {name!r}")


__all__ = [
    "DEFAULT_T2V_MODEL",
    "RANDOM_WEIGHTS_LABEL",
    "T2V_PRESETS",
    "ClipRequest",
    "FrameQuality",
    "GeneratedClip",
    "T2VPipeline",
    "T2VPreset",
    "frame_quality",
    "generate_clip",
    "list_t2v_presets",
    "load_t2v",
    "resolve_t2v",
    "t2v_status",
]
