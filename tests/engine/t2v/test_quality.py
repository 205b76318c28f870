"""Frame-quality metrics against hand-computed values (static, flashing and translating clips)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.errors import InputError, VideoError
from engine.t2v.quality import (
    dynamic_threshold,
    flicker_mad,
    frame_features,
    frame_quality,
    is_dynamic,
    motion_degree,
    optical_flow,
    subject_consistency,
    temporal_smoothness,
    top_fraction_mean,
)


def _texture(size: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture (blurred noise, grey levels 40..240): Farneback needs gradients to track."""
    import cv2

    noise = np.random.default_rng(seed).random((size, size)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 2.0)
    scaled = (blurred - blurred.min()) / (blurred.max() - blurred.min())
    return (scaled * 200 + 40).astype(np.uint8)


def _translating_square(num_frames: int = 5, dx: int = 3, dy: int = 1, side: int = 96) -> np.ndarray:
    """A 24-px textured square on black, moving (dx, dy) px per frame: (T, side, side, 3) uint8."""
    tex = _texture(24)
    frames = np.zeros((num_frames, side, side, 3), np.uint8)
    for t in range(num_frames):
        y, x = 30 + dy * t, 20 + dx * t
        frames[t, y : y + 24, x : x + 24] = tex[..., None]
    return frames


def test_static_clip_has_no_flicker_and_no_motion():
    frames = np.repeat(_translating_square(1), 6, axis=0)
    assert flicker_mad(frames) == 0.0
    assert temporal_smoothness(frames) == 1.0
    motion = motion_degree(frames)
    assert motion.mean_flow == 0.0 and motion.pair_motion == [0.0] * 5 and not motion.dynamic


def test_flicker_is_the_mean_absolute_difference_of_consecutive_frames():
    # Frames at grey 10, 20, 10: both pairs differ by 10 everywhere -> MAD 10, smoothness (255 - 10) / 255.
    frames = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (10, 20, 10)])
    assert flicker_mad(frames) == 10.0
    assert temporal_smoothness(frames) == pytest.approx(245 / 255)
    # Black/white flashing: every pixel jumps 255 each frame -> smoothness 0.
    flashing = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (0, 255, 0, 255)])
    assert flicker_mad(flashing) == 255.0 and temporal_smoothness(flashing) == 0.0
    # One pixel of one channel changes by 30 in the second pair of three: (0 + 30 / 12) / 2 = 1.25.
    frames = np.zeros((3, 2, 2, 3), np.uint8)
    frames[2, 0, 0, 0] = 30
    assert flicker_mad(frames) == pytest.approx(1.25)


def test_flow_of_a_translating_square_is_its_displacement():
    frames = _translating_square(num_frames=5, dx=3, dy=1)
    flow = optical_flow(frames)
    assert flow.shape == (4, 96, 96, 2)
    for t in range(4):
        y, x = 30 + t, 20 + 3 * t  # the square's interior in frame t (away from its edges)
        interior = flow[t, y + 6 : y + 18, x + 6 : x + 18].reshape(-1, 2)
        assert interior.mean(axis=0) == pytest.approx([3.0, 1.0], abs=0.05)


def test_motion_degree_of_a_translating_square():
    motion = motion_degree(_translating_square(num_frames=5, dx=3, dy=1))
    # The square (576 of 9216 px = 6.25 %) fills the top 5 %: each pair's statistic is |(3, 1)| = sqrt(10).
    assert motion.pair_motion == pytest.approx([math.sqrt(10)] * 4, abs=0.05)
    assert motion.threshold == pytest.approx(6 * 96 / 256)  # 2.25 px at a 96-px short side
    assert motion.dynamic  # 4 moving pairs >= round(4 * 5 / 16) = 1
    assert 0.0 < motion.mean_flow < math.sqrt(10)  # the black background does not move


def test_dynamic_rule_by_hand():
    assert dynamic_threshold(256, 512) == 6.0
    assert dynamic_threshold(128, 128, fps=4.0) == 6.0  # 3 px, doubled below 8 fps
    # 16 frames -> 15 pairs; 4 must move above 6 px at 256 px.
    assert is_dynamic([7.0] * 4 + [0.0] * 11, 256, 256)
    assert not is_dynamic([7.0] * 3 + [0.0] * 12, 256, 256)
    assert not is_dynamic([6.0] * 15, 256, 256)  # strictly above the threshold
    # 32 frames need 8 moving pairs.
    assert not is_dynamic([7.0] * 7 + [0.0] * 24, 256, 256)
    assert is_dynamic([7.0] * 8 + [0.0] * 23, 256, 256)


