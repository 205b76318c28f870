"""Job runner for the admin tab: launch / status / cancel / resume training runs as detached processes.

Import-light on purpose (the UI imports this and must not import torch): only the standard library,
PyYAML, training.config and annotations.

A run = a row in the annotations `training_run` table + a folder <run.output_dir>/<name>-run<id>/ with
launch.yaml (the exact config), export.jsonl (when exported from the DB), train.log (stdout + stderr)
and what the trainer writes. The trainer process reports status / step / metrics to the DB itself;
`status` notices a process that died without saying so and marks the run failed with the last error
line of its log. One run per device at a time: a second launch on a busy device is refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from training.config import TrainConfig, load_config

ACTIVE = ("queued", "running")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this app started: poll() reaps them


class JobError(RuntimeError):
    """A job request the runner refuses (busy device, unknown run, ...); the message is for the user."""


def _engine(db_url: str | None):
    from annotations.db import default_db_url, init_db, make_engine

    engine = make_engine(db_url or default_db_url())
    init_db(engine)
    return engine


def _device_key(cfg: dict[str, Any]) -> str:
    """Runs with no explicit device use "the" accelerator of this machine: they all conflict."""
    return str((cfg.get("model") or {}).get("device") or "default")


def _conflicts(a: str, b: str) -> bool:
    norm = {"cuda": "cuda:0"}
    return norm.get(a, a) == norm.get(b, b) or "default" in (a, b)


def pid_alive(pid: int | None) -> bool:
    """True while the process runs (zombies and reused pids of other programs count as dead)."""
    if not pid:
        return False
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return False
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        return b"training" in cmdline
    return True


def last_error_line(log_path: str | None) -> str:
    """The most telling line of a log: the last `error:` / exception line, else the last line."""
    if not log_path or not Path(log_path).exists():
        return "process exited without a log"
    lines = [ln.strip() for ln in Path(log_path).read_text(errors="replace").splitlines() if ln.strip()]
    if not lines:
        return "process exited with an empty log"
    for line in reversed(lines):
        if line.startswith("error:") or "Error" in line.split(":")[0] or line.startswith("Killed"):
            return line[:500]
    return lines[-1][:500]


def _refresh(engine, run: dict[str, Any]) -> dict[str, Any]:
    """Mark an active run whose process is gone as failed (with its log's last error line)."""
    from annotations.store import get_run, update_run

    if run["status"] in ACTIVE and run.get("pid") and not pid_alive(run["pid"]):
        update_run(engine, run["id"], status="failed", error=last_error_line(run.get("log_path")))
        run = get_run(engine, run["id"])
    return run


def _busy(engine, device: str, exclude: int | None = None) -> dict[str, Any] | None:
    from annotations.store import list_runs

    for run in list_runs(engine, limit=1000):
        if run["id"] == exclude or run["status"] not in ACTIVE:
            continue
        run = _refresh(engine, run)
        if run["status"] in ACTIVE and _conflicts(_device_key(run.get("config") or {}), device):
            return run
    return None


def _refuse_if_busy(engine, cfg: TrainConfig, exclude: int | None = None) -> None:
    device = _device_key(cfg.to_dict())
    other = _busy(engine, device, exclude)
    if other is not None:
        where = "this machine's GPU" if device == "default" else f"device {device}"
        raise JobError(
            f"run {other['id']} ({other['name']}, pid {other.get('pid')}) is already training on {where}; "
            "cancel it or wait for it to finish before launching another"
        )


def _spawn(run_dir: Path, args: list[str], num_processes: int) -> subprocess.Popen:
    if num_processes > 1:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
        cmd += ["-m", "training", *args]
    else:
        cmd = [sys.executable, "-m", "training", *args]
    log = open(run_dir / "train.log", "ab")  # noqa: SIM115 - handed to the child
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,  # its own process group: survives the app, and cancel signals the group
    )
    log.close()
    _CHILDREN[proc.pid] = proc
    return proc


