"""The training objective of one micro-batch: loss.kind picks HDPO / a pair baseline, KTO or SFT.

Pure apart from the optional `gather` (KTO's reference point is averaged over processes, as TRL does):
per-sequence log-probs (S,) and the flat batch's indices in, per-example losses (B,) and metrics out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from training.config import TERMS, LossConfig
from training.data import KTO_KL
from training.logps import FlatBatch
from training.losses import HDPOOutput, hdpo, kto, kto_reference_point, sft

#: (sum, count) of this process's KL log-ratios -> the same summed over every process.
Gather = Callable[[torch.Tensor], torch.Tensor]


def needs_reference(loss: LossConfig) -> bool:
    """SFT has no reference model; every other kind compares against pi_ref."""
    return loss.kind != "sft"


def kto_z(policy: torch.Tensor, ref: torch.Tensor, flat: FlatBatch, gather: Gather | None = None) -> torch.Tensor:
    """z_ref over the micro-batch's mismatched rows (and every process's, with `gather`); 0 without any."""
    idx = flat.pairs.get(KTO_KL)
    rows = idx.disp if idx is not None else torch.zeros(0, dtype=torch.long)
    rows = rows.to(policy.device)
    if rows.numel():
        z = kto_reference_point(policy[rows], ref[rows])
        total = torch.stack([z * rows.numel(), z.new_tensor(float(rows.numel()))])
    else:
        total = policy.new_zeros(2).detach()
    if gather is not None:
        total = gather(total)
    return total[0] / total[1].clamp(min=1)


def objective(
    loss: LossConfig,
    policy: torch.Tensor,
    ref: torch.Tensor | None,
    flat: FlatBatch,
    tokens: torch.Tensor,
    gather: Gather | None = None,
) -> HDPOOutput:
    """policy, ref (S,) summed response log-probs (ref None for sft), tokens (S,) response lengths."""
    tokens = tokens.to(policy.device)
    if loss.kind == "sft":
        return sft(policy, tokens, flat.anchor, flat.n_examples)
    assert ref is not None, f"loss.kind {loss.kind} needs reference log-probs"
    if loss.kind == "kto":
        z = kto_z(policy, ref, flat, gather)
        w = (loss.desirable_weight, loss.undesirable_weight)
        return kto(policy, ref, flat.anchor, flat.pairs["dpo"], z, flat.n_examples, loss.beta, *w)
    return hdpo(
        policy,
        ref,
        {t: flat.pairs[t] for t in TERMS},  # the HDPO terms only (an examples file may carry others)
        flat.n_examples,
        weights=loss.weights,
        enabled=loss.enabled,
        beta=loss.beta,
        kind=loss.kind,
        anchor=flat.anchor,
        anchor_weight=loss.anchor_weight,
        tokens=tokens if loss.kind == "ipo" else None,
        reduction=loss.pair_reduction,
    )
