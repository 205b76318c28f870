"""Token budgets in the Beautify tab (issue 16 item 4): each candidate's tokens under a chosen text-to-video
target's text encoder, the part the target will cut highlighted, and generation within the budget.

Within the budget: max new tokens come from the budget (its tokens less start/end, converted to the model's
tokens through engine.budgets.REFERENCE_TEXT, counted by both tokenizers), and each finished candidate is
then cut after its last whole sentence that fits, so no half sentence reaches the video model. Counting
goes through `Studio.budgets` (exact with a local tokenizer, else an estimate that says how it was made).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from engine.budgets import CLIP_TARGET, TARGETS
from engine.errors import StudioError
from engine.types import Candidate, Task
from ui.common import AppContext, bind
from ui.tasks import (
    DEMO_DRAW,
    StopEvents,
    best_first,
    make_params,
    preset_top_p,
    score_with_judge,
    session_key,
    stream_beautify,
    streamed_run,
)

NO_TARGET = "none"
EMPTY = "<div class='budget-box budget-empty'>{}</div>"
#: How far an estimated count may be off (engine.budgets: its factors are assumptions, "expect the estimate
#: within ~15 %"); an estimate shows the band it may fall in.
ESTIMATE_ERROR = 0.15


def target_choices() -> list[tuple[str, str]]:
    return [("no target", NO_TARGET), *((t.label, t.name) for t in TARGETS.values())]


# -- the token view ------------------------------------------------------------------------------------


def measure_html(text: str, m: dict[str, Any], title: str = "") -> str:
    """One text's count against the budget, with the part beyond it highlighted (all text escaped)."""
    count = f"{m['tokens']}" if m["exact"] else f"≈ {m['tokens']}"
    state = f"<b style='color:#b91c1c'>{m['over']} over: the highlighted part is cut</b>" if m["over"] else "fits"
    head = f"<b>{html.escape(title)}</b> · " if title else ""
    band = "" if m["exact"] else f" (an estimate: {estimate_band(m['tokens'])})"
    line = f"<div style='margin-top:6px'>{head}{count} / {m['max_tokens']} tokens{band} · {state}</div>"
    method = f"<div style='font-size:0.8em;opacity:0.75'>{html.escape(m['method'])}</div>"
    read, beyond = text[: m["fits_chars"]], text[m["fits_chars"] :]
    style = "background:#fecaca;text-decoration:line-through"
    cut = f"<mark class='budget-cut' style='{style}'>{html.escape(beyond)}</mark>" if beyond.strip() else ""
    body = f"<div class='budget-text' style='white-space:pre-wrap'>{html.escape(read)}{cut}</div>"
    return line + method + body


def estimate_band(tokens: int) -> str:
    """ "±15 %, 92-124": the range an estimated count may really be in."""
    low, high = math.floor(tokens * (1 - ESTIMATE_ERROR)), math.ceil(tokens * (1 + ESTIMATE_ERROR))
    return f"±{ESTIMATE_ERROR:.0%}, {low}-{high}".replace("%", " %")


def budget_panel(ctx: AppContext, state: dict | None, target: str, t2v_model: str | None = None) -> str:
    """Every candidate of the last run under the target (best first, as the cards are); with the Generate-video
    model that will read them (`t2v_model`, when it can load here), its own encoder's count beside each once it
    is loaded: the count Generate video goes by."""
    if not target or target == NO_TARGET:
        return EMPTY.format("Pick a target to see each candidate's tokens under its text encoder.")
    cands = [c for c in (state or {}).get("candidates") or [] if c["text"].strip()]
    if not cands:
        return EMPTY.format(f"Run to count the candidates' tokens under {html.escape(TARGETS[target].label)}.")
    cands.sort(key=lambda c: best_first(c["scores"], c["rank"]))  # the cards' order
    reader = generator_reader(ctx, t2v_model)
    parts = [
        measure_html(c["text"], _measure(ctx, c["text"], target), f"#{c['rank'] + 1}") + reader_line(reader, c["text"])
        for c in cands
    ]
    return f"<div class='budget-box'>{reader_note(ctx, t2v_model, reader)}{''.join(parts)}</div>"


#: (model name, count(text) with its end token, tokens its text encoder reads) of a loaded T2V pipeline.
Reader = tuple[str, Callable[[str], int], int]


def generator_reader(ctx: AppContext, t2v_model: str | None) -> Reader | None:
    """The Generate-video model's own token counter, when that pipeline is already loaded (never loads one: a
    real pipeline takes minutes; the first clip loads it)."""
    if not t2v_model or ctx.studio.loaded_t2v() != t2v_model:
        return None
    try:
        pipeline = ctx.studio.t2v_pipeline(t2v_model, wait=False)
    except StudioError:  # being loaded or swapped right now: count it next time
        return None
    return t2v_model, pipeline.count_tokens, pipeline.max_tokens


def reader_line(reader: Reader | None, text: str) -> str:
    if reader is None:
        return ""
    name, count, limit = reader
    tokens = count(text)
    verdict = f"over by {tokens - limit}: it refuses this text" if tokens > limit else "fits"
    line = f"Generate video ({html.escape(name)}) reads {tokens} / {limit} tokens · {verdict}"
    return f"<div class='budget-reader' style='font-size:0.85em'>{line}</div>"


