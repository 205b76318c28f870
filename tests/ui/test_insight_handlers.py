"""Sentence grounding, perturbation strength and token budgets as plain handlers (no server): what the bars
and tables show, text rendered as text, generation within a budget, one-line refusals."""

from __future__ import annotations

import html
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from engine.types import Candidate
from ui.budgets import budget_panel, fit_candidates, measure_html, stream_beautify_in_budget, token_budget
from ui.common import AppContext
from ui.grounding import ground_candidates, ground_pair, ground_text_view, grounding_html
from ui.strength import strength_view
from ui.tasks import StopEvents

BUNNY = str(Path(__file__).resolve().parents[2] / "assets" / "samples" / "bunny.mp4")
TINY = ["tiny-random-clip"]
EVIL = "A cat <img src=http://evil.test/x.png> naps. It sleeps <script>alert(1)</script> on a sofa."
LOCAL = SimpleNamespace(username=None, session_hash="tab-1")


@pytest.fixture()
def ctx(tmp_path: Path) -> AppContext:
    from annotations.db import open_db
    from engine.service import Studio
    from training.jobs import Jobs

    db_url = f"sqlite:///{tmp_path / 's.db'}"
    db = open_db(db_url)
    return AppContext(studio=Studio(), db=db, jobs=Jobs(db, db_url), work_dir=tmp_path / "work")


def grounding(relatives: list[float], flagged: bool = True) -> dict:
    sentences = [
        {"text": f"Sentence {i} <b>x</b>.", "start": 0, "end": 1, "scores": {}, "mean": 20 + r, "relative": r}
        for i, r in enumerate(relatives)
    ]
    least = min(range(len(relatives)), key=relatives.__getitem__)
    return {"sentences": sentences, "least_supported": least, "flagged": flagged, "margin": 1.0, "notes": []}


def test_bars_grow_from_the_median_and_mark_the_flagged_sentence() -> None:
    out = grounding_html(grounding([0.0, -3.0, 1.5]))
    # scale: max(2, 1, 3.0) = 3 points per half track: -3.0 -> 50 % to the left, +1.5 -> 25 % to the right
    assert "left:0.0%;width:50.0%" in out and "left:50.0%;width:25.0%" in out
    assert out.count("ground-flag") == 1 and "⚠ Sentence 1" in out
    assert "<b>x</b>" not in out and "&lt;b&gt;x&lt;/b&gt;" in out  # sentences are text, never markup
    assert "⚠" not in grounding_html(grounding([0.0, -0.5], flagged=False))


def test_viewer_grounds_each_sentence_and_escapes_it(ctx) -> None:
    view, data = ground_text_view(ctx, BUNNY, EVIL, TINY)
    assert [s["text"] for s in data["sentences"]] == [
        "A cat <img src=http://evil.test/x.png> naps.",
        "It sleeps <script>alert(1)</script> on a sofa.",
    ]
    assert "<img" not in view and "<script>" not in view and html.escape("<script>") in view
    assert "random weights" in view and "tiny-random-clip" in view
    with pytest.raises(gr.Error, match="needs a video"):
        ground_text_view(ctx, None, EVIL, TINY)
    with pytest.raises(gr.Error, match="paste a detailed prompt"):
        ground_text_view(ctx, BUNNY, "  ", TINY)
    with pytest.raises(gr.Error, match="pick at least one evaluator"):
        ground_text_view(ctx, BUNNY, EVIL, [])


def test_describe_grounds_every_candidate_best_first(ctx) -> None:
    state = {
        "video": BUNNY,
        "candidates": [
            {"text": "A rabbit. A tree.", "rank": 0, "scores": {"mean": 1.0}},
            {"text": "A car. A road.", "rank": 1, "scores": {"mean": 2.0}},
            {"text": " ", "rank": 2, "scores": {}},
        ],
    }
    out = ground_candidates(ctx, state, TINY)
    assert out.index("Candidate #2") < out.index("Candidate #1") and "Candidate #3" not in out
    assert "No evaluator chosen" in ground_candidates(ctx, state, [])


