"""Video input hallucination (paper section 3.3, Eq. 9-10; Table 2 rows "Input Hallucination").

Frames are uint8 (T, H, W, 3). Three ops, composable, applied in this order:
- shuffle: a random non-identity permutation of the frames (the temporal hallucination);
- crop: one random crop keeping `crop_keep` of each side, resized back to (H, W) (nearest neighbour);
- paste: onto every frame, a patch cut from another random frame at a random place, pasted at another
  random place; patch sides are `paste_ratio` of the frame's sides (paper's best: 1/3-1/2).

Pure numpy, seeded with Generator(PCG64(seed)); inputs are never modified. Every op returns a
JSON-serialisable record. Frame indices in a record refer to the frames that op received.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import InputError, VideoError

Record = dict[str, Any]


def _check_range(name: str, value: tuple[float, float] | None, low_open: bool = True) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be two numbers LO HI, got {value!r}") from None
    if not (0.0 < lo <= hi <= 1.0):
        raise InputError(f"{name} must satisfy 0 < LO <= HI <= 1, got {lo:g} {hi:g}")
    return lo, hi


@dataclass
class VideoHallucinationConfig:
    """Which video ops to apply (paper default: shuffle + paste 1/3-1/2)."""

    shuffle: bool = True
    """Shuffle the frame order (a permutation that is never the identity)."""
    paste_ratio: tuple[float, float] | None = (1 / 3, 1 / 2)
    """Patch side as a fraction of the frame side, drawn in [LO, HI]; None turns pasting off."""
    crop_keep: tuple[float, float] | None = None
    """Fraction of each side a random crop keeps, drawn in [LO, HI] (paper: 0.8-1.0); None turns it off."""

    def __post_init__(self) -> None:
        self.paste_ratio = _check_range("paste_ratio", self.paste_ratio)
        self.crop_keep = _check_range("crop_keep", self.crop_keep)

    @property
    def is_noop(self) -> bool:
        return not self.shuffle and self.paste_ratio is None and self.crop_keep is None


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Frames must be uint8 (T, H, W, 3) with T >= 1."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape) == 0:
        raise VideoError(f"frames must be shaped (T, H, W, 3) with T >= 1, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise VideoError(f"frames must be uint8, got {frames.dtype}")
    return frames


def shuffle_frames(frames: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[Record]]:
    """Reorder frames with a random permutation that is not the identity: out[i] = frames[perm[i]].

    A one-frame video has nothing to shuffle: documented no-op (frames returned as they are, and the
    record says so with `"noop": true`).
    """
    t = frames.shape[0]
    if t == 1:
        return frames, [{"op": "shuffle", "permutation": [0], "noop": True}]
    perm = rng.permutation(t)
    while np.array_equal(perm, np.arange(t)):  # p = 1/T!, so this loops at most a few times for T = 2
        perm = rng.permutation(t)
    return frames[perm], [{"op": "shuffle", "permutation": perm.tolist()}]


def _patch_sides(h: int, w: int, rng: np.random.Generator, ratio: tuple[float, float]) -> tuple[int, int]:
    lo, hi = ratio
    ph = int(np.clip(round(h * rng.uniform(lo, hi)), 1, h))
    pw = int(np.clip(round(w * rng.uniform(lo, hi)), 1, w))
    return ph, pw


def paste_patches(
    frames: np.ndarray, rng: np.random.Generator, ratio: tuple[float, float]
) -> tuple[np.ndarray, list[Record]]:
    """Paste onto each frame i a patch of another random frame j != i (Table 2 "Random Crop and Paste").

    Patches are cut from the input frames (not from already-pasted ones), so the result does not depend
    on the loop order. With one frame, the patch comes from that same frame (at another place).
    Records: {"op": "paste", "frame", "source_frame", "src_xy": [x, y], "dst_xy": [x, y], "size": [h, w]}.
    """
    ratio = _check_range("paste ratio", ratio)
    t, h, w, _ = frames.shape
    out = frames.copy()  # (T, H, W, 3); one copy, then T block copies (no per-pixel work)
    records = []
    for i in range(t):
        j = i if t == 1 else int((i + rng.integers(1, t)) % t)  # uniform over the other frames
        ph, pw = _patch_sides(h, w, rng, ratio)
        sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        dy, dx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        out[i, dy : dy + ph, dx : dx + pw] = frames[j, sy : sy + ph, sx : sx + pw]
        records.append(
            {"op": "paste", "frame": i, "source_frame": j, "src_xy": [sx, sy], "dst_xy": [dx, dy], "size": [ph, pw]}
        )
    return out, records


def random_crop(
    frames: np.ndarray, rng: np.random.Generator, keep: tuple[float, float]
) -> tuple[np.ndarray, list[Record]]:
    """One random crop for the whole clip keeping `keep` of each side, resized back to (H, W).

    Nearest-neighbour resize through index arrays: output shape == input shape, no interpolation cost.
    Record: {"op": "crop", "xy": [x, y], "size": [h, w]} (the crop box in the input frames).
    """
    keep = _check_range("crop keep", keep)
    _, h, w, _ = frames.shape
    ch, cw = _patch_sides(h, w, rng, keep)
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    rows = y + (np.arange(h) * ch) // h  # (H,) source row of each output row
    cols = x + (np.arange(w) * cw) // w  # (W,)
    # Two 1-D takes: about 2x faster than one 2-D fancy index (rows[:, None], cols[None, :]).
    out = np.take(np.take(frames, rows, axis=1), cols, axis=2)  # (T, H, W, 3)
    return out, [{"op": "crop", "xy": [x, y], "size": [ch, cw]}]


def hallucinate_frames(
    frames: np.ndarray, config: VideoHallucinationConfig | None = None, seed: int = 0
) -> tuple[np.ndarray, list[Record]]:
    """Apply the configured ops (shuffle, then crop, then paste) to uint8 (T, H, W, 3) frames.

    Returns new frames of the same shape and the ops record. Same (frames, config, seed) -> same output.
    """
    config = config or VideoHallucinationConfig()
    frames = check_frames(frames)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    ops: list[Record] = []
    out = frames
    if config.shuffle:
        out, rec = shuffle_frames(out, rng)
        ops += rec
    if config.crop_keep is not None:
        out, rec = random_crop(out, rng, config.crop_keep)
        ops += rec
    if config.paste_ratio is not None:
        out, rec = paste_patches(out, rng, config.paste_ratio)
        ops += rec
    if out is frames:  # keep the promise that the input is never aliased by the output
        out = frames.copy()
    return np.ascontiguousarray(out), ops
