"""Each loss term against a hand calculation (values written out here, not recomputed by the code)."""

import math

import pytest
import torch

from training import losses as L


def t(*v):
    return torch.tensor(v, dtype=torch.float64)


def logsig(x):
    return math.log(1 / (1 + math.exp(-x)))


# policy/ref log-probs of a preferred and a dispreferred sequence
PP, PD, RP, RD = t(-10.0, -4.0), t(-12.0, -3.0), t(-11.0, -4.5), t(-11.5, -2.0)
# by hand, beta = 0.1: r_pref = 0.1*(-10+11)=0.1, 0.1*(-4+4.5)=0.05; r_disp = 0.1*(-12+11.5)=-0.05, 0.1*(-3+2)=-0.1
R_PREF, R_DISP = [0.1, 0.05], [-0.05, -0.1]
HAND_SIGMOID = [-logsig(0.15), -logsig(0.15)]


@pytest.mark.parametrize(
    "fn", [L.dpo_loss, L.response_hallucination_loss, L.input_hallucination_loss, L.task_hallucination_loss]
)
def test_sigmoid_terms_match_hand_calculation(fn):
    out = fn(PP, PD, RP, RD, beta=0.1)
    assert out.losses.tolist() == pytest.approx(HAND_SIGMOID)
    assert out.pref_rewards.tolist() == pytest.approx(R_PREF)
    assert out.disp_rewards.tolist() == pytest.approx(R_DISP)
    assert out.accuracies.tolist() == [1.0, 1.0]


def test_hinge_matches_hand_calculation():
    # h = (pol_p - ref_p) - (pol_d - ref_d) = 1 - (-0.5) = 1.5 ; 0.5 - (-1) = 1.5
    assert L.hinge_loss(PP, PD, RP, RD, beta=0.1).losses.tolist() == pytest.approx([1 - 0.15, 1 - 0.15])
    assert L.hinge_loss(t(0.0), t(-100.0), t(0.0), t(0.0), beta=0.1).losses.tolist() == [0.0]


def test_ipo_averages_log_ratios_over_completion_tokens():
    # log-ratios: pref 1 and 0.5, disp -0.5 and -1; lengths pref 10 and 5 tokens, disp 4 and 2:
    # h = 1/10 - (-0.5/4) = 0.225 ; 0.5/5 - (-1/2) = 0.6 ; target 1/(2*0.1) = 5
    out = L.ipo_loss(PP, PD, RP, RD, t(10.0, 5.0), t(4.0, 2.0), beta=0.1)
    assert out.losses.tolist() == pytest.approx([(0.225 - 5) ** 2, (0.6 - 5) ** 2])
    assert out.pref_rewards.tolist() == pytest.approx(R_PREF)  # rewards stay beta * summed log-ratios (as TRL)
    # the summed form (the old behaviour) would be (1.5 - 5)^2 for both
    assert out.losses.tolist() != pytest.approx([(1.5 - 5.0) ** 2] * 2)
    with pytest.raises(ValueError, match="completion tokens"):
        L.preference_loss(PP, PD, RP, RD, kind="ipo")


def test_hdpo_ipo_reads_the_token_counts():
    pol, ref = t(-10, -12), t(-11, -11.5)
    out = L.hdpo(pol, ref, {"dpo": _idx([(0, 1, 0)])}, 1, kind="ipo", tokens=t(10.0, 4.0))
    assert out.losses.tolist() == pytest.approx([(0.225 - 5) ** 2])


