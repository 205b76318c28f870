"""Per-sentence grounding bars (issue 16 item 1): the Describe tabs (each candidate), the viewer and the Label
tab (both responses of a video pair). `Studio.ground` scores every sentence against the video in one call.

A bar is the sentence's mean evaluator score minus the median sentence's: it grows right (green) above
the median and left (red) below it; ⚠ marks the least-supported sentence when it stands `margin` points
below the others (engine.grounding). Sentences are user or model text: html.escape'd, never markup.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from engine.errors import StudioError
from engine.evaluators.registry import TINY_EVALUATORS
from ui.common import RANDOM_WEIGHTS_LABEL, AppContext, bind, on_model_event
from ui.tasks import best_first

#: Half the bar track (the median sits in the middle) spans at least this many points.
MIN_SCALE = 2.0
EMPTY = "<div class='ground-box ground-empty'>{}</div>"


def grounding_html(g: dict[str, Any], title: str = "") -> str:
    """One text's sentence bars as HTML (g: engine.grounding.Grounding.as_dict())."""
    head = f"<div style='font-weight:600;margin:6px 0 2px'>{html.escape(title)}</div>" if title else ""
    if not g["sentences"]:
        why = "; ".join(g["notes"]) or "no evaluator scored it"
        return f"{head}<div class='ground-empty'>Not grounded: {html.escape(why)}</div>"
    scale = max(MIN_SCALE, g["margin"], *(abs(s["relative"]) for s in g["sentences"]))
    rows = [_row(s, scale, g["flagged"] and i == g["least_supported"]) for i, s in enumerate(g["sentences"])]
    # Fixed layout and wrap-anywhere sentences: a long unbroken "word" (random weights write them) stays in the box.
    table = "width:100%;border-collapse:collapse;table-layout:fixed"
    return f"{head}<table class='ground-table' style='{table}'>{''.join(rows)}</table>"


def _row(s: dict[str, Any], scale: float, flagged: bool) -> str:
    share = min(50.0, 50.0 * abs(s["relative"]) / scale)  # % of the track: half of it is `scale` points
    left = 50.0 - share if s["relative"] < 0 else 50.0
    color = "#ef4444" if s["relative"] < 0 else "#22c55e"
    bar = (
        "<div style='position:relative;height:12px;background:#e5e7eb;border-radius:3px;min-width:120px'>"
        "<div style='position:absolute;left:50%;top:0;bottom:0;width:1px;background:#6b7280'></div>"
        f"<div style='position:absolute;left:{left:.1f}%;width:{share:.1f}%;top:2px;bottom:2px;"
        f"background:{color};border-radius:2px'></div></div>"
    )
    mark = "⚠ " if flagged else ""
    style = "background:#fef3c7" if flagged else ""
    title = "likely hallucination: least supported by the video" if flagged else ""
    return (
        f"<tr class='ground-row{' ground-flag' if flagged else ''}' style='{style}' title='{title}'>"
        f"<td style='width:22%;padding:3px 6px'>{bar}</td>"
        f"<td style='width:13%;padding:3px 6px;white-space:nowrap;font-variant-numeric:tabular-nums'>"
        f"{s['mean']:.2f} ({s['relative']:+.2f})</td>"
        f"<td style='padding:3px 6px;overflow-wrap:anywhere'>{mark}{html.escape(s['text'])}</td></tr>"
    )


def legend(g: dict[str, Any]) -> str:
    """What the bars mean and which evaluators drew them (one line under the bars)."""
    names = ", ".join(g["evaluators"]) or "none"
    weights = f" · ⚠️ {RANDOM_WEIGHTS_LABEL}" if g["random_weights"] else ""
    text = f"{html.escape(g['bar_meaning'])} · evaluators: {html.escape(names)}{weights}"
    return f"<div class='ground-legend' style='font-size:0.85em;opacity:0.8'>{text}</div>"


def groundings_html(groundings: list[dict[str, Any]], titles: list[str]) -> str:
    """Several texts' bars under one legend (the evaluators are the same for all of them)."""
    if not groundings:
        return EMPTY.format("Nothing to ground.")
    body = "".join(grounding_html(g, t) for g, t in zip(groundings, titles, strict=True))
    return f"<div class='ground-box'>{body}{legend(groundings[0])}</div>"


def _ground(ctx: AppContext, video: str, texts: list[str], evals: list[str]) -> list[dict[str, Any]]:
    return [g.as_dict() for g in ctx.studio.ground(video, texts, list(evals))]


# -- the Describe tabs ------------------------------------------------------------------------------


