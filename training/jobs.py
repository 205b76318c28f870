"""Training runs as detached processes, for the admin tab: `Jobs(engine, db_url)` launches, watches,
cancels and resumes them.

Import-light on purpose (the UI imports this and must not import torch): only the standard library,
PyYAML, SQLAlchemy, training.config and annotations.

`app.py` builds ONE `Jobs` with the app's DB engine (already initialised: no engine and no schema
check per call) and the engine's URL, which the trainer process needs to open the same database.
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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, make_url

from annotations.io import export_pairs
from annotations.store import create_run, get_run, list_runs, run_metrics, update_run
from training.config import TrainConfig, load_config

ACTIVE = ("queued", "running")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class JobError(RuntimeError):
    """A job request the runner refuses (busy device, unknown run, ...); the message is for the user."""


def pid_alive(pid: int | None) -> bool:
    """True while a trainer runs under `pid` (zombies and reused pids of other programs count as dead)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no procfs (macOS): the signal check is all we have
        return True
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
    except FileNotFoundError:  # exited between the two checks
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return b"training" in cmdline


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


def _device_key(cfg: dict[str, Any]) -> str:
    """Runs with no explicit device use "the" accelerator of this machine: they all conflict."""
    return str((cfg.get("model") or {}).get("device") or "default")


def _conflicts(a: str, b: str) -> bool:
    norm = {"cuda": "cuda:0"}
    return norm.get(a, a) == norm.get(b, b) or "default" in (a, b)


