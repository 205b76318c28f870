"""The labelling queue of the task tabs: which candidates of a run a queue press sends (distinct, not
degenerate), the hint beside the button, and `send_to_queue`, which stores the input, its candidates and their
scores and queues best-vs-each-other pairs (annotations.store). Split out of `ui.tasks` (its run handlers)."""

from __future__ import annotations

import shutil
from pathlib import Path

import gradio as gr

from ui.common import RANDOM_WEIGHTS_LABEL, AppContext
from ui.tasks import best_first

QUEUE_NEEDS_TWO = (
    "A labelling pair needs two different candidates. Set **Candidates** to 2 or more under Generation settings "
    "(with temperature > 0, or with as many beams) and run again."
)


def distinct_candidates(state: dict | None) -> list[dict]:
    """The state's non-empty candidates, best first, one per text (sampling can repeat a text)."""
    seen: dict[str, dict] = {}
    for cand in sorted((state or {}).get("candidates") or [], key=lambda c: best_first(c["scores"], c["rank"])):
        if cand["text"].strip():
            seen.setdefault(cand["text"].strip(), cand)
    return list(seen.values())


def degenerate_reason(cand: dict, prompt: str | None) -> str | None:
    """Why a candidate is not fit to label (engine.text_quality.degenerate), or None."""
    from engine.text_quality import degenerate, read_text

    return degenerate(read_text(cand["text"], prompt))


def queueable(state: dict | None, include_flagged: bool = False) -> tuple[list[dict], list[str]]:
    """(the candidates a queue press sends, best first; why each left-out one was left out). Degenerate
    candidates stay out unless `include_flagged` (a person sending them on purpose)."""
    prompt = (state or {}).get("prompt")
    keep, left_out = [], []
    for cand in distinct_candidates(state):
        why = None if include_flagged else degenerate_reason(cand, prompt)
        (left_out.append(why) if why else keep.append(cand))
    return keep, left_out


def _left_out_line(left_out: list[str]) -> str:
    counts = {w: left_out.count(w) for w in dict.fromkeys(left_out)}
    return f"{len(left_out)} left out as degenerate (" + ", ".join(counts) + ")"


def queue_hint(state: dict | None) -> tuple[gr.Button, str]:
    """The queue button and the line beside it after a run: off, with what to do, below two candidates."""
    keep, left_out = queueable(state)
    dropped = [x for x in [(state or {}).get("dropped"), _left_out_line(left_out) if left_out else ""] if x]
    also = f" ({'; '.join(dropped)})" if dropped else ""
    if len(keep) >= 2:
        return gr.Button(interactive=True), (
            f"{len(keep)} different candidates: the best is paired with each other one{also}."
        )
    if not state:
        return gr.Button(interactive=False), ""
    flagged = len(distinct_candidates(state)) >= 2 and left_out
    return gr.Button(interactive=bool(flagged)), (
        f"{QUEUE_NEEDS_TWO}{also}" + (" Tick **queue flagged candidates too** to send them anyway." if flagged else "")
    )


def send_to_queue(
    ctx: AppContext, state: dict | None, include_flagged: bool = False, request: gr.Request | None = None
) -> str:
    """Store the input and its candidates and queue best-vs-each-other pairs for human labelling.

    Degenerate candidates (fragments, repeated sentences, junk runs, instruction copies) stay out unless
    `include_flagged`: then they go in and the message warns. Idempotent: the same input and candidates queued
    again add nothing (annotations.pairs.add_pair), and the message says so. Fewer than two different
    candidates: a message on what to do, no error."""
    from annotations import store
    from annotations.pairs import find_pair

    user = ctx.user(request)
    cands, left_out = queueable(state, include_flagged)
    flagged = [c for c in cands if include_flagged and degenerate_reason(c, (state or {}).get("prompt"))]
    if len(cands) < 2:
        why = f" ({_left_out_line(left_out)})" if left_out else ""
        return f"ℹ️ {QUEUE_NEEDS_TWO}{why}"
    assert state is not None
    task, prompt = int(state["task"]), state.get("prompt")
    video, video_hash = _persist_video(ctx, state.get("video"))
    sample_id = store.upsert_sample(ctx.db, video, prompt, video_hash=video_hash)
    ids = list(dict.fromkeys(_store_candidate(ctx, sample_id, task, c, user.name) for c in cands))
    new = 0
    for other in ids[1:]:
        new += find_pair(ctx.db, sample_id, task, ids[0], other, origin="human_queue") is None
        store.add_pair(ctx.db, sample_id, task, ids[0], other, origin="human_queue", meta={"queued_by": user.name})
    warning = f" ⚠️ {RANDOM_WEIGHTS_LABEL}: these pairs only check the pipeline." if cands[0]["random_weights"] else ""
    if flagged:
        warning += f" ⚠️ {len(flagged)} flagged as degenerate went in on purpose: annotators will see them."
    elif left_out:
        warning += f" {_left_out_line(left_out)}: not queued."
    where = f"(sample #{sample_id}, task {task})"
    if not new:
        return f"Already queued: these {len(ids) - 1} pair(s) are in the labelling queue {where}; nothing added."
    return f"Queued {new} pair(s) for labelling {where}. Open the **Label** tab to judge them.{warning}"


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
