"""Training runs as detached processes, for the admin tab: `Jobs(engine, db_url, folders)` launches,
watches, cancels and resumes them.

Import-light on purpose (the UI imports this and must not import torch): only the standard library,
PyYAML, SQLAlchemy, training.config and annotations.

`app.py` builds ONE `Jobs` with the app's DB engine (already initialised: no engine and no schema
check per call) and the engine's URL, which the trainer process needs to open the same database.
A run = a row in the annotations `training_run` table + a folder <run.output_dir>/<name>-run<id>/ with
launch.yaml (the exact config), export.jsonl (when exported from the DB), train.log (stdout + stderr)
and what the trainer writes. The trainer process reports status / step / metrics to the DB itself;
`status` notices a process that died without saying so and marks the run failed with the last error
line of its log (or cancelled, when this app asked it to stop). One run per device at a time: the check
and the new row are one write transaction (annotations.runs.create_run_if), so of four concurrent
launches exactly one starts. Each process this object starts has a thread that waits for it: it is
reaped the moment it exits (no zombies) and its run settles without anyone polling.

What a launched config may touch is confined (`Folders`, issue 13 item 4): `base:` only inside
configs/, run.output_dir and run.ref_cache_dir inside a run folder, data.path inside a data folder;
run.name is a plain folder name (training.config). These paths are made absolute before launch.yaml
is written, so the trainer (started in the project root) reads exactly what was checked.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, make_url

from annotations.io import export_pairs
from annotations.models import utcnow
from annotations.runs import ACTIVE_STATUSES, Admit, create_run_if, update_run_if
from annotations.store import get_run, list_runs, run_metrics, update_run
from engine import paths
from training.config import CONFIGS_DIR, ConfigError, TrainConfig, load_config

log = logging.getLogger("vidprompter.jobs")

ACTIVE = ACTIVE_STATUSES
#: The code's folder (the checkout, or site-packages): the child trainer imports the same packages.
CODE_ROOT = paths.CHECKOUT
#: The bundled sample set (issue 11): launches may always train on it.
ASSETS_DIR = paths.ASSETS_DIR
#: How long Resume waits for a cancelled run's process to finish its checkpoint and exit.
STOP_WAIT_S = 15.0
#: A queued run with no process after this long was left by an app that stopped mid-launch.
STALE_QUEUED_S = 120.0


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
    except (FileNotFoundError, ProcessLookupError):  # exited between the two checks (ENOENT or ESRCH)
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


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


@dataclass(frozen=True)
class Folders:
    """Where runs launched through `Jobs` may read and write. Relative folders resolve against the app's
    working directory (where app.py was started), as the config's own relative paths do."""

    runs: tuple[str | Path, ...] = ("runs",)
    """run.output_dir (and run.ref_cache_dir) must lie inside one of these."""
    data: tuple[str | Path, ...] = ("data", ASSETS_DIR)
    """data.path must lie inside one of these or inside a run folder (the bundled sample set is allowed)."""
    configs: Path = CONFIGS_DIR
    """`base:` in a launched YAML resolves only in here."""

    def check(self, cfg: TrainConfig) -> TrainConfig:
        """`cfg` with its output / cache / data paths absolute, or a ConfigError naming the key. The same
        line whether the path exists or not: the form is no oracle for the server's files."""
        runs = [_real(r) for r in self.runs]
        out = _real(cfg.run.output_dir)
        if not _inside(out, runs):
            raise ConfigError(f"run.output_dir: must be inside a run folder ({_names(runs)})")
        fixed: dict[str, Any] = {"run.output_dir": str(out)}
        if cfg.run.ref_cache_dir:
            cache = _real(cfg.run.ref_cache_dir)
            if not _inside(cache, runs):
                raise ConfigError(f"run.ref_cache_dir: must be inside a run folder ({_names(runs)})")
            fixed["run.ref_cache_dir"] = str(cache)
        if cfg.data.path:
            allowed = list(dict.fromkeys(runs + [_real(d) for d in self.data]))
            data = _real(cfg.data.path)
            if not _inside(data, allowed) or not data.is_file():
                raise ConfigError(f"data.path: must be an export file inside a data folder ({_names(allowed)})")
            fixed["data.path"] = str(data)
        return load_config(cfg.to_dict(), fixed)


def _names(folders: list[Path]) -> str:
    return ", ".join(str(f) for f in folders)


