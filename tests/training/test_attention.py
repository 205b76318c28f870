import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.encoding import encode_for_logps
from engine.models import load_model
from engine.tasks import Request
from training.attention import (
    BLOCK_ATTENTION,
    _stacked_sdpa,
    block_attention_forward,
    pick_kernel,
    set_vision_attention,
    vision_attention,
)

ROOT = Path(__file__).resolve().parents[2]
# Three videos: (t, h, w) patch grids. The first has 6 x 10 merged tokens per frame pair, so its 4 x 4
# windows come in sizes 16, 16, 8, 8, 8, 4 (x4 patches); the others have one window per frame pair.
GRIDS = torch.tensor([[2, 12, 20], [4, 8, 8], [1, 6, 10]])
WINDOWS = 2 * 6 + 4 + 2  # windows of the windowed layer (0)
FRAMES = 2 + 4 + 1  # blocks of the full-attention layer (1): one per temporal patch of each video


@pytest.fixture(scope="module")
def vlm():
    return load_model("tiny-random-vlm", device="cpu")


@pytest.fixture
def stock_vlm(vlm):
    set_vision_attention(vlm.model, "stock")
    yield vlm
    set_vision_attention(vlm.model, "stock")


def _pixels(seed: int = 0) -> torch.Tensor:
    n = int(GRIDS.prod(1).sum())  # 480 + 256 + 60 patches
    return torch.randn(n, 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(seed))


class SdpaCounter:
    """Counts torch.nn.functional.scaled_dot_product_attention calls (transformers' sdpa and ours)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = torch.nn.functional.scaled_dot_product_attention

        def counting(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)


def test_block_attention_equals_stock_with_uneven_windows_forward_and_backward(stock_vlm):
    visual = stock_vlm.model.model.visual
    outs, grads = [], []
    for mode in ("stock", "blocks"):
        set_vision_attention(stock_vlm.model, mode)
        px = _pixels().requires_grad_()
        out = visual(px, grid_thw=GRIDS).pooler_output  # (merged tokens, 64)
        out.pow(2).sum().backward()
        outs.append(out.detach())
        grads.append((px.grad, visual.blocks[0].attn.qkv.weight.grad.clone()))
        visual.zero_grad(set_to_none=True)
    assert outs[0].shape == (int(GRIDS.prod(1).sum()) // 4, 64)
    assert (outs[0] - outs[1]).abs().max() <= 1e-5
    for stock, blocks in zip(*grads, strict=True):
        assert (stock - blocks).abs().max() <= 1e-5


def test_one_attention_call_per_vision_layer(stock_vlm, monkeypatch):
    counter = SdpaCounter(monkeypatch)
    visual = stock_vlm.model.model.visual
    with torch.no_grad():
        visual(_pixels(), grid_thw=GRIDS)
        stock_calls = counter.calls
        counter.calls = 0
        assert set_vision_attention(stock_vlm.model, "blocks") is True
        visual(_pixels(), grid_thw=GRIDS)
    assert stock_calls == WINDOWS + FRAMES  # stock: one SDPA call per window / frame pair
    assert counter.calls == len(visual.blocks) == 2


def test_whole_model_on_a_video_matches_and_the_decoder_keeps_sdpa(stock_vlm, monkeypatch):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (8, 112, 112, 3), dtype=np.uint8)
    requests = [Request(1, frames=frames), Request(2, "a red car", frames=frames[::-1].copy()), Request(3, "a dog")]
    batch = encode_for_logps(stock_vlm, requests, ["a car drives left", "the car", "a dog runs on the beach"])
    batch.pop("labels")
    with torch.no_grad():
        stock = stock_vlm.model(**batch).logits  # (3, L, V)
        set_vision_attention(stock_vlm.model, "blocks")
        counter = SdpaCounter(monkeypatch)
        blocks = stock_vlm.model(**batch).logits
    # 2 vision layers (one call each, all videos together) + 2 decoder layers (stock sdpa)
    assert counter.calls == 4
    assert (stock - blocks).abs().max() <= 1e-5
    config = stock_vlm.model.config
    assert vision_attention(stock_vlm.model) == BLOCK_ATTENTION
    assert config.text_config._attn_implementation == "sdpa" and config._attn_implementation == "sdpa"


def test_stacked_sdpa_equals_attention_block_by_block():
    g = torch.Generator().manual_seed(1)
    lengths = [5, 1, 7, 3, 7]
    cu = torch.tensor(np.cumsum([0, *lengths]), dtype=torch.int32)
    q, k, v = (torch.randn(1, 2, sum(lengths), 4, generator=g) for _ in range(3))  # (1, H, N, D)
    got = _stacked_sdpa(q, k, v, cu, max(lengths), 0.5, 0.0)  # (1, N, H, D)
    want = []
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):  # softmax(q k^T * scale) v within each block
        weights = torch.softmax(q[0, :, a:b] @ k[0, :, a:b].transpose(1, 2) * 0.5, dim=-1)
        want.append((weights @ v[0, :, a:b]).transpose(0, 1))  # (n_b, H, D)
    assert got.shape == (1, sum(lengths), 2, 4)
    assert (got[0] - torch.cat(want)).abs().max() <= 1e-6
    equal = torch.tensor([0, 4, 8], dtype=torch.int32)  # equal blocks: the unpadded view path
    got = _stacked_sdpa(q[:, :, :8], k[:, :, :8], v[:, :, :8], equal, 4, None, 0.0)
    w = torch.softmax(q[0, :, 4:8] @ k[0, :, 4:8].transpose(1, 2) / 2.0, dim=-1)
    assert (got[0, 4:] - (w @ v[0, :, 4:8]).transpose(0, 1)).abs().max() <= 1e-6


def test_block_attention_refuses_a_call_without_blocks():
    q = torch.zeros(1, 2, 3, 4)
    with pytest.raises(ValueError, match="set it on a vision tower only"):
        block_attention_forward(torch.nn.Linear(1, 1), q, q, q, None)
    with pytest.raises(ValueError, match="takes no attention mask"):
        block_attention_forward(torch.nn.Linear(1, 1), q, q, q, torch.ones(3, 3), cu_seq_lens_q=torch.tensor([0, 3]))
    assert pick_kernel(q) == "sdpa"  # CPU fp32: stacked SDPA; varlen flash is CUDA + half only


def test_text_model_and_bad_mode():
    lm = load_model("tiny-random-lm", device="cpu")
    assert set_vision_attention(lm.model, "blocks") is False
    assert lm.model.config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="vision attention must be one of"):
        set_vision_attention(lm.model, "windows")


def test_switched_model_saves_a_stock_config_and_reloads_elsewhere(stock_vlm, tmp_path):
    set_vision_attention(stock_vlm.model, "blocks")
    stock_vlm.model.save_pretrained(tmp_path)
    assert BLOCK_ATTENTION not in (tmp_path / "config.json").read_text()
    code = (
        "import sys; from transformers import AutoModelForImageTextToText as A; "
        "m = A.from_pretrained(sys.argv[1]); print(m.config.vision_config._attn_implementation)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "sdpa", out.stderr[-500:]


def _reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, scale=None):
    """What torch's varlen_attn computes, on the CPU: packed (N, H, D), softmax within each block."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    out = []
    for a, b in zip(cu_q[:-1].tolist(), cu_q[1:].tolist(), strict=True):
        w = torch.softmax(torch.einsum("nhd,mhd->hnm", q[a:b], k[a:b]) * scale, dim=-1)
        out.append(torch.einsum("hnm,mhd->nhd", w, v[a:b]))
    return torch.cat(out)


