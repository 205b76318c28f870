"""Task-tab and rendering handlers as plain functions (no server): streaming with Stop, the queue button
(idempotent, explains itself), one-line model and evaluator notes, text rendered as text, word diffs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from engine.errors import InputError
from engine.types import Candidate, GenerationParams, Task
from ui.common import AppContext
from ui.render import md_text, word_diff
from ui.task_queue import queue_hint, send_to_queue
from ui.task_tabs import bind_stream, finish_run, start_run, stop_run
from ui.tasks import (
    StopEvents,
    generation_state,
    model_line,
    session_key,
    short_reason,
    status_markdown,
    stream_beautify,
    update_model_note,
)

LOCAL = SimpleNamespace(username=None, session_hash="tab-1")
EVIL = "![x](http://evil.test/a.png) <img src=http://evil.test/b.png>"


@pytest.fixture()
def ctx(tmp_path: Path) -> AppContext:
    from annotations.db import open_db
    from engine.service import Studio
    from training.jobs import Jobs

    db_url = f"sqlite:///{tmp_path / 's.db'}"
    db = open_db(db_url)
    return AppContext(studio=Studio(), db=db, jobs=Jobs(db, db_url), work_dir=tmp_path / "work")


def fake_stream(steps: int, fail_at: int | None = None):
    """A Studio.stream_task stand-in: candidate i grows by one word per step; `stop` ends it early."""

    def stream_task(
        task, video=None, short_prompt=None, model=None, params=None, stop=None, draw=None
    ) -> Iterator[list[str]]:
        assert isinstance(params, GenerationParams) and isinstance(stop, threading.Event)
        texts = [f"cand{i}" for i in range(params.num_return_sequences)]
        try:
            for step in range(steps):
                if stop.is_set():
                    break
                if step == fail_at:
                    raise InputError("the model fell over")
                texts = [f"{t} w{step}" for t in texts]
                yield list(texts)
            yield list(texts)  # the last item is final
        finally:
            stop.set()  # as the transformers backend does: the event is set once the stream is over

    return stream_task


def test_stream_beautify_streams_then_gives_final_state(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctx.studio, "stream_task", fake_stream(5), raising=False)
    monkeypatch.setattr("ui.tasks.STREAM_INTERVAL", 0.0)
    stops = StopEvents()
    out = list(stream_beautify(ctx, stops, "a cat naps", "tiny-random-lm", 1, 3, 0.7, 16, False, LOCAL))
    assert "waiting for the model" in out[0][0]
    streamed = [o for o in out if "writing…" in o[0]]
    assert len(streamed) == 6 and "cand0 w0" in streamed[0][1] and "cand-cursor" in streamed[0][1]
    status, cards, state = out[-1]
    assert "3 candidate(s) from **tiny-random-lm**" in status and "stopped" not in status
    assert [c["text"] for c in state["candidates"]] == [f"cand{i} w0 w1 w2 w3 w4" for i in range(3)]
    assert cards.count("class='cand-copy'") == 3 and "cand-cursor" not in cards


def test_stop_ends_the_run_and_keeps_the_text(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctx.studio, "stream_task", fake_stream(1000), raising=False)
    monkeypatch.setattr("ui.tasks.STREAM_INTERVAL", 0.0)
    stops = StopEvents()
    run, stop, queue, queued = start_run(ctx, stops, LOCAL)
    assert run.interactive is False and stop.visible is True and queue.interactive is False and queued == ""
    gen = stream_beautify(ctx, stops, "a cat naps", "tiny-random-lm", 1, 2, 0.7, 16, False, LOCAL)
    for _ in range(4):
        next(gen)
    assert stop_run(ctx, stops, LOCAL).interactive is False  # "Stopping…"
    *_, (status, _cards, state) = list(gen)
    assert "stopped early" in status
    assert 1 <= len(state["candidates"][0]["text"].split()) < 1000
    run, stop, queue, hint = finish_run(ctx, "Beautify", "tiny-random-lm", state)
    assert run.interactive is True and run.value == "Beautify" and stop.visible is False and queue.interactive


def test_a_stop_pressed_while_queued_is_not_lost(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctx.studio, "stream_task", fake_stream(1000), raising=False)
    stops = StopEvents()
    start_run(ctx, stops, LOCAL)
    stop_run(ctx, stops, LOCAL)  # before the run got the model
    *_, (status, _cards, state) = stream_beautify(ctx, stops, "a cat", "tiny-random-lm", 1, 1, 0, 8, False, LOCAL)
    assert "stopped early" in status and state["candidates"][0]["text"] == "cand0"
    other = SimpleNamespace(username=None, session_hash="tab-2")
    assert session_key(ctx, other) != session_key(ctx, LOCAL)  # another tab's Stop is its own


def test_a_failure_mid_stream_is_one_line(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctx.studio, "stream_task", fake_stream(10, fail_at=3), raising=False)
    handler = bind_stream(stream_beautify, ctx, StopEvents())
    seen = []
    with pytest.raises(gr.Error) as err:
        for item in handler("a cat naps", "tiny-random-lm", 1, 1, 0.0, 8, False, LOCAL):
            seen.append(item)
    assert err.value.message == "the model fell over"
    assert seen  # the streamed part reached the page before the error
    with pytest.raises(gr.Error, match="short prompt is empty"):
        list(handler("  ", "tiny-random-lm", 1, 1, 0.0, 8, False, LOCAL))


def _state(task: int, texts: list[str], video: str | None = None, prompt: str | None = "a cat naps") -> dict:
    cands = [Candidate(t, i, "seed-model", scores={"judge": 9.0 - i}) for i, t in enumerate(texts)]
    return generation_state(Task(task), video, prompt, cands)


def test_queueing_twice_adds_nothing_the_second_time(ctx: AppContext) -> None:
    from annotations.stats import compute_stats

    state = _state(3, ["A grey cat naps on a sofa.", "A grey cat sleeps on a sofa.", "A cat dozes in the sun."])
    first = send_to_queue(ctx, state, request=LOCAL)
    assert first.startswith("Queued 2 pair(s) for labelling")
    second = send_to_queue(ctx, state, request=LOCAL)
    assert second.startswith("Already queued: these 2 pair(s) are in the labelling queue")
    assert second.endswith("nothing added.")
    assert compute_stats(ctx.db)["counts"]["pairs"] == 2


def test_queue_button_explains_one_candidate(ctx: AppContext) -> None:
    one = _state(3, ["A grey cat naps on a sofa."])
    twice_the_same = _state(3, ["A grey cat naps.", "A grey cat naps."])  # sampling repeated itself
    for state in (one, twice_the_same):
        button, hint = queue_hint(state)
        assert button.interactive is False and "Set **Candidates** to 2 or more" in hint
        assert send_to_queue(ctx, state, request=LOCAL).startswith("ℹ️ A labelling pair needs two different candidates")
    button, hint = queue_hint(_state(3, ["A cat naps on the sofa.", "A dog runs in the park."]))
    assert button.interactive is True and hint.startswith("2 different candidates")


def test_the_default_video_model_says_cannot_load_once(ctx: AppContext, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv("VIDPROMPTER_MODEL_QWEN2_5_VL_3B", raising=False)
    note, run = update_model_note(ctx, "qwen2.5-vl-3b")
    assert note.count("cannot load") == 1 and note.startswith("⛔ **qwen2.5-vl-3b** cannot load here: ")
    assert note.endswith("set `VIDPROMPTER_MODEL_QWEN2_5_VL_3B`") and "\n" not in note  # the setting, whole
    assert run.interactive is False  # Run stays off while the chosen model cannot load
    note, run = update_model_note(ctx, "tiny-random-vlm")
    assert "random weights — pipeline check only" in note and run.interactive is True
    assert model_line(ctx, "smollm2-135m").startswith("✅ **smollm2-135m**: ready")


def test_short_reason_keeps_the_head_and_the_setting() -> None:
    message = (
        "no local weights: timm/vit_large_patch14_clip_224.openai is not in the Hugging Face cache; set "
        "VIDPROMPTER_EVALUATOR_CLIP_VIT_L_14=/path/to/weights (or VIDPROMPTER_ALLOW_DOWNLOAD=1 with hub access)"
    )
    assert short_reason(message) == "no local weights — set VIDPROMPTER_EVALUATOR_CLIP_VIT_L_14"
    assert short_reason("model 'x' cannot load: the folder has no config.json") == "the folder has no config.json"


def test_notes_show_the_setting_to_change_as_code() -> None:
    from ui.render import md_note
    from ui.tasks import short_note

    note = short_note("clip-vit-l-14 not used: no local weights: timm/x is not cached; set VIDPROMPTER_EV_X=/p (or y)")
    assert note == "clip-vit-l-14 not used: cannot load here (no local weights — set VIDPROMPTER_EV_X)"
    assert md_note(note).endswith("set `VIDPROMPTER_EV_X`\\)")
    assert md_note("set <b>x</b>") == "set &lt;b&gt;x&lt;/b&gt;"  # only an env var name becomes code


def test_user_and_model_text_render_as_text() -> None:
    assert md_text(EVIL) == r"\!\[x\]\(http\://evil.test/a.png\) &lt;img src=http\://evil.test/b.png&gt;"
    assert md_text("see www.evil.test") == r"see www\.evil.test"  # no autolink either
    assert md_text("a *bold* $x$ `code`\nnext line") == r"a \*bold\* \$x\$ \`code\` next line"
    cands = [Candidate(EVIL, 0, f"model {EVIL}")]
    status = status_markdown(Task.BEAUTIFY, cands, [f"note {EVIL}"])
    assert "<img" not in status and "](" not in status.replace("\\](", "").replace("\\(", "")
    from ui.tasks import cards_html

    cards = cards_html(cands)
    assert "<img" not in cards and "&lt;img src=http://evil.test/b.png&gt;" in cards  # HTML-escaped: plain text


def test_word_diff_marks_the_words_that_differ() -> None:
    left, right = word_diff("A dog runs on wet sand, then stops.", "A dog runs on damp sand, then stops.")
    assert left == [("A dog runs on ", None), ("wet", "differs"), (" sand, then stops.", None)]
    assert [t for t, label in right if label] == ["damp"]
    left, right = word_diff("A red car drives fast down the road.", "A red bus turns slowly down the road.")
    assert [t for t, label in left if label] == ["car drives fast"]  # neighbours join one highlight
    left, right = word_diff("Snow falls on a quiet village.", "Two boys throw a ball to a dog.")
    assert left == [("Snow falls on a quiet village.", None)]  # differ throughout: no highlight at all
    assert word_diff("", "text") == ([], [("text", None)])


def test_the_judge_note_says_which_judge_and_what_to_expect_before_it_runs(ctx: AppContext) -> None:
    from ui.tasks import judge_note

    assert judge_note(ctx, False) == ""
    note = judge_note(ctx, True)  # the embedded default: slow and mostly unparsed
    assert "**smollm2-135m**" in note and "about 15 s each" in note and "expect no 0-10 score" in note
    ctx.studio.config.text_model = "tiny-random-lm"
    assert "random weights" in judge_note(ctx, True)


def test_degenerate_candidates_stay_out_of_the_queue_unless_sent_on_purpose(ctx: AppContext) -> None:
    from annotations.stats import compute_stats

    good = ["A grey cat naps on a sofa in the sun.", "A grey cat sleeps curled up on a warm sofa."]
    junk = ["The Cat naps. The sea. The sea. The E.A.M.A.L.E.A.A. The land."]
    state = _state(3, good + junk)
    button, hint = queue_hint(state)
    assert button.interactive is True and "1 left out as degenerate (junk run)" in hint
    before = compute_stats(ctx.db)["counts"]["pairs"]
    message = send_to_queue(ctx, state, request=LOCAL)
    assert message.startswith("Queued 1 pair(s)") and "1 left out as degenerate (junk run): not queued" in message
    assert compute_stats(ctx.db)["counts"]["pairs"] == before + 1
    only_junk = _state(3, [good[0], *junk])
    button, hint = queue_hint(only_junk)
    assert button.interactive is True and "Tick **queue flagged candidates too**" in hint
    assert send_to_queue(ctx, only_junk, request=LOCAL).startswith("ℹ️ A labelling pair needs two different")
    sent = send_to_queue(ctx, only_junk, True, request=LOCAL)
    assert sent.startswith("Queued 1 pair(s)") and "1 flagged as degenerate went in on purpose" in sent


def test_beautify_draws_more_and_shows_the_best_tidied(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's Beautify asks for DEMO_DRAW candidates; the reranked final shows the clean ones, best first,
    and the status and queue hint say what was dropped."""
    from engine.rerank import reranked
    from ui.tasks import DEMO_DRAW

    drawn = [
        "The Cat. The sea. The sea. The sea.",
        "A grey cat naps on a sofa by the window while rain taps the glass. The camera slowly pushes in.",
        "A dog runs in a park. The grass is green and the sky is blue.",
        "A grey cat sleeps on a sofa. The grey cat sleeps on a sofa.",
    ]
    asked = {}

    def stream(task, video=None, short_prompt=None, model=None, params=None, stop=None, draw=None):
        asked.update(draw=draw, shown=params.num_return_sequences)
        yield drawn[: params.num_return_sequences]
        yield reranked(drawn, short_prompt, params.num_return_sequences)

    monkeypatch.setattr(ctx.studio, "stream_task", stream, raising=False)
    *_, (status, cards, state) = stream_beautify(
        ctx, StopEvents(), "a grey cat naps on a sofa", "m", 1, 3, 0.7, 64, False, LOCAL
    )
    assert asked == {"draw": DEMO_DRAW, "shown": 3}
    texts = [c["text"] for c in state["candidates"]]
    assert texts[0].startswith("A grey cat naps on a sofa by the window") and len(texts) == 3
    assert "The sea." not in " ".join(texts)  # the repeated sentence was tidied away or dropped
    assert "the best of 8 drawn" in status and "dropped" in state["dropped"]


