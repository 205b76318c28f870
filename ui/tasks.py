"""Handlers of the three task tabs: Beautify a prompt (Task 3), Describe a video (Task 1), Video + caption
(Task 2). Plain functions of an AppContext; `ui.task_tabs` lays the tabs out and wires them.

In the page a run streams: `stream_*` yield (status, candidate cards, state) as the model writes, through
`Studio.stream_task`; a Stop button ends it early (the per-session event in `StopEvents`). The contract
API names (/beautify, /describe_video, /describe_video_with_caption) answer (status, candidates table)
in one go through `Studio.run_task`. The queue button's handlers are in `ui.task_queue`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import gradio as gr
import pandas as pd

from engine.errors import StudioError
from engine.types import Candidate, GenerationParams, Task
from ui.common import RANDOM_WEIGHTS_LABEL, AppContext, is_random_model
from ui.render import candidate_cards, format_scores, md_note, md_text

CANDIDATE_COLUMNS = ["#", "candidate", "scores", "label"]
#: Beautify with sampling draws this many candidates and shows the best (engine.rerank: tidied, degenerate ones
#: dropped, ranked by faithfulness to the prompt); bench/bench_beautify.py measured the choice.
DEMO_DRAW = 8
#: Seconds between two streamed page updates (the first token goes out at once).
STREAM_INTERVAL = 0.15

# -- generation settings and scoring --------------------------------------------------------------------


def make_params(
    num_beams: float, num_return: float, temperature: float, max_new_tokens: float, top_p: float = 1.0
) -> GenerationParams:
    """Generation settings from the accordion. Temperature 0 means beam search / greedy; `top_p` applies
    when sampling (the model preset's own, see `preset_top_p`)."""
    temperature = float(temperature or 0.0)
    return GenerationParams(
        max_new_tokens=int(max_new_tokens),
        num_beams=int(num_beams),
        num_return_sequences=int(num_return),
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else 1.0,
        top_p=top_p if temperature > 0 else 1.0,
    )


def preset_top_p(ctx: AppContext, model: str | None, task: Task) -> float:
    """The nucleus mass the model's preset samples with (SmolLM2: 0.9); 1.0 for folders and other presets."""
    name = model or ctx.studio.default_model(task)
    preset = next((p for p in ctx.studio.presets() if p.name == name), None)
    return float(getattr(preset, "top_p", 1.0) or 1.0)


def short_reason(message: str) -> str:
    """One short clause of a load refusal: its head and the setting to change, not the whole paragraph.

    "no local weights: timm/… is not in the cache; set VIDPROMPTER_X=/path (or …)" -> "no local weights —
    set VIDPROMPTER_X"."""
    message = re.sub(r"^model '[^']*' cannot load:\s*", "", " ".join(message.split()))
    head = re.split(r"[:;]\s", message, maxsplit=1)[0]
    head = head if len(head) <= 90 else head[:89].rstrip() + "…"
    env = re.search(r"\bset ([A-Z][A-Z0-9_]{3,})=", message)
    return f"{head} — set {env.group(1)}" if env and env.group(1) not in head else head


def short_note(note: str) -> str:
    """'<evaluator> not used: <long reason>' -> '<evaluator> not used: cannot load here (<short reason>)';
    other notes unchanged."""
    name, sep, reason = note.partition(" not used: ")
    return f"{name} not used: cannot load here ({short_reason(reason)})" if sep else note


def score_with_evaluators(ctx: AppContext, video: str, cands: list[Candidate], names: list[str]) -> list[str]:
    """Score the candidates with the chosen evaluators in one Studio call; returns the notes to show.

    Fills each Candidate.scores with the members' scores and their "mean" (the Studio's), and its notes
    with the texts an evaluator read only in part. Evaluators that cannot load get one short line each.
    """
    scorable = [c for c in cands if c.text.strip()]
    notes = [f"{len(cands) - len(scorable)} empty candidate(s) not scored"] if len(scorable) < len(cands) else []
    if not names:
        return notes
    try:
        report = ctx.studio.score(video, [c.text for c in scorable], names)
    except StudioError as exc:  # e.g. an unreadable video: keep the candidates, say why they have no scores
        return [*notes, f"scoring failed: {exc}"]
    if scorable and not report.rows:  # every chosen evaluator left out (no weights here): no rows to zip with
        unscored = "candidates not scored: none of the chosen evaluators can load here (pick tiny-random-clip "
        return [*notes, unscored + "to check the pipeline)", *(short_note(n) for n in report.notes)]
    for cand, row in zip(scorable, report.rows, strict=True):
        cand.scores.update(row.as_dict())
        cand.notes += row.notes()
    notes += [short_note(n) for n in report.notes]
    if report.random_weights:
        notes.append(f"evaluator scores: {RANDOM_WEIGHTS_LABEL}")
    return notes


def score_with_judge(ctx: AppContext, cands: list[Candidate]) -> list[str]:
    """The paper's Task-3 LLM judge (0-10) on the candidates, in one batched call.

    A reply with no readable score is marked on its candidate and counted in a note for the status line."""
    scorable = [c for c in cands if c.text.strip()]
    notes = [f"{len(cands) - len(scorable)} empty candidate(s) not judged"] if len(scorable) < len(cands) else []
    if not scorable:
        return notes
    unparsed = 0
    for cand, result in zip(scorable, ctx.studio.judge_many([c.text for c in scorable]), strict=True):
        if result.score is not None:
            cand.scores["judge"] = float(result.score)
        else:
            cand.notes.append("judge reply unparsed")
            unparsed += 1
    if unparsed:
        notes.append(f"⚠️ judge failed on {unparsed} of {len(scorable)}: no 0-10 score in its reply")
    return notes


#: Judges whose replies mostly carry no readable 0-10 score (the README: the embedded model is a weak judge).
WEAK_JUDGES = {"smollm2-135m": "the embedded 135 M model"}


def judge_note(ctx: AppContext, on: bool) -> str:
    """What ticking the LLM judge costs and what to expect from this judge, said before anything runs."""
    if not on:
        return ""
    name = ctx.studio.config.judge_model or ctx.studio.config.text_model
    line = f"The judge is **{md_text(name)}**: one more model call per candidate (about 15 s each on a 2-core CPU)."
    if is_random_model(ctx.studio, name):
        return f"{line} ⚠️ {RANDOM_WEIGHTS_LABEL}: expect no 0-10 score."
    if name in WEAK_JUDGES:
        return (
            f"{line} ⚠️ {WEAK_JUDGES[name]} rarely writes a readable verdict: expect no 0-10 score on most "
            "candidates. Start the app with `--model` set to a real instruct model to judge."
        )
    return line


def best_first(scores: dict[str, float], rank: int) -> tuple[bool, float, int]:
    """Sort key: scored candidates by the evaluators' mean (else the judge's score), best first; then the
    unscored ones in beam order (random-weight scores can be negative, so "no score" is not 0)."""
    score = scores.get("mean", scores.get("judge"))
    return score is None, -(score or 0.0), rank


def ranked(cands: list[Candidate]) -> list[Candidate]:
    return sorted(cands, key=lambda c: best_first(c.scores, c.rank))


def label_of(cand: Candidate) -> str:
    parts = [f"model {cand.model}"]
    if cand.random_weights:
        parts.append(RANDOM_WEIGHTS_LABEL)
    return "; ".join(parts + cand.notes)


def candidate_frame(cands: list[Candidate]) -> pd.DataFrame:
    """The API's candidates table, best first."""
    rows = [[c.rank + 1, c.text, format_scores(c.scores), label_of(c)] for c in ranked(cands)]
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


def cards_html(cands: list[Candidate], streaming: bool = False) -> str:
    """The page's candidate cards: best first once scored, beam order while streaming."""
    shown = cands if streaming else ranked(cands)
    return candidate_cards(shown, [label_of(c) for c in shown], streaming)


def status_markdown(task: Task, cands: list[Candidate], notes: list[str], stopped: bool = False) -> str:
    """One line of what ran, then one line per note (random weights, unused evaluators, judge failures)."""
    model = md_text(cands[0].model) if cands else "?"
    lines = [f"**Task {int(task)}** · {len(cands)} candidate(s) from **{model}**"]
    drawn, dropped = getattr(cands, "drawn", 0), getattr(cands, "dropped", "")
    if drawn and not stopped:
        lines[0] += f" · the best of {drawn} drawn" + (f"; {md_text(dropped)}" if dropped else "")
    if stopped:
        lines[0] += " · ⏹ stopped early: the texts end where you stopped them"
    if any(c.random_weights for c in cands):
        lines.append(f"⚠️ **{RANDOM_WEIGHTS_LABEL}** — this text is not a model's answer.")
    lines += [f"- {md_note(n)}" for n in notes]
    return "\n\n".join(lines)


def generation_state(task: Task, video: str | None, prompt: str | None, cands: list[Candidate]) -> dict[str, Any]:
    return {
        "task": int(task),
        "video": video,
        "prompt": prompt,
        "candidates": [asdict(c) for c in cands],
        "dropped": getattr(cands, "dropped", ""),
    }


class CandidateList(list):
    """A run's candidates, plus what a reranked run drew and dropped (engine.rerank.Reranked)."""

    drawn: int = 0
    dropped: str = ""


# -- streaming runs (the page) --------------------------------------------------------------------------


class StopEvents:
    """One stop event per browser session: the Stop button sets the one its session's run reads.

    `begin` runs when the Run button is pressed (before the run is queued), so a Stop pressed while the run
    still waits for the model is not lost."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def begin(self, key: str) -> threading.Event:
        with self._lock:
            self._events[key] = event = threading.Event()
            return event

    def get(self, key: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(key, threading.Event())

    def stop(self, key: str) -> None:
        self.get(key).set()


def session_key(ctx: AppContext, request: gr.Request | None) -> str:
    """The caller's browser session (and name, so two users never share one)."""
    return f"{ctx.user(request).name}:{getattr(request, 'session_hash', None) or 'default'}"


def stream_candidates(
    ctx: AppContext,
    task: Task,
    video: str | None,
    prompt: str | None,
    model: str | None,
    params: GenerationParams,
    stop: threading.Event,
    draw: int | None = None,
) -> Iterator[list[Candidate]]:
    """Candidates as they grow (one list per streamed step; the last is final). Ends early once `stop` is set.
    draw: a reranked run (Studio.stream_task): the final list says what was drawn and dropped, and each
    candidate notes the sentences tidied away or, when every one was degenerate, why it is flagged."""
    name = model or ctx.studio.default_model(task)
    random_weights = is_random_model(ctx.studio, name)
    stream = ctx.studio.stream_task(
        task, video=video, short_prompt=prompt, model=model, params=params, stop=stop, draw=draw
    )
    for texts in stream:
        out = CandidateList(
            Candidate(text=t, rank=i, model=name, random_weights=random_weights, notes=_rerank_notes(texts, i))
            for i, t in enumerate(texts)
        )
        if hasattr(texts, "dropped"):
            out.drawn, out.dropped = int(draw or 0), texts.dropped
        yield out


def _rerank_notes(texts: list[str], i: int) -> list[str]:
    """What the reranker did to candidate i: "⚠️ degenerate: …" when flagged, "tidied: …" when cut."""
    flagged = (getattr(texts, "flagged", None) or [""] * len(texts))[i]
    cut = (getattr(texts, "cut", None) or [[]] * len(texts))[i]
    notes = [f"⚠️ degenerate: {flagged} (every candidate drawn was)"] if flagged else []
    return notes + ([f"tidied: cut at a {', '.join(cut)} sentence"] if cut else [])


def streamed_run(
    ctx: AppContext,
    stop: threading.Event,
    task: Task,
    inputs: tuple[str | None, str | None, str | None],
    params: GenerationParams,
    score: Any,
    draw: int | None = None,
) -> Iterator[tuple[str, str, Any]]:
    """(status, cards, state) while generating (throttled to STREAM_INTERVAL), then once scored.

    inputs: (video, short prompt, model); score(cands) -> notes fills their scores; draw: see stream_candidates."""
    video, prompt, model = inputs
    yield f"⏳ **Task {int(task)}**: waiting for the model…", cards_html([]), gr.skip()
    cands: list[Candidate] = []
    last, stopped = 0.0, False
    for cands in stream_candidates(ctx, task, video, prompt, model, params, stop, draw):
        # Read with each item: the backend sets the event itself once its stream is over.
        stopped = stop.is_set()
        now = time.monotonic()
        if now - last >= STREAM_INTERVAL:
            words = max((len(c.text.split()) for c in cands), default=0)
            yield f"⏳ **Task {int(task)}**: writing… {words} words so far", cards_html(cands, True), gr.skip()
            last = now
    if cands:
        yield "⏳ scoring the candidates…", cards_html(cands, True), gr.skip()
    notes = score(cands) if cands else []
    state = generation_state(task, video, prompt, cands)
    yield status_markdown(task, cands, notes, stopped), cards_html(cands), state


def _stop_for(ctx: AppContext, stops: StopEvents, request: gr.Request | None) -> threading.Event:
    return stops.get(session_key(ctx, request))


def stream_beautify(
    ctx: AppContext,
    stops: StopEvents,
    prompt: str,
    model: str,
    beams: float,
    n: float,
    temp: float,
    max_tokens: float,
    judge: bool,
    request: gr.Request,
) -> Iterator[tuple[str, str, Any]]:
    """Task 3 in the page: short prompt -> detailed prompts as they are written, optionally judged."""
    prompt = _require_prompt(prompt)
    params = make_params(beams, n, temp, max_tokens, preset_top_p(ctx, model, Task.BEAUTIFY))

    def score(cands: list[Candidate]) -> list[str]:
        return score_with_judge(ctx, cands) if judge else []

    stop = _stop_for(ctx, stops, request)
    yield from streamed_run(ctx, stop, Task.BEAUTIFY, (None, prompt, model or None), params, score, DEMO_DRAW)


def compare_note(ctx: AppContext, model: str | None) -> str:
    """What "compare with the base model" will run for `model`: its base, or why there is none."""
    name = md_text(model or ctx.studio.config.text_model)
    base = ctx.studio.base_of(model or None)
    if base is None:
        return f"**{name}** is not a fine-tune of a preset: nothing to compare."
    return f"Beside **{name}**: its base model **{md_text(base)}**, same settings."


def stream_compare(
    ctx: AppContext,
    stops: StopEvents,
    prompt: str,
    model: str,
    beams: float,
    n: float,
    temp: float,
    max_tokens: float,
    compare: bool,
    request: gr.Request,
) -> Iterator[tuple[str, str]]:
    """After a Beautify run with "compare" on: the same prompt and settings through the model's base (e.g.
    smollm2-135m beside smollm2-135m-hdpo), streamed into the second column. (status, cards)."""
    if not compare or not (prompt or "").strip():
        yield "", ""
        return
    base = ctx.studio.base_of(model or None)
    if base is None:
        yield compare_note(ctx, model), ""
        return
    params = make_params(beams, n, temp, max_tokens, preset_top_p(ctx, base, Task.BEAUTIFY))
    stop = _stop_for(ctx, stops, request)
    if stop.is_set():  # the user stopped the run: do not start the comparison
        yield "⏹ stopped: no comparison", ""
        return
    inputs = (None, str(prompt), base)
    for status, cards, _state in streamed_run(ctx, stop, Task.BEAUTIFY, inputs, params, lambda _c: [], DEMO_DRAW):
        yield f"**base model** · {status}", cards


def stream_describe(
    ctx: AppContext,
    stops: StopEvents,
    video: str | None,
    caption: str | None,
    model: str,
    beams: float,
    n: float,
    temp: float,
    max_tokens: float,
    evals: list,
    request: gr.Request,
) -> Iterator[tuple[str, str, Any]]:
    """Tasks 1 and 2 in the page (Task 2 when `caption` is not None), scored by the chosen evaluators."""
    task = Task.DESCRIBE_VIDEO if caption is None else Task.VIDEO_WITH_CAPTION
    video = _require_video(task, video)
    params = make_params(beams, n, temp, max_tokens, preset_top_p(ctx, model, task))

    def score(cands: list[Candidate]) -> list[str]:
        return score_with_evaluators(ctx, video, cands, list(evals or []))

    stop = _stop_for(ctx, stops, request)
    yield from streamed_run(ctx, stop, task, (video, caption, model or None), params, score)


def _require_prompt(prompt: str | None) -> str:
    if not (prompt or "").strip():
        raise gr.Error("the short prompt is empty: type a sentence such as 'A dog runs on the beach.'")
    return str(prompt)


def _require_video(task: Task, video: str | None) -> str:
    if not video:
        raise gr.Error(f"task {int(task)} needs a video: upload one or pick a sample clip")
    return video


# -- the contract API (one answer, no streaming) ----------------------------------------------------------


def run_generation(
    ctx: AppContext, task: Task, video: str | None, prompt: str | None, model: str | None, params: GenerationParams
) -> list[Candidate]:
    return ctx.studio.run_task(task, video=video or None, short_prompt=prompt, model=model or None, params=params)


def describe_video(
    ctx: AppContext, video: str | None, model: str, beams: float, n: float, temp: float, max_tokens: float, evals: list
) -> tuple[str, pd.DataFrame]:
    """Task 1: video -> detailed prompts, scored by the chosen evaluators."""
    params = make_params(beams, n, temp, max_tokens, preset_top_p(ctx, model, Task.DESCRIBE_VIDEO))
    return _video_task(ctx, Task.DESCRIBE_VIDEO, video, None, model, params, evals)


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
) -> tuple[str, pd.DataFrame]:
    """Task 2: video + short caption -> detailed prompts."""
    params = make_params(beams, n, temp, max_tokens, preset_top_p(ctx, model, Task.VIDEO_WITH_CAPTION))
    return _video_task(ctx, Task.VIDEO_WITH_CAPTION, video, caption, model, params, evals)


