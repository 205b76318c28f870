"""Input and task hallucination on model Requests (paper section 3.3).

- Eq. 9-10: the same response under a hallucinated video (`video_hallucination`).
- Eq. 10-11: the same response under a word-swapped short prompt (`prompt_hallucination`).
- Eq. 12-13: the Task-3 response under the Task-1 and Task-2 conditioning of the same sample
  (`task_hallucinations`).
Each returns new Requests; the input Request is left untouched.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.errors import InputError
from engine.hallucination.text import TextHallucination, TextHallucinationConfig, hallucinate_text
from engine.hallucination.video import Record, VideoHallucinationConfig, hallucinate_frames
from engine.tasks import Request
from engine.types import Task, VideoMeta


def task_hallucinations(
    frames: np.ndarray, video_meta: VideoMeta | None, short_prompt: str, response: str
) -> list[tuple[Request, str]]:
    """The two displaced conditionings of Eq. 12-13 for a Task-3 response y_g^(3).

    Returns [(Task-1 request on the video, response), (Task-2 request on video + short prompt, response)];
    the preferred side is (Task-3 request on short_prompt, response), which the caller already has.
    """
    if not (response or "").strip():
        raise InputError("task hallucination needs the Task-3 response; got an empty one")
    if frames is None:
        raise InputError("task hallucination needs the sample's video frames (Tasks 1 and 2 see the video)")
    task1 = Request(Task.DESCRIBE_VIDEO, None, frames, video_meta)  # Eq. 12: (x^(1), q^(1))
    task2 = Request(Task.VIDEO_WITH_CAPTION, short_prompt, frames, video_meta)  # Eq. 13: (x^(2), q^(2))
    return [(task1, response), (task2, response)]


def prompt_hallucination(
    request: Request, config: TextHallucinationConfig | None = None, seed: int = 0
) -> tuple[Request, TextHallucination]:
    """Word-swap the short prompt of a Task-2 or Task-3 request (Eq. 10-11: x + H on y_s).

    Returns the new request (video, if any, shared) and the text record. A prompt with nothing to
    swap gives an unchanged request and `edits == []` (see `hallucinate_text`).
    """
    if not request.task.needs_prompt:
        raise InputError(f"prompt hallucination needs a task 2 or 3 request; got task {int(request.task)}")
    result = hallucinate_text(request.short_prompt or "", config, seed)
    return replace(request, short_prompt=result.text), result


def video_hallucination(
    request: Request, config: VideoHallucinationConfig | None = None, seed: int = 0
) -> tuple[Request, list[Record]]:
    """Shuffle / paste / crop the frames of a Task-1 or Task-2 request (Eq. 9-10: x + H on v)."""
    if request.frames is None:
        raise InputError(f"video hallucination needs a request with a video; task {int(request.task)} has none")
    frames, ops = hallucinate_frames(request.frames, config, seed)
    return replace(request, frames=frames), ops
