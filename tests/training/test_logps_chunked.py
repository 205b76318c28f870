import copy
import math

import numpy as np
import pytest
import torch

from engine.encoding import IGNORE_INDEX, encode_for_logps, gather_logps
from engine.models import load_model
from engine.tasks import Request
from training.logps import align_responses, forward_logps, label_logps, output_head


def _case(s=3, k=9, hidden=16, vocab=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(s, k, hidden, generator=g).requires_grad_()  # (S, K, Hd)
    w = (torch.randn(vocab, hidden, generator=g) * 0.5).requires_grad_()  # (V, Hd)
    labels = torch.randint(0, vocab, (s, k), generator=g)
    labels[:, :3] = IGNORE_INDEX  # prompt side
    labels[1, -3:] = IGNORE_INDEX  # a shorter response: padding after it
    labels[0, 4], labels[0, 5], labels[2, 6] = vocab - 1, 0, 96  # last column, first column, a tile edge
    return h, w, labels


def _grads(fn, h, w, labels, upstream):
    out = fn(h, w, labels)
    (out * upstream).sum().backward()
    grads = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    return out.detach(), grads


def test_equals_the_logits_path_values_and_gradients_across_tiles():
    h, w, labels = _case()
    upstream = torch.tensor([0.3, -1.0, 2.0])  # dL/dlogp per sequence, as a DPO loss gives
    full, (fh, fw) = _grads(lambda *a: gather_logps(a[0] @ a[1].T, a[2]), h, w, labels, upstream)
    # 4 x 96 tiles: several row chunks and vocabulary chunks, a ragged last tile
    chunked, (ch, cw) = _grads(lambda *a: label_logps(*a, rows=4, cols=96), h, w, labels, upstream)
    assert chunked.dtype == torch.float32 and chunked.shape == (3,)
    assert (full - chunked).abs().max() <= 1e-5
    assert (fh - ch).abs().max() <= 1e-5 and (fw - cw).abs().max() <= 1e-5
    assert ch[:, -1].abs().max() == 0 and ch[1, -4:].abs().max() == 0  # positions predicting no label


def test_hand_computed_log_prob_and_gradient():
    # logits = x W^T = [2, 0, -2] for x = 2, W = [1, 0, -1]; the label is token 0 (predicted at position 0)
    h = torch.tensor([[[2.0], [0.0]]], requires_grad=True)  # (1, 2, 1)
    w = torch.tensor([[1.0], [0.0], [-1.0]], requires_grad=True)  # (3, 1)
    labels = torch.tensor([[IGNORE_INDEX, 0]])
    logp = label_logps(h, w, labels, rows=1, cols=2)
    z = math.log(math.exp(2) + 1 + math.exp(-2))
    assert logp.item() == pytest.approx(2 - z, abs=1e-6)
    logp.sum().backward()
    p = [math.exp(2 - z), math.exp(-z), math.exp(-2 - z)]
    assert h.grad[0, 0, 0].item() == pytest.approx(1 - (p[0] - p[2]), abs=1e-6)  # W[y] - sum_v p_v W_v
    assert w.grad[:, 0].tolist() == pytest.approx([2 * (1 - p[0]), -2 * p[1], -2 * p[2]], abs=1e-6)


def test_no_tensor_of_positions_by_vocabulary_is_kept_for_backward():
    h, w, labels = _case(s=4, k=40, hidden=8, vocab=500)  # N = 4 x 39 positions, N * V > V * Hd
    n = int((labels[:, 1:] != IGNORE_INDEX).sum())

    def largest_saved(fn) -> int:
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
            fn(h, w, labels).sum()
        return max(sizes)

    assert largest_saved(lambda *a: gather_logps(a[0] @ a[1].T, a[2])) >= n * 500  # the logits path keeps them
    assert largest_saved(lambda *a: label_logps(*a, rows=16, cols=64)) <= 500 * 8  # ours: the weight at most


def test_bf16_autocast_matches_the_lm_head_under_autocast():
    h, w, labels = _case(vocab=300)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        full = gather_logps(torch.nn.functional.linear(h, w), labels)  # bf16 logits, as the model's head
        chunked = label_logps(h, w, labels, rows=8, cols=64)
    assert chunked.dtype == torch.float32
    assert torch.allclose(full, chunked, rtol=1e-3, atol=1e-2)
    chunked.sum().backward()
    assert h.grad.dtype == torch.float32 and w.grad.dtype == torch.float32 and torch.isfinite(w.grad).all()


@pytest.fixture(scope="module")
def vlm():
    return load_model("tiny-random-vlm", device="cpu")


def _video_batch(lm, align=True):
    frames = np.random.default_rng(0).integers(0, 255, (8, 112, 112, 3), dtype=np.uint8)
    requests = [Request(1, frames=frames), Request(2, "a red car", frames=frames), Request(3, "a dog")]
    batch = encode_for_logps(lm, requests, ["a car drives left slowly", "the car", "a dog runs on the beach"])
    if align:
        batch, batch["keep"] = align_responses(batch, lm.tokenizer.pad_token_id)
    return batch


def _param_grads(model, batch, chunked):
    model.zero_grad(set_to_none=True)
    logps = forward_logps(model, dict(batch), "cpu", chunked=chunked)
    (logps * torch.tensor([1.0, -0.5, 0.25])).sum().backward()
    return logps.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("align", [True, False])
def test_forward_logps_chunked_equals_logits_path_on_the_tiny_vlm(vlm, align):
    batch = _video_batch(vlm, align)
    full, full_grads = _param_grads(vlm.model, batch, chunked=False)
    chunked, grads = _param_grads(vlm.model, batch, chunked=True)
    assert (full - chunked).abs().max() <= 1e-5
    assert grads.keys() == full_grads.keys() and "lm_head.weight" not in grads  # tied: embed_tokens holds it
    for name, grad in grads.items():
        assert (grad - full_grads[name]).abs().max() <= 1e-5, name


def test_forward_logps_through_peft_lora(vlm):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(copy.deepcopy(vlm.model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    batch = _video_batch(vlm)
    assert output_head(model) is model.get_base_model().lm_head
    with torch.no_grad():
        chunked = forward_logps(model, batch, "cpu")
        full = forward_logps(model, batch, "cpu", chunked=False)
    assert (chunked - full).abs().max() <= 1e-5


def test_heads_that_are_not_plain_logits_take_the_logits_path(vlm, monkeypatch):
    assert output_head(vlm.model) is vlm.model.lm_head
    monkeypatch.setattr(vlm.model.config.text_config, "final_logit_softcapping", 30.0, raising=False)
    assert output_head(vlm.model) is None
    monkeypatch.undo()
    lm = load_model("tiny-random-lm", device="cpu")
    lm.model.lm_head = torch.nn.Linear(64, lm.model.config.vocab_size, bias=True)
    assert output_head(lm.model) is None


def test_config_knob_is_checked():
    from training.config import ConfigError, load_config

    assert load_config({}, {}).model.logps == "chunked"
    with pytest.raises(ConfigError, match="model.logps: 'dense' is not one of chunked, full"):
        load_config({}, {"model.logps": "dense"})
