"""Layout and wiring of the three task tabs (handlers in ui.tasks).

A run: the Run button switches off and Stop appears at once (no queue), the model streams into the
candidate cards (one run at a time across tabs: CPU inference), then the buttons come back and the queue
button says whether the result can be queued. The contract API names sit on hidden buttons that answer
(status, table) in one go.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from engine.evaluators.registry import TINY_EVALUATORS
from engine.types import DEFAULT_MAX_NEW_TOKENS
from ui.budgets import budget_box, budget_controls, stream_beautify_in_budget, wire_budgets
from ui.common import SAMPLES_DIR, AppContext, afterwards, bind, model_choices, on_model_event, set_signature
from ui.grounding import grounding_box, wire_grounding
from ui.t2v_panel import candidate_videos, wire_candidate_videos
from ui.task_queue import queue_hint, send_to_queue
from ui.tasks import (
    CANDIDATE_COLUMNS,
    StopEvents,
    beautify,
    compare_note,
    describe_video,
    describe_video_with_caption,
    judge_note,
    model_loads,
    session_key,
    stream_compare,
    stream_describe,
    update_evaluator_note,
    update_model_note,
)

TINY_EVALUATOR = TINY_EVALUATORS[0]
CAPTION_EXAMPLES = [("bunny.mp4", "A big rabbit in a meadow."), ("bikes.mp4", "People ride bikes down a street.")]
BEAUTIFY_EXAMPLES = [
    ["A dog runs on the beach."],
    ["A woman is walking."],
    ["Two cars race through a city at night."],
]
_DONE = object()

# -- streaming handlers under bind's guard ----------------------------------------------------------------


def _next_step(ctx: AppContext, gen: Iterator[Any], request: gr.Request) -> Any:
    """One step of a streaming handler; `request` lets bind's guard see who is asking."""
    return next(gen, _DONE)


def bind_stream(fn: Callable[..., Iterator[Any]], ctx: AppContext, *fixed: Any) -> Callable[..., Iterator[Any]]:
    """`bind` for a generator handler: every step runs under the same guard (one-line errors, the caller's
    access), and a page that goes away closes the generator (which stops its generation)."""
    opened = bind(fn, ctx, *fixed)
    step = bind(_next_step, ctx)

    @functools.wraps(opened)
    def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
        request = next((v for v in (*args, *kwargs.values()) if isinstance(v, gr.Request)), None)
        gen = opened(*args, **kwargs)
        try:
            while (item := step(gen, request)) is not _DONE:
                yield item
        finally:
            gen.close()

    set_signature(stream, inspect.signature(opened))
    return stream


def start_run(ctx: AppContext, stops: StopEvents, request: gr.Request) -> tuple[gr.Button, gr.Button, gr.Button, str]:
    """Run pressed: the Run and queue buttons off (the last queue message cleared), Stop on; a fresh stop
    event for this session."""
    stops.begin(session_key(ctx, request))
    running = gr.Button(interactive=False, value="Running…")
    return running, gr.Button(visible=True, interactive=True, value="⏹ Stop"), gr.Button(interactive=False), ""


def stop_run(ctx: AppContext, stops: StopEvents, request: gr.Request) -> gr.Button:
    """Stop pressed: the run ends after the current token and keeps what it wrote."""
    stops.stop(session_key(ctx, request))
    return gr.Button(interactive=False, value="Stopping…")


def finish_run(ctx: AppContext, label: str, model: str, state: dict | None) -> tuple:
    """After a run (finished, stopped or failed): Run back (if the model loads), Stop hidden, queue hint."""
    queue_btn, hint = queue_hint(state)
    run = gr.Button(interactive=model_loads(ctx, model), value=label)
    return run, gr.Button(visible=False, value="⏹ Stop"), queue_btn, hint


# -- layout -----------------------------------------------------------------------------------------------


