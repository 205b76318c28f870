"""IPO and KTO against TRL 1.16's own loss code on the same inputs (<= 1e-6).

TRL computes these losses inside `DPOTrainer._compute_loss` / `KTOTrainer._compute_loss`, after a model call.
The tests run those very methods with a stand-in model that returns chosen per-token log-probs (the fused
LM head's `log_probs`) and a stand-in `self` holding only the attributes the methods read, so what is
compared is TRL's code, not a transcription of it.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from types import SimpleNamespace

import pytest
import torch

from training import losses as L

trl = pytest.importorskip("trl")


class _Acc:
    device = torch.device("cpu")

    @staticmethod
    def gather(x):
        return x

    gather_for_metrics = gather


def _owner(**attrs):
    base = dict(
        model=SimpleNamespace(training=True),
        accelerator=_Acc(),
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    return SimpleNamespace(**base, **attrs)


class _Model:
    """Returns per-token log-probs chosen per input_ids tensor (by identity), plus the metric tensors."""

    def __init__(self, by_ids: dict[int, torch.Tensor]) -> None:
        self.by_ids = by_ids

    def __call__(self, input_ids, **_):
        lp = self.by_ids[id(input_ids)]  # (N, L-1)
        zeros = torch.zeros_like(lp)
        return SimpleNamespace(log_probs=lp, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())


def _per_token(sums: torch.Tensor, lengths: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-aligned completions of `lengths` tokens whose log-probs sum to `sums`: (mask (N, W+1), logps (N, W))."""
    n = sums.shape[0]
    mask = torch.zeros(n, width + 1, dtype=torch.long)
    logps = torch.zeros(n, width, dtype=torch.float64)
    for i in range(n):
        k = int(lengths[i])
        mask[i, width + 1 - k :] = 1
        logps[i, width - k :] = sums[i] / k  # shifted: position t predicts token t+1
    return mask, logps


def _trl_ipo(pc, pr, rc, rr, lc, lr, beta):
    from trl.trainer.dpo_trainer import DPOTrainer

    width = int(max(lc.max(), lr.max())) + 2
    mask, logps = _per_token(torch.cat([pc, pr]), torch.cat([lc, lr]), width)
    ids = torch.arange(mask.numel()).reshape(mask.shape)
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "completion_mask": mask,
        "ref_chosen_logps": rc,
        "ref_rejected_logps": rr,
    }
    owner = _owner(
        beta=beta,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=["ipo"],
        loss_weights=[1.0],
        use_weighting=False,
    )
    return DPOTrainer._compute_loss(owner, _Model({id(ids): logps}), inputs, False)


def test_ipo_equals_trl_on_random_batches():
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for _ in range(64):
        b = 4
        pc, pr = -torch.rand(b, generator=g, dtype=torch.float64) * 200, -torch.rand(b, generator=g).double() * 200
        rc, rr = pc + torch.randn(b, generator=g).double() * 3, pr + torch.randn(b, generator=g).double() * 3
        lc, lr = torch.randint(1, 240, (b,), generator=g), torch.randint(1, 240, (b,), generator=g)
        theirs = _trl_ipo(pc, pr, rc, rr, lc, lr, 0.1)
        ours = L.ipo_loss(pc, pr, rc, rr, lc.double(), lr.double(), beta=0.1).losses.mean()
        worst = max(worst, abs(ours.item() - theirs.item()) / max(1.0, abs(theirs.item())))
    assert worst <= 1e-6


def _trl_kto(chosen, rejected, kl, beta, wd, wu):
    """chosen / rejected / kl: (policy sums, ref sums, lengths) of the desirable, undesirable and KL rows;
    TRL's batch is its rows in order [desirable..., undesirable...] with one KL row per row."""
    from trl.trainer.kto_trainer import KTOTrainer

    pol = torch.cat([chosen[0], rejected[0]])
    ref = torch.cat([chosen[1], rejected[1]])
    lengths = torch.cat([chosen[2], rejected[2]])
    width = int(max(lengths.max(), kl[2].max())) + 2
    mask, logps = _per_token(pol, lengths, width)
    kl_mask, kl_logps = _per_token(kl[0], kl[2], width)
    ids = torch.arange(mask.numel()).reshape(mask.shape)
    kl_ids = ids + ids.numel()
    labels = torch.tensor([True] * len(chosen[0]) + [False] * len(rejected[0]))
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "completion_mask": mask,
        "KL_input_ids": kl_ids,
        "KL_attention_mask": torch.ones_like(kl_ids),
        "KL_completion_mask": kl_mask,
        "label": labels,
        "ref_logps": ref,
        "ref_KL_logps": kl[1],
    }
    owner = _owner(
        beta=beta,
        calculate_KL=True,
        precompute_ref_logps=True,
        loss_type="kto",
        desirable_weight=wd,
        undesirable_weight=wu,
    )
    owner._compute_kl_logps = partial(KTOTrainer._compute_kl_logps, owner)
    model = _Model({id(ids): logps, id(kl_ids): kl_logps})
    return KTOTrainer._compute_loss(owner, model, batch, False)


def test_kto_equals_trl_on_random_batches():
    g = torch.Generator().manual_seed(1)

    def rows(n):
        pol = -torch.rand(n, generator=g, dtype=torch.float64) * 100
        return pol, pol + torch.randn(n, generator=g).double() * 4, torch.randint(1, 120, (n,), generator=g)

    worst = 0.0
    for trial in range(64):
        n_d, n_u = 1 + trial % 3, 2 + trial % 2
        chosen, rejected = rows(n_d), rows(n_u)
        kl = rows(n_d + n_u)
        kl = (kl[0], kl[0] - torch.randn(n_d + n_u, generator=g).double() * (1 + trial % 5), kl[2])
        wd, wu = (1.0, 1.0) if trial % 2 else (2.0, 1.0)
        theirs = _trl_kto(chosen, rejected, kl, 0.1, wd, wu)
        z = L.kto_reference_point(kl[0], kl[1])
        c, r = L.kto_loss(chosen[0], chosen[1], rejected[0], rejected[1], z, 0.1, wd, wu)
        ours = torch.cat([c, r]).mean()
        worst = max(worst, abs(ours.item() - theirs.item()))
    assert worst <= 1e-6
