"""Text-to-video in the app: a clip from a Beautify candidate (or its short prompt), and the two videos a Label
pair's responses make, side by side (issue 17 item 3).

Every generation goes through `Studio.generate_video` (engine.t2v): progress from the pipeline's step callback
(gr.Progress), a per-session Cancel (the pipeline's cancel event), one generation per device (a second request
is told "busy" at once instead of waiting unseen). Clips go to a fresh folder per request under the per-request
outputs that app.py's sweeper empties (work_dir/viewer). Where the chosen T2V model cannot load, the panel is
its picker and one line naming the preset and the variable to set (no players, no buttons); tiny-random-* presets
run when picked by name, labelled "random weights — pipeline check only". Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from engine.errors import StudioError
from engine.t2v.errors import GenerationBusy, GenerationCancelled
from engine.t2v.presets import RANDOM_WEIGHTS_LABEL, T2V_PRESETS
from engine.t2v.studio import clip_path
from ui.common import AppContext, afterwards, bind, check_owner, public_message
from ui.render import md_note, md_text
from ui.tasks import StopEvents, session_key

#: One button per candidate: the Beautify tab's Candidates slider goes up to 8.
MAX_CANDIDATES = 8
#: Generation handlers that may run at once: one generates per device, the others answer "busy" at once.
T2V_CONCURRENCY = 4
CLIPS_FOLDER = ("viewer", "t2v")  # under ctx.work_dir: swept of files older than an hour by app.py
SHORT = "short"

# -- notes and buttons ------------------------------------------------------------------------------------


def t2v_choices() -> list[str]:
    return list(T2V_PRESETS)


def t2v_ready(ctx: AppContext, name: str | None) -> bool:
    """Can `name` generate here? Never loads weights (tiny presets are built on first use)."""
    return bool(name) and ctx.studio.t2v_status(str(name))[0]


def t2v_line(ctx: AppContext, name: str | None) -> str:
    """One line on the chosen T2V model: ready, random weights, or why the buttons are off and what to set."""
    if not name:
        return "Pick a text-to-video model."
    ok, message = ctx.studio.t2v_status(name)
    shown = f"**{md_text(name)}**"
    if ok and message == RANDOM_WEIGHTS_LABEL:
        return f"⚠️ {shown}: {RANDOM_WEIGHTS_LABEL} (its clips are noise)."
    if ok:
        return f"✅ {shown}: ready (loads on first use; one video at a time on this machine)."
    preset = T2V_PRESETS.get(name)
    if preset is not None and preset.env_var in message:
        return (
            f"⛔ Generate video is off: {shown} has no weights here — set `{preset.env_var}` to its diffusers "
            "folder, or pick a `tiny-random-*` model (pipeline check only)."
        )
    return f"⛔ Generate video is off: {md_note(message)}"


def _texts(state: dict | None) -> dict[str, str]:
    """Button key -> text of a Beautify run: "short" -> the short prompt, "0".."7" -> candidate #1..#8 by rank."""
    state = state or {}
    texts = {SHORT: state["prompt"]} if (state.get("prompt") or "").strip() else {}
    for cand in state.get("candidates") or []:
        if cand["text"].strip():
            texts[str(cand["rank"])] = cand["text"]
    return texts


def candidate_buttons(ctx: AppContext, state: dict | None, model: str | None) -> list[Any]:
    """(note, short-prompt button, one button per candidate): shown for what the run produced, on when the
    model can generate here."""
    ready, texts = t2v_ready(ctx, model), _texts(state)
    short = gr.Button(visible=SHORT in texts, interactive=ready)
    cands = [gr.Button(visible=str(i) in texts, interactive=ready) for i in range(MAX_CANDIDATES)]
    return [t2v_line(ctx, model), short, *cands]


