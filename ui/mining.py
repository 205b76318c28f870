"""Mining off Gradio's request queue (issue 26 item 4): `python -m engine mine-pairs` (the same road as the CLI,
through `Studio.mine`) runs as its own process, one at a time per app, niced so that labelling and the demo keep
the CPU they need; its progress is read from the miner's progress bar in its log, and the Admin tab polls it.
Before a run starts, `plan` counts what it will mine and estimates how long from this app's earlier runs.

A mining process is resumable by design (items already mined are skipped), so Stop simply ends the process.
Torch-free: the process imports the models, the app only reads its log and its JSON report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from engine import paths
from engine.errors import InputError

#: The code's folder (the checkout, or site-packages): the miner process imports the same packages.
CODE_ROOT = paths.CHECKOUT
#: The miner's progress bar (tqdm): "12/24 [00:17<00:17, 1.42s/item]" -> done, total, elapsed, left.
PROGRESS = re.compile(r"(\d+)/(\d+) \[(\d[\d:]*)<([\d:?]+)")
#: Niceness of the mining process: the app's own requests (a vote, a grounding, a demo run) come first.
NICENESS = 10


@dataclass(frozen=True)
class Plan:
    """What a mining run would do now: (sample, task) items to mine, already mined, lacking their inputs."""

    to_mine: int
    done: int
    unusable: int
    model: str
    seconds_per_item: float | None
    """Measured by this app's last finished run of the same model (None: not measured yet)."""

    @property
    def seconds(self) -> float | None:
        return None if self.seconds_per_item is None else self.to_mine * self.seconds_per_item

    def line(self) -> str:
        """The plan in words, with the time it will take (or why it is not known yet)."""
        counts = f"**{self.to_mine}** (sample, task) item(s) to mine with **{self.model}**"
        skipped = [f"{self.done} already mined"] * bool(self.done)
        skipped += [f"{self.unusable} lacking what their task needs"] * bool(self.unusable)
        if skipped:
            counts += f" ({'; '.join(skipped)}: skipped)"
        if not self.to_mine:
            return f"{counts}: nothing to do."
        if self.seconds_per_item is None:
            return (
                f"{counts}. Time: not measured yet for this model on this machine; the progress line shows the time "
                "left after the first item (the tiny random models take a few seconds per item here)."
            )
        return (
            f"{counts}: about **{duration(self.seconds or 0)}** ({self.seconds_per_item:.1f} s per item on this "
            "machine's last run of this model)."
        )


def duration(seconds: float) -> str:
    """ "45 s", "4 min", "1 h 20 min"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def count_items(db: Any, config: Any) -> tuple[int, int, int]:
    """(to mine, already mined, unusable) for a MiningConfig, as its Miner will see them (one shard: the app's)."""
    from annotations.store import list_samples, mined_pairs
    from engine.mining import task_inputs
    from engine.types import Task

    to_mine = done = unusable = 0
    for sample in list_samples(db, config.split, config.limit):
        for task in config.tasks:
            if len(mined_pairs(db, sample.id, int(task))) >= config.num_rejected:
                done += 1
            elif task_inputs(sample, Task(task)) is None:
                unusable += 1
            else:
                to_mine += 1
    return to_mine, done, unusable


def mine_args(config: Any, db_url: str, judge_model: str | None) -> list[str]:
    """`python -m engine mine-pairs` arguments for a MiningConfig (the form's fields)."""
    args = ["mine-pairs", "--db", db_url, "--json"]
    for task in config.tasks:
        args += ["--task", str(int(task))]
    for name in config.evaluators:
        args += ["--evaluator", name]
    if config.model:
        args += ["--model", config.model]
    args += ["--split", config.split or "all", "--num-beams", str(config.num_beams), "--rejected"]
    args.append(str(config.num_rejected))
    if config.limit:
        args += ["--limit", str(config.limit)]
    if judge_model:
        args += ["--judge-model", judge_model]
    return args


@dataclass
class MiningRun:
    """One mining process: what it mines, who started it, where it writes, how it ended."""

    id: int
    plan: Plan
    started_by: str
    folder: Path
    proc: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)
    ended_at: float | None = None
    stopped: bool = False
    report: dict[str, Any] | None = None
    error: str | None = None

    @property
    def log(self) -> Path:
        return self.folder / "mine.log"

    @property
    def status(self) -> str:
        """running, stopped, failed or finished."""
        if self.ended_at is None:
            return "running"
        if self.stopped:
            return "stopped"
        return "failed" if self.report is None else "finished"

    def progress(self) -> tuple[int, int, str, str] | None:
        """(items done, items, elapsed, left) from the progress bar's last update (None before the first)."""
        try:
            text = self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return None
        found = PROGRESS.findall(text)
        if not found:
            return None
        done, total, elapsed, left = found[-1]
        return int(done), int(total), elapsed, left

    def seconds(self) -> float:
        return (self.ended_at or time.monotonic()) - self.started_at


