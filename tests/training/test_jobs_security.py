"""The job runner under attack and in a hurry (issue 13 items 4-5, issue 11 item 7): what a launched
config may reach, one run per device under concurrent launches, an early cancel, Resume straight after
Cancel, and reaping. Stand-in trainers keep these fast; the slow test runs the real one."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from annotations.db import open_db
from tests.toy_data import write_export
from training.config import ConfigError
from training.jobs import Folders, JobError, Jobs

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny-cpu.yaml"
# Sleeps like a trainer importing torch: no SIGTERM handler yet, so SIGTERM kills it silently.
SLEEPER = "import time; time.sleep(60)"
# A trainer that takes `delay` seconds to checkpoint after SIGTERM, then exits 0.
SLOW_STOP = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: (time.sleep({delay}), sys.exit(0)))\n"
    "time.sleep(60)\n"
)


class ScriptJobs(Jobs):
    """The real runner around a stand-in trainer script ("training" in argv for the pid check)."""

    script = SLEEPER

    def _command(self, args: list[str], num_processes: int) -> list[str]:
        return [sys.executable, "-c", self.script, "-m", "training", *args]


def _jobs(tmp_path: Path, cls: type[Jobs] = ScriptJobs, **kwargs) -> Jobs:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    return cls(open_db(url), url, folders=Folders(runs=(tmp_path / "runs",), data=(tmp_path / "data",)), **kwargs)


def _over(tmp_path: Path) -> dict[str, str]:
    export = tmp_path / "data" / "export.jsonl"
    export.parent.mkdir(parents=True, exist_ok=True)
    export.touch()
    return {"data.path": str(export), "run.output_dir": str(tmp_path / "runs")}


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edited.yaml"  # where the admin form writes the edited YAML: outside configs/
    path.write_text(text)
    return path


# -- item 4: what a launch may reach ----------------------------------------------------------------


def test_base_outside_the_configs_folder_is_refused_alike_for_real_and_missing_files(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    secret = tmp_path / "auth.json"
    secret.write_text('{"users": {"ada": {"password_hash": "$2b$12$secret"}}}')
    messages = []
    for base in [str(secret), "../ui/auth.py", str(tmp_path / "absent.yaml"), "/etc/hostname"]:
        with pytest.raises(ConfigError) as info:
            jobs.launch(_config(tmp_path, f"base: {base}\n"), _over(tmp_path))
        messages.append(str(info.value).replace(repr(base), "BASE"))
    assert len(set(messages)) == 1 and "users" not in messages[0] and "secret" not in messages[0]
    assert messages[0] == "base: BASE is not a config in the configs folder; use a preset name such as hdpo.yaml"
    assert jobs.history() == []


def test_base_resolves_against_the_configs_folder_for_an_edited_yaml(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    run_id = jobs.launch(_config(tmp_path, "base: tiny-cpu.yaml\noptim:\n  max_steps: 3\n"), _over(tmp_path))
    config = jobs.status(run_id)["config"]
    assert config["model"]["name"] == "tiny-random-vlm" and config["optim"]["max_steps"] == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"run.name": "../../escape"}, "run.name: use 1-64 letters"),
        ({"run.name": "a/b"}, "run.name: use 1-64 letters"),
        ({"run.output_dir": "/tmp"}, "run.output_dir: must be inside a run folder"),
        ({"run.ref_cache_dir": "/var/tmp/cache"}, "run.ref_cache_dir: must be inside a run folder"),
        ({"data.path": "/etc/passwd"}, "data.path: must be an export file inside a data folder"),
        ({"data.path": "/no/such/file"}, "data.path: must be an export file inside a data folder"),
    ],
)
def test_run_folders_and_data_stay_inside_their_folders(tmp_path: Path, override: dict, message: str) -> None:
    jobs = _jobs(tmp_path)
    with pytest.raises(ConfigError, match=message):
        jobs.launch(TINY, {**_over(tmp_path), **override})
    assert jobs.history() == [] and not (tmp_path / "escape").exists()


def test_yaml_errors_name_the_place_not_the_contents(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    with pytest.raises(ConfigError) as info:
        jobs.launch(_config(tmp_path, "model:\n  name: [unclosed SECRET-TOKEN\n"), _over(tmp_path))
    assert "SECRET" not in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("config file edited.yaml is not valid YAML at line")


def test_launched_paths_are_made_absolute_before_the_trainer_sees_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the app's cwd; the trainer starts in the project root
    jobs = _jobs(tmp_path)
    run_id = jobs.launch(TINY, {"data.path": "data/export.jsonl", "run.output_dir": "runs"} | _over(tmp_path))
    config = jobs.status(run_id)["config"]
    assert Path(config["run"]["output_dir"]).is_absolute() and Path(config["data"]["path"]).is_absolute()
    jobs.cancel(run_id)


# -- item 5: one run per device ---------------------------------------------------------------------


def test_four_concurrent_launches_start_exactly_one_process(tmp_path: Path) -> None:
    # Four runners, four engines (as four app processes would have): only the database can arbitrate.
    runners = [_jobs(tmp_path) for _ in range(4)]
    over = _over(tmp_path)
    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def launch(jobs: Jobs) -> None:
        barrier.wait()
        try:
            outcomes.append(jobs.launch(TINY, over))
        except JobError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=launch, args=(j,)) for j in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [o for o in outcomes if isinstance(o, int)]
    refused = [str(o) for o in outcomes if isinstance(o, JobError)]
    try:
        assert len(started) == 1 and sum(len(j._children) for j in runners) == 1, outcomes
        assert len(refused) == 3 and all("is already training on this machine;" in m for m in refused)
        assert len(runners[0].history()) == 1  # the refused launches left no rows
    finally:
        for j in runners:
            for child in j._children.values():
                child.kill()


# -- issue 11 item 7: run states ---------------------------------------------------------------------


def test_an_early_cancel_reads_cancelled(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    run_id = jobs.launch(TINY, _over(tmp_path))
    time.sleep(0.3)  # still "importing torch": no handler, SIGTERM kills it without a word
    jobs.cancel(run_id)
    final = jobs.wait(run_id, timeout=10)
    assert (final["status"], final["error"], final["alive"]) == ("cancelled", None, False)


def test_a_killed_run_this_app_did_not_cancel_still_reads_failed(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    run_id = jobs.launch(TINY, _over(tmp_path))
    os.killpg(jobs.status(run_id)["pid"], signal.SIGKILL)
    assert jobs.wait(run_id, timeout=10)["status"] == "failed"


def test_resume_straight_after_cancel_waits_for_the_checkpoint(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    jobs.script = SLOW_STOP.format(delay=1.5)
    run_id = jobs.launch(TINY, _over(tmp_path))
    time.sleep(0.5)  # the stand-in installs its handler
    old_pid = jobs.cancel(run_id)["pid"]
    started = time.monotonic()
    assert jobs.resume(run_id) == run_id  # no "still cancelled" / "still running"
    waited = time.monotonic() - started
    run = jobs.status(run_id)
    assert 1.0 < waited < 10 and run["pid"] != old_pid and run["alive"] and run["status"] == "queued"
    jobs.cancel(run_id)


def test_resume_says_so_when_the_checkpoint_takes_longer_than_it_waits(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, stop_wait_s=0.5)
    jobs.script = SLOW_STOP.format(delay=4)
    run_id = jobs.launch(TINY, _over(tmp_path))
    time.sleep(0.5)
    jobs.cancel(run_id)
    with pytest.raises(JobError, match=rf"run {run_id} is still stopping: .* after 0 s; press Resume again"):
        jobs.resume(run_id)
    assert jobs.wait(run_id, timeout=10)["status"] == "cancelled"
    jobs.resume(run_id)  # and once it has stopped, Resume works
    jobs.cancel(run_id)


def test_finished_processes_are_reaped_and_settled_without_polling(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    jobs.script = "import sys; print('error: boom'); sys.exit(2)"
    run_id = jobs.launch(TINY, _over(tmp_path))
    pid = jobs.status(run_id)["pid"]
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the exited trainer is left as a zombie"
    from annotations.store import get_run

    deadline = time.monotonic() + 5
    while get_run(jobs.engine, run_id)["status"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (get_run(jobs.engine, run_id)["status"], get_run(jobs.engine, run_id)["error"]) == ("failed", "error: boom")


@pytest.mark.slow
def test_real_trainer_cancelled_one_second_after_launch_reads_cancelled_and_resumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    jobs = Jobs(open_db(url), url, folders=Folders(runs=(tmp_path,), data=(tmp_path,)))
    export = write_export(tmp_path / "exp", n_samples=2, tasks=(1,))
    over = {"data.path": str(export), "run.output_dir": str(tmp_path / "runs"), "run.tensorboard": False}
    run_id = jobs.launch(TINY, over)
    time.sleep(1.0)
    jobs.cancel(run_id)
    assert jobs.resume(run_id) == run_id  # waits for the cancelled process, then starts again
    final = jobs.wait(run_id, timeout=300)
    assert final["status"] == "finished", Path(final["log_path"]).read_text()[-2000:]