def t2v_body(ctx: AppContext, model: str | None) -> gr.Column:
    """The panel's seed, buttons, status and players: shown only while the chosen model can generate here (no
    empty players and grey buttons where no text-to-video weights are; the note line says how to enable it)."""
    return gr.Column(visible=t2v_ready(ctx, model))


def pair_button(ctx: AppContext, state: dict | None, model: str | None) -> tuple[str, gr.Button]:
    """(note, the Label tab's Generate button): on while a pair is on screen and the model can generate."""
    return t2v_line(ctx, model), gr.Button(interactive=bool(state) and t2v_ready(ctx, model))


# -- one generation ---------------------------------------------------------------------------------------


def _clip(
    ctx: AppContext, text: str, stem: str, model: str, seed: int, cancel: Any, progress: Any, what: str
) -> dict[str, Any]:
    """Generate one clip into a fresh folder; progress shows the denoising steps. Raises StudioError."""
    progress(0, desc=f"{what}: loading {model}…")

    def step(done: int, total: int) -> None:
        progress((done, total), desc=f"{what}: denoising", unit="steps")

    out = clip_path(ctx.work_dir.joinpath(*CLIPS_FOLDER), stem, seed)
    clip = ctx.studio.generate_video(text, out, model, seed, progress=step, cancel=cancel, wait=False)
    return clip.as_dict()


def clip_line(what: str, clip: dict[str, Any]) -> str:
    """What was made: frames, size, rate, seed, steps, time, device; the random-weights label when it applies."""
    line = (
        f"✅ **{what}** → {clip['frames']} frames, {clip['width']}×{clip['height']} at {clip['fps']:g} fps "
        f"(seed {clip['seed']}, {clip['steps']} steps) in {clip['seconds']:.1f} s on {clip['device']}"
    )
    return line + (f" · ⚠️ {RANDOM_WEIGHTS_LABEL}" if clip["random_weights"] else "")


def failure_line(ctx: AppContext, what: str, exc: StudioError, request: gr.Request | None) -> str:
    """A failed generation as one line (no server paths for annotators): cancelled, busy, or why it failed."""
    user = ctx.caller(request)
    text = str(exc) if user is not None and user.is_admin else public_message(exc)
    if isinstance(exc, GenerationCancelled):
        return f"⏹ {md_text(what)}: {md_text(text)}; no clip written."
    if isinstance(exc, GenerationBusy):
        return f"⏳ {md_text(text)}"
    return f"⛔ {md_text(what)}: {md_note(text)}"


def _seed(seed: float | None) -> int:
    value = int(seed or 0)
    if not 0 <= value < 2**63:
        raise gr.Error(f"the seed must be in 0 .. 2^63 - 1, got {value}")
    return value


# -- Beautify: a clip from a candidate ------------------------------------------------------------------


def start_video(ctx: AppContext, stops: StopEvents, request: gr.Request) -> list[Any]:
    """A Generate button pressed: a fresh cancel event for this session, Cancel shown, the buttons off."""
    stops.begin(session_key(ctx, request))
    return [gr.Button(visible=True, interactive=True, value="⏹ Cancel"), *_all_off()]


def _all_off() -> list[gr.Button]:
    return [gr.Button(interactive=False) for _ in range(1 + MAX_CANDIDATES)]


def cancel_video(ctx: AppContext, stops: StopEvents, request: gr.Request) -> gr.Button:
    """Cancel pressed: the generation stops after the current denoising step and writes nothing."""
    stops.stop(session_key(ctx, request))
    return gr.Button(interactive=False, value="Cancelling…")