def _args(run: dict[str, Any], db_url: str, resume: bool) -> list[str]:
    run_dir = Path(run["log_path"]).parent
    args = ["--config", str(run_dir / "launch.yaml"), "--db", db_url, "--run-id", str(run["id"])]
    args += ["--run-dir", str(run_dir)]
    return args + (["--resume"] if resume else [])


def launch(
    config: str | os.PathLike | dict[str, Any],
    db_url: str | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    name: str | None = None,
    num_processes: int = 1,
) -> int:
    """Validate the config, refuse a busy device, record the run, export pairs if needed, start the
    trainer as its own process; returns the run id (the trainer then reports to the DB)."""
    from annotations.db import default_db_url
    from annotations.store import create_run, update_run

    db_url = db_url or default_db_url()
    cfg = load_config(config, overrides)
    engine = _engine(db_url)
    _refuse_if_busy(engine, cfg)
    run_id = create_run(engine, name or cfg.run.name, config=cfg.to_dict(), status="queued")
    run_dir = (Path(cfg.run.output_dir) / f"{cfg.run.name}-run{run_id}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.data.path:
        from annotations.io import export_pairs

        export_pairs(engine, run_dir / "export.jsonl", "jsonl")
        cfg = load_config(cfg.to_dict(), {"data.path": str(run_dir / "export.jsonl")})
    (run_dir / "launch.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    log_path = str(run_dir / "train.log")
    update_run(engine, run_id, config=cfg.to_dict(), log_path=log_path, checkpoint_dir=str(run_dir / "checkpoints"))
    proc = _spawn(run_dir, _args({"id": run_id, "log_path": log_path}, db_url, False), num_processes)
    update_run(engine, run_id, pid=proc.pid)
    return run_id


def status(run_id: int, db_url: str | None = None) -> dict[str, Any]:
    """The run's DB row (status, step, progress, error, ...) plus `alive` and `last_metrics`."""
    from annotations.store import get_run, run_metrics

    engine = _engine(db_url)
    run = get_run(engine, run_id)
    if run is None:
        raise JobError(f"no training run {run_id}")
    run = _refresh(engine, run)
    run["alive"] = pid_alive(run.get("pid"))
    last: dict[str, float] = {}
    for m in run_metrics(engine, run_id):
        if m["step"] == run.get("step"):
            last[m["name"]] = m["value"]
    run["last_metrics"] = last
    return run


def cancel(run_id: int, db_url: str | None = None) -> dict[str, Any]:
    """SIGTERM the run's process group: the trainer finishes its step, checkpoints and marks it cancelled."""
    from annotations.store import update_run

    engine = _engine(db_url)
    run = status(run_id, db_url)
    if run["status"] not in ACTIVE:
        raise JobError(f"run {run_id} is {run['status']}, not running")
    if run["alive"]:
        try:
            os.killpg(run["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    else:
        update_run(engine, run_id, status="cancelled")
    return status(run_id, db_url)


def resume(run_id: int, db_url: str | None = None, num_processes: int = 1) -> int:
    """Restart a stopped run from its latest checkpoint (same folder, same run id)."""
    from annotations.db import default_db_url
    from annotations.store import update_run

    db_url = db_url or default_db_url()
    engine = _engine(db_url)
    run = status(run_id, db_url)
    if run["alive"] or run["status"] in ACTIVE:
        raise JobError(f"run {run_id} is still {run['status']}")
    if not run.get("log_path"):
        raise JobError(f"run {run_id} has no run folder to resume from")
    cfg = load_config(run.get("config") or {})
    _refuse_if_busy(engine, cfg, exclude=run_id)
    update_run(engine, run_id, status="queued", error=None, finished_at=None)
    proc = _spawn(Path(run["log_path"]).parent, _args(run, db_url, True), num_processes)
    update_run(engine, run_id, pid=proc.pid)
    return run_id


def wait(run_id: int, db_url: str | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Block until the run's process exits (tests and scripts); returns its final status."""
    run = status(run_id, db_url)
    child = _CHILDREN.get(run.get("pid") or -1)
    if child is not None:
        child.wait(timeout)
    else:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while pid_alive(run.get("pid")) and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    return status(run_id, db_url)
