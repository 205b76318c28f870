"""The LLM judge: the paper's prompt, and a parser that never makes up a number."""

from __future__ import annotations

import json

import pytest

from engine.evaluators.judge import JUDGE_TEMPLATE, JudgeRequest, judge, judge_prompt, parse_judgement

CASES = [
    # (judge output, expected score or None)
    ("Evaluation evidence: Detailed, covers subject, background and camera. Score: 8", 8.0),
    ("Evaluation evidence: The description is vivid but repeats itself.\nScore: 6.5", 6.5),
    ("**Evaluation evidence:** Rich in detail.\n\n**Score:** 9", 9.0),
    ("Evaluation evidence: Good.\nScore: **7**", 7.0),
    ("The caption misses the camera movement. Score: 7/10", 7.0),
    ("Evaluation evidence: fine.\nscore = 5", 5.0),
    ("Evaluation evidence: Perfect on every factor. Score: 10", 10.0),
    ("Evaluation evidence: Nonsense text. Score: 0", 0.0),
    ("Evaluation evidence: ok. Score: 8\n\nFinal answer - Score: 8", 8.0),  # the same score repeated
    # unparsed: no score, a placeholder, out of range, another scale, several different scores
    ("Evaluation evidence: The description is detailed and coherent.", None),
    ("Evaluation evidence: <your evaluation explanation here> Score: <score>", None),
    ("Evaluation evidence: Excellent. Score: 11", None),
    ("Evaluation evidence: Bad. Score: -2", None),
    ("Evaluation evidence: Strong. Score: 85/100", None),
    ("Score: 7 for detail, Score: 4 for coherence.", None),
    ("I would rate this an 8 out of 10.", None),
    ("", None),
]


# What small judges really write (issue 12 item 9): per-factor scores, then the overall one.
PER_FACTOR = (
    "Evaluation evidence:\n"
    "1. Detail: more than three sentences, score: 9\n"
    "2. Subjects and actions: clear, score: 8\n"
    "3. Background: brief, score: 6\n"
    "4. Camera: not mentioned, score: 3\n"
    "5. Style: score: 7\n"
    "6. Coherence: natural, score: 9\n"
    "7. Repetition: none, score: 9\n"
    "Score: 8"
)
INDENTED = (
    "1. Detailed description:\n   Score: 9\n2. Camera movement:\n   Score: 4\n\n"
    "Evaluation evidence: Rich subject detail, little camera language.\nScore: 7"
)
SMALL_MODEL_CASES = [
    (PER_FACTOR, 8.0),
    (INDENTED, 7.0),
    ("- Detail score: 9\n- Style score: 5\n\nOverall score: 7.5", 7.5),
    ("Detail: good, score: 9\nStyle: weak, score: 4\n**Final Score: 6/10**", 6.0),
    ("Evaluation evidence: Vivid.\nScore: 8/10", 8.0),
    ("Evaluation evidence: Vivid.\n**Score:** 8", 8.0),
    ("Evaluation evidence: Vivid.\nOverall score: 7.5", 7.5),
    ("Evaluation evidence: Vivid. Score: 8. The camera language could be richer.", 8.0),
    ("Evaluation evidence: Vivid. Score: 8 (very good)", 8.0),
    ("Evaluation evidence: Vivid. Score: 8 out of 10", 8.0),
    ("Evaluation evidence: Vivid. Score (0-10): 9", 9.0),
    ("Evaluation evidence: ok. Score: 8\n\nScore: 6", 6.0),  # the final one counts
    ("Score: 8. (Detail score: 9, style score: 6)", 8.0),
    ("Evaluation evidence: good detail but no camera movement Score: 6", 6.0),  # no full stop before it
    ("Camera Movement Score: 3\nScore: 7", 7.0),
    ("Evaluation evidence: Vivid.\nScore: 8\n- 2 small issues remain.", 8.0),  # a list after it is no range
    # refused: only per-factor scores, an out-of-range or off-scale final score, a range
    ("1. Detail: rich, score: 9\n2. Style: plain, score: 5", None),
    ("Detail: good, score: 9\nScore: 12", None),
    ("Evaluation evidence: Vivid. Score: 8 out of 100", None),
    ("Evaluation evidence: Between good and very good. Score: 7-8", None),
    ("Evaluation evidence: Vivid. Score: eight", None),
]


@pytest.mark.parametrize(("raw", "expected"), SMALL_MODEL_CASES)
def test_parse_what_small_models_write(raw, expected):
    result = parse_judgement(raw)
    assert (result.score, result.parsed) == (expected, expected is not None)
    if not result.parsed:
        assert result.reason


def test_refusals_say_why():
    assert "per-factor" in parse_judgement("1. Detail: rich, score: 9\n2. Style: plain, score: 5").reason
    assert "outside 0-10" in parse_judgement("Detail: good, score: 9\nScore: 12").reason
    assert "out of 100" in parse_judgement("Score: 8 out of 100").reason
    assert "range" in parse_judgement("Score: 7-8").reason


def test_evidence_stops_at_the_overall_score():
    result = parse_judgement(PER_FACTOR)
    assert result.evidence.startswith("1. Detail: more than three sentences, score: 9")
    assert result.evidence.endswith("7. Repetition: none, score: 9")


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_parse_table(raw, expected):
    result = parse_judgement(raw)
    assert result.score == expected
    assert result.parsed is (expected is not None)
    assert result.raw == raw
    if not result.parsed:
        assert result.reason


def test_evidence_is_the_explanation():
    result = parse_judgement("Evaluation evidence: Covers the subject and the lighting.\nScore: 8")
    assert result.evidence == "Covers the subject and the lighting."


def test_prompt_is_the_papers():
    prompt = judge_prompt("A dog runs on a beach.")
    assert prompt.startswith("Description: A dog runs on a beach.\n\nPlease evaluate the quality of video description")
    assert "1. It should be a detailed description in more than three sentences." in prompt
    assert "7. It should NOT describe each frame individually." in prompt
    assert prompt.endswith("Evaluation evidence: <your evaluation explanation here> Score: <score>")
    assert JUDGE_TEMPLATE.count("{Detailed Caption}") == 1


def test_judge_with_a_backend_sends_the_prompt_alone():
    seen = []

    class FakeBackend:
        def generate(self, requests, params):
            seen.extend(requests)
            return [["Evaluation evidence: fine. Score: 7"] for _ in requests]

    result = judge(FakeBackend(), "A cat sleeps.")
    assert (result.score, result.parsed, result.evidence) == (7.0, True, "fine.")
    assert isinstance(seen[0], JudgeRequest) and seen[0].text() == judge_prompt("A cat sleeps.")


def test_judge_with_a_callable_and_a_real_tiny_backend(tiny_lm):
    assert judge(lambda prompts: ["no score here"] * len(prompts), "x").score is None
    result = judge(tiny_lm, "A cat sleeps on a sofa.")  # random weights: whatever it says, no made-up score
    assert result.parsed is (result.score is not None)


def test_judge_cli(capsys):
    from engine.cli import main

    assert main(["judge", "--text", "A cat sleeps.", "--model", "tiny-random-lm", "--max-new-tokens", "8"]) == 0
    assert "score:" in capsys.readouterr().out
    assert main(["judge", "--text", "A cat.", "--model", "tiny-random-lm", "--max-new-tokens", "8", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"score", "evidence", "parsed", "raw"} <= set(payload) and payload["random_weights"]
    assert main(["judge", "--text", "  ", "--model", "tiny-random-lm"]) == 2
