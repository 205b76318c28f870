"""The three task tabs: Beautify a prompt (Task 3), Describe a video (Task 1), Video + caption (Task 2).

Handlers first (plain functions of an AppContext), then `build_task_tabs` lays out and wires them.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from engine.errors import StudioError
from engine.evaluators.registry import PAPER_EVALUATORS, TINY_EVALUATORS
from engine.types import Candidate, GenerationParams, Task
from ui.common import (
    RANDOM_WEIGHTS_LABEL,
    SAMPLES_DIR,
    AppContext,
    bind,
    model_choices,
    model_note,
    on_model_event,
)

CANDIDATE_COLUMNS = ["#", "candidate", "scores", "label"]
TINY_EVALUATOR = TINY_EVALUATORS[0]
EVALUATOR_HINT = (
    f"The paper's evaluators ({', '.join(PAPER_EVALUATORS)}) need their weights (hub cache or a local file); "
    "each one's status is checked when you change the selection or run. "
    f"**{TINY_EVALUATOR}** is {RANDOM_WEIGHTS_LABEL}."
)
CAPTION_EXAMPLES = [("bunny.mp4", "A big rabbit in a meadow."), ("bikes.mp4", "People ride bikes down a street.")]
BEAUTIFY_EXAMPLES = [
    ["A dog runs on the beach."],
    ["A woman is walking."],
    ["Two cars race through a city at night."],
]

# -- handlers -------------------------------------------------------------------------------------


def make_params(num_beams: float, num_return: float, temperature: float, max_new_tokens: float) -> GenerationParams:
    """Generation settings from the accordion. Temperature 0 means beam search / greedy."""
    temperature = float(temperature or 0.0)
    return GenerationParams(
        max_new_tokens=int(max_new_tokens),
        num_beams=int(num_beams),
        num_return_sequences=int(num_return),
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else 1.0,
    )


def score_with_evaluators(ctx: AppContext, video: str, cands: list[Candidate], names: list[str]) -> list[str]:
    """Score the candidates with the chosen evaluators in one Studio call; returns the notes to show.

    Fills each Candidate.scores with the members' scores and their "mean" (the Studio's), and its notes
    with the texts an evaluator read only in part. Evaluators that cannot load get one line each.
    """
    scorable = [c for c in cands if c.text.strip()]
    notes = [f"{len(cands) - len(scorable)} empty candidate(s) not scored"] if len(scorable) < len(cands) else []
    if not names:
        return notes
    try:
        report = ctx.studio.score(video, [c.text for c in scorable], names)
    except StudioError as exc:  # e.g. an unreadable video: keep the candidates, say why they have no scores
        return [*notes, f"scoring failed: {exc}"]
    for cand, row in zip(scorable, report.rows, strict=True):
        cand.scores.update(row.as_dict())
        cand.notes += row.notes()
    notes += report.notes
    if report.random_weights:
        notes.append(f"evaluator scores: {RANDOM_WEIGHTS_LABEL}")
    return notes


def score_with_judge(ctx: AppContext, cands: list[Candidate]) -> list[str]:
    """The paper's Task-3 LLM judge (0-10) on the candidates, in one batched call."""
    scorable = [c for c in cands if c.text.strip()]
    notes = [f"{len(cands) - len(scorable)} empty candidate(s) not judged"] if len(scorable) < len(cands) else []
    if not scorable:
        return notes
    for cand, result in zip(scorable, ctx.studio.judge_many([c.text for c in scorable]), strict=True):
        if result.score is not None:
            cand.scores["judge"] = float(result.score)
        else:
            cand.notes.append("judge reply unparsed")
    return notes


def best_first(scores: dict[str, float], rank: int) -> tuple[bool, float, int]:
    """Sort key: scored candidates by the evaluators' mean (else the judge's score), best first; then the
    unscored ones in beam order (random-weight scores can be negative, so "no score" is not 0)."""
    score = scores.get("mean", scores.get("judge"))
    return score is None, -(score or 0.0), rank


