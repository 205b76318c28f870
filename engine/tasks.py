"""The three VidPrompter tasks: the paper's instructions (Figure 3, verbatim) and the model inputs.

Task 1: y = pi(v, q1); Task 2: y = pi((v, y_s), q2); Task 3: y = pi(y_s, q3)  (paper section 3.1).
No torch here: the UI builds instruction texts too, and `record_instructions` stores the templates in
an annotations database, whose export builds its `prompt` column from them (annotations never imports
the engine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import InputError
from engine.types import MAX_PROMPT_CHARS, Task, VideoMeta

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: Where a template takes the short prompt / caption y_s (str.replace, not str.format: templates have braces).
SHORT_PROMPT_SLOT = "{y_s}"

# Figure 3, Task 1.
TASK1_INSTRUCTION = "Elaborate on the visual and narrative elements of the video in detail."

# Figure 3, Task 2; {y_s} is the short description.
TASK2_TEMPLATE = (
    "Elaborate on the visual and narrative elements of the video in detail. "
    "And the following is a brief descriptive information about the video for your reference "
    "(which may not always be accurate): {y_s}"
)

# Figure 3, Task 3, with its six numbered rules and the Tokyo example. The paper's PDF text
# renders "AI" as "Al" (OCR); we use "AI". Rule 5 has no final full stop in the paper either.
TASK3_TEMPLATE = (
    "Directly expand the following Input (brief description of a video) to Output (detailed description).\n"
    "1. The Output should be a detailed description in more than three sentences.\n"
    "2. It should contain description of the main subject actions or status sequence, including the main "
    "subjects (person, object, animal, or none) and their attributes, their action, their position, and "
    "movements.\n"
    "3. It should contain summary of the background, include the objects, location, weather, and time.\n"
    "4. It should contain summary of the view shot, camera movement and changes in shooting angles.\n"
    "5. It should contain briefly summary of the visual, photographic and artistic style\n"
    "6. Do not describe each frame individually. Do not reply with words like 'first frame'. Do not output "
    "repetitive, redundant, or too long content. The description should be useful for AI to generate the "
    "video.\n"
    "Input: A woman is walking.\n"
    "Output: A stylish woman walks down a Tokyo street filled with warm glowing neon and animated city "
    "signage. She wears a black leather jacket, a long red dress, and black boots, and carries a black purse. "
    "She wears sunglasses and red lipstick. She walks confidently and casually. The street is damp and "
    "reflective, creating a mirror effect of the colorful lights. Many pedestrians walk about.\n"
    "Input: {y_s}\n"
    "Output:"
)


def instruction_templates() -> dict[int, str]:
    """Figure 3's three instruction templates by task number; Tasks 2 and 3 hold the `{y_s}` slot."""
    return {
        int(Task.DESCRIBE_VIDEO): TASK1_INSTRUCTION,
        int(Task.VIDEO_WITH_CAPTION): TASK2_TEMPLATE,
        int(Task.BEAUTIFY): TASK3_TEMPLATE,
    }


def record_instructions(db: Engine) -> None:
    """Record the templates in an annotations database (idempotent): its export builds `prompt` from them."""
    from annotations.store import record_instructions as store_instructions

    store_instructions(db, instruction_templates())


def clean_prompt(short_prompt: str | None, task: Task) -> str:
    """Validate a short prompt / caption: non-empty for tasks that need one, and not huge."""
    text = (short_prompt or "").strip()
    if task.needs_prompt and not text:
        what = "short caption" if task is Task.VIDEO_WITH_CAPTION else "short prompt"
        raise InputError(f"task {int(task)} needs a {what}; got an empty one")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"prompt is {len(text)} characters; the limit is {MAX_PROMPT_CHARS}")
    return text


def instruction(task: int | Task, short_prompt: str | None = None) -> str:
    """The instruction text q for a task, with {y_s} filled in for Tasks 2 and 3."""
    task = Task.parse(task)
    template = instruction_templates()[int(task)]
    if not task.needs_prompt:
        return template
    return template.replace(SHORT_PROMPT_SLOT, clean_prompt(short_prompt, task))


@dataclass
class Request:
    """One model input: a task, its short prompt and/or decoded video frames.

    frames: uint8 (T, H, W, 3) from engine.video.load_video, or None for Task 3.
    """

    task: Task
    short_prompt: str | None = None
    frames: np.ndarray | None = None
    video_meta: VideoMeta | None = None

    def __post_init__(self) -> None:
        self.task = Task.parse(self.task)
        if self.task.needs_video and self.frames is None:
            raise InputError(f"task {int(self.task)} needs a video")
        if self.task.needs_prompt:
            self.short_prompt = clean_prompt(self.short_prompt, self.task)

    @property
    def has_video(self) -> bool:
        return self.frames is not None

    def text(self) -> str:
        return instruction(self.task, self.short_prompt)


def build_messages(request: Request, video_model: bool) -> list[dict[str, Any]]:
    """Chat messages for one request.

    Video LMs get a content list with a video placeholder (frames go to the processor separately,
    since a video *path* in the message needs torchcodec); text LMs get the instruction string.
    A text LM cannot take Task 1/2 (there is nothing for it to see).
    """
    if not video_model:
        if request.has_video:
            raise InputError(f"task {int(request.task)} needs a video model; this one reads text only")
        return [{"role": "user", "content": request.text()}]
    content: list[dict[str, Any]] = []
    if request.has_video:
        content.append({"type": "video"})
    content.append({"type": "text", "text": request.text()})
    return [{"role": "user", "content": content}]