def _video_task(
    ctx: AppContext, task: Task, video: str | None, caption: str | None, model: str, params: GenerationParams, evals
) -> tuple[str, pd.DataFrame]:
    video = _require_video(task, video)
    cands = run_generation(ctx, task, video, caption, model, params)
    notes = score_with_evaluators(ctx, video, cands, list(evals or []))
    return status_markdown(task, cands, notes), candidate_frame(cands)


def beautify(
    ctx: AppContext, prompt: str, model: str, beams: float, n: float, temp: float, max_tokens: float, judge: bool
) -> tuple[str, pd.DataFrame]:
    """Task 3: short prompt -> detailed prompts, optionally judged 0-10 by the LLM judge."""
    prompt = _require_prompt(prompt)
    params = make_params(beams, n, temp, max_tokens, preset_top_p(ctx, model, Task.BEAUTIFY))
    cands = run_generation(ctx, Task.BEAUTIFY, None, prompt, model, params)
    notes = score_with_judge(ctx, cands) if judge else []
    return status_markdown(Task.BEAUTIFY, cands, notes), candidate_frame(cands)


# -- model and evaluator notes -------------------------------------------------------------------------------


def model_loads(ctx: AppContext, name: str | None) -> bool:
    """Can the picked model load here? Never loads weights (random presets are built in code: yes)."""
    return bool(name) and (is_random_model(ctx.studio, str(name)) or ctx.studio.model_status(str(name))[0])