def candidate_frame(cands: list[Candidate]) -> pd.DataFrame:
    rows = [
        [c.rank + 1, c.text, _format_scores(c.scores), _label(c)]
        for c in sorted(cands, key=lambda c: best_first(c.scores, c.rank))
    ]
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


def _format_scores(scores: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in scores.items()) or "—"


def _label(cand: Candidate) -> str:
    parts = [f"model {cand.model}"]
    if cand.random_weights:
        parts.append(RANDOM_WEIGHTS_LABEL)
    return "; ".join(parts + cand.notes)


def status_markdown(task: Task, cands: list[Candidate], notes: list[str]) -> str:
    model = cands[0].model if cands else "?"
    lines = [f"**Task {int(task)}** · {len(cands)} candidate(s) from **{model}**"]
    if any(c.random_weights for c in cands):
        lines.append(f"⚠️ **{RANDOM_WEIGHTS_LABEL}** — this text is not a model's answer.")
    lines += [f"- {n}" for n in notes]
    return "\n\n".join(lines)


def run_generation(
    ctx: AppContext, task: Task, video: str | None, prompt: str | None, model: str | None, params: GenerationParams
) -> list[Candidate]:
    return ctx.studio.run_task(task, video=video or None, short_prompt=prompt, model=model or None, params=params)


def generation_state(task: Task, video: str | None, prompt: str | None, cands: list[Candidate]) -> dict[str, Any]:
    return {"task": int(task), "video": video, "prompt": prompt, "candidates": [asdict(c) for c in cands]}


def describe_video(
    ctx: AppContext, video: str | None, model: str, beams: float, n: float, temp: float, max_tokens: float, evals: list
) -> tuple[str, pd.DataFrame, dict]:
    """Task 1: video -> detailed prompts, scored by the chosen evaluators."""
    return _video_task(ctx, Task.DESCRIBE_VIDEO, video, None, model, make_params(beams, n, temp, max_tokens), evals)


def describe_video_with_caption(
    ctx: AppContext,
    video: str | None,
    caption: str,
    model: str,
    beams: float,
    n: float,
    temp: float,
    max_tokens: float,
    evals: list,
) -> tuple[str, pd.DataFrame, dict]:
    """Task 2: video + short caption -> detailed prompts."""
    params = make_params(beams, n, temp, max_tokens)
    return _video_task(ctx, Task.VIDEO_WITH_CAPTION, video, caption, model, params, evals)


def _video_task(
    ctx: AppContext, task: Task, video: str | None, caption: str | None, model: str, params: GenerationParams, evals
) -> tuple[str, pd.DataFrame, dict]:
    if not video:
        raise gr.Error(f"task {int(task)} needs a video: upload one or pick an example")
    cands = run_generation(ctx, task, video, caption, model, params)
    notes = score_with_evaluators(ctx, video, cands, list(evals or []))
    return status_markdown(task, cands, notes), candidate_frame(cands), generation_state(task, video, caption, cands)


def beautify(
    ctx: AppContext, prompt: str, model: str, beams: float, n: float, temp: float, max_tokens: float, judge: bool
) -> tuple[str, pd.DataFrame, dict]:
    """Task 3: short prompt -> detailed prompts, optionally judged 0-10 by the LLM judge."""
    if not (prompt or "").strip():
        raise gr.Error("the short prompt is empty: type a sentence such as 'A dog runs on the beach.'")
    params = make_params(beams, n, temp, max_tokens)
    cands = run_generation(ctx, Task.BEAUTIFY, None, prompt, model, params)
    notes = score_with_judge(ctx, cands) if judge else []
    state = generation_state(Task.BEAUTIFY, None, prompt, cands)
    return status_markdown(Task.BEAUTIFY, cands, notes), candidate_frame(cands), state