def generate_candidate_video(
    ctx: AppContext,
    stops: StopEvents,
    key: str,
    state: dict | None,
    model: str,
    seed: float,
    clips: list | None,
    request: gr.Request,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it by this default
) -> tuple[str, Any, Any, list]:
    """The clip of one candidate (key "0".."7", by rank) or of the short prompt (key "short"): (status, latest
    video, the clip before it, clips). The newest two clips stay side by side; a failure is the status line."""
    text = _texts(state).get(key)
    if text is None:
        raise gr.Error("that candidate is gone: run Beautify again")
    what = "the short prompt" if key == SHORT else f"candidate #{int(key) + 1}"
    stem = SHORT if key == SHORT else f"candidate-{int(key) + 1}"
    seed_value = _seed(seed)
    cancel = stops.get(session_key(ctx, request))
    try:
        clip = _clip(ctx, text, stem, model, seed_value, cancel, progress, what)
    except StudioError as exc:
        return failure_line(ctx, what, exc, request), gr.skip(), gr.skip(), list(clips or [])
    shown = [{"path": clip["out"], "label": f"{what} · {model} · seed {seed_value}"}, *(clips or [])][:2]
    return clip_line(what, clip), *_players(shown), shown


def _players(shown: list[dict]) -> tuple[dict, dict]:
    """Updates of the two players: the newest clip and the one before it, each labelled with what made it."""
    latest = shown[0] if shown else None
    before = shown[1] if len(shown) > 1 else None
    return (
        gr.update(value=latest and latest["path"], label=f"Latest: {latest['label']}" if latest else "Latest clip"),
        gr.update(
            value=before and before["path"], label=f"Before: {before['label']}" if before else "The clip before"
        ),
    )


def generate_video_api(
    ctx: AppContext,
    prompt: str,
    model: str,
    seed: float,
    request: gr.Request,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it by this default
) -> tuple[str, str]:
    """/generate_video: a prompt -> (status line, mp4 path). Bad input, a model that cannot load, a busy
    device: one-line errors."""
    if not (prompt or "").strip():
        raise gr.Error("the prompt is empty: type the text to turn into a video")
    ok, message = ctx.studio.t2v_status(model)
    if not ok:
        raise gr.Error(message)
    cancel = StopEvents().get("api")  # an API call cannot be cancelled from the page
    clip = _clip(ctx, prompt, "prompt", model, _seed(seed), cancel, progress, "the prompt")
    return clip_line("the prompt", clip), clip["out"]


# -- Label: the videos of A and B ------------------------------------------------------------------------


def generate_pair_videos(
    ctx: AppContext,
    stops: StopEvents,
    state: dict | None,
    model: str,
    seed: float,
    request: gr.Request,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it by this default
) -> tuple[str, Any, Any]:
    """The two responses of the pair on screen, each into a clip with the same seed: (status, video A, video B).
    A cancel or failure during B keeps A; the progress bar names the side being made."""
    if not state or "pair_id" not in state:
        raise gr.Error("no pair on screen: press 'Next pair' first")
    check_owner(state, ctx.user(request))
    texts = {"A": state.get("left_text"), "B": state.get("right_text")}
    if not all(texts.values()):
        raise gr.Error("this pair's texts are not on screen; press 'Next pair'")
    seed_value, cancel = _seed(seed), stops.get(session_key(ctx, request))
    made: dict[str, Any] = {"A": gr.skip(), "B": gr.skip()}
    lines: list[str] = []
    for side in ("A", "B"):
        what, stem = f"response {side}", f"pair{state['pair_id']}-{side}"
        try:
            clip = _clip(ctx, str(texts[side]), stem, model, seed_value, cancel, progress, what)
        except StudioError as exc:
            lines.append(failure_line(ctx, what, exc, request))
            break
        made[side] = clip["out"]
        lines.append(clip_line(what, clip))
    return "\n\n".join(lines), made["A"], made["B"]


def cleared_pair_videos() -> tuple[str, None, None]:
    """A new pair on screen: the previous pair's videos go."""
    return "", None, None


# -- layout ------------------------------------------------------------------------------------------------


def _model_row(ctx: AppContext, prefix: str) -> tuple[gr.Dropdown, gr.Markdown]:
    default = ctx.studio.default_t2v_model()
    model = gr.Dropdown(
        t2v_choices(),
        value=default,
        label="Text-to-video model",
        info="tiny-random-* are random weights: pipeline check only.",
        elem_id=f"{prefix}-t2v-model",
    )
    note = gr.Markdown(t2v_line(ctx, default), elem_id=f"{prefix}-t2v-note")
    return model, note


