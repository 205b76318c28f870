"""The admin tab's job runner: torch-free import, one engine for every call, busy-device refusal,
dead-process detection, refusals as JobError, and (slow) real detached runs: launch -> cancel ->
checkpoint -> resume."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

import annotations.db as adb
from annotations.db import open_db
from annotations.store import create_run, get_run
from tests.toy_data import write_export
from training.jobs import Folders, JobError, Jobs

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny-cpu.yaml"


def test_import_does_not_pull_torch():
    code = "import sys, training.jobs; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.fixture()
def jobs(tmp_path: Path) -> Jobs:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    return Jobs(open_db(url), url, folders=Folders(runs=(tmp_path,), data=(tmp_path,)))


def _paths(tmp_path: Path) -> dict[str, str]:
    """Overrides that keep a launch inside the fixture's folders: an (empty) export file, a runs folder."""
    export = tmp_path / "x.jsonl"
    export.touch()
    return {"data.path": str(export), "run.output_dir": str(tmp_path / "runs")}


def _dead_pid() -> int:
    dead = subprocess.Popen(["true"])
    dead.wait()
    return dead.pid


def _failed_run(jobs: Jobs, tmp_path: Path) -> int:
    log = tmp_path / "train.log"
    log.write_text("step 1\nTraceback (most recent call last):\nRuntimeError: CUDA out of memory\nerror: boom\n")
    return create_run(jobs.engine, "x", status="running", pid=_dead_pid(), log_path=str(log))


def test_dead_process_is_marked_failed_with_last_error_line(jobs: Jobs, tmp_path: Path):
    run_id = _failed_run(jobs, tmp_path)
    run = jobs.status(run_id)
    assert (run["status"], run["alive"]) == ("failed", False)
    assert get_run(jobs.engine, run_id)["error"] == "error: boom"


def test_status_polls_build_no_engine_and_run_no_schema_check(jobs: Jobs, tmp_path, monkeypatch):
    """The admin timer polls every 2 s: each poll must reuse the app's engine (it built one per call)."""
    calls: list[str] = []
    for name in ("create_engine", "make_engine", "init_db", "open_db"):
        real = getattr(adb, name)
        monkeypatch.setattr(adb, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    run_id = create_run(jobs.engine, "x", status="running", pid=None)
    for _ in range(5):
        assert jobs.status(run_id)["status"] == "running"
    jobs.history()
    jobs.metrics(run_id)
    assert calls == []


def test_second_run_on_a_busy_device_is_refused(jobs: Jobs, tmp_path: Path):
    # A live process whose command line looks like a trainer's (the runner checks both, against pid reuse).
    busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "training"])
    try:
        create_run(jobs.engine, "busy", config={"model": {"device": None}}, status="running", pid=busy.pid)
        with pytest.raises(JobError, match=r"run 1 \(busy, pid \d+\) is already training on this machine;"):
            jobs.launch(TINY, _paths(tmp_path))
    finally:
        busy.kill()
        busy.wait()


def test_refusals_are_job_errors(jobs: Jobs, tmp_path: Path):
    with pytest.raises(JobError, match="no training run 42"):
        jobs.status(42)
    run_id = _failed_run(jobs, tmp_path)
    with pytest.raises(JobError, match=f"run {run_id} is failed, not running"):
        jobs.cancel(run_id)
    queued = create_run(jobs.engine, "q", status="queued")
    with pytest.raises(JobError, match=f"run {queued} is still queued"):
        jobs.resume(queued)
    stopped = create_run(jobs.engine, "s", status="cancelled")
    with pytest.raises(JobError, match=f"run {stopped} has no run folder to resume from"):
        jobs.resume(stopped)


def test_in_memory_database_is_refused_before_any_row_is_written(tmp_path: Path):
    jobs = Jobs(open_db("sqlite://"), "sqlite://")
    with pytest.raises(JobError, match="sqlite:// is in memory"):
        jobs.launch(TINY, {"data.path": str(tmp_path / "x.jsonl")})
    assert jobs.history() == []


def test_a_launch_that_cannot_start_marks_its_run_failed_and_blocks_nothing(jobs: Jobs, tmp_path: Path):
    """A run row is written before its folder, export and process: if one of those fails, the row must
    not stay "queued" (with no process to find dead, it would refuse every later launch as busy)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    over = {**_paths(tmp_path), "run.output_dir": str(blocker / "runs")}
    for run_id in (1, 2):  # the second launch is not refused as "already training"
        with pytest.raises(JobError, match=rf"^run {run_id} could not start: .*Not a directory"):
            jobs.launch(TINY, over)
        run = jobs.status(run_id)
        assert run["status"] == "failed" and run["error"].startswith(f"run {run_id} could not start: ")


def test_cancel_of_a_vanished_process_marks_the_run_cancelled(jobs: Jobs):
    """A queued run without a pid yet (its process never started): cancel just records it."""
    run_id = create_run(jobs.engine, "q", status="queued")
    assert jobs.cancel(run_id)["status"] == "cancelled"


@pytest.mark.slow
def test_launch_cancel_resume_detached(jobs: Jobs, tmp_path: Path):
    export = write_export(tmp_path / "exp", n_samples=2, tasks=(1,))
    over = {
        "data.path": str(export),
        "run.output_dir": str(tmp_path / "runs"),
        "optim.max_steps": 200,
        "optim.batch_size": 2,
        "optim.epochs": 100,
        "run.checkpoint_every": 1000,
        "run.tensorboard": False,
    }
    run_id = jobs.launch(TINY, over)
    deadline = time.monotonic() + 120
    while jobs.status(run_id)["step"] < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert jobs.status(run_id)["status"] == "running"
    jobs.cancel(run_id)
    final = jobs.wait(run_id, timeout=120)
    assert final["status"] == "cancelled", Path(final["log_path"]).read_text()[-2000:]
    assert (Path(final["checkpoint_dir"]) / "model" / "config.json").exists()
    stopped_at = final["step"]
    jobs.resume(run_id)
    deadline = time.monotonic() + 120
    while jobs.status(run_id)["step"] <= stopped_at and time.monotonic() < deadline:
        time.sleep(0.5)
    jobs.cancel(run_id)
    again = jobs.wait(run_id, timeout=120)
    assert again["status"] == "cancelled" and again["step"] > stopped_at


@pytest.mark.parametrize("error", [FileNotFoundError, ProcessLookupError])
def test_a_process_exiting_while_its_proc_entry_is_read_is_dead(monkeypatch, error):
    """/proc/<pid>/stat of an exiting process raises ESRCH (ProcessLookupError), not only ENOENT: the
    admin tab's status poll then read "dead", never a traceback (seen in a full `make test` run)."""
    import training.jobs as jobs_module

    def vanished(self, *args, **kwargs):
        raise error(3, "No such process")

    monkeypatch.setattr(jobs_module.Path, "read_text", vanished)
    assert jobs_module.pid_alive(1) is False  # pid 1 exists, so the check reaches /proc
