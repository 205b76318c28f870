"""HDPO and baseline preference losses: pure functions of per-sequence log-probs.

Notation (paper section 3.2-3.3): r(y|x,q) = beta * (log pi_theta(y|x,q) - log pi_ref(y|x,q))  (Eq. 1,
the partition function Z(x,q) cancels inside every difference below). Every term is a pair
(preferred sequence, dispreferred sequence) and the Bradley-Terry loss -log sigma(r_pref - r_disp)
(Eq. 2). The terms differ only in *which* sequences they compare:

| term                   | preferred        | dispreferred            | equations |
| dpo                    | (x, q, y_g)      | (x, q, y_b)             | 2-5       |
| response_hallucination | (x, q, y_g)      | (x, q, y_h)             | 6-8       |
| input_hallucination    | (x, q, y_g)      | (x + H, q, y_g)         | 9-11      |
| task_hallucination     | (x3, q3, y_g3)   | (x1, q1, y_g3), (x2, ...)| 12-13     |

Inputs are log-prob tensors of shape (N,) (one entry per pair; N = pairs, not examples). Outputs are
per-pair losses; `hdpo` reduces them to per-example losses. No model call happens here.

Baselines beside HDPO (paper Table 1): hinge, IPO (length-normalised, as TRL and the IPO authors),
mDPO's conditional + anchor terms, KTO (`kto`, unpaired) and SFT (`sft`, NLL on the chosen responses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from training.config import PAIR_LOSSES

DEFAULT_BETA = 0.1


@dataclass
class PairLoss:
    """Per-pair losses (N,) and the implicit rewards r_pref, r_disp (N,), detached."""

    losses: torch.Tensor
    pref_rewards: torch.Tensor
    disp_rewards: torch.Tensor

    @property
    def margins(self) -> torch.Tensor:
        return self.pref_rewards - self.disp_rewards

    @property
    def accuracies(self) -> torch.Tensor:
        return (self.pref_rewards > self.disp_rewards).float()


def _rewards(policy: torch.Tensor, ref: torch.Tensor, beta: float) -> torch.Tensor:
    # Eq. 1 without Z(x, q): beta * log pi_theta / pi_ref.
    return beta * (policy - ref)


def preference_loss(
    policy_pref: torch.Tensor,
    policy_disp: torch.Tensor,
    ref_pref: torch.Tensor,
    ref_disp: torch.Tensor,
    beta: float = DEFAULT_BETA,
    kind: str = "sigmoid",
    pref_tokens: torch.Tensor | None = None,
    disp_tokens: torch.Tensor | None = None,
) -> PairLoss:
    """One preference pair per entry, (N,) each; log-probs are summed over each response's tokens.

    kind="sigmoid": -log sigma(r_pref - r_disp)                          (Eq. 2, DPO)
    kind="hinge":   max(0, 1 - (r_pref - r_disp))                        (SLiC / RSO hinge)
    kind="ipo":     (h - 1 / (2 beta))^2                                 (IPO, Azar et al. 2024, Eq. 17)
        with h = (log pi/pi_ref)(y_pref) / |y_pref| - (log pi/pi_ref)(y_disp) / |y_disp|: each log-ratio
        averaged over its completion's tokens (pref_tokens, disp_tokens (N,), EOS included), as TRL's
        `loss_type="ipo"` does and as the IPO paper's results were computed (TRL says so, confirmed with the
        IPO authors). Summed log-ratios of ~200-token captions would put the 1/(2 beta) = 5 target on a scale
        the IPO paper never used. Rewards (metrics) stay beta * summed log-ratios, as TRL logs them.
    """
    pref_logratio = policy_pref - ref_pref
    disp_logratio = policy_disp - ref_disp
    if kind == "sigmoid":
        losses = -F.logsigmoid(beta * (pref_logratio - disp_logratio))
    elif kind == "hinge":
        losses = torch.relu(1.0 - beta * (pref_logratio - disp_logratio))
    elif kind == "ipo":
        if pref_tokens is None or disp_tokens is None:
            raise ValueError(
                "the IPO loss averages log-ratios over completion tokens: pass pref_tokens and disp_tokens"
            )
        h = pref_logratio / pref_tokens.clamp(min=1) - disp_logratio / disp_tokens.clamp(min=1)
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(f"unknown pair loss {kind!r}; use one of {PAIR_LOSSES}")
    return PairLoss(
        losses, _rewards(policy_pref, ref_pref, beta).detach(), _rewards(policy_disp, ref_disp, beta).detach()
    )


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = DEFAULT_BETA) -> PairLoss:
    """Vanilla DPO, (x, q, y_g) over (x, q, y_b), applied to every task (Eq. 2-5)."""
    return preference_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


def response_hallucination_loss(policy_g, policy_h, ref_g, ref_h, beta: float = DEFAULT_BETA) -> PairLoss:
    """(x, q, y_g) over (x, q, y_h), y_h = y_g with 1-5 words swapped in category (Eq. 6-8)."""
    return preference_loss(policy_g, policy_h, ref_g, ref_h, beta)


def input_hallucination_loss(policy_g, policy_g_hx, ref_g, ref_g_hx, beta: float = DEFAULT_BETA) -> PairLoss:
    """The same y_g under the clean input x over the hallucinated input x + H (Eq. 9-11).

    H: frames shuffled + patches pasted (video), or the short prompt word-swapped (Task 3).
    """
    return preference_loss(policy_g, policy_g_hx, ref_g, ref_g_hx, beta)


def task_hallucination_loss(policy_g3, policy_g3_other, ref_g3, ref_g3_other, beta: float = DEFAULT_BETA) -> PairLoss:
    """y_g^(3) under its own (x3, q3) over under the Task-1/2 conditioning of its sample (Eq. 12-13)."""
    return preference_loss(policy_g3, policy_g3_other, ref_g3, ref_g3_other, beta)


def hinge_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = DEFAULT_BETA) -> PairLoss:
    """Baseline: hinge on the reward margin, max(0, 1 - (r_g - r_b))."""
    return preference_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, kind="hinge")


def ipo_loss(
    policy_chosen,
    policy_rejected,
    ref_chosen,
    ref_rejected,
    chosen_tokens,
    rejected_tokens,
    beta: float = DEFAULT_BETA,
) -> PairLoss:
    """Baseline: IPO, squared distance of the token-averaged log-ratio difference to 1/(2 beta) (see
    `preference_loss`); chosen_tokens, rejected_tokens (N,): completion lengths in tokens."""
    return preference_loss(
        policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, "ipo", chosen_tokens, rejected_tokens
    )


def mdpo_conditional_loss(policy_g, policy_g_corrupt, ref_g, ref_g_corrupt, beta: float = DEFAULT_BETA) -> PairLoss:
    """Baseline: mDPO's conditional preference (Wang et al. 2024): y_g with the true visual input
    over y_g with a corrupted one. Same maths as the input-hallucination term; mDPO corrupts by
    random cropping, HDPO by shuffling + pasting (the corruption is the data, not the loss)."""
    return preference_loss(policy_g, policy_g_corrupt, ref_g, ref_g_corrupt, beta)


def anchor_loss(policy_chosen: torch.Tensor, ref_chosen: torch.Tensor, beta: float = DEFAULT_BETA, delta: float = 0.0):
    """Baseline: mDPO's anchored preference, -log sigma(r(y_g) - delta): keeps the chosen reward positive.

    Returns per-example losses (N,)."""
    return -F.logsigmoid(_rewards(policy_chosen, ref_chosen, beta) - delta)


# --------------------------------------------------------------------------- HDPO (Eq. 3-13)


@dataclass
class PairIndex:
    """Where one term's pairs live in a flat batch of sequences.

    pref, disp: (N,) indices into the per-sequence log-prob vector; example: (N,) example of each pair.
    """

    pref: torch.Tensor
    disp: torch.Tensor
    example: torch.Tensor

    def __len__(self) -> int:
        return int(self.pref.numel())


@dataclass
class HDPOOutput:
    """Per-example losses (B,) and scalar metrics (detached 0-d tensors) per term."""

    losses: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def _per_example_mean(
    values: torch.Tensor, example: torch.Tensor, n_examples: int, total: bool = False
) -> torch.Tensor:
    """Mean (total: sum) of each example's pair values; 0 for examples without a pair of this term. -> (B,)"""
    example = example.to(values.device)  # pair indices are built on the CPU; values may live on CUDA
    sums = torch.zeros(n_examples, dtype=values.dtype, device=values.device).index_add(0, example, values)
    if total:
        return sums
    counts = torch.zeros(n_examples, dtype=values.dtype, device=values.device).index_add(
        0, example, torch.ones_like(values)
    )
    return sums / counts.clamp(min=1)


