"""open_clip and Long-CLIP evaluators: round trips through the loaders, hand-computed scores, cache, truncation."""

from __future__ import annotations

import os
import shutil

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from engine.errors import ModelLoadError
from engine.evaluators import evaluator_status, get_preset
from engine.evaluators.checkpoints import load_state_dict_file, stretch_positional_embedding

TEXTS = ["a rabbit in a sunny meadow", "a red car drives through the city at night"]
LONG_TEXT = " ".join(["a white rabbit hops slowly across the green grass near a large tree"] * 8)


def hand_score(ev, frames: np.ndarray, texts: list[str], context_length: int) -> np.ndarray:
    """The paper's rule, written out: unit frame features -> mean -> unit video feature; 100 x cosine."""
    with torch.no_grad():
        per_frame = ev.model.encode_image(ev.preprocess(frames))  # (T, D)
        per_frame = per_frame / per_frame.norm(dim=-1, keepdim=True)
        video = per_frame.mean(0)
        video = video / video.norm()
        text = ev.model.encode_text(open_clip.tokenize(texts, context_length=context_length))
        text = text / text.norm(dim=-1, keepdim=True)
    return (100 * text @ video).numpy()


def test_open_clip_round_trip_and_hand_score(load_tiny, tiny_weights, frames):
    ev = load_tiny("tiny-random-clip")
    saved = load_state_dict_file(str(tiny_weights["tiny-random-clip"]))
    loaded = ev.model.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)  # weights came back through open_clip
    assert ev.random_weights and ev.context_length == 77
    np.testing.assert_allclose(ev.score(frames, TEXTS), hand_score(ev, frames, TEXTS, 77), rtol=1e-5, atol=1e-4)


def test_frame_features_are_normalised_before_averaging(load_tiny, frames):
    ev = load_tiny("tiny-random-clip")
    # Frames whose features differ in norm (as real CLIP frame features do): scale each frame's output.
    gains = torch.tensor([1.0, 10.0, 0.1, 5.0, 0.5, 2.0, 20.0, 0.2])[: len(frames), None]
    encode_image = ev.model.encode_image
    ev.model.encode_image = lambda x: encode_image(x) * gains
    with torch.no_grad():
        raw = ev.model.encode_image(ev.preprocess(frames))  # (T, D)
        text = F.normalize(ev.model.encode_text(open_clip.tokenize(TEXTS[:1])), dim=-1)[0]
    right = 100 * text @ F.normalize(F.normalize(raw, dim=-1).mean(0), dim=0)
    wrong = 100 * text @ F.normalize(raw.mean(0), dim=0)  # averaging raw features weights loud frames more
    got = ev.score(frames, TEXTS[:1])[0]
    assert got == pytest.approx(float(right), abs=1e-4)
    assert abs(float(wrong) - float(right)) > 0.05, "the gains should tell the two orders apart"


def test_second_scoring_of_a_video_skips_the_video_encoder(load_tiny, sample_video, tmp_path):
    ev = load_tiny("tiny-random-clip")
    calls = {"image": 0, "text": 0}
    encode_image = ev.model.encode_image

    def count_image(x):
        calls["image"] += 1
        return encode_image(x)

    def count_text(_module, _args, _out):  # a pass of the text transformer (its input trimmed, see test_text_trim)
        calls["text"] += 1

    ev.model.encode_image = count_image
    ev.model.transformer.register_forward_hook(count_text)
    first = ev.score(sample_video, TEXTS)
    assert calls == {"image": 1, "text": 1}  # 8 frames in one batch, 2 texts in one batch
    second = ev.score(str(sample_video), [*TEXTS, "another text"])
    assert calls == {"image": 1, "text": 2}
    assert second[:2] == pytest.approx(first, abs=1e-5)
    assert ev.stats["video_encodes"] == 1 and ev.stats["cache_hits"] == 1
    # A changed file (new mtime) is encoded again.
    copy = tmp_path / "clip.mp4"
    shutil.copy(sample_video, copy)
    ev.score(copy, TEXTS)
    os.utime(copy, ns=(1, 1))
    ev.score(copy, TEXTS)
    assert calls["image"] == 3


