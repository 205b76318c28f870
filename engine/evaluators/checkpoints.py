"""Checkpoint helpers shared by the evaluator loaders (clip.py, videoclip_xl.py) and the tiny builders.

State-dict reading, the hub download (opt-in), and Long-CLIP's positional-embedding handling. Long-CLIP
stretches CLIP's 77 positional embeddings to 248 (`stretch_positional_embedding`) and fine-tunes two
tables: positions 0-19 use `positional_embedding`, positions 20-247 use `positional_embedding_res` (its
`encode_text` adds `pe * mask1 + pe_res * mask2`); `merge_long_clip_positions` folds them into one table.
"""

from __future__ import annotations

from pathlib import Path

import torch

from annotations.errors import first_line
from engine.errors import ModelLoadError
from engine.evaluators.registry import EvaluatorPreset

#: Long-CLIP keeps the first 20 positions of CLIP's table and stretches the rest 4x: 20 + 4 * 57 = 248.
LONG_CLIP_KEEP = 20
LONG_CLIP_CONTEXT = 248


def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, a torch pickle (weights_only), or a TorchScript archive."""
    if Path(path).suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        sd = torch.jit.load(path, map_location="cpu").state_dict()  # OpenAI's released .pt files
    for key in ("state_dict", "model", "module"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return {k.removeprefix("module."): v for k, v in sd.items()}


def weights_path(preset: EvaluatorPreset, weights: str) -> str:
    """`weights` as resolved by the registry: a file path, or "download" (the registry allowed it: fetch now)."""
    if weights != "download":
        return weights
    from huggingface_hub import hf_hub_download

    if preset.hub_id is None or preset.filename is None:
        where = f"set {preset.env_var}=/path/to/weights"
        raise ModelLoadError(f"evaluator {preset.name!r}: no hub file to download; {where}")
    try:
        return hf_hub_download(preset.hub_id, preset.filename)
    except Exception as exc:
        raise ModelLoadError(f"evaluator {preset.name!r}: download failed: {first_line(exc)}") from exc


def stretch_positional_embedding(pe: torch.Tensor, keep: int = LONG_CLIP_KEEP, ratio: int = 4) -> torch.Tensor:
    """Long-CLIP's knowledge-preserved stretching, (L, D) -> (keep + ratio * (L - keep), D): 77 -> 248.

    Positions < keep are copied; each later gap is linearly interpolated `ratio` times, and the last
    position is extrapolated along the final step.
    """
    w = torch.arange(ratio, dtype=pe.dtype) / ratio  # (ratio,)
    a, b = pe[keep:-1], pe[keep + 1 :]  # (L - keep - 1, D)
    middle = a[:, None] * (1 - w)[None, :, None] + b[:, None] * w[None, :, None]
    last = pe[-1][None] + w[:, None] * (pe[-1] - pe[-2])[None]
    return torch.cat([pe[:keep], middle.flatten(0, 1), last])


def merge_long_clip_positions(sd: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Fold Long-CLIP's (positional_embedding, positional_embedding_res) into one table, in place."""
    key = prefix + "positional_embedding"
    res = sd.pop(prefix + "positional_embedding_res", None)
    if res is not None:
        sd[key] = torch.cat([sd[key][:LONG_CLIP_KEEP], res[LONG_CLIP_KEEP:]])
    return sd