def send_to_queue(ctx: AppContext, state: dict | None, request: gr.Request) -> str:
    """Store the input and its candidates and queue best-vs-each-other pairs for human labelling."""
    from annotations import store

    user = ctx.user(request)
    cands = (state or {}).get("candidates") or []
    if len(cands) < 2:
        raise gr.Error("the labelling queue needs at least two candidates: raise 'candidates' and generate again")
    task, prompt = int(state["task"]), state.get("prompt")
    video, video_hash = _persist_video(ctx, state.get("video"))
    sample_id = store.upsert_sample(ctx.db, video, prompt, video_hash=video_hash)
    ids = [_store_candidate(ctx, sample_id, task, c, user.name) for c in _by_score(cands)]
    pairs = [
        store.add_pair(ctx.db, sample_id, task, ids[0], other, origin="human_queue", meta={"queued_by": user.name})
        for other in ids[1:]
        if other != ids[0]
    ]
    warning = f" ⚠️ {RANDOM_WEIGHTS_LABEL}: these pairs only check the pipeline." if cands[0]["random_weights"] else ""
    return f"Queued {len(pairs)} pair(s) for labelling (sample #{sample_id}, task {task}).{warning}"


def _by_score(cands: list[dict]) -> list[dict]:
    return sorted(cands, key=lambda c: best_first(c["scores"], c["rank"]))


def _store_candidate(ctx: AppContext, sample_id: int, task: int, cand: dict, user: str) -> int:
    from annotations import store

    meta = {"random_weights": cand["random_weights"], "queued_by": user}
    rid = store.add_response(
        ctx.db, sample_id, task, cand["text"], "model", model=cand["model"], beam_rank=cand["rank"], meta=meta
    )
    scores = {k: v for k, v in cand["scores"].items() if k != "mean"}
    if scores:
        store.add_scores(ctx.db, rid, scores)
    return rid


def _persist_video(ctx: AppContext, video: str | None) -> tuple[str | None, str | None]:
    """(kept path, content hash): an upload copied out of Gradio's cache (which is cleaned) into the app's
    upload folder. Task 3 has no video: (None, None), a text-only sample keyed by its prompt."""
    from annotations.store import hash_file

    if not video:
        return None, None
    digest = hash_file(video)
    assert ctx.upload_dir is not None
    dest = ctx.upload_dir / f"{digest[:16]}{Path(video).suffix or '.mp4'}"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(video, dest)
    return str(dest), digest


def update_model_note(ctx: AppContext, model: str) -> str:
    return model_note(ctx.studio, model)


def update_evaluator_note(ctx: AppContext, names: list[str]) -> str:
    lines = []
    for name in names or []:
        ok, message = ctx.studio.evaluator_status(name)
        lines.append(f"{'✅' if ok else '⛔'} **{name}**: {message}")
    return "\n\n".join(lines) or "No evaluator chosen: candidates will not be scored."


# -- layout ---------------------------------------------------------------------------------------


def _settings(default_beams: int = 1) -> list[gr.components.Component]:
    with gr.Accordion("Generation settings", open=False):
        beams = gr.Slider(1, 8, value=default_beams, step=1, label="Beams")
        n = gr.Slider(1, 8, value=default_beams, step=1, label="Candidates (≤ beams unless sampling)")
        temp = gr.Slider(0.0, 2.0, value=0.0, step=0.1, label="Temperature (0 = beam search / greedy)")
        max_tokens = gr.Slider(8, 512, value=128, step=8, label="Max new tokens")
    return [beams, n, temp, max_tokens]


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
    model.change(bind(update_model_note, ctx), model, note, api_visibility="private")
    return model, note


def _evaluator_picker(ctx: AppContext) -> tuple[gr.Dropdown, gr.Markdown]:
    names = list(ctx.studio.config.evaluators)
    evals = gr.Dropdown(
        [*names, TINY_EVALUATOR],
        value=names,
        multiselect=True,
        label="Evaluators (video-text similarity)",
        info=f"{TINY_EVALUATOR} is random weights: pipeline check only.",
    )
    note = gr.Markdown(EVALUATOR_HINT)
    evals.change(bind(update_evaluator_note, ctx), evals, note, api_visibility="private")
    return evals, note


