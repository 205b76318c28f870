"""CUDA paths of the block vision attention and the chunked log-probs. Skipped where no GPU is present;
bench/gpu_run.sh runs them on a lent GPU."""

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"),
]
GRIDS = [[2, 12, 20], [4, 8, 8], [1, 6, 10]]  # uneven windows (see test_attention.py)


@pytest.fixture(scope="module")
def vlm():
    from engine.models import load_model

    return load_model("tiny-random-vlm", device="cuda", dtype="float32")


def _vision(lm, mode, dtype):
    from training.attention import set_vision_attention

    set_vision_attention(lm.model, mode)
    grids = torch.tensor(GRIDS, device="cuda")
    n = int(grids.prod(1).sum())
    px = torch.randn(n, 1176, generator=torch.Generator().manual_seed(0)).cuda()
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        return lm.model.model.visual(px, grid_thw=grids).pooler_output.float()


def test_block_attention_matches_stock_on_cuda_fp32_and_bf16(vlm, monkeypatch):
    import training.attention as attention

    fp32 = (_vision(vlm, "stock", torch.float32) - _vision(vlm, "blocks", torch.float32)).abs().max()
    assert fp32 <= 1e-5  # stacked SDPA (fp32 has no varlen kernel)
    calls = []
    real = attention._varlen_attn()
    if real is not None:
        monkeypatch.setattr(attention, "_varlen_attn", lambda: lambda *a, **k: calls.append(1) or real(*a, **k))
    stock = _vision(vlm, "stock", torch.bfloat16)
    blocks = _vision(vlm, "blocks", torch.bfloat16)
    assert (stock - blocks).abs().max() <= 0.02 * stock.abs().max() + 1e-3  # bf16 rounding only
    if real is not None:
        assert len(calls) == len(vlm.model.model.visual.blocks)  # varlen: one call per layer


def _case(device, s=8, k=257, hidden=1536, vocab=151936):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(s, k, hidden, generator=g).to(device).requires_grad_()
    w = (torch.randn(vocab, hidden, generator=g) * 0.02).to(device).requires_grad_()
    labels = torch.randint(0, vocab, (s, k), generator=g).to(device)
    labels[:, 0] = -100
    return h, w, labels


def _step(fn, h, w, labels):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn(h, w, labels)
    out.sum().backward()
    torch.cuda.synchronize()
    grads = h.grad, w.grad
    h.grad = w.grad = None
    return out.detach(), grads, torch.cuda.max_memory_allocated() - base


def test_chunked_logps_on_cuda_equal_and_at_most_half_the_memory():
    from engine.encoding import gather_logps
    from training.logps import label_logps

    h, w, labels = _case("cuda")
    full, (fh, fw), full_peak = _step(lambda a, b, c: gather_logps(a @ b.T, c), h, w, labels)
    chunked, (ch, cw), peak = _step(label_logps, h, w, labels)
    assert torch.allclose(full, chunked, rtol=1e-6, atol=1e-3)  # sums of 256 log-probs of ~-12 each
    assert torch.allclose(fh, ch, atol=1e-5) and torch.allclose(fw, cw, atol=1e-5)
    assert peak <= 0.5 * full_peak, (peak / 2**30, full_peak / 2**30)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        full = gather_logps(torch.nn.functional.linear(h, w), labels)
        chunked = label_logps(h, w, labels)
    assert torch.allclose(full.float(), chunked, rtol=1e-2)
