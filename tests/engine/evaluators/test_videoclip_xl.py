"""VideoCLIP-XL: the checkpoint layout loads strictly, and the video encoder matches the original algorithm."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from engine.errors import ModelLoadError
from engine.evaluators import get_preset
from engine.evaluators.videoclip_xl import IMAGENET_MEAN, IMAGENET_STD, TEXT_PREFIX, VISION_PREFIX


def reference_video_feature(vision, pixels: torch.Tensor) -> torch.Tensor:
    """VideoCLIP-XL's VisionTransformer.forward, step by step as in its clip_vision.py (B, T, 3, H, W)."""
    x = vision.conv1(pixels.permute(0, 2, 1, 3, 4))
    b, c, t, h, w = x.shape
    x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
    cls = vision.class_embedding + torch.zeros(x.shape[0], 1, c)
    x = torch.cat([cls, x], dim=1) + vision.positional_embedding
    cls_tokens = x[:b, :1, :]
    x = x[:, 1:]
    x = x.reshape(b, t, h * w, c).permute(0, 2, 1, 3).reshape(b * h * w, t, c)  # (b t) n m -> (b n) t m
    x = x + vision.temporal_positional_embedding
    x = x.reshape(b, h * w * t, c)  # (b n) t m -> b (n t) m
    x = vision.ln_pre(torch.cat([cls_tokens, x], dim=1))
    x = vision.ln_post(vision.transformer(x))
    return x[:, 0] @ vision.proj


def test_checkpoint_layout_and_strict_load(load_tiny, tiny_weights):
    sd = torch.load(tiny_weights["tiny-random-videoclip-xl"], weights_only=True)
    assert sd[VISION_PREFIX + "conv1.weight"].ndim == 5  # Conv3d, temporal kernel 1
    assert sd[VISION_PREFIX + "temporal_positional_embedding"].shape[:2] == (1, 8)
    assert sd[TEXT_PREFIX + "positional_embedding_res"].shape[0] == 248
    ev = load_tiny("tiny-random-videoclip-xl")
    assert ev.context_length == 248 and ev.num_frames == 8 and ev.random_weights
    for key, value in ev.vision.state_dict().items():
        assert torch.equal(value, sd[VISION_PREFIX + key])


def test_score_matches_the_original_forward(load_tiny, frames):
    ev = load_tiny("tiny-random-videoclip-xl")
    texts = ["a rabbit in a meadow", "a city street at night"]
    with torch.no_grad():
        pixels = ev.preprocess(frames)  # (1, 8, 3, 64, 64): plain resize, ImageNet statistics
        assert pixels.shape == (1, 8, 3, 64, 64)
        video = F.normalize(reference_video_feature(ev.vision, pixels)[0], dim=0)
        text = F.normalize(ev.text(open_clip.tokenize(texts, context_length=248)), dim=-1)
    np.testing.assert_allclose(ev.score(frames, texts), (100 * text @ video).numpy(), rtol=1e-5, atol=1e-4)
    manual = torch.nn.functional.interpolate(
        torch.from_numpy(frames).permute(0, 3, 1, 2).float(), size=(64, 64), mode="bilinear"
    ) / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    # uint8 resizing rounds to whole intensity levels: within 1/255 of the float resize
    torch.testing.assert_close(pixels[0], manual / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), atol=0.02, rtol=0)


def test_frame_order_matters(load_tiny, frames):
    ev = load_tiny("tiny-random-videoclip-xl")
    forward, backward = ev.score(frames, ["x"])[0], ev.score(frames[::-1].copy(), ["x"])[0]
    assert forward != pytest.approx(backward, abs=1e-4)  # temporal position embeddings


def test_a_short_clip_is_resampled_to_the_encoders_frame_count(load_tiny, frames):
    ev = load_tiny("tiny-random-videoclip-xl")
    assert len(ev.score(frames[:3].copy(), ["x"])) == 1


def test_wrong_checkpoint_is_a_clear_error(tiny_weights, monkeypatch):
    from engine.evaluators import load_evaluator

    monkeypatch.setenv(get_preset("videoclip-xl").env_var, str(tiny_weights["tiny-random-long-clip"]))
    with pytest.raises(ModelLoadError, match="not a VideoCLIP-XL checkpoint"):
        load_evaluator("videoclip-xl", device="cpu")
