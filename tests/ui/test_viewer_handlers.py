"""The viewer's reward-gap panel as a plain function: the video only when asked for, which response and
model the gaps measure, and bars from zero."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from ui.viewer import GAP_SOURCES, gap_limits, gap_model_default, reward_gaps_view

RESPONSE = "Two boys throw a red ball to a brown dog in a green field."


class FakeStudio:
    """Studio stand-in: records what reward_gaps got; two rows with gaps 5.8 and 12.8."""

    config = SimpleNamespace(text_model="smollm2-135m", video_model="tiny-random-vlm")

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def reward_gaps(self, task, response, short_prompt, video=None, model=None, seed=0):
        self.calls.append({"task": task, "video": video, "model": model})
        return [
            {"term": "response_hallucination", "condition": "swap", "logp_preferred": -40.0, "logp_displaced": -45.8,
             "gap": 5.8},
            {"term": "input_hallucination", "condition": "prompt", "logp_preferred": -40.0, "logp_displaced": -52.8,
             "gap": 12.8},
        ]  # fmt: skip

    def presets(self):
        return []

    def model_status(self, name):
        return True, "ready"


def test_the_video_above_is_used_only_when_asked_for() -> None:
    ctx = SimpleNamespace(studio=FakeStudio())
    frame, plot, note = reward_gaps_view(ctx, RESPONSE, "Kids play ball.", GAP_SOURCES["text"], "/clip.mp4", "", 0)
    assert ctx.studio.calls[-1] == {"task": 3, "video": None, "model": "smollm2-135m"}
    assert "“Two boys throw a red ball" in note and "under **smollm2-135m**" in note and "(no video)" in note
    assert frame["gap_vs_original"].tolist() == [0.0, 5.8, 12.8] and set(frame["term"]) >= {"input_hallucination"}
    assert plot.y_lim == [0.0, pytest.approx(14.08)]  # from zero: 5.8 looks half of 12.8
    reward_gaps_view(ctx, RESPONSE, "Kids play ball.", GAP_SOURCES["video"], "/clip.mp4", "", 0)
    assert ctx.studio.calls[-1] == {"task": 3, "video": "/clip.mp4", "model": "tiny-random-vlm"}
    with pytest.raises(gr.Error, match="pick a clip"):
        reward_gaps_view(ctx, RESPONSE, "Kids play ball.", GAP_SOURCES["video"], None, "", 0)


def test_the_model_picker_follows_the_choice() -> None:
    ctx = SimpleNamespace(studio=FakeStudio())
    assert gap_model_default(ctx, GAP_SOURCES["video"]) == "tiny-random-vlm"
    assert gap_model_default(ctx, GAP_SOURCES["text"]) == "smollm2-135m"


def test_gap_limits_include_zero() -> None:
    assert gap_limits([-2.0, 3.0]) == [pytest.approx(-2.5), pytest.approx(3.5)]
    assert gap_limits([-1.0]) == [pytest.approx(-1.1), 0.0]
