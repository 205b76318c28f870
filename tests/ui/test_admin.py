"""Admin handlers as plain functions (no server), through the jobs object in the app context:
launch -> status -> resume with a stand-in trainer, refusals shown as one line, one engine per app."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

import annotations.db as adb
from annotations.db import open_db
from annotations.store import add_run_metrics, create_run
from tests.toy_data import write_export
from training.jobs import Folders, Jobs
from ui.admin import cancel_run, launch_training, poll, resume_run, training_status
from ui.common import AppContext, bind

LOCAL = SimpleNamespace(username=None)
# Stands in for `python -m training`: fails at once with the kind of line the real trainer prints.
FAIL_LINE = "error: model.device: cuda:0 is not available here"
FAKE_TRAINER = f"import sys; print('loading'); print({FAIL_LINE!r}); sys.exit(2)"


class FakeTrainerJobs(Jobs):
    """The real runner (run rows, run folder, launch.yaml, process group) around a stand-in trainer."""

    def _command(self, args: list[str], num_processes: int) -> list[str]:
        return [sys.executable, "-c", FAKE_TRAINER, "-m", "training", *args]  # "training" in argv: pid check


@pytest.fixture()
def ctx(tmp_path: Path) -> AppContext:
    db_url = f"sqlite:///{tmp_path / 's.db'}"
    db = open_db(db_url)
    jobs = FakeTrainerJobs(db, db_url, Folders(runs=(tmp_path,), data=(tmp_path,)))  # launches stay in tmp_path
    return AppContext(studio=None, db=db, jobs=jobs, work_dir=tmp_path / "work")


def _overrides(tmp_path: Path) -> str:
    export = write_export(tmp_path / "export", n_samples=1, tasks=(3,), rejected=1)
    return f"data.path={export}\nrun.output_dir={tmp_path / 'runs'}"


def test_launch_status_resume_go_through_ctx_jobs(ctx: AppContext, tmp_path: Path) -> None:
    note, run_id, timer = bind(launch_training, ctx)("tiny-cpu", "", _overrides(tmp_path), LOCAL)
    assert note.startswith(f"🚀 Run **#{run_id}** launched by local") and timer.active
    assert ctx.jobs.wait(run_id, timeout=60)["status"] == "failed"

    status, _loss, _margins, history = bind(training_status, ctx)(run_id, LOCAL)
    assert f"**Run #{run_id}** `tiny-cpu` · status: **failed**" in status
    assert f"⛔ {FAIL_LINE}" in status
    assert history["status"].tolist() == ["failed"]
    run_dir = Path(ctx.jobs.status(run_id)["log_path"]).parent
    assert (run_dir / "launch.yaml").is_file() and run_dir.name == f"tiny-cpu-run{run_id}"

    message, timer = bind(resume_run, ctx)(run_id, LOCAL)
    assert message == f"▶️ Resuming run #{run_id}." and timer.active
    final = ctx.jobs.wait(run_id, timeout=60)
    assert final["status"] == "failed"
    assert (run_dir / "train.log").read_text().count(FAIL_LINE) == 2  # both processes wrote the same log


def test_poll_stops_the_timer_once_the_run_is_over(ctx: AppContext) -> None:
    running = create_run(ctx.db, "r", status="running")  # no pid yet: nothing to find dead
    add_run_metrics(ctx.db, running, 1, {"loss/total": 0.7, "margin/dpo": 0.1})
    *outputs, timer = bind(poll, ctx)(running, LOCAL)
    assert timer.active and "status: **running**" in outputs[0]
    [loss_line] = outputs[1].axes[0].get_lines()  # matplotlib figures: one line per HDPO term
    assert loss_line.get_ydata().tolist() == [0.7] and loss_line.get_label() == "total"
    assert [t.get_text() for t in outputs[2].axes[0].get_legend().get_texts()] == ["dpo"]
    finished = create_run(ctx.db, "f", status="finished")
    *_, timer = bind(poll, ctx)(finished, LOCAL)
    assert not timer.active


def _message(handler, *args) -> str:
    """The one line the user sees when a guarded handler refuses."""
    with pytest.raises(gr.Error) as err:
        handler(*args)
    return err.value.message


def test_job_refusals_reach_the_user_as_one_line(ctx: AppContext) -> None:
    done = create_run(ctx.db, "done", status="finished")
    assert _message(bind(cancel_run, ctx), done, LOCAL) == f"run {done} is finished, not running"
    assert _message(bind(training_status, ctx), 99, LOCAL) == "no training run 99"
    assert _message(bind(resume_run, ctx), None, LOCAL) == "enter the id of the run to resume"


def test_polling_reuses_the_app_engine(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = create_run(ctx.db, "r", status="running")
    calls: list[str] = []
    for name in ("create_engine", "make_engine", "init_db", "open_db"):
        monkeypatch.setattr(adb, name, lambda *a, _n=name, **k: calls.append(_n))
    for _ in range(5):
        bind(poll, ctx)(run_id, LOCAL)
    assert calls == []


class SleepingTrainerJobs(Jobs):
    """The real runner around a stand-in trainer that keeps running (until killed) without a word to the DB."""

    def _command(self, args: list[str], num_processes: int) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(60)", "-m", "training", *args]


def test_resume_applies_to_cancelled_or_failed_runs_only(ctx: AppContext, tmp_path: Path) -> None:
    """Issue 26 item 5: Resume on a live run waited 15 s, then said "still stopping… saving a checkpoint" though
    nobody cancelled; on a finished run it started it again. Both are refused at once, naming the status."""
    import time

    done = create_run(ctx.db, "done", status="finished")
    assert _message(bind(resume_run, ctx), done, LOCAL) == (
        f"run {done} is finished: Resume restarts a cancelled or failed run from its last checkpoint"
    )
    assert ctx.jobs.status(done)["status"] == "finished"  # not started again
    jobs = SleepingTrainerJobs(ctx.db, ctx.jobs.db_url, ctx.jobs.folders)
    live = AppContext(studio=None, db=ctx.db, jobs=jobs, work_dir=ctx.work_dir)
    _note, run_id, _timer = bind(launch_training, live)("tiny-cpu", "", _overrides(tmp_path), LOCAL)
    try:
        started = time.monotonic()
        message = _message(bind(resume_run, live), run_id, LOCAL)
        assert time.monotonic() - started < 5  # no wait for a stop nobody asked for
        assert message == f"run {run_id} is queued, not stopped: Cancel it first, then Resume"
    finally:
        jobs.cancel(run_id)
        jobs.wait(run_id, timeout=30)