def ground_candidates(ctx: AppContext, state: dict | None, evals: list[str] | None) -> str:
    """After a Describe run: every candidate's sentences against the run's video, best first, in one call."""
    cands = [c for c in (state or {}).get("candidates") or [] if c["text"].strip()]
    video = (state or {}).get("video")
    if not cands or not video:
        return EMPTY.format("")
    if not evals:
        return EMPTY.format("No evaluator chosen: no sentence grounding.")
    cands.sort(key=lambda c: best_first(c["scores"], c["rank"]))  # the cards' order
    try:
        groundings = _ground(ctx, video, [c["text"] for c in cands], evals)
    except StudioError as exc:
        return EMPTY.format(html.escape(f"Sentence grounding failed: {exc}"))
    return groundings_html(groundings, [f"Candidate #{c['rank'] + 1}" for c in cands])


def grounding_box(prefix: str) -> gr.HTML:
    """The Describe tab's place for the sentence bars, under the candidates."""
    with gr.Accordion("Sentence grounding: each candidate's sentences against the video", open=True):
        return gr.HTML(
            EMPTY.format("Run to see which sentence the video supports least."), elem_id=f"{prefix}-grounding"
        )


def wire_grounding(ctx: AppContext, done: list[Any], state: gr.State, evals: gr.Dropdown, box: gr.HTML) -> None:
    """Fill `box` after each run (`done`: the runs' last events) with the chosen evaluators."""
    for event in done:
        on_model_event(event.then, bind(ground_candidates, ctx), [state, evals], [box], api_visibility="private")


# -- the viewer and the API --------------------------------------------------------------------------


def ground_text_view(
    ctx: AppContext, video: str | None, text: str, evals: list[str] | None
) -> tuple[str, dict[str, Any]]:
    """One text against one video: (bars, the JSON of engine.grounding). The API's /ground_sentences."""
    if not video:
        raise gr.Error("sentence grounding needs a video: upload one or pick a sample clip")
    if not (text or "").strip():
        raise gr.Error("paste a detailed prompt to ground")
    if not evals:
        raise gr.Error("pick at least one evaluator")
    g = _ground(ctx, video, [text], evals)[0]
    return groundings_html([g], [""]), g


def viewer_grounding(ctx: AppContext, text: gr.Textbox, video: gr.Video) -> None:
    """The viewer's section: the response above, sentence by sentence, against the video above."""
    gr.Markdown("### Sentence grounding: which sentence does the video support least?")
    evals = evaluator_picker(ctx, "viewer-ground-evals")
    run = gr.Button("Ground each sentence of the response against the video", elem_id="viewer-ground-run")
    box = gr.HTML(elem_id="viewer-grounding")
    data = gr.JSON(visible=False)
    on_model_event(
        run.click, bind(ground_text_view, ctx), [video, text, evals], [box, data], api_name="ground_sentences"
    )


def evaluator_picker(ctx: AppContext, elem_id: str) -> gr.Dropdown:
    names = list(ctx.studio.config.evaluators)
    return gr.Dropdown(
        [*names, *TINY_EVALUATORS],
        value=[n for n in names if ctx.studio.evaluator_status(n)[0]] or [TINY_EVALUATORS[0]],
        multiselect=True,
        label="Evaluators",
        info="tiny-random-* are random weights: pipeline check only.",
        elem_id=elem_id,
    )


# -- the Label tab -------------------------------------------------------------------------------------


def ground_pair(ctx: AppContext, state: dict | None, evals: list[str] | None) -> str:
    """Responses A and B of the pair on screen against its video (text-only pairs have nothing to ground)."""
    state = state or {}
    if "pair_id" not in state:
        return EMPTY.format("No pair on screen: press Next pair.")
    if not state.get("video"):
        return EMPTY.format("This pair has no video: sentence grounding needs one.")
    if not evals:
        return EMPTY.format("Pick at least one evaluator.")
    groundings = _ground(ctx, state["video"], [state["left_text"], state["right_text"]], evals)
    return groundings_html(groundings, ["Response A", "Response B"])


def label_grounding(ctx: AppContext, state: gr.State) -> gr.HTML:
    """An accordion under the two responses: on request only (the vote path never loads an evaluator)."""
    with gr.Accordion("Sentence grounding (evaluators): where does each response lose the video?", open=False):
        gr.Markdown(
            "A hint where to look, not a verdict: the evaluators score each sentence against the video; "
            "check the marked sentence yourself."
        )
        evals = evaluator_picker(ctx, "label-ground-evals")
        run = gr.Button("Ground A and B", size="sm", elem_id="label-ground-run")
        box = gr.HTML(elem_id="label-grounding")
    on_model_event(run.click, bind(ground_pair, ctx), [state, evals], [box], api_visibility="private")
    state.change(_cleared, None, box, api_visibility="private", queue=False)  # a new pair: old bars go
    return box


def _cleared() -> str:
    return EMPTY.format("")