class MiningJobs:
    """The app's mining process (one at a time), and the seconds per item each model took in earlier runs."""

    def __init__(self, db_url: str | None, folder: Path) -> None:
        self.db_url = db_url
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._run: MiningRun | None = None
        self._rates: dict[str, float] = {}  # model -> seconds per mined item, from the last finished run

    def plan(self, db: Any, config: Any) -> Plan:
        to_mine, done, unusable = count_items(db, config)
        model = model_label(config)
        return Plan(to_mine, done, unusable, model, self._rates.get(model))

    def current(self) -> MiningRun | None:
        with self._lock:
            return self._run

    def start(self, db: Any, config: Any, user: str, judge_model: str | None) -> MiningRun:
        """Start mining in its own process and return at once. InputError while one runs, or with a database a
        second process cannot open."""
        if not self.db_url or _in_memory(self.db_url):
            raise InputError(
                "mining runs in its own process, which cannot open an in-memory database: start the app "
                "with --db sqlite:///PATH or a server URL"
            )
        plan = self.plan(db, config)
        with self._lock:
            if self._run is not None and self._run.status == "running":
                run = self._run
                raise InputError(
                    f"mining run {run.id} (started by {run.started_by}) is still running: wait or stop it"
                )
            run_id = (self._run.id + 1) if self._run else 1
            folder = self.folder / f"mine-{run_id}-{time.strftime('%Y%m%d-%H%M%S')}"
            folder.mkdir(parents=True, exist_ok=True)
            proc = _spawn(mine_args(config, self.db_url, judge_model), folder)
            self._run = MiningRun(run_id, plan, user, folder, proc)
        threading.Thread(target=self._wait, args=(self._run,), name=f"mine-{run_id}", daemon=True).start()
        return self._run

    def stop(self) -> MiningRun:
        """End the running process (what it mined stays; a new run skips it). InputError when none runs."""
        run = self.current()
        if run is None or run.status != "running":
            raise InputError("no mining run is running")
        run.stopped = True
        try:
            os.killpg(run.proc.pid, 15)
        except ProcessLookupError:
            pass
        return run

    def _wait(self, run: MiningRun) -> None:
        """Reap the process, then read its JSON report (stdout) or its last error line, and learn its rate."""
        run.proc.wait()
        out = (run.folder / "report.json").read_text(errors="replace").strip() if run.proc.returncode == 0 else ""
        try:
            run.report = json.loads(out.splitlines()[-1]) if out else None
        except (json.JSONDecodeError, IndexError):
            run.report = None
        if run.report is None and not run.stopped:
            run.error = last_line(run.log) or f"the mining process exited with code {run.proc.returncode}"
        run.ended_at = time.monotonic()
        if run.report and run.report.get("mined"):
            self._rates[run.plan.model] = run.seconds() / run.report["mined"]


def _in_memory(db_url: str) -> bool:
    url = make_url(db_url)
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def model_label(config: Any) -> str:
    return config.generation_model() or "the default model per task"


def last_line(log: Path) -> str:
    """The log's last line that is not the progress bar."""
    try:
        lines = [line.strip() for line in re.split(r"[\r\n]", log.read_text(errors="replace")) if line.strip()]
    except OSError:
        return ""
    lines = [line for line in lines if not PROGRESS.search(line)]
    return lines[-1][:500] if lines else ""


def _spawn(args: list[str], folder: Path) -> subprocess.Popen[bytes]:
    nice = shutil.which("nice")
    command = [*([nice, "-n", str(NICENESS)] if nice else []), sys.executable, "-m", "engine", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CODE_ROOT), env.get("PYTHONPATH")]))
    with open(folder / "report.json", "wb") as out, open(folder / "mine.log", "wb") as log:
        return subprocess.Popen(command, stdout=out, stderr=log, env=env, start_new_session=True)