def reader_note(ctx: AppContext, t2v_model: str | None, reader: Reader | None) -> str:
    """One line above the counts while the Generate-video model is not loaded yet (and can load here)."""
    if reader is not None or not t2v_model or not ctx.studio.t2v_status(t2v_model)[0]:
        return ""
    return (
        f"<div style='font-size:0.85em;opacity:0.8'>Generate video ({html.escape(t2v_model)}) counts with its own "
        "text encoder once it is loaded (the first clip loads it); that count decides what it takes.</div>"
    )


def _measure(ctx: AppContext, text: str, target: str) -> dict[str, Any]:
    return ctx.studio.budgets.measure(text, target).as_dict()


def token_budget(ctx: AppContext, text: str, target: str) -> tuple[str, dict[str, Any]]:
    """One text under one target: (view, JSON with the count, cut offset, method and the fitted text).
    The API's /token_budget."""
    if not (text or "").strip():
        raise gr.Error("paste a detailed prompt to count")
    if target not in TARGETS:
        raise gr.Error(f"unknown target {target!r}: pick one of {', '.join(TARGETS)}")
    m = _measure(ctx, text, target)
    fitted, how = ctx.studio.budgets.fit(text, target)
    return f"<div class='budget-box'>{measure_html(text, m)}</div>", {**m, "fitted": fitted, "fit": how}


# -- generation within the budget ----------------------------------------------------------------------


def stream_beautify_in_budget(
    ctx: AppContext,
    stops: StopEvents,
    prompt: str,
    model: str,
    beams: float,
    n: float,
    temp: float,
    max_tokens: float,
    judge: bool,
    target: str,
    fit: bool,
    request: gr.Request,
) -> Iterator[tuple[str, str, Any]]:
    """Task 3 in the page; with `fit` and a target, within the target's budget (see the module docstring)."""
    if not fit or target not in TARGETS:
        yield from stream_beautify(ctx, stops, prompt, model, beams, n, temp, max_tokens, judge, request)
        return
    if not (prompt or "").strip():
        raise gr.Error("the short prompt is empty: type a sentence such as 'A dog runs on the beach.'")
    new_tokens, how = budget_tokens(ctx, target, model or None)
    params = make_params(beams, n, temp, new_tokens, preset_top_p(ctx, model, Task.BEAUTIFY))

    def score(cands: list[Candidate]) -> list[str]:
        notes = [how, *fit_candidates(ctx, cands, target)]
        return notes + (score_with_judge(ctx, cands) if judge else [])

    stop = stops.get(session_key(ctx, request))
    yield from streamed_run(ctx, stop, Task.BEAUTIFY, (None, prompt, model or None), params, score, DEMO_DRAW)


def budget_tokens(ctx: AppContext, target: str, model: str | None) -> tuple[int, str]:
    """(max_new_tokens, the sentence saying how) for generating within `target`'s budget with `model`."""
    name = model or ctx.studio.default_model(Task.BEAUTIFY)

    def generator_count(text: str) -> int:
        return ctx.studio.count_tokens([text], model=name, task=Task.BEAUTIFY)[0]

    tokens, ratio = ctx.studio.budgets.generator_tokens(target, generator_count)
    tokens = min(tokens, 4096)
    label = TARGETS[target].label
    how = (
        f"within {label}: max new tokens {tokens} (the budget less its start/end tokens × {ratio:.2f} "
        f"{name} tokens per target token, measured on a reference paragraph); each candidate then cut after its "
        "last whole sentence that fits"
    )
    return tokens, how


def fit_candidates(ctx: AppContext, cands: list[Candidate], target: str) -> list[str]:
    """Cut each candidate in place to the budget; one note listing what was cut."""
    cut = []
    for cand in cands:
        if cand.text.strip():
            fitted, how = ctx.studio.budgets.fit(cand.text, target)
            if fitted != cand.text:
                cand.text = fitted
                cut.append(f"#{cand.rank + 1} {how}")
    return [f"cut to the budget: {'; '.join(cut)}"] if cut else []


# -- layout ----------------------------------------------------------------------------------------------


def budget_controls() -> tuple[gr.Dropdown, gr.Checkbox]:
    with gr.Row(equal_height=True):
        target = gr.Dropdown(
            target_choices(),
            value=CLIP_TARGET,
            label="Text-to-video target (token budget of its text encoder)",
            elem_id="beautify-target",
            scale=3,
        )
        fit = gr.Checkbox(value=False, label="Generate within the budget", elem_id="beautify-fit", scale=1)
    return target, fit


def budget_box() -> gr.HTML:
    with gr.Accordion("Token budget of the target", open=True):
        return gr.HTML(EMPTY.format("Run to count the candidates' tokens."), elem_id="beautify-budget")


def wire_budgets(
    ctx: AppContext, done: list[Any], state: gr.State, target: gr.Dropdown, box: gr.HTML, t2v: dict[str, Any]
) -> None:
    """The panel after each run, when the target or the Generate-video model changes, and after each clip (its
    model is loaded then: its own count joins); plus the /token_budget API."""
    panel, ins = bind(budget_panel, ctx), [state, target, t2v["model"]]
    for event in [*done, *t2v["made"]]:
        event.then(panel, ins, box, api_visibility="private")
    for changed in (target.change, t2v["model"].change):
        changed(panel, ins, box, api_visibility="private")
    text, name = gr.Textbox(visible=False), gr.Textbox(visible=False)
    view, data, button = gr.HTML(visible=False), gr.JSON(visible=False), gr.Button(visible=False)
    button.click(bind(token_budget, ctx), [text, name], [view, data], api_name="token_budget")
