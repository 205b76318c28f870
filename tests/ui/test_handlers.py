"""Handlers as plain functions (no server): labelling idempotency, highlighting, overrides, staging."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from tests.app_server import SAMPLES, seed_pairs
from ui.admin import parse_overrides
from ui.common import AppContext, bind, stage_media
from ui.label import next_pair, undo, vote, vote_click
from ui.viewer import highlight_segments

LOCAL = SimpleNamespace(username=None)


@pytest.fixture()
def ctx(tmp_path: Path) -> AppContext:
    from annotations.db import open_db
    from engine.service import Studio
    from training.jobs import Jobs

    db_url = f"sqlite:///{tmp_path / 's.db'}"
    seed_pairs(db_url, 3)
    db = open_db(db_url)
    return AppContext(studio=Studio(), db=db, jobs=Jobs(db, db_url), work_dir=tmp_path / "work")


def _count(ctx: AppContext) -> int:
    from annotations.store import recent_judgements

    return len(recent_judgements(ctx.db, 100))


def test_double_click_records_once(ctx: AppContext) -> None:
    *_, state = next_pair(ctx, LOCAL)
    first = vote(ctx, "a_better", dict(state), LOCAL)
    second = vote(ctx, "a_better", dict(state), LOCAL)  # the same click delivered twice: same pair id
    assert _count(ctx) == 1
    assert first[-1]["pair_id"] != state["pair_id"]  # the next pair is on screen after the vote
    assert second[0] == first[0]


def test_button_vote_right_after_a_new_pair_is_ignored(ctx: AppContext) -> None:
    *_, state = next_pair(ctx, LOCAL)
    out = vote_click(ctx, "a_better", state, LOCAL)  # shown_at is "now": the tail of a double click
    assert _count(ctx) == 0 and all(isinstance(o, type(gr.skip())) for o in out)
    state["shown_at"] -= 5
    vote_click(ctx, "a_better", state, LOCAL)
    assert _count(ctx) == 1


def test_undo_brings_the_pair_back(ctx: AppContext) -> None:
    *_, state = next_pair(ctx, LOCAL)
    vote(ctx, "b_better", state, LOCAL)
    message, *shown = undo(ctx, LOCAL)
    assert f"pair #{state['pair_id']}" in message
    assert shown[-1]["pair_id"] == state["pair_id"] and _count(ctx) == 0
    assert "0 / 3" in shown[4]


def test_queue_empty_and_progress(ctx: AppContext) -> None:
    for _ in range(3):
        *_, state = next_pair(ctx, LOCAL)
        vote(ctx, "skip", state, LOCAL)
    prompt, video, left, right, progress, *buttons, state = next_pair(ctx, LOCAL)
    assert "All done — 3 votes today." in prompt and state == {} and "3 / 3" in progress
    assert video.visible is False and left == right == []
    assert [b.interactive for b in buttons] == [False] * 5  # nothing to vote on: the buttons are off


def test_vote_refuses_bad_choice_and_missing_pair(ctx: AppContext) -> None:
    with pytest.raises(gr.Error, match="unknown choice"):
        vote(ctx, "drop", {"pair_id": 1}, LOCAL)
    with pytest.raises(gr.Error, match="no pair on screen"):
        vote(ctx, "tie", {}, LOCAL)


def test_highlight_segments_rebuild_both_sides() -> None:
    text = "Two boys throw a white ball."
    edits = [
        {"start": 4, "end": 8, "original": "boys", "replacement": "girls", "category": "noun"},
        {"start": 17, "end": 22, "original": "white", "replacement": "blue", "category": "color"},
    ]
    original = highlight_segments(text, edits, "original")
    swapped = highlight_segments(text, edits, "hallucinated")
    assert "".join(t for t, _ in original) == text
    assert "".join(t for t, _ in swapped) == "Two girls throw a blue ball."
    assert [(t, c) for t, c in swapped if c] == [("girls", "noun"), ("blue", "color")]


def test_parse_overrides() -> None:
    assert parse_overrides("# comment\noptim.max_steps=2\n\n loss.beta = 0.2 ") == [
        "optim.max_steps=2",
        "loss.beta = 0.2",
    ]
    with pytest.raises(gr.Error, match="key=value"):
        parse_overrides("max_steps 2")


def test_stage_media_copies_outside_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    staged = stage_media(SAMPLES / "bunny.mp4", tmp_path / "work")  # the repo is outside cwd and /tmp
    assert staged is not None and Path(staged).read_bytes() == (SAMPLES / "bunny.mp4").read_bytes()
    assert stage_media(tmp_path / "missing.mp4", tmp_path / "work") is None
    assert stage_media(None, tmp_path / "work") is None


def test_bind_keeps_request_hint() -> None:
    from gradio import utils

    def handler(ctx: AppContext, choice: str, state: dict, request: gr.Request) -> str:
        return f"{ctx}:{choice}:{state}:{request}"

    bound = bind(handler, "ctx", "tie")
    assert list(utils.get_type_hints(bound)) == ["state", "request", "return"]
    assert bound({}, "r") == "ctx:tie:{}:r"


def test_send_to_queue_stores_pairs_for_humans(ctx: AppContext) -> None:
    from dataclasses import asdict

    from annotations.stats import compute_stats
    from engine.types import Candidate
    from ui.task_queue import send_to_queue
    from ui.tasks import generation_state

    cands = [
        Candidate(f"A rabbit, version {i}.", i, "seed-model", scores={"tiny-random-clip": 10.0 + i}) for i in range(3)
    ]
    state = generation_state(1, str(SAMPLES / "bunny.mp4"), None, cands)
    before = compute_stats(ctx.db)["counts"]["pairs_by_origin"].get("human_queue", 0)
    message = send_to_queue(ctx, state, request=LOCAL)
    assert "Queued 2 pair(s)" in message
    assert compute_stats(ctx.db)["counts"]["pairs_by_origin"]["human_queue"] == before + 2
    assert list(ctx.upload_dir.glob("*.mp4"))  # the upload outlives Gradio's cache
    one = send_to_queue(ctx, {**state, "candidates": [asdict(cands[0])]}, request=LOCAL)
    assert "needs two different candidates" in one and "Candidates" in one  # says what to do; no error


def test_send_to_queue_keeps_a_text_only_sample_without_a_video(ctx: AppContext) -> None:
    from annotations.store import list_samples
    from engine.types import Candidate
    from ui.task_queue import send_to_queue
    from ui.tasks import generation_state

    cands = [Candidate(f"A cat naps on a sofa, take {i}.", i, "seed-model") for i in range(2)]
    message = send_to_queue(ctx, generation_state(3, None, "a cat naps", cands), request=LOCAL)
    assert "Queued 1 pair(s)" in message
    [sample] = [s for s in list_samples(ctx.db, None) if s.short_prompt == "a cat naps"]
    assert sample.video is None  # not "" (which became "<cwd>" in exports and broke training)
    assert not ctx.upload_dir.exists() or not any(ctx.upload_dir.iterdir())


def test_scoring_notes_one_line_per_unusable_evaluator(ctx: AppContext, tmp_path: Path, monkeypatch) -> None:
    from engine.evaluators.registry import get_preset
    from engine.evaluators.tiny import ensure_tiny_evaluator
    from engine.types import Candidate
    from ui.tasks import candidate_frame, score_with_evaluators

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv(get_preset("long-clip-l").env_var, raising=False)
    clip = get_preset("tiny-random-clip")
    monkeypatch.setenv(clip.env_var, str(ensure_tiny_evaluator(clip.name, root=tmp_path / "ev")))
    cands = [Candidate(text, i, "m") for i, text in enumerate(["a rabbit in a meadow", "", "a red car"])]
    notes = score_with_evaluators(ctx, str(SAMPLES / "bunny.mp4"), cands, ["long-clip-l", clip.name])
    assert notes[0] == "1 empty candidate(s) not scored"
    assert len([n for n in notes if "not used" in n]) == 1 and notes[1].startswith("long-clip-l not used: ")
    assert notes[-1] == "evaluator scores: random weights — pipeline check only"
    scored = [c for c in cands if c.text]
    for cand in scored:  # one member used: the mean is its score
        assert set(cand.scores) == {clip.name, "mean"} and cand.scores["mean"] == cand.scores[clip.name]
    assert cands[1].scores == {}
    best = max(scored, key=lambda c: c.scores["mean"])
    assert candidate_frame(cands)["candidate"].iloc[0] == best.text


def test_judge_scores_candidates_in_one_call(ctx: AppContext) -> None:
    from dataclasses import replace

    from engine.service import Studio, StudioConfig
    from engine.types import Candidate
    from tests.engine.conftest import ScriptedJudge
    from ui.tasks import score_with_judge

    judge = ScriptedJudge(lambda prompts: ["Evaluation evidence: ok. Score: 8", "no score"][: len(prompts)])
    judged = replace(ctx, studio=Studio(StudioConfig(judge_model="judge"), backends={"judge": judge}))
    cands = [Candidate("A cat naps.", 0, "m"), Candidate("A cat sleeps.", 1, "m"), Candidate("  ", 2, "m")]
    assert score_with_judge(judged, cands) == [
        "1 empty candidate(s) not judged",
        "⚠️ judge failed on 1 of 2: no 0-10 score in its reply",  # for the status line, not only the table
    ]
    assert len(judge.prompts) == 2
    assert cands[0].scores == {"judge": 8.0} and cands[1].scores == {} and "judge reply unparsed" in cands[1].notes


def test_candidates_stay_unscored_with_one_line_when_no_evaluator_can_load(
    ctx: AppContext, tmp_path: Path, monkeypatch
) -> None:
    """Issue 26 item 1: the default evaluators without weights (every one left out) used to crash the Describe
    tabs with "zip() argument 2 is shorter than argument 1"; the candidates show, unscored, with one line why."""
    from engine.evaluators.registry import get_preset
    from engine.types import Candidate
    from ui.tasks import candidate_frame, score_with_evaluators

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    names = list(ctx.studio.config.evaluators)
    for name in names:
        monkeypatch.delenv(get_preset(name).env_var, raising=False)
    cands = [Candidate("a rabbit in a meadow", 0, "m"), Candidate("a red car", 1, "m")]
    notes = score_with_evaluators(ctx, str(SAMPLES / "bunny.mp4"), cands, names)
    unscored = [n for n in notes if n.startswith("candidates not scored")]
    assert len(unscored) == 1 and "none of the chosen evaluators can load here" in unscored[0]
    assert all(c.scores == {} for c in cands)
    assert candidate_frame(cands)["candidate"].tolist() == ["a rabbit in a meadow", "a red car"]  # beam order


def test_a_task1_pair_shows_no_caption_the_model_never_saw(ctx: AppContext) -> None:
    """Issue 26 item 8: Task 1 reads the video alone, so its pair shows no short prompt; Task 3's shows it."""
    from annotations import store

    header, *_ = next_pair(ctx, LOCAL)
    assert "Task 1" in header and "A rabbit in a meadow" not in header  # seed_pairs' Task-1 samples have one
    sample = store.upsert_sample(ctx.db, None, "A kite over a beach.")
    a, b = (store.add_response(ctx.db, sample, 3, f"A kite {w} over a beach.", "model") for w in ("dips", "soars"))
    store.add_pair(ctx.db, sample, 3, a, b, origin="human_queue")
    for _ in range(4):  # skip the Task-1 pairs to the Task-3 one
        header, *shown = next_pair(ctx, LOCAL)
        if "Task 3" in header:
            break
        vote(ctx, "skip", shown[-1], LOCAL)
    assert "Task 3" in header and "A kite over a beach." in header