@pytest.mark.parametrize("with_scale", [True, False])
def test_varlen_glue_packs_and_scales_like_the_stacked_path(monkeypatch, with_scale):
    """The CUDA path's layout and scale handling, checked on the CPU against a reference varlen kernel
    (older torch's varlen_attn has no `scale` argument: q is pre-scaled instead)."""
    import training.attention as attention

    calls = []

    def fake(q, k, v, cu_q, cu_k, max_q, max_k, scale=None):
        calls.append((q.shape, int(max_q)))
        return _reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, scale)

    def fake_without_scale(q, k, v, cu_q, cu_k, max_q, max_k):
        return fake(q, k, v, cu_q, cu_k, max_q, max_k)

    monkeypatch.setattr(attention, "_varlen_attn", lambda: fake if with_scale else fake_without_scale)
    monkeypatch.setattr(attention, "pick_kernel", lambda query: "varlen")
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 12, 4, generator=g) for _ in range(3))
    cu = torch.tensor([0, 5, 6, 12], dtype=torch.int32)
    module = torch.nn.Linear(1, 1).eval()
    got, _ = block_attention_forward(module, q, k, v, None, scaling=0.3, cu_seq_lens_q=cu, max_length_q=6)
    assert calls == [((12, 2, 4), 6)]
    assert (got - _stacked_sdpa(q, k, v, cu, 6, 0.3, 0.0)).abs().max() <= 1e-6


def test_config_knob_is_checked():
    from training.config import ConfigError, load_config

    assert load_config({}, {}).model.vision_attention == "blocks"
    with pytest.raises(ConfigError, match="model.vision_attention: 'windows' is not one of blocks, stock"):
        load_config({}, {"model.vision_attention": "windows"})
