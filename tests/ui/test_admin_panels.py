"""Admin tab handlers as plain functions: curves with integer steps and whole legend names, the history when
the tab opens, mining from the tab (admin only, plain-words result), and a loop report folder's view."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from annotations.db import open_db
from annotations.store import add_run_metrics, create_run, update_run
from training.jobs import Jobs
from ui.admin import curve_figure, history_frame, open_tab
from ui.common import AppContext, bind
from ui.loop_panel import mine_pairs, mining_summary, report_folders, show_report

LOCAL = SimpleNamespace(username=None)


@pytest.fixture()
def ctx(tmp_path: Path) -> AppContext:
    db_url = f"sqlite:///{tmp_path / 's.db'}"
    db = open_db(db_url)
    return AppContext(studio=None, db=db, jobs=Jobs(db, db_url), work_dir=tmp_path / "work")


def test_a_two_step_run_has_integer_ticks_and_whole_legend_names() -> None:
    rows = [
        {"step": step, "name": name, "value": value}
        for step in (1, 2)
        for name, value in (
            ("loss", 0.7 / step),
            ("response_hallucination/loss", 0.6),
            ("task_hallucination/loss", 0.5),
        )
    ]
    fig = curve_figure(rows, "loss")
    ax = fig.axes[0]
    ax.figure.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)  # never 1.5
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["total", "response_hallucination", "task_hallucination"]
    assert isinstance(curve_figure([], "loss"), type(gr.skip()))


def _font_fds() -> int:
    """Open descriptors of this process on font files (Linux /proc)."""
    fd_dir = Path("/proc/self/fd")
    targets = []
    for fd in fd_dir.iterdir():
        try:
            targets.append(str(fd.readlink()))
        except OSError:  # closed while listing
            continue
    return sum(t.endswith((".ttf", ".otf")) for t in targets)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_curves_drawn_on_many_threads_keep_font_files_flat() -> None:
    """The soak (bench/bench_soak.py) saw the app's font descriptors grow 16 -> 68: matplotlib caches one open
    font per Gradio worker thread (64 entries). Each curve now starts from an empty cache."""
    import io
    import threading

    rows = [{"step": s, "name": "loss", "value": 1.0 / s} for s in (1, 2, 3)]

    def draw() -> None:
        curve_figure(rows, "loss").savefig(io.BytesIO(), format="png")  # what Gradio's Plot does with it

    draw()
    before = _font_fds()
    for _ in range(12):  # Gradio hands each event to some thread of its pool
        worker = threading.Thread(target=draw)
        worker.start()
        worker.join()
    import gc

    gc.collect()
    assert _font_fds() <= max(before, 2), (before, _font_fds())


def test_opening_the_tab_shows_history_and_the_newest_run(ctx: AppContext) -> None:
    old = create_run(ctx.db, "old", status="finished")
    new = create_run(ctx.db, "new", status="finished")
    add_run_metrics(ctx.db, new, 1, {"loss": 0.7, "dpo/margin": 0.1})
    run_id, status, loss, margins, history, timer = bind(open_tab, ctx)(None, LOCAL)
    assert run_id == new and f"**Run #{new}** `new` · status: **finished**" in status
    assert history["id"].tolist() == [new, old] and not timer.active
    assert loss.axes[0].get_lines()[0].get_ydata().tolist() == [0.7]
    assert bind(open_tab, ctx)(old, LOCAL)[0] == old  # a chosen run stays chosen


def test_history_is_rounded_for_reading(ctx: AppContext) -> None:
    run = create_run(ctx.db, "r", status="running")
    update_run(ctx.db, run, progress=0.3333333)
    [row] = history_frame(ctx.jobs.history(5)).to_dict("records")
    assert row["progress"] == "33%" and len(row["created_at"]) == 19 and "T" not in row["created_at"]


def test_an_annotator_cannot_mine(ctx: AppContext, tmp_path: Path) -> None:
    from ui.auth import Accounts, add_user

    add_user(tmp_path / "auth.json", "ann", "annotator-password-1", role="annotator", rounds=4)
    accounts = Accounts.load(tmp_path / "auth.json")
    guarded = AppContext(studio=None, db=ctx.db, jobs=ctx.jobs, work_dir=ctx.work_dir, accounts=accounts)
    with pytest.raises(gr.Error, match="needs the admin role"):
        mine_pairs(guarded, [3], "", [], "train", 0, 5, 2, SimpleNamespace(username="ann"))


def test_mining_runs_the_cli_with_the_forms_settings() -> None:
    from engine.mining import MiningConfig
    from ui.mining import mine_args

    config = MiningConfig(tasks=(1, 3), num_beams=4, num_rejected=1, model="tiny-random-vlm", split=None, limit=2,
                          evaluators=("tiny-random-clip",))  # fmt: skip
    assert mine_args(config, "sqlite:///s.db", "tiny-random-lm") == [
        "mine-pairs", "--db", "sqlite:///s.db", "--json", "--task", "1", "--task", "3",
        "--evaluator", "tiny-random-clip", "--model", "tiny-random-vlm", "--split", "all", "--num-beams", "4",
        "--rejected", "1", "--limit", "2", "--judge-model", "tiny-random-lm",
    ]  # fmt: skip


def test_mining_runs_off_the_request_queue_says_its_plan_and_follows_progress(ctx: AppContext) -> None:
    """Issue 26 item 4: Mine pairs held the app's one model slot for minutes (an annotator's grounding waited
    behind it). The button now returns at once, the run goes on in its own process, the status follows it,
    and the plan says how long the next run will take, from this one's time per item."""
    import time

    from annotations import store
    from tests.app_server import SAMPLES
    from ui.loop_panel import mining_plan, mining_status

    for i, clip in enumerate(("bunny.mp4", "bikes.mp4")):
        store.upsert_sample(ctx.db, str(SAMPLES / clip), f"A clip, take {i}.", split="train")
    form = ([1], "tiny-random-vlm", ["tiny-random-clip"], "train", 0, 2, 1)
    plan = mining_plan(ctx, *form, LOCAL)
    assert "**2** (sample, task) item(s) to mine with **tiny-random-vlm**" in plan and "not measured yet" in plan
    started = time.monotonic()
    status, mine_btn, stop_btn, timer = mine_pairs(ctx, *form, LOCAL)
    assert time.monotonic() - started < 5  # it returned: the mining goes on in its own process
    assert status.startswith("⛏ Mining run #1 (started by local)") and timer.active
    assert not mine_btn.interactive and stop_btn.visible
    with pytest.raises(gr.Error, match="mining run 1 .* is still running"):
        bind(mine_pairs, ctx)(*form, LOCAL)
    deadline = time.monotonic() + 240
    while (outs := mining_status(ctx, LOCAL))[-1].active:
        assert time.monotonic() < deadline, outs[0]
        time.sleep(1)
    status, mine_btn, stop_btn, _ = outs
    assert status.startswith("✅ Mined **2** of 2 (sample, task) item(s)") and "took" in status
    assert mine_btn.interactive and not stop_btn.visible
    assert "**0** (sample, task) item(s)" in mining_plan(ctx, *form, LOCAL)
    assert "2 already mined" in mining_plan(ctx, *form, LOCAL)
    with_task2 = mining_plan(ctx, [1, 2], *form[1:], LOCAL)  # Task 2 not mined yet: timed from this run
    assert "**2** (sample, task) item(s)" in with_task2 and "s per item on this machine's last run" in with_task2


