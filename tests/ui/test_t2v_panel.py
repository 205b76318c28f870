"""The "Generate video" handlers (ui.t2v_panel) as plain functions, on the tiny random CogVideoX pipeline: the
off state and its one line, a clip per candidate into a fresh folder with progress, the newest two side by side,
cancel, busy, a prompt over the encoder's limit, the Label tab's two videos, and the /generate_video handler."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from engine.t2v.presets import RANDOM_WEIGHTS_LABEL
from ui.common import AppContext
from ui.t2v_panel import (
    MAX_CANDIDATES,
    cancel_video,
    candidate_buttons,
    cleared_pair_videos,
    generate_candidate_video,
    generate_pair_videos,
    generate_video_api,
    pair_button,
    start_video,
    t2v_body,
    t2v_line,
)
from ui.tasks import StopEvents, session_key

TINY = "tiny-random-cogvideox"
LOCAL = SimpleNamespace(username=None, session_hash="tab-1")
REAL_PRESET_VARS = ("COGVIDEOX_2B", "COGVIDEOX_5B", "WAN2_1_T2V_1_3B", "EASYANIMATE_V5_1_7B")


@pytest.fixture(autouse=True)
def no_real_weights(monkeypatch, tmp_path_factory):
    """No real T2V preset can load: an empty Hugging Face cache, no folder variables, no downloads."""
    for name in REAL_PRESET_VARS:
        monkeypatch.delenv(f"VIDPROMPTER_T2V_{name}", raising=False)
    monkeypatch.delenv("VIDPROMPTER_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf")))


@pytest.fixture(scope="module")
def studio():
    from engine.service import Studio, StudioConfig

    return Studio(StudioConfig(device="cpu", model_roots=()))  # the app's: presets only


@pytest.fixture()
def ctx(studio, tmp_path: Path) -> AppContext:
    from annotations.db import open_db
    from training.jobs import Jobs

    db_url = f"sqlite:///{tmp_path / 's.db'}"
    db = open_db(db_url)
    return AppContext(studio=studio, db=db, jobs=Jobs(db, db_url), work_dir=tmp_path / "work")


def beautify_state(*texts: str, prompt: str = "A dog runs on the beach.") -> dict:
    cands = [{"text": t, "rank": i, "scores": {}, "model": "m", "random_weights": False} for i, t in enumerate(texts)]
    return {"task": 3, "video": None, "prompt": prompt, "candidates": cands}


class Progress:
    """A gr.Progress stand-in recording (progress, desc); `on_step(done, total, desc)` may act on a step."""

    def __init__(self, on_step=None) -> None:
        self.calls: list[tuple] = []
        self.on_step = on_step

    def __call__(self, progress, desc=None, total=None, unit="steps"):
        self.calls.append((progress, desc))
        if isinstance(progress, tuple) and self.on_step:
            self.on_step(*progress, desc)


def clips_in(ctx: AppContext) -> list[Path]:
    return sorted((ctx.work_dir / "viewer" / "t2v").rglob("*.mp4"))


# -- off state ------------------------------------------------------------------------------------------


def test_buttons_off_with_one_line_naming_the_preset_and_the_variable(ctx):
    note, short, *cands = candidate_buttons(ctx, beautify_state("one", "two"), "cogvideox-2b")
    assert note.startswith("⛔ Generate video is off: **cogvideox-2b** has no weights here")
    assert "set `VIDPROMPTER_T2V_COGVIDEOX_2B`" in note and "\n" not in note
    assert short.visible is True and short.interactive is False
    assert [b.visible for b in cands] == [True, True] + [False] * (MAX_CANDIDATES - 2)
    assert not any(b.interactive for b in cands)
    assert ctx.studio.default_t2v_model() == "cogvideox-2b"  # nothing real is here: the default says what to set


def test_tiny_preset_turns_them_on_labelled_random(ctx):
    note, short, first, second, *_ = candidate_buttons(ctx, beautify_state("one", " "), TINY)
    assert RANDOM_WEIGHTS_LABEL in note and note.startswith("⚠️")
    assert short.interactive and first.interactive and first.visible
    assert second.visible is False  # an empty candidate has nothing to turn into a video
    assert "Pick a text-to-video model" in t2v_line(ctx, None)
    assert "pick a preset" in t2v_line(ctx, "/etc")  # the app names presets only


def test_without_weights_the_panel_is_one_line_and_players_come_with_a_model(ctx):
    """Issue 25 item 5: no T2V weights here, so no empty players and grey buttons: the note alone."""
    assert t2v_body(ctx, "cogvideox-2b").visible is False
    assert t2v_body(ctx, TINY).visible is True  # a model that loads: buttons, status and players


# -- a clip per candidate -------------------------------------------------------------------------------


def test_a_candidate_becomes_a_clip_with_progress_in_a_fresh_folder(ctx):
    stops, progress = StopEvents(), Progress()
    state = beautify_state("a dog runs", "a dog runs fast on the beach")
    status, latest, before, shown = generate_candidate_video(ctx, stops, "1", state, TINY, 3, [], LOCAL, progress)
    assert status.startswith("✅ **candidate #2** → 9 frames, 32×32 at 8 fps (seed 3, 4 steps)")
    assert status.endswith(RANDOM_WEIGHTS_LABEL)
    assert [p for p, _ in progress.calls] == [0, (1, 4), (2, 4), (3, 4), (4, 4)]
    path = Path(latest["value"])
    assert path.is_file() and path.name == "candidate-2-s3.mp4"
    assert path.parent.parent == ctx.work_dir / "viewer" / "t2v"  # swept with the viewer's outputs
    assert latest["label"] == f"Latest: candidate #2 · {TINY} · seed 3" and before["value"] is None
    # The short prompt next: it is the latest, candidate #2 moves beside it; the same candidate again is a new file.
    status, latest, before, shown = generate_candidate_video(
        ctx, stops, "short", state, TINY, 3, shown, LOCAL, Progress()
    )
    assert "the short prompt" in status and "the short prompt" in latest["label"]
    assert before["label"].startswith("Before: candidate #2") and before["value"] == str(path)
    generate_candidate_video(ctx, stops, "1", state, TINY, 3, shown, LOCAL, Progress())
    files = clips_in(ctx)
    assert len(files) == 3 and len({f.parent for f in files}) == 3
    assert files[0].read_bytes() != b"" and {f.name for f in files} == {"candidate-2-s3.mp4", "short-s3.mp4"}


def test_cancel_mid_generation_writes_nothing_and_says_so(ctx):
    stops = StopEvents()
    key = session_key(ctx, LOCAL)
    start_video(ctx, stops, LOCAL)
    progress = Progress(on_step=lambda done, total, desc: done == 2 and cancel_video(ctx, stops, LOCAL))
    out = generate_candidate_video(
        ctx, stops, "0", beautify_state("a cat sleeps"), TINY, 0, [{"x": 1}], LOCAL, progress
    )
    status, latest, before, shown = out
    assert status == "⏹ candidate #1: generation cancelled after 2 of 4 steps; no clip written."
    assert latest == gr.skip() and before == gr.skip() and shown == [{"x": 1}]
    assert clips_in(ctx) == [] and stops.get(key).is_set()
    assert start_video(ctx, stops, LOCAL)[0].visible and not stops.get(key).is_set()  # a new press: a fresh event


def test_busy_device_is_one_line_at_once(ctx):
    from engine.t2v.backend import device_lock

    ctx.studio.t2v_pipeline(TINY)
    with device_lock("cpu"):  # another request is generating
        status, *_ = generate_candidate_video(ctx, StopEvents(), "0", beautify_state("a cat"), TINY, 0, [], LOCAL)
    assert status.startswith("⏳ busy: another video is being generated on cpu") and "\n" not in status
    assert clips_in(ctx) == []


def test_prompt_over_the_encoder_limit_is_one_line(ctx):
    status, *_ = generate_candidate_video(ctx, StopEvents(), "0", beautify_state("dog " * 300), TINY, 0, [], LOCAL)
    assert status.startswith("⛔ candidate #1: the prompt is ") and "reads at most 226" in status
    with pytest.raises(gr.Error, match="that candidate is gone"):
        generate_candidate_video(ctx, StopEvents(), "5", beautify_state("a cat"), TINY, 0, [], LOCAL)
    with pytest.raises(gr.Error, match="the seed must be in"):
        generate_candidate_video(ctx, StopEvents(), "0", beautify_state("a cat"), TINY, -1, [], LOCAL)


# -- Label: A and B side by side ------------------------------------------------------------------------


def pair_state(owner: str = "local") -> dict:
    return {"owner": owner, "pair_id": 7, "left_text": "a red car drives", "right_text": "a blue boat sails"}


def test_pair_videos_same_seed_a_then_b(ctx):
    progress = Progress()
    status, a, b = generate_pair_videos(ctx, StopEvents(), pair_state(), TINY, 5, LOCAL, progress)
    assert Path(a).name == "pair7-A-s5.mp4" and Path(b).name == "pair7-B-s5.mp4" and Path(b).is_file()
    first, second = status.split("\n\n")
    assert first.startswith("✅ **response A** →") and second.startswith("✅ **response B** →")
    assert "(seed 5, 4 steps)" in first and "(seed 5, 4 steps)" in second
    assert [d for _, d in progress.calls][:2] == [f"response A: loading {TINY}…", "response A: denoising"]
    assert progress.calls[-1] == ((4, 4), "response B: denoising")


def test_cancel_during_b_keeps_a(ctx):
    stops = StopEvents()

    def on_step(done: int, total: int, desc: str) -> None:
        if desc.startswith("response B") and done == 1:
            cancel_video(ctx, stops, LOCAL)

    status, a, b = generate_pair_videos(ctx, stops, pair_state(), TINY, 0, LOCAL, Progress(on_step))
    assert Path(a).is_file() and b == gr.skip()
    assert status.split("\n\n")[1] == "⏹ response B: generation cancelled after 1 of 4 steps; no clip written."


def test_pair_videos_refuse_another_users_screen_and_an_empty_one(ctx):
    with pytest.raises(gr.Error, match="belongs to another signed-in session"):
        generate_pair_videos(ctx, StopEvents(), pair_state("ann"), TINY, 0, LOCAL, Progress())
    with pytest.raises(gr.Error, match="no pair on screen"):
        generate_pair_videos(ctx, StopEvents(), {}, TINY, 0, LOCAL, Progress())
    note, run = pair_button(ctx, {}, TINY)
    assert run.interactive is False and RANDOM_WEIGHTS_LABEL in note
    note, run = pair_button(ctx, pair_state(), "cogvideox-2b")
    assert run.interactive is False and "VIDPROMPTER_T2V_COGVIDEOX_2B" in note
    assert pair_button(ctx, pair_state(), TINY)[1].interactive is True
    assert cleared_pair_videos() == ("", None, None)


# -- /generate_video ----------------------------------------------------------------------------------------


def test_api_handler(ctx):
    status, path = generate_video_api(ctx, "a bird flies over the sea", TINY, 1, LOCAL, Progress())
    assert Path(path).is_file() and Path(path).name == "prompt-s1.mp4" and RANDOM_WEIGHTS_LABEL in status
    with pytest.raises(gr.Error, match="the prompt is empty"):
        generate_video_api(ctx, "  ", TINY, 0, LOCAL, Progress())
    with pytest.raises(gr.Error, match="set VIDPROMPTER_T2V_COGVIDEOX_2B="):
        generate_video_api(ctx, "a cat", "cogvideox-2b", 0, LOCAL, Progress())


# -- the token budget and the generator agree (issue 26 item 7) --------------------------------------------


def test_budget_panel_counts_with_the_encoder_that_will_read_the_text(ctx):
    """The budget said "~108 / 226 fits" where Generate video refused the same text as 296 tokens: an estimate
    now says it is one and by how much it may be off, and once the chosen generator is loaded its own text
    encoder's count is shown beside it, the count Generate video goes by."""
    from dataclasses import replace

    from engine.service import Studio, StudioConfig
    from ui.budgets import budget_panel

    ctx = replace(ctx, studio=Studio(StudioConfig(device="cpu", model_roots=())))  # no pipeline loaded yet
    text = "A red kite flies over a windy beach while two children run after it. " * 3
    state = beautify_state(text)
    before = budget_panel(ctx, state, "cogvideox-2b", TINY)
    assert "estimate" in before and "±15 %" in before  # T5's tokenizer is not here: said, with its error band
    assert "counts with its own text encoder once it is loaded" in before
    pipeline = ctx.studio.t2v_pipeline(TINY)
    exact = pipeline.count_tokens(text)
    after = budget_panel(ctx, state, "cogvideox-2b", TINY)
    assert f"Generate video ({TINY}) reads {exact} / {pipeline.max_tokens} tokens" in after
    assert "Generate video" not in budget_panel(ctx, state, "cogvideox-2b", "cogvideox-2b")  # cannot load here
