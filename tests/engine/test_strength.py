"""engine.strength: the evaluator drop of each hallucination pair, and the training band built on it.

A scripted meter makes the numbers hand-checkable (identical frames score identically: strength 0); the
tiny random evaluators check the real road through Studio.perturbation_strength.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from engine.hallucination.pairs import ORIGINAL, PERTURBED, HdpoPairs, PairConfig, PairSeq, Perturbations, build_pairs
from engine.service import Studio, StudioConfig
from engine.strength import keep_in_band, measure_pairs

CHOSEN = "Two boys throw a red ball to the left while a brown dog runs across the green field."
SWAPPED = "Two girls throw a blue ball to the left while a brown dog runs across the green field."


def frames(value: int) -> np.ndarray:
    return np.full((4, 8, 8, 3), value, dtype=np.uint8)


class ScriptedMeter:
    """Score = table[text] + 10 x the frames' mean pixel / 255: the same frames give the same score."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table
        self.calls = 0

    def __call__(self, video: np.ndarray, texts: list[str]) -> list[dict[str, float]]:
        self.calls += 1
        shift = 10.0 * float(video.mean()) / 255.0
        return [{"a": self.table[t] + shift, "mean": self.table[t] + shift} for t in texts]


def built_task1(perturbed: np.ndarray) -> HdpoPairs:
    """A Task-1 example: the chosen, its word-swapped copy, and the chosen under `perturbed` frames."""
    seqs = [
        PairSeq(1, CHOSEN, None, ORIGINAL),
        PairSeq(1, SWAPPED, None, ORIGINAL),
        PairSeq(1, CHOSEN, None, PERTURBED),
        PairSeq(1, "a rejected beam", None, ORIGINAL),
    ]
    pairs = [("response_hallucination", 0, 1), ("input_hallucination", 0, 2), ("dpo", 0, 3)]
    return HdpoPairs(seqs, pairs, perturbed, {"seed": 0})


def test_identical_frames_give_strength_zero_and_a_swap_its_score_drop() -> None:
    meter = ScriptedMeter({CHOSEN: 25.0, SWAPPED: 22.0})
    strengths = measure_pairs(built_task1(frames(0)), frames(0), meter)
    assert [(s.term, s.condition) for s in strengths] == [
        ("response_hallucination", "response hallucination"),
        ("input_hallucination", "input hallucination (video)"),
    ]
    response, video = strengths
    assert response.value("drop") == pytest.approx(3.0) and response.value("relative") == pytest.approx(3.0 / 25.0)
    assert video.value("drop") == 0.0 and video.components[0].change == "video"
    assert meter.calls == 2  # the texts under the original frames in one call, the chosen under the perturbed


def test_a_brighter_perturbed_video_scores_by_hand() -> None:
    meter = ScriptedMeter({CHOSEN: 25.0, SWAPPED: 22.0})
    video = measure_pairs(built_task1(frames(51)), frames(0), meter)[1]  # shift 10 * 51 / 255 = 2.0
    assert video.components[0].original == pytest.approx(25.0)
    assert video.components[0].perturbed == pytest.approx(27.0)
    assert video.value("drop") == pytest.approx(-2.0)  # the perturbed side scores higher: a negative drop
    assert video.components[0].scores == {"a": [pytest.approx(25.0), pytest.approx(27.0)]}


def test_no_video_measures_nothing() -> None:
    built = build_pairs(3, "A dog runs on the beach.", None, CHOSEN, [], PairConfig(), seed=0)
    assert measure_pairs(built, None, ScriptedMeter({})) == []


def test_the_band_drops_out_of_band_pairs_and_renumbers_the_sequences() -> None:
    meter = ScriptedMeter({CHOSEN: 25.0, SWAPPED: 22.0})
    config = PairConfig(strength_band=(0.5, 5.0))
    kept, strengths = keep_in_band(built_task1(frames(0)), frames(0), meter, config)
    # the video pair's drop is 0.0 < 0.5: gone, with its perturbed sequence and frames; dpo is never banded
    assert kept.pairs == [("response_hallucination", 0, 1), ("dpo", 0, 2)]
    assert [s.response for s in kept.seqs] == [CHOSEN, SWAPPED, "a rejected beam"]
    assert kept.perturbed_frames is None
    record = kept.records["strength"]
    assert record["band"] == [0.5, 5.0] and record["measure"] == "drop"
    assert [p["condition"] for p in record["pairs"]] == ["response hallucination"]
    assert [p["condition"] for p in record["dropped"]] == ["input hallucination (video)"]
    assert len(strengths) == 2


def test_relative_band_and_no_band() -> None:
    meter = ScriptedMeter({CHOSEN: 25.0, SWAPPED: 22.0})
    built = built_task1(frames(0))
    kept, _ = keep_in_band(built, frames(0), meter, PairConfig(strength_band=(0.2, 1.0), strength_measure="relative"))
    assert [t for t, _, _ in kept.pairs] == ["dpo"]  # 3/25 = 0.12 < 0.2 and 0.0 < 0.2
    same, strengths = keep_in_band(built, frames(0), meter, PairConfig())
    assert same is built and strengths == [] and meter.calls == 2  # no band: nothing measured


def test_band_config_errors_are_one_line() -> None:
    with pytest.raises(InputError, match="strength_band must be"):
        PairConfig(strength_band=(2.0, 1.0))
    with pytest.raises(InputError, match="strength_measure must be one of drop, relative"):
        PairConfig(strength_measure="ratio")
    with pytest.raises(InputError, match="needs evaluators"):
        keep_in_band(built_task1(frames(0)), frames(0), None, PairConfig(strength_band=(0.0, 1.0)))


def test_given_identical_video_makes_no_pair_and_a_real_one_is_measured(sample_video) -> None:
    studio = Studio(StudioConfig(device="cpu"))
    video, _ = studio.load_frames(sample_video)
    same = build_pairs(1, None, video, CHOSEN, [], PairConfig(), 0, Perturbations(frames=video.copy()))
    assert [t for t, _, _ in same.pairs] == ["response_hallucination"]  # no input pair: nothing changed
    out = studio.perturbation_strength(1, CHOSEN, video=sample_video, evaluators=["tiny-random-clip"], seed=0)
    assert out["random_weights"] and out["evaluators"] == ["tiny-random-clip"]
    rows = {r["condition"]: r for r in out["rows"]}
    assert set(rows) == {"response hallucination", "input hallucination (video)"}
    built = build_pairs(1, None, video, CHOSEN, [], PairConfig(), seed=0)
    member = studio.ensemble.member("tiny-random-clip")
    y_h = built.seqs[1].response
    s_orig, s_swapped = member.score(video, [CHOSEN, y_h])
    s_perturbed = member.score(built.perturbed_frames, [CHOSEN])[0]
    assert rows["response hallucination"]["drop"] == pytest.approx(s_orig - s_swapped, abs=1e-4)
    assert rows["input hallucination (video)"]["drop"] == pytest.approx(s_orig - s_perturbed, abs=1e-4)


def test_text_only_sample_says_why_nothing_is_measured() -> None:
    out = Studio(StudioConfig(device="cpu")).perturbation_strength(
        3, CHOSEN, "A dog runs.", evaluators=["tiny-random-clip"]
    )
    assert out["rows"] == [] and out["notes"][0].startswith("no video: ")
