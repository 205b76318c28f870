"""VideoCLIP-XL (Wang et al. 2024): a joint video encoder plus a Long-CLIP text encoder.

Checkpoint format (`VideoCLIP-XL.bin`, a torch state dict of the `VideoCLIP_XL` module in
alibaba-pai/VideoCLIP-XL `modeling.py`):
- `vision_model.vision_encoder.*`: a ViT-L/14 whose `conv1` is a Conv3d with temporal kernel 1
  (`conv1.weight` (1024, 3, 1, 14, 14)), `class_embedding`, `positional_embedding` (257, 1024),
  `temporal_positional_embedding` (1, 8, 1024), `ln_pre`, `transformer.resblocks.{i}.{attn, ln_1,
  mlp.c_fc, mlp.c_proj, ln_2}`, `ln_post`, `proj` (1024, 768); plus `vision_model.temp`.
- `text_model.*`: Long-CLIP's text tower (`positional_embedding` and `positional_embedding_res`,
  248 rows each), `token_embedding`, `transformer.resblocks.*`, `ln_final`, `text_projection`.

Preprocessing as in its demo: 8 frames, RGB, resized to 224 x 224 (no crop), ImageNet mean/std. The
8 x 256 patch tokens (with spatial + temporal position embeddings) and one class token go through
one transformer; the class token's output, projected, is the video feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from annotations.errors import first_line
from engine.errors import ModelLoadError
from engine.evaluators.base import VideoTextEvaluator, fit_frames, resize_crop_normalise
from engine.evaluators.checkpoints import (
    LONG_CLIP_CONTEXT,
    load_state_dict_file,
    merge_long_clip_positions,
    weights_path,
)
from engine.evaluators.clip import TextTower, can_trim_text, encode_text_packed
from engine.evaluators.registry import EvaluatorPreset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VISION_PREFIX = "vision_model.vision_encoder."
TEXT_PREFIX = "text_model."


class VideoVisionTransformer(nn.Module):
    """VideoCLIP-XL's video encoder; parameter names match its checkpoint (without the prefix)."""

    def __init__(
        self,
        width: int = 1024,
        layers: int = 24,
        heads: int = 16,
        patch_size: int = 14,
        image_size: int = 224,
        num_frames: int = 8,
        output_dim: int = 768,
        kernel_t: int = 1,
    ) -> None:
        from open_clip.transformer import LayerNorm, QuickGELU, Transformer

        super().__init__()
        self.image_size, self.num_frames = image_size, num_frames
        kernel = (kernel_t, patch_size, patch_size)
        self.conv1 = nn.Conv3d(3, width, kernel, kernel, bias=False)  # one patch per frame when kernel_t = 1
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((image_size // patch_size) ** 2 + 1, width))
        self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, num_frames, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, act_layer=QuickGELU, norm_layer=LayerNorm)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, output_dim)."""
        x = self.conv1(video.permute(0, 2, 1, 3, 4))  # (B, C, T, gh, gw)
        b, c, t = x.shape[:3]
        x = x.flatten(3).permute(0, 2, 3, 1)  # (B, T, N, C)
        x = x + self.positional_embedding[1:].to(x.dtype)  # spatial position of each patch
        temporal = self.temporal_positional_embedding
        x = x + (temporal.mean(1) if t == 1 else temporal)[:, :, None, :].to(x.dtype)  # (1, T, 1, C)
        x = x.permute(0, 2, 1, 3).reshape(b, -1, c)  # (B, N * T, C): patch-major, as in the original
        cls = (self.class_embedding + self.positional_embedding[0]).to(x.dtype).expand(b, 1, c)
        x = self.ln_pre(torch.cat([cls, x], dim=1))
        x = self.ln_post(self.transformer(x))  # batch-first
        return x[:, 0] @ self.proj

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> VideoVisionTransformer:
        """Infer the architecture from the tensor shapes and load (strict)."""
        width, _, kernel_t, patch, _ = sd["conv1.weight"].shape
        layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
        grid = round((sd["positional_embedding"].shape[0] - 1) ** 0.5)
        model = cls(
            width=width,
            layers=layers,
            heads=max(1, width // 64),
            patch_size=patch,
            image_size=grid * patch,
            num_frames=sd["temporal_positional_embedding"].shape[1],
            output_dim=sd["proj"].shape[1],
            kernel_t=kernel_t,
        )
        model.load_state_dict(sd)
        return model.eval()


def build_long_clip_text(sd: dict[str, torch.Tensor]) -> nn.Module:
    """open_clip's TextTransformer (QuickGELU, 248 tokens, argmax pooling) from Long-CLIP text weights."""
    from open_clip.transformer import LayerNorm, QuickGELU, TextTransformer

    sd = merge_long_clip_positions(dict(sd))
    sd.pop("logit_scale", None)
    width = sd["ln_final.weight"].shape[0]
    model = TextTransformer(
        context_length=sd["positional_embedding"].shape[0],
        vocab_size=sd["token_embedding.weight"].shape[0],
        width=width,
        heads=max(1, width // 64),
        layers=len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")}),
        output_dim=sd["text_projection"].shape[1],
        act_layer=QuickGELU,
        norm_layer=LayerNorm,
    )
    model.load_state_dict(sd)
    return model.eval()


def split_checkpoint(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    vision = {k.removeprefix(VISION_PREFIX): v for k, v in sd.items() if k.startswith(VISION_PREFIX)}
    text = {k.removeprefix(TEXT_PREFIX): v for k, v in sd.items() if k.startswith(TEXT_PREFIX)}
    if not vision or not text:
        raise ValueError(f"expected keys under {VISION_PREFIX!r} and {TEXT_PREFIX!r}")
    return vision, text


class VideoCLIPXLEvaluator(VideoTextEvaluator):
    def __init__(self, name: str, vision: VideoVisionTransformer, text: Any, **kwargs: Any) -> None:
        """`text`: open_clip's TextTransformer (build_long_clip_text); open_clip has no type hints."""
        import open_clip

        ctx = int(text.context_length)
        super().__init__(name, open_clip.SimpleTokenizer(context_length=ctx), ctx, **kwargs)
        self.vision = vision.to(self.device)
        self.text = text.to(self.device)
        # Long-CLIP's tower: causal, pooled at the end token, so each text can be read up to its end alone
        self.packed_tower: TextTower | None = self.text if can_trim_text(self.text) else None
        self.num_frames = vision.num_frames

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        frames = fit_frames(frames, self.vision.num_frames)
        pixels = resize_crop_normalise(frames, self.vision.image_size, IMAGENET_MEAN, IMAGENET_STD, crop=False)
        return pixels[None]  # (1, T, 3, S, S)

    def encode_video(self, frames: np.ndarray) -> torch.Tensor:
        return F.normalize(self.vision(self.preprocess(frames).to(self.device))[0].float(), dim=-1)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(K, 248) -> (K, D); each text read up to its own end token, packed (same features)."""
        return self.text(tokens) if self.packed_tower is None else encode_text_packed(self.packed_tower, tokens)


def load_videoclip_xl_evaluator(preset: EvaluatorPreset, weights: str, device: str) -> VideoCLIPXLEvaluator:
    path = weights_path(preset, weights)
    try:
        vision_sd, text_sd = split_checkpoint(load_state_dict_file(path))
        vision = VideoVisionTransformer.from_state_dict(vision_sd)
        text = build_long_clip_text(text_sd)
    except Exception as exc:
        raise ModelLoadError(
            f"evaluator {preset.name!r}: {path} is not a VideoCLIP-XL checkpoint: {first_line(exc)}"
        ) from exc
    if text.context_length != LONG_CLIP_CONTEXT:
        raise ModelLoadError(f"evaluator {preset.name!r}: text encoder reads {text.context_length} tokens, not 248")
    return VideoCLIPXLEvaluator(preset.name, vision, text, random_weights=preset.random_weights, device=device)