def model_line(ctx: AppContext, name: str | None) -> str:
    """One line on whether `name` can load, and why not (said once, not twice)."""
    if not name:
        return "Pick a model."
    shown = f"**{md_text(name)}**"
    if is_random_model(ctx.studio, name):
        return f"⚠️ {shown}: {RANDOM_WEIGHTS_LABEL}. Its output is not a model's answer."
    ok, message = ctx.studio.model_status(name)
    if ok:
        return f"✅ {shown}: {md_text(message)} (loads on first use)."
    return f"⛔ {shown} cannot load here: {md_note(short_reason(message))}"


def update_model_note(ctx: AppContext, model: str) -> tuple[str, gr.Button]:
    """The model's one-line note, and the Run button switched off while the model cannot load."""
    return model_line(ctx, model), gr.Button(interactive=model_loads(ctx, model))


def update_evaluator_note(ctx: AppContext, names: list[str]) -> str:
    """One short line per chosen evaluator: usable, or why not."""
    lines = []
    for name in names or []:
        ok, message = ctx.studio.evaluator_status(name)
        reason = "ready" if ok else short_reason(message)
        lines.append(f"{'✅' if ok else '⛔'} **{md_text(name)}**: {md_note(reason)}")
    return "  \n".join(lines) or "No evaluator chosen: candidates will not be scored."