def _settings(prefix: str, candidates: int = 1, temperature: float = 0.0) -> list[gr.components.Component]:
    with gr.Accordion("Generation settings", open=False, elem_id=f"{prefix}-settings"):
        beams = gr.Slider(1, 8, value=1, step=1, label="Beams", elem_id=f"{prefix}-beams")
        n = gr.Slider(
            1, 8, value=candidates, step=1, label="Candidates (≤ beams unless sampling)", elem_id=f"{prefix}-n"
        )
        temp_label = "Temperature (0 = beam search / greedy)"
        temp = gr.Slider(0.0, 2.0, value=temperature, step=0.1, label=temp_label, elem_id=f"{prefix}-temp")
        max_tokens = gr.Slider(
            8, 512, value=DEFAULT_MAX_NEW_TOKENS, step=8, label="Max new tokens", elem_id=f"{prefix}-max-tokens"
        )
    return [beams, n, temp, max_tokens]


def _preset_temperature(ctx: AppContext, name: str) -> float:
    """The default model's own sampling temperature (small models sample to give different candidates)."""
    preset = next((p for p in ctx.studio.presets() if p.name == name), None)
    return float(getattr(preset, "temperature", None) or 0.0)


def _model_picker(ctx: AppContext, video_only: bool, default: str, prefix: str) -> tuple[gr.Dropdown, gr.Markdown]:
    model = gr.Dropdown(
        model_choices(ctx.studio, video_only),
        value=default,
        label="Model",
        allow_custom_value=True,
        info="A preset, or a local checkpoint folder. tiny-random-* are random weights: pipeline check only.",
        elem_id=f"{prefix}-model",
    )
    note = gr.Markdown(elem_classes=["model-note"], elem_id=f"{prefix}-model-note")
    return model, note


def _evaluator_picker(ctx: AppContext, prefix: str) -> tuple[gr.Dropdown, gr.Markdown]:
    names = list(ctx.studio.config.evaluators)
    evals = gr.Dropdown(
        [*names, TINY_EVALUATOR],
        value=names,
        multiselect=True,
        label="Evaluators (video-text similarity)",
        info=f"{TINY_EVALUATOR} is random weights: pipeline check only.",
        elem_id=f"{prefix}-evals",
    )
    note = gr.Markdown(elem_id=f"{prefix}-eval-note", elem_classes=["eval-note"])
    evals.change(bind(update_evaluator_note, ctx), evals, note, api_visibility="private")
    return evals, note


def _run_buttons(label: str, prefix: str) -> tuple[gr.Button, gr.Button]:
    with gr.Row():
        run = gr.Button(label, variant="primary", elem_id=f"{prefix}-run", scale=3)
        stop = gr.Button("⏹ Stop", variant="stop", visible=False, elem_id=f"{prefix}-stop", scale=1)
    return run, stop


def _results(ctx: AppContext, prefix: str) -> dict[str, Any]:
    status = gr.Markdown(elem_classes=["task-status"], elem_id=f"{prefix}-status")
    cards = gr.HTML(elem_id=f"{prefix}-results", elem_classes=["cand-box"])
    state = gr.State({})
    with gr.Row(equal_height=True):
        queue_btn = gr.Button(
            "Send to labelling queue", size="sm", interactive=False, elem_id=f"{prefix}-queue", scale=0
        )
        hint = gr.Markdown(elem_id=f"{prefix}-queue-hint")
        flagged = gr.Checkbox(
            value=False,
            label="queue flagged candidates too",
            info="degenerate ones (fragments, repeated sentences, junk) stay out of the labelling queue unless ticked",
            elem_id=f"{prefix}-queue-flagged",
            scale=0,
        )
    queue_status = gr.Markdown(elem_id=f"{prefix}-queue-status")
    queue_btn.click(bind(send_to_queue, ctx), [state, flagged], queue_status, api_visibility="private")
    return {"status": status, "cards": cards, "state": state, "queue": queue_btn, "hint": hint, "queued": queue_status}