def _body(ctx: AppContext, prefix: str, model: gr.Dropdown) -> gr.Column:
    """The column of seed, buttons, status and players (laid out by the caller inside it), shown while the picked
    model can generate here (`t2v_body`)."""
    body = gr.Column(visible=t2v_ready(ctx, model.value), elem_id=f"{prefix}-t2v-body")
    model.change(bind(t2v_body, ctx), model, body, **_private())
    return body


def _seed_box() -> gr.Number:
    return gr.Number(value=0, precision=0, minimum=0, label="Seed (same seed: compare prompts)")


def _private() -> dict[str, Any]:
    return {"api_visibility": "private"}


def _generation(event: Any, handler: Any, ins: list, outs: list, **kw: Any) -> Any:
    """A generation event: its own concurrency group (not the text models'), progress over the videos."""
    return event(handler, ins, outs, concurrency_limit=T2V_CONCURRENCY, concurrency_id="t2v", **kw)


def candidate_videos(ctx: AppContext, prefix: str = "beautify") -> dict[str, Any]:
    """The Beautify tab's "Generate video" row (laid out where it is called); `wire_candidate_videos` connects it
    to the tab's runs."""
    with gr.Accordion("Generate video from a candidate (text-to-video)", open=True, elem_id=f"{prefix}-t2v"):
        model, note = _model_row(ctx, prefix)
        with _body(ctx, prefix, model):
            seed = _seed_box()
            with gr.Row(elem_id=f"{prefix}-t2v-buttons"):
                short = gr.Button(
                    "▶ Generate video: short prompt", size="sm", visible=False, elem_id=f"{prefix}-t2v-short"
                )
                cands = [
                    gr.Button(f"▶ Generate video #{i + 1}", size="sm", visible=False, elem_id=f"{prefix}-t2v-{i + 1}")
                    for i in range(MAX_CANDIDATES)
                ]
                cancel = gr.Button(
                    "⏹ Cancel", variant="stop", size="sm", visible=False, elem_id=f"{prefix}-t2v-cancel"
                )
            status = gr.Markdown(elem_id=f"{prefix}-t2v-status")
            with gr.Row(equal_height=True):
                latest = gr.Video(label="Latest clip", interactive=False, height=260, elem_id=f"{prefix}-t2v-latest")
                before = gr.Video(
                    label="The clip before", interactive=False, height=260, elem_id=f"{prefix}-t2v-before"
                )
        clips = gr.State([])
    parts = {"model": model, "seed": seed, "note": note, "short": short, "cands": cands, "cancel": cancel}
    parts |= {"status": status, "latest": latest, "before": before, "clips": clips, "made": []}
    _api(ctx)
    return parts


def _api(ctx: AppContext) -> None:
    """/generate_video on hidden components: (prompt, model, seed) -> (status line, mp4)."""
    ins = [gr.Textbox(visible=False), gr.Textbox(visible=False), gr.Number(visible=False, precision=0)]
    outs = [gr.Markdown(visible=False), gr.Video(visible=False)]
    button = gr.Button(visible=False)
    _generation(button.click, bind(generate_video_api, ctx), ins, outs, api_name="generate_video")


