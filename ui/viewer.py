"""Hallucination viewer: the HDPO augmentations side by side (paper section 3.3).

Response hallucination as highlighted word swaps (Eq. 6-8), input hallucination of a video as two
players and a frame strip (Eq. 9-11), task hallucination as one Task-3 response under the three task
instructions (Eq. 12-13), and the log-prob gaps a loaded model shows under each perturbation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from engine.hallucination.text import TextHallucinationConfig
from engine.hallucination.video import VideoHallucinationConfig
from engine.video import DEFAULT_NUM_FRAMES
from ui.common import SAMPLES_DIR, AppContext, bind, model_choices, on_model_event
from ui.grounding import viewer_grounding
from ui.render import md_text
from ui.strength import strength_panel
from ui.tasks import model_line

CATEGORY_COLORS = {
    "noun": "#f59e0b",
    "number": "#8b5cf6",
    "color": "#ec4899",
    "direction": "#10b981",
    "verb": "#3b82f6",
}
#: Longest text the viewer swaps words in: detailed responses are 1-3k characters; spaCy on more stalls a worker.
VIEWER_MAX_CHARS = 20_000
METHODS = ("shuffle frames", "paste patches", "random crop")
EXAMPLE_RESPONSE = (
    "Two boys in white shirts throw a red ball to the left while a brown dog runs across the green field. "
    "A woman walks up the hill and waves at three children."
)

# -- handlers -------------------------------------------------------------------------------------

Segments = list[tuple[str, str | None]]


def highlight_segments(text: str, edits: list[dict[str, Any]], side: str) -> Segments:
    """HighlightedText value: the text cut at the edits, each edit labelled with its category.

    side "original" shows the swapped-out words, "hallucinated" the words swapped in.
    Edit offsets index the original text (engine contract), so the hallucinated side is rebuilt.
    """
    segments: Segments = []
    pos = 0
    for edit in sorted(edits, key=lambda e: e["start"]):
        segments.append((text[pos : edit["start"]], None))
        word = edit["original"] if side == "original" else edit["replacement"]
        segments.append((word, edit["category"]))
        pos = edit["end"]
    segments.append((text[pos:], None))
    return [s for s in segments if s[0]]


def edits_frame(edits: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["category", "original", "replacement", "start", "end"]
    return pd.DataFrame([[e[c] for c in cols] for e in edits], columns=cols)


def hallucinate_text_view(
    ctx: AppContext, text: str, min_words: float, max_words: float, seed: float
) -> tuple[Segments, Segments, pd.DataFrame]:
    """Response hallucination: swap min..max words (nouns, numbers, colors, directions, verbs)."""
    if not (text or "").strip():
        raise gr.Error("paste a response (or pick the example) to hallucinate")
    if len(text) > VIEWER_MAX_CHARS:
        raise gr.Error(f"text is {len(text)} characters; the viewer takes at most {VIEWER_MAX_CHARS}")
    result = ctx.studio.hallucinate_text(text, int(min_words), int(max_words), _seed(seed))
    edits = result["edits"]
    return (
        highlight_segments(text, edits, "original"),
        highlight_segments(text, edits, "hallucinated"),
        edits_frame(edits),
    )


def _seed(seed: float | None) -> int:
    value = int(seed or 0)
    if value < 0:
        raise gr.Error(f"seed must be >= 0, got {value}")
    return value


def _ranges(methods: list[str], paste: tuple[float, float], crop: tuple[float, float]) -> dict[str, Any]:
    return {
        "shuffle": "shuffle frames" in methods,
        "paste_ratio": tuple(paste) if "paste patches" in methods else None,
        "crop_keep": tuple(crop) if "random crop" in methods else None,
    }


def hallucinate_video_view(
    ctx: AppContext,
    video: str | None,
    methods: list[str],
    paste_lo: float,
    paste_hi: float,
    crop_lo: float,
    crop_hi: float,
    num_frames: float,
    seed: float,
) -> tuple[str, str, list, list]:
    """Input hallucination of a video: original and perturbed players, both frame strips, the ops."""
    if not video:
        raise gr.Error("upload a video or pick a sample clip")
    if not methods:
        raise gr.Error("pick at least one method (shuffle, paste, crop)")
    out_dir = ctx.work_dir / "viewer"
    opts = _ranges(methods, (paste_lo, paste_hi), (crop_lo, crop_hi))
    result = ctx.studio.hallucinate_video(video, out_dir, num_frames=int(num_frames), seed=_seed(seed), **opts)
    strip = _strip(result["frames"], "original") + _strip(result["perturbed_frames"], "perturbed")
    return result["original"], result["perturbed"], strip, _jsonable(result["ops"])


def _strip(frames: np.ndarray, label: str) -> list[tuple[np.ndarray, str]]:
    return [(frame, f"{label} {i}") for i, frame in enumerate(frames)]


def _jsonable(value: Any) -> Any:
    """ops records may hold numpy scalars / tuples: make them JSON-friendly for gr.JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def task_views_view(ctx: AppContext, short_prompt: str, response: str) -> pd.DataFrame:
    """Task hallucination: the same Task-3 response under each task's instruction."""
    if not (short_prompt or "").strip() or not (response or "").strip():
        raise gr.Error("task hallucination needs a short prompt and a response")
    rows = ctx.studio.task_views(short_prompt, response)
    return pd.DataFrame(
        [[r["task"], r["instruction"], r["response"]] for r in rows], columns=["task", "instruction", "response"]
    )


