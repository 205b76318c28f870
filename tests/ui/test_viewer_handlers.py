"""The viewer's reward-gap panel as a plain function: the video only when asked for, which response and
model the gaps measure, and a chart that is the table."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest

from ui.viewer import GAP_SOURCES, gap_model_default, reward_gaps_view

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
    # The chart is the table less the original row, as a plain value: an update carrying y_lim kept old bars.
    assert isinstance(plot, pd.DataFrame) and plot.to_dict("list") == frame.iloc[1:].to_dict("list")
    reward_gaps_view(ctx, RESPONSE, "Kids play ball.", GAP_SOURCES["video"], "/clip.mp4", "", 0)
    assert ctx.studio.calls[-1] == {"task": 3, "video": "/clip.mp4", "model": "tiny-random-vlm"}
    with pytest.raises(gr.Error, match="pick a clip"):
        reward_gaps_view(ctx, RESPONSE, "Kids play ball.", GAP_SOURCES["video"], None, "", 0)


def test_the_model_picker_follows_the_choice() -> None:
    ctx = SimpleNamespace(studio=FakeStudio())
    assert gap_model_default(ctx, GAP_SOURCES["video"]) == "tiny-random-vlm"
    assert gap_model_default(ctx, GAP_SOURCES["text"]) == "smollm2-135m"
