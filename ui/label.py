"""Label tab: one preference pair at a time, sides randomised, sources hidden until the vote.

Keyboard: 1 = A better, 2 = B better, 0 = tie, 9 = both bad, s = skip (ui.layout.shortcuts_head).
With the queue empty the vote buttons are off and the tab says what brings new pairs. Responses are
HighlightedText (text only, the words where A and B differ marked); the short prompt and the reveal's
model names are escaped Markdown (ui.render.md_text): one annotator's text never becomes markup for another.
A double click cannot record twice: the buttons' events run once at a time (trigger_mode "once"),
every vote names the pair it was cast on (the state, not whatever pair is on screen next),
annotations.store.record_judgement is idempotent for the same (pair, annotator, choice), and a
button vote within MIN_SECONDS_ON_PAIR of a new pair appearing is ignored (the second click of a
double click that outlived the first round trip must not judge the next pair unseen).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import gradio as gr

from ui.common import OWNER_KEY, AppContext, bind, check_owner, stage_media
from ui.grounding import label_grounding
from ui.render import DIFF_COLORS, md_text, word_diff
from ui.t2v_panel import pair_videos

CHOICES = {
    "a_better": "A is better",
    "b_better": "B is better",
    "tie": "Tie",
    "both_bad": "Both bad",
    "skip": "Skip",
}
BUTTONS = [  # (choice, key, elem_id)
    ("a_better", "1", "vote-a"),
    ("b_better", "2", "vote-b"),
    ("tie", "0", "vote-tie"),
    ("both_bad", "9", "vote-bad"),
    ("skip", "s", "vote-skip"),
]
GUIDELINES = """
**Which response is the better detailed text-to-video prompt for this input?**

- **Faithful first**: everything it says must be in the video / the short prompt. A wrong object, count,
  colour, direction or action (a *hallucination*) outweighs extra detail.
- **Then detail**: among faithful responses, prefer the one that describes subjects, actions, setting,
  lighting and camera more precisely and vividly.
- **Tie** when they are equally good; **Both bad** when neither is usable; **Skip** when you cannot judge
  (video does not play, you do not understand the prompt). Skips go back to the queue for someone else.
- Take your time: the clock is only used for statistics. You can undo your last vote.
"""
#: Button/key votes sooner than this after a pair appears are treated as the tail of a double click.
MIN_SECONDS_ON_PAIR = 0.3
#: Components a pair fills: header, video, A, B, progress, the vote buttons, state.
SHOWN_OUTPUTS = 6 + len(BUTTONS)
TASK_NAMES = {1: "Task 1 · describe the video", 2: "Task 2 · video + caption", 3: "Task 3 · beautify the prompt"}

# -- handlers -------------------------------------------------------------------------------------

#: (input header, video path or None, response A, response B, progress, state): a pair as the API gives it.
PairValues = tuple[str, str | None, list, list, str, dict]
#: The same for the page: the video as a box update, and the 5 vote buttons' updates before the state.
PairOutputs = tuple[Any, ...]
EMPTY_NEXT_STEPS = (
    "New pairs arrive when someone presses **Send to labelling queue** under a task tab's candidates, or when "
    "an admin mines pairs (Admin tab). Press **Next pair** to look again."
)


def _store() -> Any:
    from annotations import store

    return store


def progress_text(ctx: AppContext, user: str) -> str:
    done, total = _store().progress(ctx.db, user)
    return f"**{md_text(user)}**: {done} / {total} judged"


def votes_today(ctx: AppContext, user: str) -> int:
    """The caller's votes since midnight UTC (a vote changed today counts as today's)."""
    today = datetime.now(UTC).date()
    rows = _store().recent_judgements(ctx.db, 10_000, annotator=user)
    return sum(_utc(r["updated_at"]).date() == today for r in rows)


def _utc(moment: datetime | str) -> datetime:
    """The store's ISO timestamps (aware UTC; naive read as UTC) as aware datetimes."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _buttons(on: bool) -> list[gr.Button]:
    return [gr.Button(interactive=on) for _ in BUTTONS]


def empty_queue(ctx: AppContext, user: str) -> PairValues:
    """Nothing left for `user`: say so, count today's votes, say what brings new pairs."""
    today = votes_today(ctx, user)
    votes = f"{today} vote{'s' * (today != 1)} today"
    header = f"✅ **All done — {votes}.** Nothing is waiting for you.\n\n{EMPTY_NEXT_STEPS}"
    return (header, None, [], [], progress_text(ctx, user), {})


