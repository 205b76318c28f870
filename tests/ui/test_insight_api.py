"""Sentence grounding, perturbation strength and token budgets through gradio_client against a launched app.py:
good input, bad input (one clear message), text returned as text."""

from __future__ import annotations

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from tests.app_server import SAMPLES

BUNNY = str(SAMPLES / "bunny.mp4")
TEXT = "A big white rabbit stands in a green meadow. A red <b>sports car</b> drives past. Birds fly over the trees."
RESPONSE = "Two boys throw a red ball to the left while a brown dog runs across the green field."


def test_ground_sentences(local_client) -> None:
    view, data = local_client.predict(handle_file(BUNNY), TEXT, ["tiny-random-clip"], api_name="/ground_sentences")
    assert [s["text"] for s in data["sentences"]] == [
        "A big white rabbit stands in a green meadow.",
        "A red <b>sports car</b> drives past.",
        "Birds fly over the trees.",
    ]
    means = [s["mean"] for s in data["sentences"]]
    assert data["least_supported"] == means.index(min(means)) and data["evaluators"] == ["tiny-random-clip"]
    assert "<b>sports car</b>" not in view and "&lt;b&gt;sports car&lt;/b&gt;" in view
    with pytest.raises(AppError, match="sentence grounding needs a video"):
        local_client.predict(None, TEXT, ["tiny-random-clip"], api_name="/ground_sentences")


def test_perturbation_strength(local_client) -> None:
    table, note, data = local_client.predict(
        RESPONSE,
        "Kids play ball with a dog in a field.",
        handle_file(BUNNY),
        ["tiny-random-clip"],
        0,
        api_name="/perturbation_strength",
    )
    rows = table["data"]
    assert [r[1] for r in rows] == ["response", "video", "prompt"]
    for _, _, original, perturbed, drop, _ in rows:
        assert drop == pytest.approx(original - perturbed, abs=2e-3)
    assert "random weights" in note and set(data) == {"task_1", "task_3"}
    with pytest.raises(AppError, match="strength is measured against a video"):
        local_client.predict(RESPONSE, "Kids play.", None, ["tiny-random-clip"], 0, api_name="/perturbation_strength")


def test_token_budget(local_client) -> None:
    text = "A dog runs. " * 30
    view, data = local_client.predict(text, "clip-l", api_name="/token_budget")
    assert data["tokens"] == 122 and data["max_tokens"] == 77 and data["over"] == 45 and data["exact"]
    assert data["fitted"] == ("A dog runs. " * 18).strip()
    assert "45 over: the highlighted part is cut" in view
    _, estimate = local_client.predict(text, "cogvideox-2b", api_name="/token_budget")
    assert not estimate["exact"] and estimate["method"].startswith("estimate: ")
    with pytest.raises(AppError, match="unknown target 'sdxl'"):
        local_client.predict(text, "sdxl", api_name="/token_budget")
    with pytest.raises(AppError, match="paste a detailed prompt"):
        local_client.predict(" ", "clip-l", api_name="/token_budget")