def _term_metrics(term: str, out: PairLoss) -> dict[str, torch.Tensor]:
    # 0-d tensors, not floats: the trainer converts all of them in one device sync per step.
    return {
        f"{term}/loss": out.losses.detach().mean(),
        f"{term}/margin": out.margins.mean(),
        f"{term}/accuracy": out.accuracies.mean(),
        f"{term}/reward_pref": out.pref_rewards.mean(),
        f"{term}/reward_disp": out.disp_rewards.mean(),
    }


def hdpo(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    pairs: Mapping[str, PairIndex],
    n_examples: int,
    weights: Mapping[str, float] | None = None,
    enabled: Mapping[str, bool] | None = None,
    beta: float = DEFAULT_BETA,
    kind: str = "sigmoid",
    anchor: PairIndex | None = None,
    anchor_weight: float = 0.0,
    tokens: torch.Tensor | None = None,
    reduction: str = "mean",
) -> HDPOOutput:
    """HDPO: the sum of Eq. 3-13 as losses, per example.

    policy_logps, ref_logps: (S,) summed response log-probs of the S sequences of a batch.
    pairs: term -> PairIndex into those S sequences. An example's loss is
        sum_t weight_t * mean over the example's t-pairs of -log sigma(r_pref - r_disp)
    (a term with no pair in an example adds 0), so with only "dpo" on and one rejected response per
    example this is exactly `dpo_loss`. reduction="sum" sums each term's pairs instead of averaging them:
    the paper "integrates Eq. (3) to Eq. (13)", so two rejected responses (Eq. 3-5 twice) and the two task
    displacements (Eq. 12 and 13) each count once per pair rather than once per term. `kind` swaps the pair
    loss for the hinge / IPO baselines (IPO needs `tokens`, (S,) response lengths); `anchor` (indices of
    chosen sequences, pref = disp) adds mDPO's anchor term. Returns losses (B,) - the caller takes .mean() -
    and metrics per term.
    """
    weights = weights or {}
    enabled = enabled or {}
    losses = policy_logps.new_zeros(n_examples)
    metrics: dict[str, torch.Tensor] = {}
    for term, idx in pairs.items():
        if not enabled.get(term, True) or len(idx) == 0:
            continue
        lengths = (None, None) if tokens is None else (tokens[idx.pref], tokens[idx.disp])
        out = preference_loss(
            policy_logps[idx.pref],
            policy_logps[idx.disp],
            ref_logps[idx.pref],
            ref_logps[idx.disp],
            beta,
            kind,
            *lengths,
        )
        per_example = _per_example_mean(out.losses, idx.example, n_examples, reduction == "sum")
        losses = losses + weights.get(term, 1.0) * per_example
        metrics.update(_term_metrics(term, out))
    if anchor is not None and anchor_weight > 0 and len(anchor) > 0:
        anchored = anchor_loss(policy_logps[anchor.pref], ref_logps[anchor.pref], beta)
        losses = losses + anchor_weight * _per_example_mean(anchored, anchor.example, n_examples)
        metrics["anchor/loss"] = anchored.detach().mean()
    metrics["loss"] = losses.detach().mean()
    return HDPOOutput(losses, metrics)


