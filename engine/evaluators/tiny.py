"""Tiny random-weight evaluators, one per checkpoint format, built in code and saved to the cache.

They load back through the same loaders as real checkpoints (open_clip `create_model_and_transforms`
with a weights file; the Long-CLIP state-dict path; the VideoCLIP-XL .bin path). Their scores are
meaningless: outputs are labelled "random weights — pipeline check only".

This module depends on the loaders (it builds with their classes), never the other way round:
engine.evaluators.loading calls `ensure_tiny_evaluator` / `register_tiny_configs` for a builtin preset.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from annotations.files import atomic_dir, atomic_write
from engine.evaluators.checkpoints import stretch_positional_embedding
from engine.tiny_models import cache_root

#: Bump when a builder changes, so stale caches are rebuilt.
TINY_EVALUATOR_VERSION = "1"
TINY_CLIP_NAME = "tiny-random-clip"

#: A CLIP small enough for tests (~3.4 M parameters, most in the 49 408-token embedding). Heads are
#: width // 64, as the OpenAI-format loaders infer them.
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
}


def config_dir() -> Path:
    return cache_root() / f"open_clip-configs-v{TINY_EVALUATOR_VERSION}"


def register_tiny_configs() -> str:
    """Write the tiny open_clip config JSON and register it (open_clip's registry is per process)."""
    import open_clip

    folder = config_dir()
    path = folder / f"{TINY_CLIP_NAME}.json"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(TINY_CLIP_CONFIG, indent=2))
    if TINY_CLIP_NAME not in open_clip.list_models():
        open_clip.add_model_config(path)
    return TINY_CLIP_NAME


def _random_clip(seed: int = 0):
    import open_clip

    register_tiny_configs()
    torch.manual_seed(seed)
    return open_clip.create_model(TINY_CLIP_NAME, pretrained=None)


def _build_clip(out: Path) -> Path:
    from safetensors.torch import save_file

    path = out / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in _random_clip(0).state_dict().items()}, str(path))
    return path


def _long_clip_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """OpenAI-format CLIP weights turned into Long-CLIP's format, as Long-CLIP initialises itself:
    the 77-row table stretched to 248 and copied into `positional_embedding_res`; the copy is then
    perturbed (as fine-tuning would) so that the 20-row split is visible in tests."""
    sd = {k: v.clone() for k, v in _random_clip(seed).state_dict().items()}
    stretched = stretch_positional_embedding(sd["positional_embedding"])
    generator = torch.Generator().manual_seed(seed + 1)
    sd["positional_embedding"] = stretched
    sd["positional_embedding_res"] = stretched + 0.05 * torch.randn(stretched.shape, generator=generator)
    return sd


def _build_long_clip(out: Path) -> Path:
    path = out / "longclip-tiny.pt"
    torch.save(_long_clip_state_dict(seed=1), path)
    return path


def _build_videoclip_xl(out: Path) -> Path:
    from engine.evaluators.videoclip_xl import TEXT_PREFIX, VISION_PREFIX, VideoVisionTransformer

    torch.manual_seed(2)
    vision = VideoVisionTransformer(width=64, layers=2, heads=1, patch_size=16, image_size=64, output_dim=32)
    with torch.no_grad():  # non-zero temporal embeddings, so frame order matters
        vision.temporal_positional_embedding.normal_(std=0.1)
    sd = {VISION_PREFIX + k: v for k, v in vision.state_dict().items()}
    sd["vision_model.temp"] = torch.tensor(0.01)
    text = _long_clip_state_dict(seed=3)
    sd.update({TEXT_PREFIX + k: v for k, v in text.items() if not k.startswith("visual.")})
    path = out / "VideoCLIP-XL-tiny.bin"
    torch.save(sd, path)
    return path


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "tiny-random-clip": _build_clip,
    "tiny-random-long-clip": _build_long_clip,
    "tiny-random-videoclip-xl": _build_videoclip_xl,
}


def ensure_tiny_evaluator(name: str, root: Path | None = None) -> Path:
    """Build once and return the weights file of a tiny evaluator; safe against concurrent builders."""
    target = (root or cache_root()) / f"{name}-v{TINY_EVALUATOR_VERSION}"
    done = target / "weights.txt"  # names the weights file; written last
    if done.exists():
        return target / done.read_text().strip()
    with atomic_dir(target, finished=done.name) as tmp:  # a concurrent builder either wins or finds the folder
        weights = BUILDERS[name](tmp)
        (tmp / done.name).write_text(weights.name)
    return target / done.read_text().strip()