def test_top_fraction_mean():
    values = np.arange(100, dtype=float)  # top 5 % = 95..99
    assert top_fraction_mean(values) == 97.0
    assert top_fraction_mean(np.array([1.0, 3.0])) == 3.0  # at least one value


def test_subject_consistency_by_hand():
    same = np.tile([[0.3, -0.4, 1.2]], (5, 1))
    assert subject_consistency(same) == pytest.approx(1.0)
    # f0=(1,0), f1=(0,1), f2=(1,0): frame 1 -> (0 + 0) / 2; frame 2 -> (cos to first 1 + cos to prev 0) / 2.
    assert subject_consistency(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])) == pytest.approx(0.25)
    # Negative cosines count as 0 (VBench clips them): f1 = -f0.
    assert subject_consistency(np.array([[1.0, 0.0], [-1.0, 0.0]])) == 0.0
    # 60 degrees apart: cos 0.5 to both the first and the previous frame.
    assert subject_consistency(np.array([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])) == pytest.approx(0.5)


def test_bad_inputs_get_one_line():
    with pytest.raises(VideoError, match="at least 2 frames"):
        flicker_mad(np.zeros((1, 4, 4, 3), np.uint8))
    with pytest.raises(VideoError, match="uint8"):
        flicker_mad(np.zeros((3, 4, 4, 3), np.float32))
    with pytest.raises(VideoError, match=r"\(T, H, W, 3\)"):
        motion_degree(np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(InputError, match="all zeros"):
        subject_consistency(np.zeros((3, 4)))
    with pytest.raises(InputError, match="T >= 2"):
        subject_consistency(np.ones((1, 4)))


@pytest.fixture(scope="module")
def tiny_clip():
    """The tiny random open_clip evaluator (built once in the cache, loaded through open_clip's real loader)."""
    from engine.evaluators.loading import load_evaluator

    return load_evaluator("tiny-random-clip", device="cpu")


def test_subject_consistency_from_clip_features(tiny_clip):
    frames = _translating_square(num_frames=4)
    features = frame_features(tiny_clip, frames)
    assert features.shape == (4, 32)  # tiny CLIP embed_dim
    static = np.repeat(frames[:1], 4, axis=0)
    assert subject_consistency(frame_features(tiny_clip, static)) == pytest.approx(1.0, abs=1e-6)
    noise = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    assert subject_consistency(frame_features(tiny_clip, noise)) < 0.999


def test_frame_quality_collects_every_metric(tiny_clip):
    frames = _translating_square(num_frames=5)
    quality = frame_quality(frames, evaluator=tiny_clip)
    row = quality.as_dict()
    assert set(row) == {"subject_consistency", "temporal_smoothness", "flicker_mad", "motion_mean_flow", "dynamic"}
    assert row["temporal_smoothness"] == pytest.approx(1 - flicker_mad(frames) / 255)
    assert row["dynamic"] is True and 0 < row["subject_consistency"] <= 1
    assert frame_quality(frames).subject_consistency is None


def test_video_level_evaluators_are_refused_for_per_frame_features():
    class JointVideoEncoder:
        name = "videoclip-xl"

    with pytest.raises(InputError, match="per-frame image model"):
        frame_features(JointVideoEncoder(), np.zeros((2, 8, 8, 3), np.uint8))


def test_motion_smoothness_linear_by_hand():
    from engine.t2v.quality import motion_smoothness_linear

    levels = [0, 10, 20, 40, 40]  # frame 1 = mean of 0 and 2 (error 0); frame 3 predicted 30, is 40 (error 10)
    clip = np.stack([np.full((4, 4, 3), v, np.uint8) for v in levels])
    assert motion_smoothness_linear(clip) == pytest.approx((255 - 5) / 255)
    assert motion_smoothness_linear(clip[:4]) == 1.0  # 4 frames: only frame 1 lies between two kept frames (VBench)
    assert motion_smoothness_linear(np.zeros((6, 4, 4, 3), np.uint8)) == 1.0
