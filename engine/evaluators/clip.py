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

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from annotations.errors import first_line
from engine.errors import ModelLoadError
from engine.evaluators.base import VideoTextEvaluator, resize_crop_normalise
from engine.evaluators.checkpoints import (
    LONG_CLIP_CONTEXT,
    load_state_dict_file,
    merge_long_clip_positions,
    weights_path,
)
from engine.evaluators.registry import EvaluatorPreset

if TYPE_CHECKING:
    from typing_extensions import TypeIs


# -- text towers ---------------------------------------------------------------------------------
class TextTower(Protocol):
    """The parts of an open_clip text tower (a CLIP with its text inline, or a TextTransformer) that the trimmed
    and packed encoders read: open_clip has no type hints, and nn.Module hides its attributes' types."""

    token_embedding: nn.Module
    positional_embedding: torch.Tensor
    transformer: Any  # open_clip.transformer.Transformer: get_cast_dtype(), forward(x, attn_mask=)
    ln_final: nn.Module
    attn_mask: torch.Tensor
    text_projection: nn.Linear | torch.Tensor | None


def can_trim_text(tower: object) -> TypeIs[TextTower]:
    """Whether `encode_text_trimmed` gives this open_clip text tower's own features.

    True for CLIP's layout (CLIP, Long-CLIP, VideoCLIP-XL's text tower): a causal mask, so position i reads
    positions <= i only, and the feature taken at the end token (argmax pooling: it has the highest id). The
    padding after the longest text's end token then changes no feature. Not for towers that pool the last
    position, attend both ways, or append a class token after the padding.
    """
    pool = getattr(tower, "text_pool_type", getattr(tower, "pool_type", None))
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
    return (
        pool == "argmax"
        and getattr(tower, "attn_mask", None) is not None
        and getattr(tower, "cls_emb", None) is None
        and not getattr(tower, "output_tokens", False)
        and all(hasattr(tower, name) for name in needed)
    )


def encode_text_trimmed(tower: TextTower, tokens: torch.Tensor) -> torch.Tensor:
    """int tokens (K, L) padded to the context -> raw text features (K, D), the transformer run over only the
    n <= L positions up to the longest text's end token (`can_trim_text` says when that is exact).

    Six short sentences padded to Long-CLIP's 248 positions cost six full encodes; trimmed, about one.
    The evaluators run `encode_text_packed` (no padding at all); this is its baseline in bench_grounding.
    """
    end = tokens.argmax(dim=-1)  # (K,) end-token position of each text
    n = int(end.max()) + 1
    tokens = tokens[:, :n]  # (K, n)
    cast = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(cast) + tower.positional_embedding[:n].to(cast)  # (K, n, W)
    x = tower.ln_final(tower.transformer(x, attn_mask=tower.attn_mask[:n, :n]))  # causal mask for n positions
    return _project(tower, x[torch.arange(len(x), device=x.device), end])  # (K, D)


#: Packed rows hold at most this many positions: attention over a packed row costs T^2, so many texts are
#: split over a few rows rather than one long one (a Long-CLIP text, 248 positions, always fits).
PACK_POSITIONS = 512


def encode_text_packed(tower: TextTower, tokens: torch.Tensor) -> torch.Tensor:
    """int tokens (K, L) padded to the context -> raw text features (K, D), each text cut at its own end token
    and the texts packed end to end into rows of <= PACK_POSITIONS positions. A block-diagonal causal mask keeps
    each text to its own positions, which restart at 0, so each feature is the padded forward's
    (`can_trim_text` says when that is exact). Positions read: the texts' own lengths summed, not K x the
    longest: six sentences of a detailed prompt cost about what the whole prompt does.
    """
    lengths = (tokens.argmax(dim=-1) + 1).tolist()  # K end-token positions + 1
    features: dict[int, torch.Tensor] = {}
    for row in _pack_rows(lengths, PACK_POSITIONS):
        pooled = _encode_packed_row(tower, [tokens[i, : lengths[i]] for i in row])  # (len(row), W)
        features.update(zip(row, pooled, strict=True))
    return _project(tower, torch.stack([features[i] for i in range(len(lengths))]))  # (K, D)


def _project(tower: TextTower, pooled: torch.Tensor) -> torch.Tensor:
    """End-token features (K, W) through the tower's text projection (a Linear, a matrix or none) -> (K, D)."""
    projection = tower.text_projection
    if projection is None:
        return pooled
    return projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection


def _pack_rows(lengths: list[int], limit: int) -> list[list[int]]:
    """Text indices grouped in order into rows whose lengths sum to <= limit (a longer text gets a row alone)."""
    rows: list[list[int]] = []
    used = limit
    for i, n in enumerate(lengths):
        if used + n > limit:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += n
    return rows


def _encode_packed_row(tower: TextTower, texts: list[torch.Tensor]) -> torch.Tensor:
    """Token runs [(n_j,)] -> final-norm features at each run's end token (J, W), from one (1, T) forward."""
    device = texts[0].device
    ids = torch.cat(texts)  # (T,)
    positions = torch.cat([torch.arange(len(t), device=device) for t in texts])  # (T,) restart per text
    block = torch.cat([torch.full((len(t),), j, device=device) for j, t in enumerate(texts)])  # (T,) owner
    order = torch.arange(len(ids), device=device)
    allowed = (block[:, None] == block[None, :]) & (order[:, None] >= order[None, :])  # (T, T) causal per text
    mask = torch.zeros(allowed.shape, dtype=tower.attn_mask.dtype, device=device).masked_fill(~allowed, -torch.inf)
    cast = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(ids[None]).to(cast) + tower.positional_embedding[positions][None].to(cast)  # (1, T, W)
    x = tower.ln_final(tower.transformer(x, attn_mask=mask))
    ends = torch.tensor([len(t) for t in texts], device=device).cumsum(0) - 1  # (J,) end-token positions
    return x[0, ends]


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
        tower = getattr(model, "text", model)  # CustomTextCLIP keeps its tower in .text; CLIP inline
        self.packed_tower: TextTower | None = tower if can_trim_text(tower) else None

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
        """(K, context) -> (K, D); each text read up to its own end token, packed (where exact: packed_tower)."""
        if self.packed_tower is None:
            return self.model.encode_text(tokens)
        return encode_text_packed(self.packed_tower, tokens)


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