def test_label_grounds_a_video_pair_and_explains_a_text_only_one(ctx) -> None:
    state = {"pair_id": 4, "video": BUNNY, "left_text": "A rabbit sits.", "right_text": "A car drives. It is red."}
    out = ground_pair(ctx, state, TINY)
    assert "Response A" in out and "Response B" in out and "A car drives." in out
    assert "has no video" in ground_pair(ctx, {**state, "video": None}, TINY)
    assert "press Next pair" in ground_pair(ctx, {}, TINY)


def test_strength_view_rows_and_refusals(ctx) -> None:
    response = "Two boys throw a red ball to the left while a brown dog runs across the green field."
    table, note, data = strength_view(ctx, response, "Kids play ball with a dog in a field.", BUNNY, TINY, 0)
    assert list(table["change"]) == ["response", "video", "prompt"]  # the response swap once, not per task
    for _, row in table.iterrows():
        assert row["drop"] == pytest.approx(row["original"] - row["perturbed"], abs=2e-3)
    assert "drop** = original − perturbed" in note and "random weights" in note
    assert set(data) == {"task_1", "task_3"}
    with pytest.raises(gr.Error, match="strength is measured against a video"):
        strength_view(ctx, response, "Kids play.", None, TINY, 0)
    with pytest.raises(gr.Error, match="pick at least one evaluator"):
        strength_view(ctx, response, "Kids play.", BUNNY, [], 0)


def test_token_budget_highlights_the_cut_part(ctx) -> None:
    text = "A golden retriever runs along a sunlit beach at sunset. " * 8
    view, data = token_budget(ctx, text, "clip-l")
    assert data["tokens"] == 98 and data["over"] == 21 and data["exact"]
    assert "21 over: the highlighted part is cut" in view
    beyond = text[data["fits_chars"] :]
    assert "<mark class='budget-cut'" in view and html.escape(beyond) in view
    assert data["fitted"] == ("A golden retriever runs along a sunlit beach at sunset. " * 6).strip()
    assert "class='budget-cut'" not in measure_html("Fits.", {**data, "tokens": 3, "over": 0, "fits_chars": 5})
    with pytest.raises(gr.Error, match="unknown target 'sdxl'"):
        token_budget(ctx, text, "sdxl")


def test_budget_panel_follows_the_target(ctx) -> None:
    state = {"candidates": [{"text": "A dog <b>runs</b>.", "rank": 0, "scores": {}}]}
    assert "Pick a target" in budget_panel(ctx, state, "none")
    out = budget_panel(ctx, state, "cogvideox-2b")
    assert "≈ " in out and "estimate: CLIP BPE tokens x 1.15" in out and "&lt;b&gt;runs" in out


def test_fit_candidates_cuts_in_place_and_says_so(ctx) -> None:
    long = "A dog runs. " * 30
    cands = [Candidate(text=long, rank=0, model="m"), Candidate(text="A cat.", rank=1, model="m")]
    notes = fit_candidates(ctx, cands, "clip-l")
    assert cands[0].text == ("A dog runs. " * 18).strip() and cands[1].text == "A cat."
    assert notes == ["cut to the budget: #1 cut after sentence 18 (the next one would pass 77)"]


def test_beautify_within_budget_sets_max_new_tokens_and_cuts(ctx, monkeypatch) -> None:
    seen = {}

    def stream_task(task, video=None, short_prompt=None, model=None, params=None, stop=None, draw=None):
        seen["max_new_tokens"] = params.max_new_tokens
        yield ["A dog runs. " * 30]

    monkeypatch.setattr(ctx.studio, "stream_task", stream_task)
    monkeypatch.setattr(ctx.studio, "count_tokens", lambda texts, model=None, task=None: [len(texts[0].split())])
    steps = list(
        stream_beautify_in_budget(
            ctx, StopEvents(), "A dog.", "tiny-random-lm", 1, 1, 0, 128, False, "clip-l", True, LOCAL
        )
    )
    status, cards, state = steps[-1]
    _, ratio = ctx.studio.budgets.generator_tokens("clip-l", lambda t: len(t.split()))
    assert seen["max_new_tokens"] == int(75 * ratio)  # the 77-token budget less start/end, in words here
    assert state["candidates"][0]["text"] == ("A dog runs. " * 18).strip()
    assert "within CLIP-L \\(77 tokens\\): max new tokens" in status  # Markdown-escaped in the status line
    assert "cut after sentence 18" in status