def _in_memory(db_url: str) -> bool:
    """An in-memory SQLite DB exists only inside this process: a trainer process cannot report to it."""
    url = make_url(db_url)
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class Jobs:
    """The training runs of one annotation store. Keeps the processes it started (so `poll()` reaps them)."""

    def __init__(self, engine: Engine, db_url: str) -> None:
        self.engine = engine  # the annotation store, schema already initialised (annotations.db.open_db)
        self.db_url = db_url  # the same store's URL, for each trainer process (`python -m training --db URL`)
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # pid -> process this object started

    # -- verbs ------------------------------------------------------------------------------------

    def launch(
        self,
        config: str | Path | dict[str, Any],
        overrides: list[str] | dict[str, Any] | None = None,
        name: str | None = None,
        num_processes: int = 1,
    ) -> int:
        """Validate the config, refuse a busy device, record the run, export pairs if needed, start the
        trainer as its own process; returns the run id (the trainer then reports to the DB)."""
        self._check_reachable()
        cfg = load_config(config, overrides)
        self._refuse_if_busy(cfg)
        run_id = create_run(self.engine, name or cfg.run.name, config=cfg.to_dict(), status="queued")
        with self._failing_run(run_id):
            run_dir = (Path(cfg.run.output_dir) / f"{cfg.run.name}-run{run_id}").resolve()
            run_dir.mkdir(parents=True, exist_ok=True)
            if not cfg.data.path:
                export_pairs(self.engine, run_dir / "export.jsonl", "jsonl")
                cfg = load_config(cfg.to_dict(), {"data.path": str(run_dir / "export.jsonl")})
            (run_dir / "launch.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            log_path = str(run_dir / "train.log")
            checkpoints = str(run_dir / "checkpoints")
            update_run(self.engine, run_id, config=cfg.to_dict(), log_path=log_path, checkpoint_dir=checkpoints)
            proc = self._spawn(run_dir, self._args(run_id, run_dir, resume=False), num_processes)
            update_run(self.engine, run_id, pid=proc.pid)
        return run_id

    def status(self, run_id: int) -> dict[str, Any]:
        """The run's DB row (status, step, progress, error, ...) plus `alive`; metrics come from `metrics`."""
        run = get_run(self.engine, run_id)
        if run is None:
            raise JobError(f"no training run {run_id}")
        run = self._refresh(run)
        run["alive"] = self.alive(run.get("pid"))
        return run

    def cancel(self, run_id: int) -> dict[str, Any]:
        """SIGTERM the run's process group: the trainer finishes its step, checkpoints and marks it cancelled."""
        run = self.status(run_id)
        if run["status"] not in ACTIVE:
            raise JobError(f"run {run_id} is {run['status']}, not running")
        if run["alive"]:
            try:
                os.killpg(run["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:
            update_run(self.engine, run_id, status="cancelled")
        return self.status(run_id)

    def resume(self, run_id: int, num_processes: int = 1) -> int:
        """Restart a stopped run from its latest checkpoint (same folder, same run id)."""
        self._check_reachable()
        run = self.status(run_id)
        if run["alive"] or run["status"] in ACTIVE:
            raise JobError(f"run {run_id} is still {run['status']}")
        if not run.get("log_path"):
            raise JobError(f"run {run_id} has no run folder to resume from")
        self._refuse_if_busy(load_config(run.get("config") or {}), exclude=run_id)
        update_run(self.engine, run_id, status="queued", error=None, finished_at=None, pid=None)
        with self._failing_run(run_id):
            run_dir = Path(run["log_path"]).parent
            proc = self._spawn(run_dir, self._args(run_id, run_dir, resume=True), num_processes)
            update_run(self.engine, run_id, pid=proc.pid)
        return run_id

    def wait(self, run_id: int, timeout: float | None = None) -> dict[str, Any]:
        """Block until the run's process exits (tests and scripts); returns its final status."""
        pid = self.status(run_id).get("pid")
        child = self._children.get(pid or -1)
        if child is not None:
            child.wait(timeout)
        else:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self.alive(pid) and (deadline is None or time.monotonic() < deadline):
                time.sleep(0.2)
        return self.status(run_id)

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` runs (DB rows, newest first)."""
        return list_runs(self.engine, limit=limit)

    def metrics(self, run_id: int) -> list[dict[str, Any]]:
        """[{step, name, value}] the trainer logged for a run, ordered by step then name."""
        return run_metrics(self.engine, run_id)

    def alive(self, pid: int | None) -> bool:
        """Is the trainer under `pid` still running? A child of this app that exited is reaped here."""
        child = self._children.get(pid or -1)
        if child is not None and child.poll() is not None:
            return False
        return pid_alive(pid)

    # -- helpers ----------------------------------------------------------------------------------

    def _check_reachable(self) -> None:
        if _in_memory(self.db_url):
            raise JobError(
                f"training runs need a database the trainer process can open too; {self.db_url} is in memory "
                "(start the app with --db sqlite:///PATH or a server URL)"
            )

    @contextmanager
    def _failing_run(self, run_id: int) -> Iterator[None]:
        """Until its process has started, a queued run has no pid by which `status` could find it dead:
        any failure in between (folder, export, spawn) marks it failed here, with one line for the user."""
        try:
            yield
        except Exception as exc:
            message = f"run {run_id} could not start: {' '.join(str(exc).split()) or type(exc).__name__}"
            update_run(self.engine, run_id, status="failed", error=message[:2000])
            raise JobError(message) from exc

    def _refresh(self, run: dict[str, Any]) -> dict[str, Any]:
        """Mark an active run whose process is gone as failed (with its log's last error line)."""
        if run["status"] in ACTIVE and run.get("pid") and not self.alive(run["pid"]):
            update_run(self.engine, run["id"], status="failed", error=last_error_line(run.get("log_path")))
            run = get_run(self.engine, run["id"]) or run
        return run

    def _busy(self, device: str, exclude: int | None) -> dict[str, Any] | None:
        """An active run (other than `exclude`) whose device conflicts with `device`, if any."""
        active = [r for status in ACTIVE for r in list_runs(self.engine, status=status, limit=1000)]
        for run in active:
            if run["id"] == exclude:
                continue
            run = self._refresh(run)
            if run["status"] in ACTIVE and _conflicts(_device_key(run.get("config") or {}), device):
                return run
        return None

    def _refuse_if_busy(self, cfg: TrainConfig, exclude: int | None = None) -> None:
        device = _device_key(cfg.to_dict())
        other = self._busy(device, exclude)
        if other is not None:
            where = "this machine's GPU" if device == "default" else f"device {device}"
            raise JobError(
                f"run {other['id']} ({other['name']}, pid {other.get('pid')}) is already training on {where}; "
                "cancel it or wait for it to finish before launching another"
            )

    def _args(self, run_id: int, run_dir: Path, resume: bool) -> list[str]:
        """`python -m training` arguments: the saved config, this store, the run id and folder."""
        args = ["--config", str(run_dir / "launch.yaml"), "--db", self.db_url, "--run-id", str(run_id)]
        args += ["--run-dir", str(run_dir)]
        return args + (["--resume"] if resume else [])

    def _command(self, args: list[str], num_processes: int) -> list[str]:
        """The trainer's command line: one process, or `accelerate launch` for several."""
        if num_processes > 1:
            launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
            return [*launcher, "-m", "training", *args]
        return [sys.executable, "-m", "training", *args]

    def _spawn(self, run_dir: Path, args: list[str], num_processes: int) -> subprocess.Popen[bytes]:
        log = open(run_dir / "train.log", "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        proc = subprocess.Popen(
            self._command(args, num_processes),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=PROJECT_ROOT,
            env=env,
            start_new_session=True,  # its own process group: survives the app, and cancel signals the group
        )
        log.close()
        self._children[proc.pid] = proc
        return proc
