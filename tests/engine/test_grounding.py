"""engine.grounding: each sentence scored against the video in one scoring call; the flag's rule by hand.

A scripted scorer gives hand-set scores for the rule; the tiny random evaluators check the real road: the
sentences' scores equal scoring each alone, with one video encode and one text batch per evaluator.
"""

from __future__ import annotations

import pytest

from engine.errors import InputError
from engine.evaluators.scores import EnsembleScore, ScoreReport
from engine.grounding import ground_texts
from engine.service import Studio, StudioConfig

CLIP, LONG = "tiny-random-clip", "tiny-random-long-clip"
TEXT = "A rabbit sits in a meadow. A red car drives past. The sun shines on the grass."


class ScriptedScorer:
    """Scores by a table: each text's two 'evaluators' give value and value + 2 (mean = value + 1)."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table
        self.calls: list[list[str]] = []

    def score(self, video, texts, evaluators=None) -> ScoreReport:
        self.calls.append(list(texts))
        rows = [EnsembleScore({"a": self.table[t], "b": self.table[t] + 2}, self.table[t] + 1) for t in texts]
        return ScoreReport(rows, ["a", "b"])


def test_the_lowest_sentence_is_flagged_when_it_is_margin_below_the_others_median() -> None:
    scorer = ScriptedScorer(
        {"A rabbit sits in a meadow.": 25.0, "A red car drives past.": 22.5, "The sun shines on the grass.": 24.0}
    )
    g = ground_texts(scorer, "clip.mp4", [TEXT])[0]
    assert [s.text for s in g.sentences] == [
        "A rabbit sits in a meadow.",
        "A red car drives past.",
        "The sun shines on the grass.",
    ]
    assert [s.mean for s in g.sentences] == [26.0, 23.5, 25.0]
    assert [s.relative for s in g.sentences] == [1.0, -1.5, 0.0]  # minus the median, 25.0
    assert g.least_supported == 1
    assert g.gap == pytest.approx(2.0)  # median of 26.0 and 25.0 is 25.5; 25.5 - 23.5
    assert g.flagged
    assert TEXT[g.sentences[1].start : g.sentences[1].end] == "A red car drives past."
    assert not ground_texts(scorer, "clip.mp4", [TEXT], margin=2.5)[0].flagged  # 2.0 < 2.5


def test_one_call_for_all_texts_and_each_sentence_once() -> None:
    scorer = ScriptedScorer({"One.": 1.0, "Two.": 2.0, "Three.": 3.0})
    out = ground_texts(scorer, "clip.mp4", ["One. Two.", "Two. Three.", "Three."])
    assert scorer.calls == [["One.", "Two.", "Three."]]
    assert [g.least_supported for g in out] == [0, 0, 0]
    assert out[2].gap is None and not out[2].flagged  # one sentence: nothing to stand out from
    assert out[0].gap == pytest.approx(1.0) and out[0].flagged  # margin 1.0: a gap of exactly 1 flags


def test_bad_input_is_one_line() -> None:
    scorer = ScriptedScorer({})
    with pytest.raises(InputError, match="cannot ground an empty text"):
        ground_texts(scorer, "clip.mp4", ["A dog.", "  "])
    with pytest.raises(InputError, match="margin must be >= 0"):
        ground_texts(scorer, "clip.mp4", ["A dog."], margin=-1)


def test_tiny_evaluators_sentence_scores_equal_scoring_each_alone(sample_video) -> None:
    studio = Studio(StudioConfig(device="cpu"))
    texts = [TEXT, "A white rabbit yawns. It stretches its arms."]
    out = studio.ground(sample_video, texts, [CLIP, LONG])
    for name in (CLIP, LONG):
        member = studio.ensemble.member(name)
        assert member.stats["video_encodes"] == 1 and member.stats["text_batches"] == 1
    assert out[0].evaluators == [CLIP, LONG] and out[0].random_weights
    for g in out:
        for s in g.sentences:
            alone = studio.score(sample_video, [s.text], [CLIP, LONG]).rows[0]
            assert s.scores == pytest.approx(alone.scores, abs=1e-4)
            assert s.mean == pytest.approx(alone.mean, abs=1e-4)
        assert g.least_supported == min(range(len(g.sentences)), key=lambda i: g.sentences[i].mean)


def test_no_usable_evaluator_gives_notes_and_no_scores(sample_video) -> None:
    studio = Studio(StudioConfig(device="cpu"))
    g = studio.ground(sample_video, [TEXT], ["no-such-evaluator"])[0]
    assert g.sentences == [] and g.least_supported is None and not g.flagged
    assert g.notes and g.notes[0].startswith("no-such-evaluator not used: ")
