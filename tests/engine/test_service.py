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


class _Streamer:
    """A backend that streams two growing texts per call (a test double of TransformersBackend.stream)."""

    model_name = "streamer"
    random_weights = False

    def generate(self, requests: list, params: object) -> list[list[str]]:
        return [["A dog runs."] for _ in requests]

    def stream(self, request: object, params: object, stop: object) -> object:
        yield ["A dog"]
        yield ["A dog runs."]


def test_the_app_trims_the_heap_after_every_model_call_even_a_stopped_stream(monkeypatch: pytest.MonkeyPatch):
    """Issue 24 (the soak's RSS): a server's heap kept each generation's freed pages; the app's Studio hands them
    back after every model call, streamed, batched or stopped half-way."""
    import app
    from engine import malloc

    trims: list[int] = []
    monkeypatch.setattr(malloc, "trim", lambda: trims.append(1) or True)
    studio = Studio(StudioConfig(text_model="streamer", trim_after_call=True), backends={"streamer": _Streamer()})
    assert studio.run_task(3, short_prompt="A dog.", model="streamer")[0].text == "A dog runs."
    assert len(trims) == 1
    assert list(studio.stream_task(3, short_prompt="A dog.", model="streamer"))[-1] == ["A dog runs."]
    assert len(trims) == 2
    stream = studio.stream_task(3, short_prompt="A dog.", model="streamer")
    next(stream)
    stream.close()  # the user left mid-stream
    assert len(trims) == 3
    studio.run_tasks(3, [(None, "A dog."), (None, "A cat.")], model="streamer")
    assert len(trims) == 4
    off = StudioConfig(text_model="streamer", trim_after_call=False)
    Studio(off, backends={"streamer": _Streamer()}).run_task(3, short_prompt="A.")
    assert len(trims) == 4  # switched off (app.py --no-trim-after-call): no trim
    assert app.studio_config(None).trim_after_call and StudioConfig().trim_after_call  # on by default
