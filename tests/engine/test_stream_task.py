"""Studio.stream_task: the streaming verb the Beautify page calls (tiny random LM, an injected backend)."""

from __future__ import annotations

import threading

import pytest

from engine.errors import InputError
from engine.service import Studio
from engine.types import GenerationParams
from tests.engine.conftest import ScriptedJudge

SAMPLED = GenerationParams(max_new_tokens=10, do_sample=True, num_return_sequences=3, seed=3)


@pytest.fixture
def studio(tiny_lm):
    return Studio(backends={"tiny-random-lm": tiny_lm})


def test_stream_task_grows_the_candidates_and_ends_with_run_tasks_texts(studio):
    items = list(studio.stream_task(3, short_prompt="A red car drives.", model="tiny-random-lm", params=SAMPLED))
    assert len(items) > 2 and all(len(texts) == 3 for texts in items)
    for before, after in zip(items, items[1:], strict=False):
        assert all(a.startswith(b) for b, a in zip(before, after, strict=True))
    final = studio.run_task(3, short_prompt="A red car drives.", model="tiny-random-lm", params=SAMPLED)
    assert items[-1] == [c.text for c in final]


def test_the_model_is_locked_while_streaming_and_released_when_the_caller_leaves(studio):
    stream = studio.stream_task(
        3, short_prompt="A dog.", model="tiny-random-lm", params=GenerationParams(max_new_tokens=300)
    )
    next(stream)
    lock = studio._lock_for("model:tiny-random-lm")
    assert lock.locked()
    stream.close()
    assert not lock.locked()


def test_stop_returns_what_was_generated(studio):
    stop = threading.Event()
    stop.set()
    items = list(studio.stream_task(3, short_prompt="A dog.", model="tiny-random-lm", params=SAMPLED, stop=stop))
    assert all(len(text) > 0 for text in items[-1])  # one token each, not an error or nothing


def test_bad_input_raises_before_the_first_item(studio):
    with pytest.raises(InputError, match="needs a short prompt"):
        next(studio.stream_task(3, short_prompt="  ", model="tiny-random-lm"))


def test_a_backend_that_cannot_stream_yields_its_result_once():
    scripted = ScriptedJudge(lambda prompts: ["A fluffy cat lands on the table."] * len(prompts), "scripted")
    studio = Studio(backends={"scripted": scripted})
    assert list(studio.stream_task(3, short_prompt="A cat jumps.", model="scripted")) == [
        ["A fluffy cat lands on the table."]
    ]