def pair_values(ctx: AppContext, request: gr.Request) -> PairValues:
    """The next pair leased to the caller as plain values (the API's /next_pair): (input, video path or None,
    response A, response B, progress, state).

    A and B come as HighlightedText segments with the words where they differ marked; user and model text
    are shown as text (ui.render)."""
    user = ctx.user(request)
    _store().get_or_create_annotator(ctx.db, user.name, user.role)
    view = _store().next_pair(ctx.db, user.name)
    if view is None:
        return empty_queue(ctx, user.name)
    state = {
        OWNER_KEY: user.name,  # a vote through this session's hash by anyone else is refused (check_owner)
        "pair_id": view.pair_id,
        "left_id": view.left_response_id,
        "right_id": view.right_response_id,
        "left_scores": view.left_scores,
        "right_scores": view.right_scores,
        # Server-side state only (gr.State): revealed after the vote, never shown before it.
        "left_source": _source_label(view.left_source, view.left_model),
        "right_source": _source_label(view.right_source, view.right_model),
        "shown_at": time.time(),
        # What the sentence grounding reads (ui.grounding): the server's video path and the two texts.
        "video": view.video,
        "left_text": view.left_text,
        "right_text": view.right_text,
    }
    video = stage_media(view.video, ctx.work_dir) if view.video else None
    header = f"**Pair #{view.pair_id}** · {TASK_NAMES.get(view.task, view.task)}"
    if view.video and video is None:
        header += " · ⚠️ its video file is missing on the server"
    if view.short_prompt and view.task != 1:  # Task 1 reads the video alone: its model never saw a caption
        header += f"\n\n> {md_text(view.short_prompt)}"
    left, right = word_diff(view.left_text, view.right_text)
    return (header, video, left, right, progress_text(ctx, user.name), state)


def for_page(values: PairValues) -> PairOutputs:
    """The page's version of `pair_values`: no video box without a video (text-only pairs, the empty
    queue), vote buttons off while there is no pair."""
    header, video, left, right, progress, state = values
    player = gr.Video(value=video, visible=video is not None)
    return (header, player, left, right, progress, *_buttons(bool(state)), state)


def next_pair(ctx: AppContext, request: gr.Request) -> PairOutputs:
    """The next pair on the page: (input, video box, A, B, progress, vote buttons, state)."""
    return for_page(pair_values(ctx, request))


def reveal_text(choice: str, state: dict, sources: dict[int, str]) -> str:
    """What the evaluators thought and where the responses came from, shown after the vote (as text: a
    model name is whatever the operator or a queued run called it)."""
    left, right = state["left_id"], state["right_id"]
    lines = [
        f"**Your vote on pair #{state['pair_id']}: {CHOICES[choice]}**",
        f"- A: {md_text(_scores(state['left_scores']))} · source: {md_text(sources.get(left, '?'))}",
        f"- B: {md_text(_scores(state['right_scores']))} · source: {md_text(sources.get(right, '?'))}",
    ]
    verdict = _evaluator_verdict(state["left_scores"], state["right_scores"])
    if verdict:
        lines.append(f"- Evaluators prefer **{verdict}**")
    return "\n".join(lines)


def _scores(scores: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(scores.items())) or "no evaluator scores"


def _evaluator_verdict(left: dict[str, float], right: dict[str, float]) -> str | None:
    common = set(left) & set(right)
    if not common:
        return None
    diff = sum(left[k] - right[k] for k in common)
    return "A" if diff > 0 else "B" if diff < 0 else "neither (level)"


def _source_label(source: str, model: str | None) -> str:
    """The reveal's label of a response's origin: "model smollm2-135m", "teacher", "hallucination"."""
    return f"{source} {model or ''}".strip()


def response_sources(state: dict) -> dict[int, str]:
    """Response id -> source label of the two sides on screen, carried in the state by next_pair."""
    return {state["left_id"]: state.get("left_source", "?"), state["right_id"]: state.get("right_source", "?")}


def record_vote(ctx: AppContext, choice: str, state: dict | None, request: gr.Request) -> str:
    """Record the vote on the pair in `state`; returns the reveal (scores and sources)."""
    if choice not in CHOICES:
        raise gr.Error(f"unknown choice {choice!r}: use one of {', '.join(CHOICES)}")
    if not state or "pair_id" not in state:
        raise gr.Error("no pair on screen: press 'Next pair' first")
    user = ctx.user(request)
    check_owner(state, user)
    seconds = max(0.0, time.time() - float(state.get("shown_at", time.time())))
    _store().record_judgement(ctx.db, int(state["pair_id"]), user.name, choice, int(state["left_id"]), seconds)
    return reveal_text(choice, state, response_sources(state))


def vote(ctx: AppContext, choice: str, state: dict | None, request: gr.Request) -> tuple:
    """Record the vote, then show the next pair and reveal the scores (the page's outputs)."""
    reveal = record_vote(ctx, choice, state, request)
    return (reveal, *next_pair(ctx, request))


def vote_api(ctx: AppContext, choice: str, state: dict | None, request: gr.Request) -> tuple:
    """/vote: `vote` with plain values (the reveal, then the next pair as /next_pair gives it)."""
    reveal = record_vote(ctx, choice, state, request)
    return (reveal, *pair_values(ctx, request))