def test_kto_matches_hand_calculation():
    # desirable r = -10 - (-11) = 1, undesirable r = -12 - (-11.5) = -0.5; KL rows: r' = -1 - (-3) = 2 and
    # -5 - (-4) = -1 -> z = mean = 0.5; beta 0.1, lambda_D 2, lambda_U 1
    z = L.kto_reference_point(t(-1.0, -5.0), t(-3.0, -4.0))
    assert z.item() == pytest.approx(0.5)
    chosen, rejected = L.kto_loss(t(-10.0), t(-11.0), t(-12.0), t(-11.5), z, 0.1, 2.0, 1.0)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert chosen.tolist() == pytest.approx([2 * (1 - sig(0.1 * (1 - 0.5)))])
    assert rejected.tolist() == pytest.approx([1 - sig(0.1 * (0.5 + 0.5))])
    # z is clamped at 0 (a negative KL estimate means the policy is at the reference)
    neg = L.kto_reference_point(t(-5.0), t(-4.0))
    assert L.kto_loss(t(-10.0), t(-11.0), t(-12.0), t(-11.5), neg)[0].tolist() == pytest.approx([1 - sig(0.1)])


def test_kto_over_a_flat_batch_averages_each_examples_rows():
    # ex0: chosen 0, rejected 1 and 2; ex1: chosen 3, rejected 4; z given (0)
    pol, ref = t(-10, -12, -13, -4, -3), t(-11, -11.5, -12, -4.5, -2)
    chosen, rejected = _idx([(0, 0, 0), (3, 3, 1)]), _idx([(0, 1, 0), (0, 2, 0), (3, 4, 1)])
    out = L.kto(pol, ref, chosen, rejected, t(0.0), 2, beta=0.1)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    ex0 = ((1 - sig(0.1)) + (1 - sig(0.05)) + (1 - sig(0.1))) / 3
    ex1 = ((1 - sig(0.05)) + (1 - sig(0.1))) / 2
    assert out.losses.tolist() == pytest.approx([ex0, ex1])


def test_sft_is_the_mean_token_nll_of_each_chosen_response():
    # chosen 0 (summed log-prob -6 over 3 tokens), chosen 2 (-10 over 4 tokens); 1 is not read
    out = L.sft(t(-6.0, -100.0, -10.0), t(3.0, 9.0, 4.0), _idx([(0, 0, 0), (2, 2, 1)]), 2)
    assert out.losses.tolist() == pytest.approx([2.0, 2.5])
    assert out.metrics["loss"].item() == pytest.approx(2.25)


def test_anchor_and_mdpo_conditional():
    assert L.anchor_loss(t(-10.0), t(-11.0), beta=0.1).tolist() == pytest.approx([-logsig(0.1)])
    assert L.mdpo_conditional_loss(PP, PD, RP, RD).losses.tolist() == pytest.approx(HAND_SIGMOID)


def test_unknown_kind_raises():
    with pytest.raises(ValueError):
        L.preference_loss(PP, PD, RP, RD, kind="nope")


def _idx(rows):
    x = torch.tensor(rows, dtype=torch.long).reshape(-1, 3)
    return L.PairIndex(x[:, 0], x[:, 1], x[:, 2])


def test_hdpo_with_only_dpo_equals_plain_dpo():
    # sequences: ex0 = [0 chosen, 1 rejected, 2 y_h], ex1 = [3 chosen, 4 rejected, 5 x+H]
    pol, ref = t(-10, -12, -9, -4, -3, -5), t(-11, -11.5, -10, -4.5, -2, -4)
    pairs = {
        "dpo": _idx([(0, 1, 0), (3, 4, 1)]),
        "response_hallucination": _idx([(0, 2, 0)]),
        "input_hallucination": _idx([(3, 5, 1)]),
    }
    only = {"dpo": True, "response_hallucination": False, "input_hallucination": False}
    out = L.hdpo(pol, ref, pairs, 2, enabled=only)
    plain = L.dpo_loss(pol[[0, 3]], pol[[1, 4]], ref[[0, 3]], ref[[1, 4]])
    assert torch.allclose(out.losses, plain.losses)
    assert out.metrics["loss"].item() == pytest.approx(plain.losses.mean().item())


