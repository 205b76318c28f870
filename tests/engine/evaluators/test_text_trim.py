"""Text towers read each text only up to its own end token, the texts packed into one row: same features as
the padded run, far fewer positions.

One test per checkpoint format (open_clip CLIP, Long-CLIP, VideoCLIP-XL), each against the tower's own
padded forward (open_clip's `encode_text` / `TextTransformer.forward` over the full context).
"""

from __future__ import annotations

import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm, QuickGELU, TextTransformer

from engine.evaluators import clip as clip_module
from engine.evaluators.clip import can_trim_text, encode_text_packed, encode_text_trimmed

SENTENCES = [
    "A rabbit wakes up.",
    "Three small butterflies flutter around its head while it rubs its eyes with its paws.",
    "Soft light.",
]
LONG_TEXT = " ".join(["a white rabbit hops slowly across the green grass near a large tree"] * 8)  # 106 tokens

# Tokens of each text, start and end included: SENTENCES 7, 19, 5; LONG_TEXT 106 (cut to 77 by CLIP).
# (preset, texts, positions of the one packed row: each text's own tokens, summed)
CASES = [
    ("tiny-random-clip", SENTENCES, 7 + 19 + 5),  # padded: 3 x 77
    ("tiny-random-clip", [SENTENCES[0], LONG_TEXT], 7 + 77),  # the long text is cut at 77
    ("tiny-random-long-clip", SENTENCES, 7 + 19 + 5),  # padded: 3 x 248
    ("tiny-random-long-clip", [SENTENCES[2], LONG_TEXT], 5 + 106),
    ("tiny-random-videoclip-xl", SENTENCES, 7 + 19 + 5),
    ("tiny-random-videoclip-xl", [LONG_TEXT, SENTENCES[0]], 106 + 7),
]


def padded_features(ev, texts: list[str]) -> torch.Tensor:
    """Unit text features from the tower's own forward over the whole padded context (K, D)."""
    tokens = open_clip.tokenize(texts, context_length=ev.context_length)
    with torch.inference_mode():
        raw = ev.model.encode_text(tokens) if hasattr(ev, "model") else ev.text(tokens)
    return F.normalize(raw.float(), dim=-1)


def text_transformer(ev) -> torch.nn.Module:
    """The text tower's transformer stack: CLIP holds it as `model.transformer`, VideoCLIP-XL as `text.transformer`."""
    return ev.model.transformer if hasattr(ev, "model") else ev.text.transformer


@pytest.mark.parametrize(("preset", "texts", "positions"), CASES)
def test_packed_features_equal_padded_ones(load_tiny, preset, texts, positions):
    ev = load_tiny(preset)
    assert sum(min(n, ev.context_length) for n in ev.count_tokens(texts)) == positions  # the table is right
    stack = text_transformer(ev)
    seen: list[tuple[int, ...]] = []
    hook = stack.register_forward_hook(lambda _m, args, _out: seen.append(tuple(args[0].shape)))
    try:
        trimmed = ev.text_features(texts)  # (K, D)
    finally:
        hook.remove()
    assert seen == [(1, positions, stack.width)]  # one pass: one packed row
    assert (trimmed - padded_features(ev, texts)).abs().max().item() <= 1e-5


def test_truncation_flags_survive_trimming(load_tiny, frames):
    clip, long_clip = load_tiny("tiny-random-clip"), load_tiny("tiny-random-long-clip")
    short, long_ = clip.score_detailed(frames, [SENTENCES[0], LONG_TEXT])
    assert (short.tokens, short.truncated) == (7, False)
    assert long_.tokens == 106 and long_.context_length == 77 and long_.truncated
    assert [s.truncated for s in long_clip.score_detailed(frames, [SENTENCES[0], LONG_TEXT])] == [False, False]


def tiny_tower(**kwargs) -> TextTransformer:
    torch.manual_seed(0)
    cfg = {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1, "output_dim": 16}
    return TextTransformer(**cfg, act_layer=QuickGELU, norm_layer=LayerNorm, **kwargs).eval()


@pytest.mark.parametrize(
    ("kwargs", "trimmable"),
    [
        ({}, True),  # causal mask, pooled at the end token: CLIP's layout
        ({"pool_type": "last"}, False),  # pools the last position, which trimming would move
        ({"no_causal_mask": True}, False),  # every position reads the padding
        ({"embed_cls": True}, False),  # a class token appended after the padding
    ],
)
def test_only_causal_end_token_towers_are_trimmed(kwargs, trimmable):
    tower = tiny_tower(**kwargs)
    assert can_trim_text(tower) is trimmable


def forward_then(tower: TextTransformer, encode, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(the tower's padded forward, encode(tower, tokens), positions of every transformer pass: padded first)."""
    tokens = open_clip.tokenize(texts, context_length=24)
    seen: list[int] = []
    hook = tower.transformer.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[1]))
    with torch.inference_mode():
        full = tower(tokens)
        ours = encode(tower, tokens)
    hook.remove()
    return full, ours, seen


def test_trimmed_tower_matches_its_forward_and_reads_fewer_positions():
    full, trimmed, seen = forward_then(tiny_tower(), encode_text_trimmed, SENTENCES)
    assert seen == [24, 19]
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=0)


def test_packed_tower_matches_its_forward_over_several_rows(monkeypatch):
    """More text than one row holds: rows of <= PACK_POSITIONS, each text whole in one row, order kept."""
    monkeypatch.setattr(clip_module, "PACK_POSITIONS", 40)
    full, packed, seen = forward_then(tiny_tower(), encode_text_packed, SENTENCES * 3)  # 9 texts: 7, 19, 5 tokens
    # the padded forward, then rows filled in order up to 40: 7+19+5+7, 19+5+7, 19+5
    assert seen == [24, 38, 31, 24]
    torch.testing.assert_close(packed, full, atol=1e-5, rtol=0)
