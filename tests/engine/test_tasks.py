import pytest

from engine.errors import InputError
from engine.tasks import TASK3_TEMPLATE, Request, build_messages, instruction
from engine.types import MAX_PROMPT_CHARS, Task


def test_task1_instruction_is_the_papers():
    assert instruction(1) == "Elaborate on the visual and narrative elements of the video in detail."


def test_task2_fills_the_short_description_at_the_end():
    text = instruction(2, "  a dog on a beach ")
    assert text == (
        "Elaborate on the visual and narrative elements of the video in detail. And the following is a brief "
        "descriptive information about the video for your reference (which may not always be accurate): "
        "a dog on a beach"
    )


def test_task3_has_six_numbered_rules_the_tokyo_example_and_the_input():
    text = instruction(3, "A cat sleeps.")
    assert text.startswith(
        "Directly expand the following Input (brief description of a video) to Output (detailed description).\n1."
    )
    for n in range(1, 7):
        assert f"\n{n}. " in text
    assert "Input: A woman is walking.\nOutput: A stylish woman walks down a Tokyo street" in text
    assert "Many pedestrians walk about.\nInput: A cat sleeps.\nOutput:" in text
    assert text.endswith("Input: A cat sleeps.\nOutput:")
    assert "{y_s}" in TASK3_TEMPLATE and "{y_s}" not in text


@pytest.mark.parametrize("task", [2, 3])
def test_empty_prompt_is_refused_with_a_clear_message(task):
    with pytest.raises(InputError, match=f"task {task} needs a short"):
        instruction(task, "   ")


def test_huge_prompt_is_refused_not_truncated():
    with pytest.raises(InputError, match=f"limit is {MAX_PROMPT_CHARS}"):
        instruction(3, "x" * 100_000)


def test_unknown_task():
    with pytest.raises(InputError, match="unknown task"):
        Task.parse(4)


def test_video_task_needs_frames():
    with pytest.raises(InputError, match="needs a video"):
        Request(1)


def test_messages_for_video_and_text_models():
    import numpy as np

    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    msgs = build_messages(Request(2, "a dog", frames=frames), video_model=True)
    assert msgs[0]["content"][0] == {"type": "video"}
    assert msgs[0]["content"][1]["text"] == instruction(2, "a dog")
    assert build_messages(Request(3, "a dog"), video_model=False) == [
        {"role": "user", "content": instruction(3, "a dog")}
    ]
    with pytest.raises(InputError, match="needs a video model"):
        build_messages(Request(1, frames=frames), video_model=False)


def test_templates_hold_the_short_prompt_slot_exactly_where_a_task_reads_one():
    from engine.tasks import SHORT_PROMPT_SLOT, instruction_templates

    templates = instruction_templates()
    assert sorted(templates) == [1, 2, 3]
    for task, template in templates.items():
        assert (SHORT_PROMPT_SLOT in template) is Task(task).needs_prompt
        filled = template.replace(SHORT_PROMPT_SLOT, "a dog")
        assert instruction(task, "a dog") == filled  # what the export rebuilds from a recorded template
