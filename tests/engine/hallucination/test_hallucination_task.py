"""Task hallucination (Eq. 12-13) and input hallucination on Requests (Eq. 9-11)."""

import numpy as np
import pytest

from engine.errors import InputError
from engine.hallucination import (
    TextHallucinationConfig,
    VideoHallucinationConfig,
    prompt_hallucination,
    task_hallucinations,
    video_hallucination,
)
from engine.tasks import TASK1_INSTRUCTION, Request, instruction
from engine.types import Task, VideoMeta

FRAMES = np.random.default_rng(0).integers(0, 256, (8, 32, 48, 3), dtype=np.uint8)
META = VideoMeta("clip.mp4", 24.0, 2.0, 48, 32, 48, list(range(0, 48, 6)))
SHORT = "Two boys are throwing a white ball."
RESPONSE = "Two boys in red shirts throw a white ball across a sunny park while a dog runs beside them."


def test_task_hallucinations_give_task1_and_task2_conditionings_with_the_task3_response():
    pairs = task_hallucinations(FRAMES, META, SHORT, RESPONSE)
    assert [req.task for req, _ in pairs] == [Task.DESCRIBE_VIDEO, Task.VIDEO_WITH_CAPTION]
    assert all(resp == RESPONSE for _, resp in pairs)
    (t1, _), (t2, _) = pairs
    assert t1.text() == TASK1_INSTRUCTION  # Eq. 12: q^(1), no short prompt
    assert t2.text() == instruction(Task.VIDEO_WITH_CAPTION, SHORT) and SHORT in t2.text()  # Eq. 13
    assert t1.frames is FRAMES and t2.frames is FRAMES and t1.video_meta is META
    assert Request(Task.BEAUTIFY, SHORT).text() != t2.text()  # the preferred side differs


@pytest.mark.parametrize("frames, response", [(FRAMES, ""), (FRAMES, "  "), (None, RESPONSE)])
def test_task_hallucinations_bad_input(frames, response):
    with pytest.raises(InputError):
        task_hallucinations(frames, META, SHORT, response)


@pytest.mark.parametrize("task, frames", [(Task.BEAUTIFY, None), (Task.VIDEO_WITH_CAPTION, FRAMES)])
def test_prompt_hallucination_swaps_the_short_prompt(task, frames):
    request = Request(task, SHORT, frames, META if frames is not None else None)
    new, record = prompt_hallucination(request, TextHallucinationConfig(), seed=3)
    assert new.task is task and new.short_prompt == record.text != SHORT
    assert record.text in new.text() and SHORT not in new.text()
    assert request.short_prompt == SHORT  # the input request is untouched
    assert new.frames is request.frames


def test_prompt_hallucination_refuses_task1():
    with pytest.raises(InputError):
        prompt_hallucination(Request(Task.DESCRIBE_VIDEO, None, FRAMES), seed=0)


def test_video_hallucination_changes_frames_only():
    request = Request(Task.VIDEO_WITH_CAPTION, SHORT, FRAMES, META)
    new, ops = video_hallucination(request, VideoHallucinationConfig(), seed=1)
    assert new.frames.shape == FRAMES.shape and not np.array_equal(new.frames, FRAMES)
    assert new.short_prompt == SHORT and new.task is request.task and request.frames is FRAMES
    assert ops[0]["op"] == "shuffle"


def test_video_hallucination_refuses_text_only_request():
    with pytest.raises(InputError):
        video_hallucination(Request(Task.BEAUTIFY, SHORT), seed=0)