def _wire(
    ctx: AppContext,
    stops: StopEvents,
    triggers: list[Any],
    handler: Callable[..., Iterator[Any]],
    ins: list[Any],
    parts: dict[str, Any],
) -> list[Any]:
    """Each trigger: buttons to "running" at once, the streamed run, buttons back. Returns the last events."""
    run, stop, model, res = parts["run"], parts["stop"], parts["model"], parts["results"]
    streaming = bind_stream(handler, ctx, stops)
    finish = bind(finish_run, ctx, run.value)
    done = []
    for trigger in triggers:
        started = [run, stop, res["queue"], res["queued"]]
        busy = trigger(bind(start_run, ctx, stops), None, started, queue=False, **_private())
        outs = [res["status"], res["cards"], res["state"]]
        # One model run at a time across all tabs (CPU inference, shared models): ui.common.on_model_event's rule;
        # the status line is the progress (no spinner over the cards while they fill).
        streamed = busy.then(
            streaming, ins, outs, concurrency_limit=1, concurrency_id="models", show_progress="minimal", **_private()
        )
        # Back to idle after a finished, stopped or failed run (a failure skips `.then` steps in the page).
        buttons = [run, stop, res["queue"], res["hint"]]
        done.append(afterwards(streamed, finish, [model, res["state"]], buttons, **_private()))
    stop.click(bind(stop_run, ctx, stops), None, stop, queue=False, **_private())
    return done


def _private() -> dict[str, Any]:
    return {"api_visibility": "private"}


def _api(ctx: AppContext, handler: Callable[..., Any], ins: list[Any], api_name: str) -> None:
    """The contract endpoint: a hidden button answering (status, candidates table) without streaming."""
    button = gr.Button(visible=False)
    status = gr.Markdown(visible=False)
    table = gr.Dataframe(headers=CANDIDATE_COLUMNS, visible=False, interactive=False)
    on_model_event(button.click, bind(handler, ctx), ins, [status, table], api_name=api_name)


def _sample_videos() -> list[str]:
    return [str(p) for p in sorted(SAMPLES_DIR.glob("*.mp4"))]


def build_beautify_tab(ctx: AppContext) -> dict[str, Any]:
    stops = StopEvents()
    default = ctx.studio.config.text_model
    with gr.Tab("Beautify a prompt", id="beautify"):
        gr.Markdown("Task 3: a short prompt → a detailed text-to-video prompt.")
        # One line that grows: Enter runs (Gradio takes Shift+Enter in a box of two lines or more).
        prompt = gr.Textbox(
            label="Short prompt",
            info="Enter runs it.",
            placeholder="A dog runs on the beach.",
            lines=1,
            max_lines=6,
            elem_id="beautify-prompt",
        )
        model, note = _model_picker(ctx, False, default, "beautify")
        temperature = _preset_temperature(ctx, default)
        settings = _settings("beautify", candidates=3 if temperature > 0 else 1, temperature=temperature)
        judge = gr.Checkbox(
            value=False, label="Score each candidate with the LLM judge (0-10; slow on CPU)", elem_id="beautify-judge"
        )
        judge_line = gr.Markdown(elem_id="beautify-judge-note")
        judge.change(bind(judge_note, ctx), judge, judge_line, **_private())
        target, fit = budget_controls()
        compare = gr.Checkbox(
            value=False,
            label="Compare with the base model",
            info="after the run, the same prompt and settings through the model it was fine-tuned from, beside it",
            elem_id="beautify-compare",
        )
        compare_line = gr.Markdown(elem_id="beautify-compare-note")
        run, stop = _run_buttons("Beautify", "beautify")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                res = _results(ctx, "beautify")
            with gr.Column(scale=1, visible=False) as compare_col:
                compare_status = gr.Markdown(elem_id="beautify-compare-status")
                compare_cards = gr.HTML(elem_id="beautify-compare-results", elem_classes=["cand-box"])
        budget = budget_box()
        videos = candidate_videos(ctx)  # "Generate video" per candidate (ui.t2v_panel)
        examples = gr.Examples(BEAUTIFY_EXAMPLES, inputs=[prompt], label="Examples (click one to run it)")

        ins = [prompt, model, *settings, judge]
        parts = {"run": run, "stop": stop, "model": model, "results": res}
        triggers = [run.click, prompt.submit, examples.load_input_event.then]
        done = _wire(ctx, stops, triggers, stream_beautify_in_budget, [*ins, target, fit], parts)
        for event in done:  # the base model's candidates beside the run's, one model at a time
            event.then(
                bind_stream(stream_compare, ctx, stops),
                [prompt, model, *settings, compare],
                [compare_status, compare_cards],
                concurrency_limit=1,
                concurrency_id="models",
                show_progress="minimal",
                **_private(),
            )
        compare.change(_toggle_compare, compare, compare_col, **_private())
        compare.change(bind(_compare_line, ctx), [compare, model], compare_line, **_private())
        model.change(bind(_compare_line, ctx), [compare, model], compare_line, **_private())
        wire_candidate_videos(ctx, done, res["state"], videos)  # its buttons follow each run's candidates
        wire_budgets(ctx, done, res["state"], target, budget, videos)  # tokens under the target and the generator
        model.change(bind(update_model_note, ctx), model, [note, run], **_private())
        _api(ctx, beautify, ins, "beautify")
    return {"model": model, "note": note, "run": run, "done": done}