class Jobs:
    """The training runs of one annotation store. Keeps the processes it started (a waiter thread each)."""

    def __init__(
        self, engine: Engine, db_url: str, folders: Folders | None = None, stop_wait_s: float = STOP_WAIT_S
    ) -> None:
        self.engine = engine  # the annotation store, schema already initialised (annotations.db.open_db)
        self.db_url = db_url  # the same store's URL, for each trainer process (`python -m training --db URL`)
        self.folders = folders or Folders()
        self.stop_wait_s = stop_wait_s
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # pid -> process this object started
        # Runs this object asked to stop: a process of one that then dies without a word was cancelled,
        # not failed (a SIGTERM before the trainer installs its handlers kills it silently).
        self._cancelled: set[int] = set()

    # -- verbs ------------------------------------------------------------------------------------

    def launch(
        self,
        config: str | Path | dict[str, Any],
        overrides: list[str] | dict[str, Any] | None = None,
        name: str | None = None,
        num_processes: int = 1,
    ) -> int:
        """Validate and confine the config, claim its device (atomically), record the run, export pairs if
        needed, start the trainer as its own process; returns the run id (the trainer then reports to the DB)."""
        self._check_reachable()
        cfg = self.folders.check(load_config(config, overrides, base_root=self.folders.configs))
        self._settle_dead_runs()
        admit = self._admit(_device_key(cfg.to_dict()), exclude=None)
        run_id = create_run_if(self.engine, name or cfg.run.name, admit, config=cfg.to_dict(), status="queued")
        with self._failing_run(run_id):
            run_dir = Path(cfg.run.output_dir) / f"{cfg.run.name}-run{run_id}"
            run_dir.mkdir(parents=True, exist_ok=True)
            if not cfg.data.path:
                export_pairs(self.engine, run_dir / "export.jsonl", "jsonl")
                cfg = load_config(cfg.to_dict(), {"data.path": str(run_dir / "export.jsonl")})
            (run_dir / "launch.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            log_path = str(run_dir / "train.log")
            checkpoints = str(run_dir / "checkpoints")
            update_run(self.engine, run_id, config=cfg.to_dict(), log_path=log_path, checkpoint_dir=checkpoints)
            self._start(run_id, run_dir, resume=False, num_processes=num_processes)
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
        """SIGTERM the run's process group: the trainer finishes its step, checkpoints and marks it cancelled
        (a process killed before it could say so is marked cancelled here)."""
        run = self.status(run_id)
        if run["status"] not in ACTIVE:
            raise JobError(f"run {run_id} is {run['status']}, not running")
        self._cancelled.add(run_id)
        if run["alive"]:
            try:
                os.killpg(run["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:
            update_run(self.engine, run_id, status="cancelled")
        return self.status(run_id)

    def resume(self, run_id: int, num_processes: int = 1) -> int:
        """Restart a stopped run from its latest checkpoint (same folder, same run id). Straight after
        Cancel it first waits (up to `stop_wait_s`) for the old process to finish its checkpoint."""
        self._check_reachable()
        run = self._stopped(run_id)
        if run["status"] in ACTIVE:
            raise JobError(f"run {run_id} is still {run['status']}")
        if not run.get("log_path"):
            raise JobError(f"run {run_id} has no run folder to resume from")
        cfg = load_config(run.get("config") or {})
        admit = self._admit(_device_key(cfg.to_dict()), exclude=run_id)
        fields = {"status": "queued", "error": None, "finished_at": None, "pid": None, "started_at": utcnow()}
        update_run_if(self.engine, run_id, admit, **fields)
        self._cancelled.discard(run_id)
        with self._failing_run(run_id):
            self._start(run_id, Path(run["log_path"]).parent, resume=True, num_processes=num_processes)
        return run_id

    def wait(self, run_id: int, timeout: float | None = None) -> dict[str, Any]:
        """Block until the run's process exits (tests and scripts); returns its final status."""
        self._wait_exit(self.status(run_id).get("pid"), timeout)
        return self.status(run_id)

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` runs (DB rows, newest first)."""
        return list_runs(self.engine, limit=limit)

    def metrics(self, run_id: int) -> list[dict[str, Any]]:
        """[{step, name, value}] the trainer logged for a run, ordered by step then name."""
        return run_metrics(self.engine, run_id)

    def alive(self, pid: int | None) -> bool:
        """Is the trainer under `pid` still running? A child of this object that exited counts as dead."""
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

    def _start(self, run_id: int, run_dir: Path, resume: bool, num_processes: int) -> None:
        proc = self._spawn(run_dir, self._args(run_id, run_dir, resume), num_processes)
        update_run(self.engine, run_id, pid=proc.pid)
        threading.Thread(target=self._reap, args=(run_id, proc), name=f"reap-run{run_id}", daemon=True).start()

    def _reap(self, run_id: int, proc: subprocess.Popen[bytes]) -> None:
        """Wait for the process (which reaps it), then settle its run if it ended without saying so."""
        proc.wait()
        try:
            run = get_run(self.engine, run_id)
            if run is not None and run["status"] in ACTIVE and run.get("pid") == proc.pid:
                self._settle(run, proc.returncode)
        except Exception:  # the DB may be gone at shutdown; the next status() settles it instead
            log.exception("could not settle run %s after its process exited", run_id)

    def _settle(self, run: dict[str, Any], returncode: int | None = None) -> None:
        """An active run whose process is gone: cancelled if we stopped it, else failed with its log's line."""
        if run["id"] in self._cancelled or returncode == -signal.SIGTERM:
            update_run(self.engine, run["id"], status="cancelled")
        else:
            update_run(self.engine, run["id"], status="failed", error=last_error_line(run.get("log_path")))

    def _refresh(self, run: dict[str, Any]) -> dict[str, Any]:
        """Settle an active run whose process is gone, or a queued one whose launch never got a process."""
        if run["status"] not in ACTIVE:
            return run
        if run.get("pid") and not self.alive(run["pid"]):
            child = self._children.get(run["pid"])
            self._settle(run, child.returncode if child is not None else None)
        elif not run.get("pid") and run["status"] == "queued" and _age_s(run) > STALE_QUEUED_S:
            message = "never started: the app stopped before the run's process did; resume it"
            update_run(self.engine, run["id"], status="failed", error=message)
        else:
            return run
        return get_run(self.engine, run["id"]) or run

    def _settle_dead_runs(self) -> None:
        for status in ACTIVE:
            for run in list_runs(self.engine, status=status, limit=1000):
                self._refresh(run)

    def _holds_device(self, run: dict[str, Any]) -> bool:
        """Does an active run still occupy its device? Its process lives, or it is being launched."""
        if run.get("pid"):
            return self.alive(run["pid"])
        return _age_s(run) <= STALE_QUEUED_S

    def _admit(self, device: str, exclude: int | None) -> Admit:
        """The check run inside the write transaction that creates / requeues a run: JobError if an active
        run other than `exclude` holds a conflicting device."""

        def admit(active: list[dict[str, Any]]) -> None:
            for run in active:
                if run["id"] == exclude or not self._holds_device(run):
                    continue
                if _conflicts(_device_key(run.get("config") or {}), device):
                    where = "this machine" if device == "default" else f"device {device}"  # GPU or CPU alike
                    raise JobError(
                        f"run {run['id']} ({run['name']}, pid {run.get('pid')}) is already training on {where}; "
                        "cancel it or wait for it to finish before launching another"
                    )

        return admit

    def _stopped(self, run_id: int) -> dict[str, Any]:
        """The run once its process has exited (waiting up to stop_wait_s), or a JobError saying so."""
        run = self.status(run_id)
        if not run["alive"]:
            return run
        self._wait_exit(run["pid"], self.stop_wait_s)
        run = self.status(run_id)
        if run["alive"]:
            raise JobError(
                f"run {run_id} is still stopping: its process (pid {run['pid']}) is saving a checkpoint after "
                f"{self.stop_wait_s:.0f} s; press Resume again in a few seconds"
            )
        return run

    def _wait_exit(self, pid: int | None, timeout: float | None) -> None:
        child = self._children.get(pid or -1)
        if child is not None:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.alive(pid) and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)

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
        log_file = open(run_dir / "train.log", "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CODE_ROOT), env.get("PYTHONPATH")]))
        proc = subprocess.Popen(
            self._command(args, num_processes),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=os.getcwd(),  # the app's folder: the run's relative paths (runs/, data/) are the app's
            env=env,
            start_new_session=True,  # its own process group: survives the app, and cancel signals the group
        )
        log_file.close()
        self._children[proc.pid] = proc
        return proc


def _age_s(run: dict[str, Any]) -> float:
    """Seconds since the run was created or last (re)queued."""
    stamps = [datetime.fromisoformat(v) for v in (run.get("created_at"), run.get("started_at")) if v]
    return (utcnow() - max(stamps)).total_seconds() if stamps else float("inf")
