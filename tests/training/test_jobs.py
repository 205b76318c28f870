"""The admin tab's job runner: torch-free import, busy-device refusal, dead-process detection,
and (slow) real detached runs: launch -> finished, launch -> cancel -> checkpoint, resume."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from annotations.db import init_db, make_engine
from annotations.store import create_run, get_run
from training import jobs
from training.toy_data import write_export

ROOT = Path(__file__).resolve().parents[2]


def test_import_does_not_pull_torch():
    code = "import sys, training.jobs; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _db(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    init_db(make_engine(url))
    return url


def test_dead_process_is_marked_failed_with_last_error_line(tmp_path):
    url = _db(tmp_path)
    log = tmp_path / "train.log"
    log.write_text("step 1\nTraceback (most recent call last):\nRuntimeError: CUDA out of memory\nerror: boom\n")
    dead = subprocess.Popen(["true"])
    dead.wait()
    run_id = create_run(make_engine(url), "x", status="running", pid=dead.pid, log_path=str(log))
    assert jobs.status(run_id, url)["status"] == "failed"
    assert get_run(make_engine(url), run_id)["error"] == "error: boom"


def test_second_run_on_a_busy_device_is_refused(tmp_path):
    url = _db(tmp_path)
    # A live process whose command line looks like a trainer's (the runner checks both, against pid reuse).
    busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "training"])
    try:
        create_run(make_engine(url), "busy", config={"model": {"device": None}}, status="running", pid=busy.pid)
        with pytest.raises(jobs.JobError, match="already training"):
            jobs.launch(ROOT / "configs" / "tiny-cpu.yaml", url, {"data.path": str(tmp_path / "x.jsonl")})
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.slow
def test_launch_cancel_resume_detached(tmp_path):
    url = _db(tmp_path)
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
    run_id = jobs.launch(ROOT / "configs" / "tiny-cpu.yaml", url, over)
    deadline = time.monotonic() + 120
    while jobs.status(run_id, url)["step"] < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert jobs.status(run_id, url)["status"] == "running"
    jobs.cancel(run_id, url)
    final = jobs.wait(run_id, url, timeout=120)
    assert final["status"] == "cancelled", Path(final["log_path"]).read_text()[-2000:]
    assert (Path(final["checkpoint_dir"]) / "model" / "config.json").exists()
    stopped_at = final["step"]
    jobs.resume(run_id, url)
    deadline = time.monotonic() + 120
    while jobs.status(run_id, url)["step"] <= stopped_at and time.monotonic() < deadline:
        time.sleep(0.5)
    jobs.cancel(run_id, url)
    again = jobs.wait(run_id, url, timeout=120)
    assert again["status"] == "cancelled" and again["step"] > stopped_at