def test_mining_summary_with_nothing_to_mine() -> None:
    empty = SimpleNamespace(
        items=0, mined=0, pairs_written=0, skipped_done=0, skipped_unusable=0, short_of_rejected=0,
        unparsed_judgements=0, notes=[],
    )  # fmt: skip
    assert "import samples (Data tab → Import)" in mining_summary(empty)


def test_a_loop_report_folder_is_shown(ctx: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "runs" / "loop-1" / "report"
    folder.mkdir(parents=True)
    (folder / "report.md").write_text("# Loop report\n\n| model | score |\n|---|---|\n| base | 1 |\n")
    (folder / "table1.csv").write_text("model,score\nbase,1.0\ntrained,2.0\n")
    (folder / "loss.png").write_bytes(_png())
    assert report_folders(ctx) == [folder.resolve()]
    text, curves, files = show_report(ctx, str(folder.resolve()), LOCAL)
    assert text.startswith("# Loop report") and [label for _, label in curves] == ["loss"]
    assert files.endswith("holds: `loss.png`, `report.md`, `table1.csv`.")
    with pytest.raises(gr.Error, match="not one of the runs' report folders"):
        show_report(ctx, str(tmp_path), LOCAL)
    assert "No loop report yet" in show_report(ctx, None, LOCAL)[0]


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="PNG")
    return out.getvalue()