def vote_click(ctx: AppContext, choice: str, state: dict | None, request: gr.Request) -> tuple:
    """A vote button or key. A click that lands within MIN_SECONDS_ON_PAIR of a pair appearing is the second
    half of a double click on the previous pair, not a judgement of this one: it is ignored."""
    shown_at = float((state or {}).get("shown_at", 0.0))
    if state and time.time() - shown_at < MIN_SECONDS_ON_PAIR:
        gr.Warning("Vote ignored: this pair only just appeared (double click?). Read it, then vote.")
        return tuple(gr.skip() for _ in range(1 + SHOWN_OUTPUTS))
    return vote(ctx, choice, state, request)


def undo_last(ctx: AppContext, request: gr.Request) -> str:
    """Delete the caller's last vote (its pair comes back first); returns the message."""
    pair_id = _store().undo_last(ctx.db, ctx.user(request).name)
    return f"↩️ Undid your vote on pair #{pair_id}." if pair_id is not None else "Nothing to undo."


def undo(ctx: AppContext, request: gr.Request) -> tuple:
    """Undo on the page: the message, then the pair back on screen."""
    return (undo_last(ctx, request), *next_pair(ctx, request))


def undo_api(ctx: AppContext, request: gr.Request) -> tuple:
    """/undo_vote: `undo` with plain values."""
    return (undo_last(ctx, request), *pair_values(ctx, request))


# -- layout ---------------------------------------------------------------------------------------


def _legend() -> str:
    keys = " · ".join(f"<kbd>{key}</kbd> {CHOICES[choice]}" for choice, key, _ in BUTTONS)
    return f"Keyboard: {keys} (when no text box has focus)"


def _response_box(label: str, elem_id: str) -> gr.HighlightedText:
    """A response as text, the words where A and B differ highlighted (no category tags, no legend)."""
    return gr.HighlightedText(
        label=label,
        color_map=DIFF_COLORS,
        show_legend=False,
        show_inline_category=False,
        combine_adjacent=True,
        interactive=False,
        elem_id=elem_id,
        elem_classes=["label-response"],
    )


def build_label_tab(ctx: AppContext) -> gr.Tab:
    with gr.Tab("Label", id="label") as tab:
        with gr.Accordion("Guidelines", open=False):
            gr.Markdown(GUIDELINES)
        with gr.Row():
            progress = gr.Markdown(elem_id="label-progress")
            next_btn = gr.Button("Next pair", size="sm", scale=0)
            undo_btn = gr.Button("Undo last vote", size="sm", scale=0, elem_id="label-undo")
        prompt = gr.Markdown(elem_id="label-input")
        video = gr.Video(label="Input video", interactive=False, height=260, visible=False, elem_id="label-video")
        with gr.Row(equal_height=True):
            left = _response_box("Response A", "label-left")
            right = _response_box("Response B", "label-right")
        gr.Markdown("Highlighted: the words where A and B differ.", elem_classes=["shortcut-legend"])
        state = gr.State({})
        with gr.Row():
            buttons = {c: gr.Button(f"{CHOICES[c]} [{k}]", elem_id=e, variant="secondary") for c, k, e in BUTTONS}
        gr.HTML(f"<div class='shortcut-legend' id='label-legend'>{_legend()}</div>")
        reveal = gr.Markdown(elem_id="label-reveal")
        label_grounding(ctx, state)
        pair_videos(ctx, state)  # the videos A and B make, side by side (ui.t2v_panel)
        api_choice = gr.Textbox(visible=False, label="choice")
        api_vote, api_next, api_undo = (gr.Button(visible=False) for _ in range(3))
        shown = [prompt, video, left, right, progress, *buttons.values(), state]
        plain = [prompt, video, left, right, progress, state]

        # The API names sit on hidden buttons that answer plain values (a video path, no button updates).
        api_next.click(bind(pair_values, ctx), None, plain, api_name="next_pair", concurrency_limit=8)
        voted = [reveal, *plain]
        api_vote.click(bind(vote_api, ctx), [api_choice, state], voted, api_name="vote", concurrency_limit=8)
        api_undo.click(bind(undo_api, ctx), None, voted, api_name="undo_vote")
        next_btn.click(bind(next_pair, ctx), None, shown, api_visibility="private", concurrency_limit=8)
        tab.select(bind(next_pair, ctx), None, shown, api_visibility="private")
        undo_btn.click(bind(undo, ctx), None, [reveal, *shown], api_visibility="private")
        for choice, button in buttons.items():
            button.click(
                bind(vote_click, ctx, choice),
                [state],
                [reveal, *shown],
                api_name=f"vote_{choice}",
                api_visibility="private",
                trigger_mode="once",
                concurrency_limit=8,
            )
    return tab