def test_decoded_frames_are_cached_by_content(load_tiny, frames):
    ev = load_tiny("tiny-random-clip")
    ev.score(frames, TEXTS)
    ev.score(frames.copy(), TEXTS)
    assert ev.stats["video_encodes"] == 1
    ev.score(frames[::-1].copy(), TEXTS)
    assert ev.stats["video_encodes"] == 2


def test_truncation_is_reported(load_tiny, frames):
    clip, long_clip = load_tiny("tiny-random-clip"), load_tiny("tiny-random-long-clip")
    short, long_ = clip.score_detailed(frames, [TEXTS[0], LONG_TEXT])
    assert not short.truncated and long_.truncated and long_.tokens > 77
    assert not long_clip.score_detailed(frames, [LONG_TEXT])[0].truncated  # < 248 tokens


def test_stretch_positional_embedding_follows_long_clip():
    pe = torch.randn(77, 8)
    out = stretch_positional_embedding(pe)
    assert out.shape == (248, 8)
    torch.testing.assert_close(out[:20], pe[:20])
    torch.testing.assert_close(out[20 + 4 * 5], pe[25])  # every 4th stretched row is an original row
    torch.testing.assert_close(out[20 + 4 * 5 + 2], (pe[25] + pe[26]) / 2)
    torch.testing.assert_close(out[-1], pe[76] + 0.75 * (pe[76] - pe[75]))


def test_long_clip_loads_248_positions_and_scores_by_hand(load_tiny, tiny_weights, frames):
    ev = load_tiny("tiny-random-long-clip")
    sd = torch.load(tiny_weights["tiny-random-long-clip"], weights_only=True)
    assert ev.context_length == 248 and ev.model.context_length == 248
    # Positions 0-19 from positional_embedding, 20-247 from positional_embedding_res (Long-CLIP's masks).
    expected = torch.cat([sd["positional_embedding"][:20], sd["positional_embedding_res"][20:]])
    assert torch.equal(ev.model.positional_embedding.detach(), expected)
    texts = [TEXTS[0], LONG_TEXT]
    np.testing.assert_allclose(ev.score(frames, texts), hand_score(ev, frames, texts, 248), rtol=1e-5, atol=1e-4)


def test_long_clip_loader_refuses_a_77_token_checkpoint(tiny_weights, tmp_path, monkeypatch):
    from engine.evaluators import load_evaluator

    sd = torch.load(tiny_weights["tiny-random-long-clip"], weights_only=True)
    sd.pop("positional_embedding_res")
    sd["positional_embedding"] = sd["positional_embedding"][:77]
    bad = tmp_path / "plain-clip.pt"
    torch.save(sd, bad)
    monkeypatch.setenv(get_preset("long-clip-l").env_var, str(bad))
    with pytest.raises(ModelLoadError, match="not a Long-CLIP checkpoint.*248"):
        load_evaluator("long-clip-l", device="cpu")


def test_real_presets_say_what_to_set(monkeypatch, tmp_path):
    monkeypatch.delenv("VIDPROMPTER_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty HF cache
    for name in ("clip-vit-l-14", "long-clip-l", "videoclip-xl"):
        monkeypatch.delenv(get_preset(name).env_var, raising=False)
        ok, message = evaluator_status(name)
        assert not ok and get_preset(name).env_var in message and "\n" not in message
    monkeypatch.setenv(get_preset("long-clip-l").env_var, str(tmp_path / "missing.pt"))
    ok, message = evaluator_status("long-clip-l")
    assert not ok and "not a file" in message
    assert evaluator_status("tiny-random-clip") == (True, "random weights — pipeline check only")


def test_unknown_evaluator_is_a_clear_error():
    from engine.evaluators import load_evaluator

    with pytest.raises(ModelLoadError, match="unknown evaluator 'nope'"):
        load_evaluator("nope")