def test_compare_streams_the_base_model_with_the_same_settings(ctx: AppContext, monkeypatch) -> None:
    from ui.tasks import compare_note, stream_compare

    calls = []

    def stream(task, video=None, short_prompt=None, model=None, params=None, stop=None, draw=None):
        calls.append((model, params.num_return_sequences, params.max_new_tokens, draw))
        yield [f"{model} says hi"]
        yield [f"{model} describes a grey cat on a sofa in warm light."]

    monkeypatch.setattr(ctx.studio, "stream_task", stream, raising=False)
    monkeypatch.setattr(ctx.studio, "base_of", lambda m: "smollm2-135m" if m == "smollm2-135m-hdpo" else None)
    out = list(stream_compare(ctx, StopEvents(), "a grey cat", "smollm2-135m-hdpo", 1, 2, 0.7, 96, True, LOCAL))
    status, cards = out[-1]
    assert calls == [("smollm2-135m", 2, 96, 8)]  # the base, the run's settings, reranked as the run is
    assert status.startswith("**base model**") and "smollm2-135m describes a grey cat" in cards
    assert list(stream_compare(ctx, StopEvents(), "a grey cat", "m", 1, 2, 0.7, 96, False, LOCAL)) == [("", "")]
    none = list(stream_compare(ctx, StopEvents(), "a grey cat", "smollm2-135m", 1, 2, 0.7, 96, True, LOCAL))
    assert none == [("**smollm2-135m** is not a fine-tune of a preset: nothing to compare.", "")]
    assert compare_note(ctx, "smollm2-135m-hdpo").startswith("Beside **smollm2-135m-hdpo**: its base model")