GAP_SOURCES = {
    "text": "Task 3 only (a text model)",
    "video": "Task 3 with the video above (adds the task-hallucination rows; a video model)",
}


def gap_model_default(ctx: AppContext, source: str) -> str:
    """The model picker follows the choice: the text model for Task 3 alone, the video model with the video."""
    config = ctx.studio.config
    return config.video_model if source == GAP_SOURCES["video"] else config.text_model


def reward_gaps_view(
    ctx: AppContext, response: str, short_prompt: str, source: str, video: str | None, model: str, seed: float
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(table, chart bars, note): log pi(y|x,q) under each perturbation and its gap to the original (what HDPO
    widens); the bars are the table's rows less the original, so the two always agree.

    The section above's response is a Task-3 response; the video above is used only when `source` asks for
    it (then the task-displaced rows, Eq. 12-13, appear and the model must read video)."""
    if not (short_prompt or "").strip() or not (response or "").strip():
        raise gr.Error("the log-prob gaps need a short prompt and a response")
    with_video = source == GAP_SOURCES["video"]
    if with_video and not video:
        raise gr.Error("pick a clip in 'Input hallucination: video' above, or choose Task 3 only")
    name = model or (ctx.studio.config.video_model if with_video else ctx.studio.config.text_model)
    rows = ctx.studio.reward_gaps(
        3, response, short_prompt, video=video if with_video else None, model=name, seed=_seed(seed)
    )
    if not rows:
        raise gr.Error("no perturbation changes this response or prompt: nothing to compare")
    original = [["original", "—", round(rows[0]["logp_preferred"], 3), 0.0]]  # every pair prefers the original
    frame = pd.DataFrame(
        original + [[r["condition"], r["term"], round(r["logp_displaced"], 3), round(r["gap"], 3)] for r in rows],
        columns=["condition", "term", "logp", "gap_vs_original"],
    )
    # The chart's value alone: Gradio 6 keeps the old bars when an update also carries y_lim (the table and
    # the chart then disagreed). Bars start from zero without it: a gap of 5.8 looks half of 12.8.
    bars = frame[frame["condition"] != "original"].reset_index(drop=True)
    return frame, bars, gaps_note(ctx, response, name, with_video)


def gaps_note(ctx: AppContext, response: str, model: str, with_video: bool) -> str:
    """Which response the gaps are for, under which model and conditioning, and how to read them."""
    words = len(response.split())
    given = "the short prompt and the video above" if with_video else "the short prompt (no video)"
    return (
        f"Gaps for the response in **Response hallucination** above (“{md_text(response, 80)}”, {words} words) "
        f"as a Task-3 answer to {given}, under **{md_text(model)}**. A positive gap: the model already "
        f"prefers the original conditioning to the perturbed one; HDPO widens it.  \n{model_line(ctx, model)}"
    )


#: The sliders start at the augmenters' defaults (the paper's: 1-5 words, patch sides 1/3-1/2).
TEXT_DEFAULTS = TextHallucinationConfig()
VIDEO_DEFAULTS = VideoHallucinationConfig()


# -- layout ---------------------------------------------------------------------------------------


def _text_section(ctx: AppContext) -> gr.Textbox:
    gr.Markdown("### Response hallucination (Eq. 6-8)")
    text = gr.Textbox(value=EXAMPLE_RESPONSE, label="Response or prompt", lines=3, elem_id="viewer-text")
    with gr.Row():
        min_words = gr.Slider(1, 10, value=TEXT_DEFAULTS.min_words, step=1, label="Min words")
        max_words = gr.Slider(1, 10, value=TEXT_DEFAULTS.max_words, step=1, label="Max words")
        seed = gr.Number(value=0, precision=0, label="Seed", minimum=0)
    run = gr.Button("Hallucinate text", variant="primary", elem_id="viewer-text-run")
    with gr.Row():
        original = gr.HighlightedText(label="Original", color_map=CATEGORY_COLORS, elem_id="viewer-original")
        swapped = gr.HighlightedText(label="Hallucinated", color_map=CATEGORY_COLORS, elem_id="viewer-swapped")
    edits = gr.Dataframe(
        headers=["category", "original", "replacement", "start", "end"], label="Edits", interactive=False, wrap=True
    )

    handler = bind(hallucinate_text_view, ctx)

    run.click(handler, [text, min_words, max_words, seed], [original, swapped, edits], api_name="hallucinate_text")
    return text


def _video_section(ctx: AppContext) -> gr.Video:
    gr.Markdown("### Input hallucination: video (Eq. 9-11)")
    video = gr.Video(label="Video", sources=["upload"], elem_id="viewer-video-in", height=240)
    clips = sorted(SAMPLES_DIR.glob("*.mp4"))
    gr.Examples(
        [[str(p)] for p in clips], inputs=[video], label="Sample clips", example_labels=[p.name for p in clips]
    )
    methods = gr.CheckboxGroup(list(METHODS), value=list(METHODS[:2]), label="Methods")
    with gr.Row():
        lo, hi = VIDEO_DEFAULTS.paste_ratio or (1 / 3, 1 / 2)
        paste_lo = gr.Slider(0.05, 1.0, value=lo, step=0.01, label="Patch side ratio: low")
        paste_hi = gr.Slider(0.05, 1.0, value=hi, step=0.01, label="Patch side ratio: high")
        crop_lo = gr.Slider(0.3, 1.0, value=0.8, step=0.01, label="Crop keeps: low")
        crop_hi = gr.Slider(0.3, 1.0, value=1.0, step=0.01, label="Crop keeps: high")
    with gr.Row():
        frames = gr.Slider(2, 16, value=DEFAULT_NUM_FRAMES, step=1, label="Frames")
        seed = gr.Number(value=0, precision=0, label="Seed", minimum=0)
    run = gr.Button("Hallucinate video", variant="primary", elem_id="viewer-video-run")
    with gr.Row():
        original = gr.Video(
            label="Original (sampled frames)", interactive=False, elem_id="viewer-video-original", height=240
        )
        perturbed = gr.Video(label="Perturbed", interactive=False, elem_id="viewer-video-perturbed", height=240)
    strip = gr.Gallery(label="Frame strips: original, then perturbed", columns=8, height="auto")
    ops = gr.JSON(label="What changed (ops)")

    handler = bind(hallucinate_video_view, ctx)

    ins = [video, methods, paste_lo, paste_hi, crop_lo, crop_hi, frames, seed]
    run.click(handler, ins, [original, perturbed, strip, ops], api_name="hallucinate_video")
    return video


def _task_section(ctx: AppContext, response: gr.Textbox, video: gr.Video) -> None:
    gr.Markdown("### Task hallucination (Eq. 12-13) and the reward gaps HDPO trains on")
    prompt = gr.Textbox(value="Kids play ball with a dog in a field.", label="Short prompt of the Task-3 sample")
    views_btn = gr.Button("Show the response under the three task instructions")
    views = gr.Dataframe(
        headers=["task", "instruction", "response"],
        label="Same response, three conditionings",
        wrap=True,
        interactive=False,
        column_widths=["8%", "62%", "30%"],
        elem_id="viewer-views",
    )
    views_btn.click(bind(task_views_view, ctx), [prompt, response], views, api_visibility="private")
    source = gr.Radio(list(GAP_SOURCES.values()), value=GAP_SOURCES["text"], label="Score the response as")
    with gr.Row():
        model = gr.Dropdown(
            model_choices(ctx.studio, False),
            value=ctx.studio.config.text_model,
            label="Model",
            allow_custom_value=True,
            elem_id="viewer-gap-model",
        )
        seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, elem_id="viewer-gap-seed")
    source.change(bind(gap_model_default, ctx), source, model, api_visibility="private")
    gaps_btn = gr.Button("Compute log π(y|x,q) under each perturbation (loads the model)", elem_id="viewer-gaps-run")
    note = gr.Markdown(elem_id="viewer-gaps-note")
    gaps = gr.Dataframe(
        headers=["condition", "term", "logp", "gap_vs_original"],
        label="Log-probabilities",
        interactive=False,
        wrap=True,
        elem_id="viewer-gaps",
    )
    plot = gr.BarPlot(
        x="condition",
        y="gap_vs_original",
        label="Gap vs original (nats; from zero)",
        height=260,
        elem_id="viewer-gap-plot",
    )

    on_model_event(
        gaps_btn.click,
        bind(reward_gaps_view, ctx),
        [response, prompt, source, video, model, seed],
        [gaps, plot, note],
        api_visibility="private",
    )
    strength_panel(ctx, response, prompt, video, seed)  # beside the gaps: the same perturbations, by evaluators


def build_viewer_tab(ctx: AppContext) -> None:
    with gr.Tab("Hallucination viewer", id="viewer"):
        response = _text_section(ctx)
        video = _video_section(ctx)
        viewer_grounding(ctx, response, video)
        _task_section(ctx, response, video)


def sample_video(name: str = "bunny.mp4") -> str:
    return str(Path(SAMPLES_DIR, name))
