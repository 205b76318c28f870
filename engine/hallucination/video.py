"""Video input hallucination (paper section 3.3, Eq. 9-10; Table 2 rows "Input Hallucination").

Frames are uint8 (T, H, W, 3). Three ops, composable, applied in this order:
- shuffle: a random non-identity permutation of the frames (the temporal hallucination);
- crop: one random crop keeping `crop_keep` of each side, resized back to (H, W) (nearest neighbour);
  or, `crop_area`, torchvision's RandomResizedCrop (a box of that fraction of the AREA, aspect 3/4-4/3,
  bilinear resize back) as official mDPO corrupts its images (scale 0.01-0.2); one box per clip, or
  one per frame with `crop_per_frame`;
- paste: onto every frame, a patch cut from another random frame at a random place, pasted at another
  random place; patch sides are `paste_ratio` of the frame's sides (paper's best: 1/3-1/2); a new box
  per frame, or one box (size, source and target place) for the whole clip with `paste_per_frame=False`.

Pure numpy, seeded with Generator(PCG64(seed)); inputs are never modified. Every op returns a
JSON-serialisable record. Frame indices in a record refer to the frames that op received.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from engine.errors import InputError, VideoError

Record = dict[str, Any]


@overload
def check_range(name: str, value: tuple[float, float]) -> tuple[float, float]: ...
@overload
def check_range(name: str, value: tuple[float, float] | None) -> tuple[float, float] | None: ...
def check_range(name: str, value: tuple[float, float] | None) -> tuple[float, float] | None:
    """(lo, hi) as floats with 0 < lo <= hi <= 1 (None stays None); InputError naming `name` otherwise."""
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
    crop_area: tuple[float, float] | None = None
    """Fraction of the frame AREA a RandomResizedCrop keeps, [LO, HI] (official mDPO: 0.01-0.2); None: off."""
    crop_per_frame: bool = False
    """A new crop box per frame instead of one for the whole clip (the paper does not say)."""
    paste_per_frame: bool = True
    """A new paste box per frame (today's reading of 'onto each frame') instead of one for the whole clip."""

    def __post_init__(self) -> None:
        self.paste_ratio = check_range("paste_ratio", self.paste_ratio)
        self.crop_keep = check_range("crop_keep", self.crop_keep)
        self.crop_area = check_range("crop_area", self.crop_area)
        if self.crop_keep is not None and self.crop_area is not None:
            raise InputError("crop_keep and crop_area are two kinds of crop: set one of them")

    @property
    def is_noop(self) -> bool:
        return not self.shuffle and self.paste_ratio is None and self.crop_keep is None and self.crop_area is None


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


def _paste_box(h: int, w: int, rng: np.random.Generator, ratio: tuple[float, float]) -> tuple[int, ...]:
    """(patch h, patch w, source y, source x, target y, target x)."""
    ph, pw = _patch_sides(h, w, rng, ratio)
    sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    dy, dx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    return ph, pw, sy, sx, dy, dx


def paste_patches(
    frames: np.ndarray, rng: np.random.Generator, ratio: tuple[float, float], per_frame: bool = True
) -> tuple[np.ndarray, list[Record]]:
    """Paste onto each frame i a patch of another random frame j != i (Table 2 "Random Crop and Paste").

    Patches are cut from the input frames (not from already-pasted ones), so the result does not depend
    on the loop order. With one frame, the patch comes from that same frame (at another place).
    per_frame=False: one box (size, source and target place) for the whole clip; j is still drawn per frame.
    Records: {"op": "paste", "frame", "source_frame", "src_xy": [x, y], "dst_xy": [x, y], "size": [h, w]}.
    """
    ratio = check_range("paste ratio", ratio)
    t, h, w, _ = frames.shape
    out = frames.copy()  # (T, H, W, 3); one copy, then T block copies (no per-pixel work)
    records = []
    clip_box = None if per_frame else _paste_box(h, w, rng, ratio)
    for i in range(t):
        j = i if t == 1 else int((i + rng.integers(1, t)) % t)  # uniform over the other frames
        ph, pw, sy, sx, dy, dx = clip_box or _paste_box(h, w, rng, ratio)
        out[i, dy : dy + ph, dx : dx + pw] = frames[j, sy : sy + ph, sx : sx + pw]
        records.append(
            {"op": "paste", "frame": i, "source_frame": j, "src_xy": [sx, sy], "dst_xy": [dx, dy], "size": [ph, pw]}
        )
    return out, records


def _nearest(frames: np.ndarray, y: int, x: int, ch: int, cw: int) -> np.ndarray:
    """The box (y, x, ch, cw) of (T, H, W, 3) frames resized back to (H, W), nearest neighbour."""
    _, h, w, _ = frames.shape
    rows = y + (np.arange(h) * ch) // h  # (H,) source row of each output row
    cols = x + (np.arange(w) * cw) // w  # (W,)
    # Two 1-D takes: about 2x faster than one 2-D fancy index (rows[:, None], cols[None, :]).
    return np.take(np.take(frames, rows, axis=1), cols, axis=2)  # (T, H, W, 3)


def _bilinear(frames: np.ndarray, y: int, x: int, ch: int, cw: int) -> np.ndarray:
    """The box resized back to (H, W) bilinearly with half-pixel centres (torchvision's / OpenCV's
    INTER_LINEAR on an upscale, where antialiasing does nothing): separable, rows then columns."""
    _, h, w, _ = frames.shape

    def taps(out: int, size: int, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)  # (out,) source coordinate
        lo = np.floor(pos).astype(np.int64)
        return start + lo, start + np.minimum(lo + 1, size - 1), (pos - lo).astype(np.float32)

    r0, r1, fy = taps(h, ch, y)
    c0, c1, fx = taps(w, cw, x)
    box = frames.astype(np.float32)
    rows = box[:, r0] * (1 - fy)[None, :, None, None] + box[:, r1] * fy[None, :, None, None]  # (T, H, W0, 3)
    out = rows[:, :, c0] * (1 - fx)[None, None, :, None] + rows[:, :, c1] * fx[None, None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _keep_box(h: int, w: int, rng: np.random.Generator, keep: tuple[float, float]) -> tuple[int, int, int, int]:
    ch, cw = _patch_sides(h, w, rng, keep)
    return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw


def _area_box(h: int, w: int, rng: np.random.Generator, scale: tuple[float, float]) -> tuple[int, int, int, int]:
    """torchvision RandomResizedCrop.get_params (ratio 3/4-4/3): 10 tries of an area fraction in `scale`
    and a log-uniform aspect ratio, else a centre crop of the clamped aspect ratio. -> (y, x, h, w)."""
    ratio = (3 / 4, 4 / 3)
    for _ in range(10):
        target = h * w * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    if w / h < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif w / h > ratio[1]:
        ch, cw = h, round(h * ratio[1])
    else:
        ch, cw = h, w
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def _crop(frames, rng, box_fn, resize, per_frame: bool) -> tuple[np.ndarray, list[Record]]:
    _, h, w, _ = frames.shape
    if not per_frame:
        y, x, ch, cw = box_fn(h, w, rng)
        return resize(frames, y, x, ch, cw), [{"op": "crop", "xy": [x, y], "size": [ch, cw]}]
    out, records = np.empty_like(frames), []
    for i in range(frames.shape[0]):
        y, x, ch, cw = box_fn(h, w, rng)
        out[i] = resize(frames[i : i + 1], y, x, ch, cw)[0]
        records.append({"op": "crop", "frame": i, "xy": [x, y], "size": [ch, cw]})
    return out, records


def random_crop(
    frames: np.ndarray, rng: np.random.Generator, keep: tuple[float, float], per_frame: bool = False
) -> tuple[np.ndarray, list[Record]]:
    """One random crop for the whole clip keeping `keep` of each side, resized back to (H, W).

    Nearest-neighbour resize through index arrays: output shape == input shape, no interpolation cost.
    Record: {"op": "crop", "xy": [x, y], "size": [h, w]} (the crop box in the input frames); per_frame:
    one box per frame, records with "frame".
    """
    keep = check_range("crop keep", keep)
    return _crop(frames, rng, lambda h, w, r: _keep_box(h, w, r, keep), _nearest, per_frame)


def random_resized_crop(
    frames: np.ndarray, rng: np.random.Generator, scale: tuple[float, float], per_frame: bool = False
) -> tuple[np.ndarray, list[Record]]:
    """mDPO's image corruption on video: RandomResizedCrop(size=(H, W), scale) - a box of `scale` of the
    area (aspect ratio 3/4-4/3), resized back bilinearly; one box for the clip, or one per frame.
    Records as `random_crop`."""
    scale = check_range("crop area", scale)
    return _crop(frames, rng, lambda h, w, r: _area_box(h, w, r, scale), _bilinear, per_frame)


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
        out, rec = random_crop(out, rng, config.crop_keep, config.crop_per_frame)
        ops += rec
    if config.crop_area is not None:
        out, rec = random_resized_crop(out, rng, config.crop_area, config.crop_per_frame)
        ops += rec
    if config.paste_ratio is not None:
        out, rec = paste_patches(out, rng, config.paste_ratio, config.paste_per_frame)
        ops += rec
    if out is frames:  # keep the promise that the input is never aliased by the output
        out = frames.copy()
    return np.ascontiguousarray(out), ops