# --------------------------------------------------------------------------- KTO and SFT baselines (Table 1)


def kto_reference_point(policy_kl: torch.Tensor, ref_kl: torch.Tensor) -> torch.Tensor:
    """KTO's z_ref: mean log-ratio of mismatched (x, y') sequences, detached, 0-d. (K,) each.

    y' is another example's response under x, so the mean estimates KL(pi_theta(y'|x) || pi_ref(y'|x)) over
    the batch (Ethayarajh et al. 2024, section 4.1; TRL: KL completions rotated within a batch, the mean
    gathered over processes - the caller averages the per-process values - then clamped at 0)."""
    return (policy_kl - ref_kl).mean().detach()


def kto_loss(
    policy_chosen: torch.Tensor,
    ref_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_rejected: torch.Tensor,
    z_ref: torch.Tensor,
    beta: float = DEFAULT_BETA,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """KTO (Ethayarajh et al. 2024, Eq. 8): unpaired desirable (chosen, (D,)) and undesirable (rejected, (U,)).

        r(x, y) = log pi_theta(y|x) - log pi_ref(y|x)
        z_ref   = max(0, z)  (z: `kto_reference_point`, no gradient)
        v(x, y) = lambda_D * sigma(beta * (r - z_ref))   if y is desirable
                  lambda_U * sigma(beta * (z_ref - r))   if y is undesirable
        L_KTO   = E[lambda_y - v(x, y)]
    Returns (desirable losses (D,), undesirable losses (U,)): lambda_D * (1 - sigma(beta (r - z_ref))) and
    lambda_U * (1 - sigma(beta (z_ref - r))), TRL's `loss_type="kto"` term by term.
    """
    z = z_ref.clamp(min=0)
    chosen = desirable_weight * (1 - torch.sigmoid(beta * ((policy_chosen - ref_chosen) - z)))
    rejected = undesirable_weight * (1 - torch.sigmoid(beta * (z - (policy_rejected - ref_rejected))))
    return chosen, rejected


def kto(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    chosen: PairIndex,
    rejected: PairIndex,
    z_ref: torch.Tensor,
    n_examples: int,
    beta: float = DEFAULT_BETA,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> HDPOOutput:
    """KTO over a flat batch: chosen.pref rows are desirable, rejected.disp rows undesirable (each example's
    chosen and its rejected responses, the DPO data read unpaired). An example's loss is the mean of its
    rows' losses (TRL averages all rows of a batch: the same when every example has as many rejected).
    Returns losses (B,) and metrics (kto/*)."""
    c_loss, r_loss = kto_loss(
        policy_logps[chosen.pref],
        ref_logps[chosen.pref],
        policy_logps[rejected.disp],
        ref_logps[rejected.disp],
        z_ref,
        beta,
        desirable_weight,
        undesirable_weight,
    )
    rows = torch.cat([c_loss, r_loss])  # (D + U,)
    owner = torch.cat([chosen.example, rejected.example])
    losses = _per_example_mean(rows, owner, n_examples)
    c_reward = _rewards(policy_logps[chosen.pref], ref_logps[chosen.pref], beta).detach()
    r_reward = _rewards(policy_logps[rejected.disp], ref_logps[rejected.disp], beta).detach()
    metrics = {
        "kto/loss": rows.detach().mean(),
        "kto/z_ref": z_ref.clamp(min=0).detach(),
        "kto/reward_chosen": c_reward.mean(),
        "kto/reward_rejected": r_reward.mean() if r_reward.numel() else c_reward.new_zeros(()),
        "loss": losses.detach().mean(),
    }
    return HDPOOutput(losses, metrics)


def sft_loss(policy_logps: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """SFT baseline (paper Table 1 "+SFT"): mean token NLL of each chosen response, (N,) -> (N,).

    policy_logps: summed log-probs of the response tokens (EOS included), tokens: their count. Each example
    weighs the same whatever its length (a caption and a short Task-3 prompt alike), independent of how
    examples are split into micro-batches and processes."""
    return -policy_logps / tokens.clamp(min=1)


def sft(policy_logps: torch.Tensor, tokens: torch.Tensor, chosen: PairIndex, n_examples: int) -> HDPOOutput:
    """SFT over a flat batch: the NLL of each example's chosen sequence (chosen.pref), per example (B,)."""
    nll = sft_loss(policy_logps[chosen.pref], tokens[chosen.pref])
    losses = _per_example_mean(nll, chosen.example, n_examples)
    return HDPOOutput(losses, {"sft/nll": nll.detach().mean(), "loss": losses.detach().mean()})