def _toggle_compare(on: bool) -> gr.Column:
    return gr.Column(visible=bool(on))


def _compare_line(ctx: AppContext, on: bool, model: str) -> str:
    return compare_note(ctx, model) if on else ""


def _video_tab(ctx: AppContext, caption: bool) -> dict[str, Any]:
    prefix, label = ("caption", "Describe with caption") if caption else ("describe", "Describe")
    stops = StopEvents()
    video = gr.Video(label="Video", sources=["upload"], elem_id=f"{prefix}-video")
    text = gr.Textbox(label="Short caption", lines=1, elem_id=f"{prefix}-caption") if caption else None
    model, note = _model_picker(ctx, True, ctx.studio.config.video_model, prefix)
    evals, eval_note = _evaluator_picker(ctx, prefix)
    settings = _settings(prefix)
    run, stop = _run_buttons(label, prefix)
    res = _results(ctx, prefix)
    grounding = grounding_box(prefix)
    clips = _sample_videos() if not caption else [str(SAMPLES_DIR / v) for v, _ in CAPTION_EXAMPLES]
    clips = [c for c in clips if SAMPLES_DIR.joinpath(c).is_file()]
    rows = [[c] for c in clips] if not caption else [[c, dict(CAPTION_EXAMPLES)[c.rsplit("/", 1)[-1]]] for c in clips]
    names = [c.rsplit("/", 1)[-1] for c in clips]
    gr.Examples(rows, inputs=[video, text] if text else [video], label="Sample clips", example_labels=names)

    ins = [video, text, model, *settings, evals] if text else [video, model, *settings, evals]
    handler = stream_describe if text else _stream_task1
    parts = {"run": run, "stop": stop, "model": model, "results": res}
    done = _wire(ctx, stops, [run.click], handler, ins, parts)
    wire_grounding(ctx, done, res["state"], evals, grounding)  # sentence bars per candidate, after each run
    model.change(bind(update_model_note, ctx), model, [note, run], **_private())
    if text:
        _api(ctx, describe_video_with_caption, ins, "describe_video_with_caption")
    else:
        _api(ctx, describe_video, ins, "describe_video")
    return {"model": model, "note": note, "run": run, "evals": evals, "eval_note": eval_note, "done": done}


def _stream_task1(
    ctx: AppContext,
    stops: StopEvents,
    video: str | None,
    model: str,
    beams: float,
    n: float,
    temp: float,
    max_tokens: float,
    evals: list,
    request: gr.Request,
) -> Iterator[Any]:
    """Task 1 in the page: stream_describe without a caption."""
    yield from stream_describe(ctx, stops, video, None, model, beams, n, temp, max_tokens, evals, request)


def build_describe_tab(ctx: AppContext) -> dict[str, Any]:
    with gr.Tab("Describe a video", id="describe"):
        gr.Markdown("Task 1: a video → a detailed text-to-video prompt.")
        return _video_tab(ctx, caption=False)


def build_caption_tab(ctx: AppContext) -> dict[str, Any]:
    with gr.Tab("Video + caption", id="caption"):
        gr.Markdown("Task 2: a video and a short caption → a detailed text-to-video prompt.")
        return _video_tab(ctx, caption=True)
