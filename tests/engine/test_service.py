"""Studio verbs that need no evaluator weights: the judge (through an injected backend) and model status."""

from __future__ import annotations

import pytest

from engine.errors import InputError
from engine.evaluators.judge import judge_prompt
from engine.service import Studio, StudioConfig
from tests.engine.conftest import ScriptedJudge


def test_judge_many_is_one_batched_call_with_the_papers_prompt():
    judge = ScriptedJudge(lambda prompts: [f"Evaluation evidence: ok. Score: {i + 6}" for i in range(len(prompts))])
    studio = Studio(StudioConfig(judge_model="judge"), backends={"judge": judge})
    results = studio.judge_many(["A cat sleeps.", "A dog runs on the beach."])
    assert [r.score for r in results] == [6.0, 7.0]  # one call: the scripted index runs over the batch
    assert judge.prompts == [judge_prompt("A cat sleeps."), judge_prompt("A dog runs on the beach.")]
    assert studio.judge("A bird.").score == 6.0


def test_an_empty_text_is_refused_before_any_model_loads():
    with pytest.raises(InputError, match="nothing to judge"):
        Studio().judge_many(["A cat.", "   "], model="gpt-9")  # gpt-9 would be a ModelLoadError if loaded


def test_model_status_says_what_to_set_without_loading():
    ok, message = Studio().model_status("gpt-9")
    assert not ok and "unknown model 'gpt-9'" in message
    assert Studio().model_status("smollm2-135m") == (True, "ready")