def _results(ctx: AppContext, prefix: str) -> tuple[gr.Markdown, gr.Dataframe, gr.State]:
    status = gr.Markdown(elem_classes=["task-status"])
    table = gr.Dataframe(
        headers=CANDIDATE_COLUMNS, wrap=True, interactive=False, label="Candidates", elem_id=f"{prefix}-results"
    )
    state = gr.State({})
    with gr.Row():
        queue_btn = gr.Button("Send input + candidates to the labelling queue", size="sm")
    queue_status = gr.Markdown()
    queue_btn.click(bind(send_to_queue, ctx), state, queue_status, api_visibility="private")
    return status, table, state


def _sample_videos() -> list[str]:
    return [str(p) for p in sorted(SAMPLES_DIR.glob("*.mp4"))]


def build_beautify_tab(ctx: AppContext) -> dict[str, Any]:
    with gr.Tab("Beautify a prompt", id="beautify"):
        gr.Markdown("Task 3: a short prompt → a detailed text-to-video prompt.")
        prompt = gr.Textbox(label="Short prompt", lines=2, max_lines=6, elem_id="beautify-prompt")
        model, note = _model_picker(ctx, False, ctx.studio.config.text_model, "beautify")
        settings = _settings()
        judge = gr.Checkbox(value=False, label="Score each candidate with the LLM judge (0-10; slow on CPU)")
        run = gr.Button("Beautify", variant="primary", elem_id="beautify-run")
        status, table, state = _results(ctx, "beautify")
        gr.Examples(BEAUTIFY_EXAMPLES, inputs=[prompt], label="Examples (run offline on the embedded default)")

        handler = bind(beautify, ctx)

        ins = [prompt, model, *settings, judge]
        on_model_event(run.click, handler, ins, [status, table, state], api_name="beautify")
        on_model_event(prompt.submit, handler, ins, [status, table, state], api_visibility="private")
    return {"model": model, "note": note}


def build_describe_tab(ctx: AppContext) -> dict[str, Any]:
    with gr.Tab("Describe a video", id="describe"):
        gr.Markdown("Task 1: a video → a detailed text-to-video prompt.")
        video = gr.Video(label="Video", sources=["upload"], elem_id="describe-video")
        model, note = _model_picker(ctx, True, ctx.studio.config.video_model, "describe")
        evals, eval_note = _evaluator_picker(ctx)
        settings = _settings()
        run = gr.Button("Describe", variant="primary")
        status, table, state = _results(ctx, "describe")
        gr.Examples([[v] for v in _sample_videos()], inputs=[video], label="Sample clips")

        handler = bind(describe_video, ctx)

        ins = [video, model, *settings, evals]
        on_model_event(run.click, handler, ins, [status, table, state], api_name="describe_video")
    return {"model": model, "note": note, "evals": evals, "eval_note": eval_note}


def build_caption_tab(ctx: AppContext) -> dict[str, Any]:
    with gr.Tab("Video + caption", id="caption"):
        gr.Markdown("Task 2: a video and a short caption → a detailed text-to-video prompt.")
        video = gr.Video(label="Video", sources=["upload"])
        caption = gr.Textbox(label="Short caption", lines=1)
        model, note = _model_picker(ctx, True, ctx.studio.config.video_model, "caption")
        evals, eval_note = _evaluator_picker(ctx)
        settings = _settings()
        run = gr.Button("Describe with caption", variant="primary")
        status, table, state = _results(ctx, "caption")
        examples = [[str(SAMPLES_DIR / v), c] for v, c in CAPTION_EXAMPLES if (SAMPLES_DIR / v).exists()]
        gr.Examples(examples, inputs=[video, caption], label="Sample clips")

        handler = bind(describe_video_with_caption, ctx)

        ins = [video, caption, model, *settings, evals]
        on_model_event(run.click, handler, ins, [status, table, state], api_name="describe_video_with_caption")
    return {"model": model, "note": note, "evals": evals, "eval_note": eval_note}
