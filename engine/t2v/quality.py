"""Frame-quality metrics of a generated clip, computed offline from its frames (VBench's ideas, paper Table 3).

The labelled substitutes of engine.t2v.vbench_dims, used where VBench's own code or weights (DINO, RAFT, AMT-S,
CLIP ViT-B/32) are not here. They follow VBench's definitions with what is installed, and each is a pure
function of a uint8 (T, H, W, 3) array (or of per-frame features):

- subject consistency: VBench's formula on per-frame image features from a CLIP-style image tower
  (VBench uses DINO features here and CLIP for background consistency);
- temporal flicker: VBench's mean absolute difference of consecutive frames, as a 0-1 smoothness score;
- motion smoothness: VBench's frame-interpolation score with a linear blend of the neighbouring frames instead of
  its AMT-S interpolator;
- motion degree: dense optical flow (OpenCV Farneback instead of RAFT), mean flow magnitude, and VBench's
  dynamic-degree rule (enough frame pairs whose top 5 % of flow magnitudes exceed a size-scaled threshold).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.errors import InputError, VideoError

#: VBench dynamic degree: a frame pair moves when the mean of its top 5 % flow magnitudes exceeds
#: 6 px at a 256-px short side (scaled with the frame size)...
DYNAMIC_THRESHOLD_PX_AT_256 = 6.0
TOP_FRACTION = 0.05
#: ... and a clip is dynamic when at least round(4 * T / 16) pairs move (4 of a 16-frame clip).
DYNAMIC_PAIRS_PER_16_FRAMES = 4


def check_clip(frames: np.ndarray, min_frames: int = 2) -> np.ndarray:
    """The frames as uint8 (T, H, W, 3), or a VideoError saying what is wrong."""
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"frames must be an array shaped (T, H, W, 3); got {getattr(frames, 'shape', None)}")
    if frames.dtype != np.uint8:
        raise VideoError(f"frames must be uint8 (0-255); got {frames.dtype}")
    if len(frames) < min_frames:
        raise VideoError(f"a clip needs at least {min_frames} frames for this metric; got {len(frames)}")
    return frames


# -- temporal flicker ------------------------------------------------------------------------------------
def flicker_mad(frames: np.ndarray) -> float:
    """Mean absolute difference of consecutive frames, in 0-255 grey levels: mean over the T-1 pairs of
    mean |f[t+1] - f[t]| over pixels and channels. A static clip gives 0."""
    x = check_clip(frames).astype(np.int16)  # int16: the differences of uint8 values need a sign
    per_pair = np.abs(np.diff(x, axis=0)).reshape(len(x) - 1, -1).mean(axis=1)  # (T-1,)
    return float(per_pair.mean())


def temporal_smoothness(frames: np.ndarray) -> float:
    """VBench's temporal-flickering score, (255 - flicker_mad) / 255: 1 for a static clip, 0 when every pixel
    jumps between 0 and 255 each frame."""
    return (255.0 - flicker_mad(frames)) / 255.0


def motion_smoothness_linear(frames: np.ndarray) -> float:
    """VBench's motion-smoothness score with its AMT-S interpolator replaced by a linear blend: drop every odd
    frame, predict frame 2k+1 as the mean of frames 2k and 2k+2, and score (255 - mean |predicted - actual|) / 255
    over the predicted frames. 1 for a static clip or motion that is linear in pixel values."""
    x = check_clip(frames, min_frames=3).astype(np.float64)
    k = (len(x) - 1) // 2  # odd frames with a neighbour on each side
    predicted = (x[0 : 2 * k : 2] + x[2 : 2 * k + 1 : 2]) / 2.0  # (k, H, W, 3)
    return (255.0 - float(np.abs(predicted - x[1 : 2 * k : 2]).mean())) / 255.0


# -- motion degree ---------------------------------------------------------------------------------------
def optical_flow(frames: np.ndarray) -> np.ndarray:
    """Dense Farneback flow of each consecutive pair on grey frames: float32 (T-1, H, W, 2), (dx, dy) in
    pixels per frame (positive dx: content moves right)."""
    import cv2

    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in check_clip(frames)]
    flows = [
        # pyramid scale 0.5, 3 levels, 15-px window, 3 iterations, poly_n 5, poly_sigma 1.2: OpenCV's sample values
        cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        for a, b in zip(grey[:-1], grey[1:], strict=True)
    ]
    return np.stack(flows).astype(np.float32)


def top_fraction_mean(magnitude: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Mean of the largest `fraction` of the values (at least one): VBench's per-pair motion statistic."""
    values = np.sort(np.asarray(magnitude, dtype=np.float64).ravel())
    k = max(1, int(len(values) * fraction))
    return float(values[-k:].mean())


