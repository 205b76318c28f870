"""Image CLIP models as video evaluators (frame averaging), loaded through open_clip.

Two checkpoint formats:
- open_clip: an architecture name plus a pretrained tag or weights file (`clip-vit-l-14` =
  ViT-L-14 / openai, the paper's "CLIP").
- Long-CLIP: an OpenAI-format state dict whose text tower reads 248 tokens; its two positional
  tables are folded into one 248-row table (engine.evaluators.checkpoints) and an open_clip CLIP
  with context length 248 is built from the state dict.

A preset whose architecture is not one of open_clip's own (the tiny random one) must have its config
registered with open_clip before `load_open_clip_evaluator` runs; engine.evaluators.loading does that.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import ModelLoadError
from engine.evaluators.base import VideoTextEvaluator, resize_crop_normalise
from engine.evaluators.checkpoints import (
    LONG_CLIP_CONTEXT,
    first_line,
    load_state_dict_file,
    merge_long_clip_positions,
    weights_path,
)
from engine.evaluators.registry import EvaluatorPreset


class FrameAveragingEvaluator(VideoTextEvaluator):
    """An open_clip image-text model scoring videos by the mean of its L2-normalised frame features."""

    def __init__(self, name: str, model: Any, context_length: int, batch_size: int = 16, **kwargs: Any) -> None:
        import open_clip

        super().__init__(name, open_clip.SimpleTokenizer(context_length=context_length), context_length, **kwargs)
        self.model = model.eval().to(self.device)
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", model.visual.image_size)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
        self.std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
        self.batch_size = batch_size

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        return resize_crop_normalise(frames, self.image_size, self.mean, self.std, crop=True)

    def encode_frames(self, pixels: torch.Tensor) -> torch.Tensor:
        """(T, 3, S, S) -> raw frame features (T, D), in chunks of batch_size frames."""
        chunks = [self.model.encode_image(c.to(self.device)) for c in pixels.split(self.batch_size)]
        return torch.cat(chunks).float()

    def encode_video(self, frames: np.ndarray) -> torch.Tensor:
        per_frame = F.normalize(self.encode_frames(self.preprocess(frames)), dim=-1)  # (T, D)
        return F.normalize(per_frame.mean(dim=0), dim=-1)  # average of unit vectors, re-normalised

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens)


# -- loaders ------------------------------------------------------------------------------------
def load_open_clip_evaluator(preset: EvaluatorPreset, weights: str, device: str) -> FrameAveragingEvaluator:
    """open_clip by architecture name: a pretrained tag (downloads on) or a weights file."""
    import open_clip

    pretrained = preset.pretrained if weights == "download" else weights
    try:
        model = open_clip.create_model_and_transforms(preset.model_name, pretrained=pretrained, device=device)[0]
    except Exception as exc:
        raise ModelLoadError(f"evaluator {preset.name!r} failed to load from {pretrained}: {first_line(exc)}") from exc
    ctx = int(model.context_length)
    return FrameAveragingEvaluator(
        preset.name, model, ctx, num_frames=preset.num_frames, random_weights=preset.random_weights, device=device
    )


def build_long_clip(sd: dict[str, torch.Tensor]) -> Any:
    """An open_clip CLIP (QuickGELU, 248-token text tower) from a Long-CLIP state dict."""
    from open_clip.model import build_model_from_openai_state_dict

    sd = merge_long_clip_positions(dict(sd))
    n = sd["positional_embedding"].shape[0]
    if n != LONG_CLIP_CONTEXT:
        raise ValueError(f"text positional embedding has {n} rows; a Long-CLIP checkpoint has {LONG_CLIP_CONTEXT}")
    # Like Long-CLIP's own build_model, this casts to fp16 before loading; we run it in fp32.
    return build_model_from_openai_state_dict(sd, quick_gelu=True, cast_dtype=None).float()


def load_long_clip_evaluator(preset: EvaluatorPreset, weights: str, device: str) -> FrameAveragingEvaluator:
    path = weights_path(preset, weights)
    try:
        model = build_long_clip(load_state_dict_file(path))
    except Exception as exc:
        msg = f"evaluator {preset.name!r}: {path} is not a Long-CLIP checkpoint: {first_line(exc)}"
        raise ModelLoadError(msg) from exc
    return FrameAveragingEvaluator(
        preset.name,
        model,
        LONG_CLIP_CONTEXT,
        num_frames=preset.num_frames,
        random_weights=preset.random_weights,
        device=device,
    )
