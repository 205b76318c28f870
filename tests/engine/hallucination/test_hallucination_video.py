"""Video input hallucination: shuffle, paste, crop — shapes, ranges, records, determinism, purity."""

import json

import numpy as np
import pytest

from engine.errors import InputError, VideoError
from engine.hallucination.video import (
    VideoHallucinationConfig,
    hallucinate_frames,
    paste_patches,
    random_crop,
    shuffle_frames,
)


def _frames(t=8, h=36, w=64) -> np.ndarray:
    """uint8 (T, H, W, 3); frame i is filled with i so every pixel says where it came from."""
    return np.broadcast_to(np.arange(t, dtype=np.uint8)[:, None, None, None], (t, h, w, 3)).copy()


def _rng(seed=0):
    return np.random.Generator(np.random.PCG64(seed))


@pytest.mark.parametrize("t", [2, 3, 8, 16])
def test_shuffle_is_a_non_identity_permutation(t):
    frames = _frames(t)
    for seed in range(30):
        out, (rec,) = shuffle_frames(frames, _rng(seed))
        perm = rec["permutation"]
        assert sorted(perm) == list(range(t)) and perm != list(range(t))
        assert out[:, 0, 0, 0].tolist() == perm  # out[i] = frames[perm[i]]


def test_shuffle_of_one_frame_is_a_documented_noop():
    frames = _frames(1)
    out, (rec,) = shuffle_frames(frames, _rng())
    assert rec == {"op": "shuffle", "permutation": [0], "noop": True}
    np.testing.assert_array_equal(out, frames)


@pytest.mark.parametrize("ratio", [(1 / 4, 1 / 3), (1 / 3, 1 / 2), (1 / 2, 1.0)])
def test_paste_sizes_in_range_and_patch_comes_from_another_frame(ratio):
    frames = _frames(6, 90, 160)
    lo, hi = ratio
    for seed in range(10):
        out, records = paste_patches(frames, _rng(seed), ratio)
        assert len(records) == 6
        for rec in records:
            i, j = rec["frame"], rec["source_frame"]
            (ph, pw), (dx, dy) = rec["size"], rec["dst_xy"]
            assert i != j
            assert round(lo * 90) <= ph <= round(hi * 90) and round(lo * 160) <= pw <= round(hi * 160)
            patch = out[i, dy : dy + ph, dx : dx + pw]
            assert (patch == j).all()
            assert (out[i] == i).sum() == 90 * 160 * 3 - patch.size  # nothing else changed


def test_paste_copies_the_source_pixels():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 40, 50, 3), dtype=np.uint8)
    out, records = paste_patches(frames, _rng(3), (1 / 3, 1 / 2))
    for rec in records:
        (ph, pw), (sx, sy), (dx, dy) = rec["size"], rec["src_xy"], rec["dst_xy"]
        src = frames[rec["source_frame"], sy : sy + ph, sx : sx + pw]
        np.testing.assert_array_equal(out[rec["frame"], dy : dy + ph, dx : dx + pw], src)


def test_crop_keeps_shape_and_range():
    frames = np.random.default_rng(1).integers(0, 256, (5, 72, 128, 3), dtype=np.uint8)
    for seed in range(10):
        out, (rec,) = random_crop(frames, _rng(seed), (0.8, 1.0))
        assert out.shape == frames.shape and out.dtype == np.uint8
        ch, cw = rec["size"]
        assert round(0.8 * 72) <= ch <= 72 and round(0.8 * 128) <= cw <= 128
        x, y = rec["xy"]
        np.testing.assert_array_equal(out[:, 0, 0], frames[:, y, x])  # top-left maps to the crop corner


def test_full_crop_is_identity():
    frames = _frames(3)
    out, _ = random_crop(frames, _rng(), (1.0, 1.0))
    np.testing.assert_array_equal(out, frames)


def test_hallucinate_frames_default_is_shuffle_then_paste_and_json():
    frames = _frames(8)
    out, ops = hallucinate_frames(frames, seed=5)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert [op["op"] for op in ops] == ["shuffle"] + ["paste"] * 8
    json.dumps(ops)


def test_hallucinate_frames_composes_all_three():
    config = VideoHallucinationConfig(shuffle=True, paste_ratio=(0.25, 0.33), crop_keep=(0.8, 1.0))
    out, ops = hallucinate_frames(_frames(4), config, seed=1)
    assert [op["op"] for op in ops] == ["shuffle", "crop"] + ["paste"] * 4 and out.shape == (4, 36, 64, 3)


def test_deterministic_and_pure():
    frames = np.random.default_rng(2).integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)
    before = frames.copy()
    a, ops_a = hallucinate_frames(frames, seed=11)
    b, ops_b = hallucinate_frames(frames, seed=11)
    c, ops_c = hallucinate_frames(frames, seed=12)
    np.testing.assert_array_equal(a, b)
    assert ops_a == ops_b and ops_a != ops_c
    np.testing.assert_array_equal(frames, before)  # input untouched


def test_noop_config_returns_a_copy():
    frames = _frames(2)
    out, ops = hallucinate_frames(frames, VideoHallucinationConfig(shuffle=False, paste_ratio=None), seed=0)
    assert ops == [] and out is not frames
    np.testing.assert_array_equal(out, frames)


@pytest.mark.parametrize(
    "kwargs",
    [{"paste_ratio": (0.5, 0.4)}, {"paste_ratio": (0.0, 0.5)}, {"crop_keep": (0.8, 1.2)}, {"crop_keep": (1,)}],
)
def test_bad_config(kwargs):
    with pytest.raises(InputError):
        VideoHallucinationConfig(**kwargs)


@pytest.mark.parametrize(
    "frames", [np.zeros((4, 8, 8), np.uint8), np.zeros((0, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 3), np.float32)]
)
def test_bad_frames(frames):
    with pytest.raises(VideoError):
        hallucinate_frames(frames)


def test_bad_seed():
    with pytest.raises(InputError):
        hallucinate_frames(_frames(2), seed=-3)
