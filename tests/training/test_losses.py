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


def test_hinge_and_ipo_match_hand_calculation():
    # h = (pol_p - ref_p) - (pol_d - ref_d) = 1 - (-0.5) = 1.5 ; 0.5 - (-1) = 1.5
    assert L.hinge_loss(PP, PD, RP, RD, beta=0.1).losses.tolist() == pytest.approx([1 - 0.15, 1 - 0.15])
    assert L.ipo_loss(PP, PD, RP, RD, beta=0.1).losses.tolist() == pytest.approx([(1.5 - 5.0) ** 2] * 2)
    assert L.hinge_loss(t(0.0), t(-100.0), t(0.0), t(0.0), beta=0.1).losses.tolist() == [0.0]


def test_anchor_and_mdpo_conditional():
    assert L.anchor_loss(t(-10.0), t(-11.0), beta=0.1).tolist() == pytest.approx([-logsig(0.1)])
    assert L.mdpo_conditional_loss(PP, PD, RP, RD).losses.tolist() == pytest.approx(HAND_SIGMOID)


def test_unknown_kind_raises():
    with pytest.raises(ValueError):
        L.preference_loss(PP, PD, RP, RD, kind="nope")


def _idx(rows):
    x = torch.tensor(rows).reshape(-1, 3)
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


def test_losses_are_differentiable():
    pol = t(-10.0, -12.0).requires_grad_()
    L.hdpo(pol, t(-11.0, -11.5), {"dpo": _idx([(0, 1, 0)])}, 1).losses.sum().backward()
    assert pol.grad is not None and pol.grad[0] < 0 < pol.grad[1]