def wire_candidate_videos(ctx: AppContext, done: list[Any], state: gr.State, parts: dict[str, Any]) -> None:
    """After each run (the tab's `done` events) and on a model change: the buttons follow the candidates and
    whether the model can generate; each button generates its text's clip. Its events (one per button, after
    the clip) go in parts["made"]."""
    stops = StopEvents()
    buttons = [parts["short"], *parts["cands"]]
    refresh = bind(candidate_buttons, ctx)
    outs = [parts["note"], *buttons]
    for event in done:
        event.then(refresh, [state, parts["model"]], outs, **_private())
    parts["model"].change(refresh, [state, parts["model"]], outs, **_private())
    ins = [state, parts["model"], parts["seed"], parts["clips"]]
    videos = [parts["status"], parts["latest"], parts["before"], parts["clips"]]
    start = bind(start_video, ctx, stops)
    for key, button in zip([SHORT, *map(str, range(MAX_CANDIDATES))], buttons, strict=True):
        started = button.click(start, None, [parts["cancel"], *buttons], queue=False, **_private())
        made = _generation(started.then, bind(generate_candidate_video, ctx, stops, key), ins, videos, **_private())
        # Cancel hidden and the buttons back after a clip, a cancel or a refusal (a failure skips `.then` steps).
        idle = [parts["cancel"], *outs]
        parts["made"].append(afterwards(made, bind(candidates_idle, ctx), [state, parts["model"]], idle, **_private()))
    parts["cancel"].click(bind(cancel_video, ctx, stops), None, parts["cancel"], queue=False, **_private())


def _cancel_hidden() -> gr.Button:
    return gr.Button(visible=False, value="⏹ Cancel")


def candidates_idle(ctx: AppContext, state: dict | None, model: str | None) -> list[Any]:
    """After a generation (made, cancelled or refused): Cancel hidden, the note and the buttons as before it."""
    return [_cancel_hidden(), *candidate_buttons(ctx, state, model)]


def pair_idle(ctx: AppContext, state: dict | None, model: str | None) -> tuple[gr.Button, str, gr.Button]:
    """The Label tab's `candidates_idle`: Cancel hidden, the note and the Generate button as before."""
    return (_cancel_hidden(), *pair_button(ctx, state, model))


def pair_videos(ctx: AppContext, state: gr.State) -> dict[str, Any]:
    """The Label tab's videos of A and B, side by side (laid out where it is called), wired to its pair state."""
    stops = StopEvents()
    with gr.Accordion("Compare the videos A and B make (text-to-video)", open=False, elem_id="label-t2v"):
        model, note = _model_row(ctx, "label")
        with _body(ctx, "label", model):
            seed = _seed_box()
            with gr.Row():
                run = gr.Button("▶ Generate video of A and of B", interactive=False, elem_id="label-t2v-run", scale=3)
                cancel = gr.Button("⏹ Cancel", variant="stop", visible=False, elem_id="label-t2v-cancel", scale=1)
            status = gr.Markdown(elem_id="label-t2v-status")
            with gr.Row(equal_height=True):
                video_a = gr.Video(label="Video from A", interactive=False, height=260, elem_id="label-t2v-a")
                video_b = gr.Video(label="Video from B", interactive=False, height=260, elem_id="label-t2v-b")
    refresh = bind(pair_button, ctx)
    state.change(refresh, [state, model], [note, run], **_private())
    state.change(cleared_pair_videos, None, [status, video_a, video_b], queue=False, **_private())
    model.change(refresh, [state, model], [note, run], **_private())
    started = run.click(bind(_start_pair, ctx, stops), None, [cancel, run], queue=False, **_private())
    outs = [status, video_a, video_b]
    made = _generation(started.then, bind(generate_pair_videos, ctx, stops), [state, model, seed], outs, **_private())
    afterwards(made, bind(pair_idle, ctx), [state, model], [cancel, note, run], **_private())
    cancel.click(bind(cancel_video, ctx, stops), None, cancel, queue=False, **_private())
    return {"model": model, "run": run, "cancel": cancel, "status": status, "a": video_a, "b": video_b}


def _start_pair(ctx: AppContext, stops: StopEvents, request: gr.Request) -> tuple[gr.Button, gr.Button]:
    stops.begin(session_key(ctx, request))
    return gr.Button(visible=True, interactive=True, value="⏹ Cancel"), gr.Button(interactive=False)