def test_hdpo_sums_weighted_terms_per_example():
    pol, ref = t(-10, -12, -9, -4, -3, -5), t(-11, -11.5, -10, -4.5, -2, -4)
    pairs = {
        "dpo": _idx([(0, 1, 0), (3, 4, 1)]),
        "response_hallucination": _idx([(0, 2, 0)]),
        "input_hallucination": _idx([(3, 5, 1)]),
    }
    out = L.hdpo(pol, ref, pairs, 2, weights={"response_hallucination": 2.0})
    # ex0: dpo (r 0.1 vs -0.05) + 2 * response (r 0.1 vs 0.1*(-9+10)=0.1): margins 0.15 and 0
    ex0 = -logsig(0.15) + 2 * -logsig(0.0)
    # ex1: dpo (0.05 vs -0.1) + input (0.05 vs 0.1*(-5+4)=-0.1)
    ex1 = -logsig(0.15) + -logsig(0.15)
    assert out.losses.tolist() == pytest.approx([ex0, ex1])


def test_hdpo_averages_several_rejected_and_adds_anchor():
    pol, ref = t(-10, -12, -13), t(-11, -11.5, -12)
    pairs = {"dpo": _idx([(0, 1, 0), (0, 2, 0)])}
    out = L.hdpo(pol, ref, pairs, 1, anchor=_idx([(0, 0, 0)]), anchor_weight=1.0)
    # rejected rewards -0.05 and -0.1 against 0.1; anchor -log sigma(0.1)
    hand = (-logsig(0.15) - logsig(0.2)) / 2 - logsig(0.1)
    assert out.losses.tolist() == pytest.approx([hand])


def test_hdpo_pair_reduction_sum_counts_each_pair_once():
    # two rejected (Eq. 3-5 twice) and two task displacements (Eq. 12 and 13) of one example
    pol, ref = t(-10, -12, -13, -14, -15), t(-11, -11.5, -12, -11, -11)
    pairs = {"dpo": _idx([(0, 1, 0), (0, 2, 0)]), "task_hallucination": _idx([(0, 3, 0), (0, 4, 0)])}
    # rewards: chosen 0.1; rejected -0.05, -0.1; displaced -0.3, -0.4
    dpo_pairs, task_pairs = [-logsig(0.15), -logsig(0.2)], [-logsig(0.4), -logsig(0.5)]
    mean = L.hdpo(pol, ref, pairs, 1).losses.tolist()
    total = L.hdpo(pol, ref, pairs, 1, reduction="sum").losses.tolist()
    assert mean == pytest.approx([sum(dpo_pairs) / 2 + sum(task_pairs) / 2])
    assert total == pytest.approx([sum(dpo_pairs) + sum(task_pairs)])


def test_pair_reduction_is_a_config_option_reaching_the_loss():
    from training.config import ConfigError, LossConfig
    from training.logps import FlatBatch
    from training.objective import objective

    pol, ref = t(-10, -12, -13), t(-11, -11.5, -12)
    from training.config import TERMS

    pairs = {term: _idx([]) for term in TERMS} | {"dpo": _idx([(0, 1, 0), (0, 2, 0)])}
    flat = FlatBatch([], [], pairs, _idx([(0, 0, 0)]), 1)
    tokens = t(3, 3, 3)
    assert LossConfig().pair_reduction == "mean"
    mean = objective(LossConfig(), pol, ref, flat, tokens).losses.item()
    total = objective(LossConfig(pair_reduction="sum"), pol, ref, flat, tokens).losses.item()
    assert total == pytest.approx(2 * mean)
    with pytest.raises(ConfigError, match="loss.pair_reduction"):
        LossConfig(pair_reduction="max")


def test_losses_are_differentiable():
    pol = t(-10.0, -12.0).requires_grad_()
    L.hdpo(pol, t(-11.0, -11.5), {"dpo": _idx([(0, 1, 0)])}, 1).losses.sum().backward()
    assert pol.grad is not None and pol.grad[0] < 0 < pol.grad[1]
