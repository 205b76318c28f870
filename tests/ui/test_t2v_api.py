"""/generate_video through gradio_client against a launched app.py: a clip from the tiny random CogVideoX, and one
clear line for an empty prompt, a preset without weights, a folder, a prompt over the encoder's limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client.exceptions import AppError

TINY = "tiny-random-cogvideox"


def _path(video) -> Path:
    return Path(video["video"] if isinstance(video, dict) else video)


def test_generate_video(local_client) -> None:
    from engine.video import load_video

    status, video = local_client.predict("A red kite flies over a beach.", TINY, 2, api_name="/generate_video")
    frames, meta = load_video(_path(video), num_frames=50)
    assert frames.shape == (9, 32, 32, 3) and meta.fps == pytest.approx(8.0)
    assert "(seed 2, 4 steps)" in status and "random weights — pipeline check only" in status


@pytest.mark.parametrize(
    ("prompt", "model", "message"),
    [
        ("  ", TINY, "the prompt is empty"),
        ("A cat.", "cogvideox-2b", "set VIDPROMPTER_T2V_COGVIDEOX_2B="),
        ("A cat.", "/etc", "is not available here: pick a preset"),
        ("dog " * 300, TINY, "text encoder reads at most 226"),
    ],
)
def test_generate_video_refusals(local_client, prompt, model, message) -> None:
    with pytest.raises(AppError, match=message):
        local_client.predict(prompt, model, 0, api_name="/generate_video")
    status, _ = local_client.predict("A cat.", TINY, 0, api_name="/generate_video")  # still serving
    assert status.startswith("✅")
