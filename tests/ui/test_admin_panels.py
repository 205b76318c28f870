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


def test_mining_from_the_tab_goes_through_the_studio(ctx: AppContext) -> None:
    calls = []

    def mine(db, config, progress=True):
        calls.append(config)
        return SimpleNamespace(
            items=4, mined=3, pairs_written=6, skipped_done=1, skipped_unusable=0, short_of_rejected=0,
            unparsed_judgements=0, notes=[],
        )  # fmt: skip

    ctx.studio = SimpleNamespace(mine=mine)
    message = mine_pairs(ctx, [3], "tiny-random-lm", ["tiny-random-clip"], "all", 2, 4, 1, LOCAL)
    [config] = calls
    assert config.tasks == (3,) and config.model == "tiny-random-lm" and config.split is None and config.limit == 2
    assert (config.num_beams, config.num_rejected, config.evaluators) == (4, 1, ("tiny-random-clip",))
    assert message.startswith("✅ Mined **3** of 4 (sample, task) item(s): **6** new pair(s) written.")
    assert "Skipped: 1 already mined." in message and "**Label** queue" in message
    with pytest.raises(gr.Error, match="pick at least one task"):
        mine_pairs(ctx, [], "", [], "train", 0, 5, 2, LOCAL)


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