def dynamic_threshold(height: int, width: int, fps: float = 8.0) -> float:
    """Flow magnitude (px/frame) above which a pair counts as moving: 6 px at a 256-px short side and 8 fps;
    VBench raises it by 8 / fps below 8 fps (fewer frames per second -> more motion per frame)."""
    return max(1.0, 8.0 / fps) * DYNAMIC_THRESHOLD_PX_AT_256 * min(height, width) / 256.0


def is_dynamic(pair_motion: list[float] | np.ndarray, height: int, width: int, fps: float = 8.0) -> bool:
    """VBench's rule: at least round(4 * T / 16) of the T-1 pairs (at least one) move above the threshold."""
    num_frames = len(pair_motion) + 1
    needed = max(1, round(DYNAMIC_PAIRS_PER_16_FRAMES * num_frames / 16.0))
    moving = int(np.sum(np.asarray(pair_motion) > dynamic_threshold(height, width, fps)))
    return moving >= needed


@dataclass(frozen=True)
class Motion:
    """Motion degree of a clip."""

    mean_flow: float
    """Mean flow magnitude over all pixels and pairs (px/frame)."""
    pair_motion: list[float]
    """Per pair, the mean of its top 5 % flow magnitudes (px/frame)."""
    threshold: float
    """A pair moves above this (px/frame)."""
    dynamic: bool


def motion_degree(frames: np.ndarray, fps: float = 8.0) -> Motion:
    """Mean optical-flow magnitude and VBench's dynamic / static verdict. VBench first subsamples clips above
    8 fps to about 8 fps (every round(fps / 8)-th frame); pass frames that way for comparable verdicts."""
    flow = optical_flow(frames)
    magnitude = np.linalg.norm(flow, axis=-1)  # (T-1, H, W)
    pair_motion = [top_fraction_mean(m) for m in magnitude]
    h, w = frames.shape[1:3]
    threshold = dynamic_threshold(h, w, fps)
    return Motion(float(magnitude.mean()), pair_motion, threshold, is_dynamic(pair_motion, h, w, fps))


# -- subject consistency ---------------------------------------------------------------------------------
def subject_consistency(features: np.ndarray) -> float:
    """VBench's subject consistency from per-frame features (T, D): for each frame after the first, the mean of
    its cosine to the first frame and to the previous frame (each clipped at 0, as VBench does), averaged over
    the T-1 frames. Identical frames give 1."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise InputError(f"subject consistency needs per-frame features shaped (T >= 2, D); got {f.shape}")
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise InputError("subject consistency: a frame feature is all zeros")
    f = f / norms
    to_first = np.clip(f[1:] @ f[0], 0.0, None)  # (T-1,)
    to_prev = np.clip(np.sum(f[1:] * f[:-1], axis=1), 0.0, None)  # (T-1,)
    return float(np.mean((to_first + to_prev) / 2.0))


def frame_features(evaluator: Any, frames: np.ndarray) -> np.ndarray:
    """Per-frame image features (T, D) from a CLIP-style evaluator of engine.evaluators (its own preprocessing).

    Needs an image tower that encodes frames one by one (CLIP, Long-CLIP); VideoCLIP-XL encodes them jointly.
    """
    import torch

    if not (hasattr(evaluator, "preprocess") and hasattr(evaluator, "encode_frames")):
        name = getattr(evaluator, "name", type(evaluator).__name__)
        raise InputError(
            f"evaluator {name!r} encodes a video as a whole; subject consistency needs a per-frame image model "
            "(clip-vit-l-14, long-clip-l or tiny-random-clip)"
        )
    with torch.inference_mode():
        features = evaluator.encode_frames(evaluator.preprocess(check_clip(frames)))  # (T, D)
    return features.float().cpu().numpy()


# -- all of them -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameQuality:
    """The frame-quality columns of a Table-3-style row."""

    subject_consistency: float | None
    """None when no image evaluator was given."""
    temporal_smoothness: float
    flicker_mad: float
    motion_mean_flow: float
    dynamic: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_quality(frames: np.ndarray, evaluator: Any | None = None, fps: float = 8.0) -> FrameQuality:
    """Every metric of one clip; subject consistency only when an image evaluator is given."""
    check_clip(frames)
    consistency = subject_consistency(frame_features(evaluator, frames)) if evaluator is not None else None
    motion = motion_degree(frames, fps)
    mad = flicker_mad(frames)
    return FrameQuality(consistency, (255.0 - mad) / 255.0, mad, motion.mean_flow, motion.dynamic)
