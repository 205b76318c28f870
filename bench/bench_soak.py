"""Soak: mixed traffic against a running app.py for a while, with a kill -9 and a restart in the middle (issue 24).

One SQLite file, accounts for every client, and these clients (gradio_client, each its own signed-in session):

- ``--annotators`` annotators (default 20): next pair, a think time, a vote; each acknowledged vote is remembered;
- ``--demo-users`` demo users (default 2): Beautify a short prompt with the ``--model`` (beams 1-4, 48 tokens);
- the admin: one training run (tiny-cpu on the bundled sample set, ``--train-steps``) launched at 5 % of the
  time, one import of ``--import-rows`` text-only rows at 25 %, the run's status now and then;
- at 50 % the app is killed with SIGKILL and started again on the same database; clients reconnect.

At the end it prints lost votes (acknowledged but not in the database), duplicated votes (a pair with more than
one decisive vote at overlap 1), the database's integrity check, p50 / p95 / max per route (client side), each
app process's RSS (after warm-up, at the end, peak, the medians of the first and the last minute, and at
rest: the clients paused until nothing is in flight, after the warm-up and before the kill; a snapshot under
traffic lands inside generations), open file descriptors, SQLite connections (descriptors on
the database file) and sockets at its start and end, and the training run's fate. Goals (issue 24): 0 lost,
0 duplicated, descriptors and connections flat, RSS growth < 10 %.

    .venv/bin/python bench/bench_soak.py --minutes 30            # the full soak (a quiet machine)
    .venv/bin/python bench/bench_soak.py --minutes 2 --annotators 6 --import-rows 1000   # a short check
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PASSWORD = "soak-password-1"
PAIR_RE = re.compile(r"Pair #(\d+)")
#: Exceptions in gradio_client's own reader threads (connections reset by the kill -9), counted, not printed.
CLIENT_THREAD_ERRORS: Counter = Counter()


def _count_thread_error(args: threading.ExceptHookArgs) -> None:
    CLIENT_THREAD_ERRORS[getattr(args.exc_type, "__name__", "?")] += 1


# --------------------------------------------------------------------------- measurements


@dataclass
class Routes:
    """Client-side latency (ms) and errors per route, from every thread."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: int = 0
    """Calls in flight now (a rest snapshot waits for none)."""

    def call(self, route: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """fn(*args) timed under `route`; an exception is counted (by its first words) and re-raised."""
        start = time.perf_counter()
        with self.lock:
            self.active += 1
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            with self.lock:
                self.errors[route][" ".join(str(exc).split())[:90] or type(exc).__name__] += 1
            raise
        finally:
            with self.lock:
                self.active -= 1
        with self.lock:
            self.latency[route].append((time.perf_counter() - start) * 1000)
        return result

    def table(self) -> dict[str, dict[str, float]]:
        out = {}
        for route, values in sorted(self.latency.items()):
            ordered = sorted(values)
            out[route] = {
                "n": len(ordered),
                "p50": statistics.median(ordered),
                "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
                "max": ordered[-1],
                "errors": sum(self.errors[route].values()),
            }
        return out


def status_values(pid: int, *keys: str) -> dict[str, int]:
    """Numeric fields of /proc/PID/status by name (VmRSS, RssAnon, RssFile in kB; Threads)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(key + r":\s+(\d+)", status).group(1)) for key in keys}  # type: ignore[union-attr]


def process_snapshot(pid: int, db_path: Path) -> dict[str, Any]:
    """RSS (kB), open descriptors, descriptors on the SQLite file (its connections) and sockets of a process, and
    the descriptors by kind (socket, pipe, or a file's folder) to tell a leak's source."""
    rss = status_values(pid, "VmRSS")["VmRSS"]
    kinds: Counter = Counter()
    target = str(db_path.resolve())
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds["db" if link == target else link.split(":")[0] if ":[" in link else str(Path(link).parent)] += 1
    fds = sum(kinds.values())
    return {"rss_kb": rss, "fds": fds, "db_connections": kinds["db"], "sockets": kinds["socket"], "kinds": kinds}


class AppProcess:
    """One app.py process: start / end snapshots after warm-up, and its peak RSS (sampled every second)."""

    def __init__(self, server: Any, db_path: Path) -> None:
        self.server, self.db_path = server, db_path
        self.pid = server.proc.pid
        self.start: dict[str, int] | None = None
        self.end: dict[str, int] | None = None
        self.rest_start: dict[str, int] | None = None  # at rest: every client paused, no call in flight
        self.rest_end: dict[str, int] | None = None
        self.peak_rss_kb = 0
        # (monotonic s, RSS kB) each second: a snapshot can land inside a 4-beam generation (+100 MB of live
        # KV cache), so the growth is also read as the median of the first and the last minute.
        self.samples: list[tuple[float, int]] = []
        self.marks: dict[str, float] = {}
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            try:
                rss = process_snapshot(self.pid, self.db_path)["rss_kb"]
                self.peak_rss_kb = max(self.peak_rss_kb, rss)
                self.samples.append((time.monotonic(), rss))
            except (OSError, AttributeError):
                return

    def snapshot(self, which: str) -> None:
        self.marks[which] = time.monotonic()
        try:
            setattr(self, which, process_snapshot(self.pid, self.db_path))
        except (OSError, AttributeError):
            pass

    def window_median_kb(self, begin: float, end: float) -> int | None:
        inside = [rss for t, rss in self.samples if begin <= t <= end]
        return int(statistics.median(inside)) if inside else None

    def finish(self) -> dict[str, Any]:
        self._stop.set()
        start, end = self.marks.get("start"), self.marks.get("end")
        window = {}
        if start is not None and end is not None:
            window = {
                "first_minute_median_kb": self.window_median_kb(start, start + 60),
                "last_minute_median_kb": self.window_median_kb(end - 60, end),
            }
        rest = {"rest_start": self.rest_start, "rest_end": self.rest_end}
        return {
            "pid": self.pid,
            "start": self.start,
            "end": self.end,
            "peak_rss_kb": self.peak_rss_kb,
            **window,
            **rest,
        }


# --------------------------------------------------------------------------- the app and its accounts


def write_accounts(path: Path, annotators: int, demo_users: int) -> None:
    from ui.auth import add_user

    for name in [*(f"ann{i:02d}" for i in range(annotators)), *(f"demo{i}" for i in range(demo_users)), "boss"]:
        add_user(path, name, PASSWORD, "admin" if name == "boss" else "annotator", rounds=4)


def seed(db_url: str, pairs: int) -> None:
    """`pairs` labelling pairs in one transaction (the crash bench's seed: text responses, fake clip paths)."""
    from bench_annotations_crash import seed as seed_pairs

    seed_pairs(db_url, pairs)


def write_import_rows(path: Path, rows: int) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            row = {
                "short_prompt": f"soak import {i}: a kite over a beach",
                "detailed_prompt": f"A red kite, take {i}.",
            }
            fh.write(json.dumps(row) + "\n")
    return path


def training_pairs(path: Path) -> Path:
    """The bundled sample set's pairs with absolute clip paths, in the app's data folder (what a launch may read;
    the soak's own pairs name clips that do not exist)."""
    folder = ROOT / "assets" / "sampleset"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(folder / "pairs.jsonl", encoding="utf-8") as src, open(path, "w", encoding="utf-8") as out:
        for line in src:
            row = json.loads(line)
            for key in ("video", "rejected_video"):
                if row.get(key):
                    row[key] = str((folder / row[key]).resolve())
            out.write(json.dumps(row) + "\n")
    return path


class App:
    """The app under test, its URL (changes on restart) and its processes."""

    def __init__(self, workdir: Path, extra: list[str]) -> None:
        self.workdir, self.extra = workdir, extra
        self.db_path = workdir / "studio.db"
        self.processes: list[AppProcess] = []
        self.url = ""
        self.up = threading.Event()
        self.resting = threading.Event()  # set: clients finish their call and wait (a rest snapshot)
        self.restart_s: float | None = None

    def start(self) -> None:
        from tests.app_server import start_app

        server = start_app(self.workdir, auth=True, extra=self.extra, timeout=180)
        self.server, self.url = server, server.url
        self.processes.append(AppProcess(server, self.db_path))
        self.up.set()

    def kill_and_restart(self) -> None:
        self.processes[-1].snapshot("end")
        self.up.clear()
        self.server.proc.kill()  # SIGKILL: no shutdown handler runs
        self.server.proc.wait()
        began = time.monotonic()
        self.start()
        self.restart_s = time.monotonic() - began

    def rest_snapshot(self, routes: Routes, which: str, quiet_s: float = 6.0, timeout_s: float = 180.0) -> float:
        """Pause the clients, wait until no call has been in flight for `quiet_s` (longer than an annotator's
        think time), snapshot the process at rest as `which`, resume; returns the seconds it took. A snapshot
        under traffic includes the live working set of the generations in flight (~100-150 MB)."""
        began = time.monotonic()
        self.resting.set()
        quiet_since = time.monotonic()
        while time.monotonic() - began < timeout_s and time.monotonic() - quiet_since < quiet_s:
            time.sleep(0.2)
            if routes.active:
                quiet_since = time.monotonic()
        self.processes[-1].snapshot(which)
        self.resting.clear()
        return time.monotonic() - began

    def hold(self, deadline: float) -> None:
        """A client's wait while the app is being measured at rest."""
        while self.resting.is_set() and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self) -> None:
        self.processes[-1].snapshot("end")
        self.server.stop()


# --------------------------------------------------------------------------- clients


def live(app: App, client: Any) -> Any:
    """After a failed call: the client if it still talks to the app as it runs now, else None (reconnect). A
    client that first fails after the restart is up holds the killed process's URL and would be refused forever."""
    if not app.up.is_set() or getattr(client, "src", "").rstrip("/") != app.url.rstrip("/"):
        return None
    return client


def connect(app: App, user: str, deadline: float) -> Any:
    """A signed-in gradio_client.Client on the app's current URL, retried while the app restarts."""
    from gradio_client import Client

    while time.monotonic() < deadline:
        if not app.up.wait(timeout=2.0):
            continue
        try:
            return Client(app.url, auth=(user, PASSWORD), verbose=False)
        except Exception:  # noqa: BLE001 - the app is going down or coming up: try again
            time.sleep(1.0)
    return None


def annotator(app: App, routes: Routes, name: str, think_s: float, deadline: float, acked: list) -> None:
    rng, client = random.Random(name), None
    while time.monotonic() < deadline:
        app.hold(deadline)
        client = client or connect(app, name, deadline)
        if client is None:
            return
        try:
            header = routes.call("next_pair", client.predict, api_name="/next_pair")[0]
            match = PAIR_RE.search(header or "")
            if match is None:  # the queue is empty
                time.sleep(think_s)
                continue
            time.sleep(rng.uniform(0.5, 1.5) * think_s)
            choice = rng.choice(["a_better", "b_better", "a_better", "tie", "skip"])
            routes.call("vote", client.predict, choice, api_name="/vote")
            acked.append((name, int(match.group(1)), choice))
        except Exception:  # noqa: BLE001 - counted by Routes; reconnect if the app went away
            client = live(app, client)
            time.sleep(0.5)


def demo_user(app: App, routes: Routes, name: str, model: str, deadline: float) -> None:
    rng, client = random.Random(name), None
    prompts = ["A dog runs on the beach.", "A red car drives along a coast road.", "Two kids fly a kite."]
    while time.monotonic() < deadline:
        app.hold(deadline)
        client = client or connect(app, name, deadline)
        if client is None:
            return
        beams = rng.choice([1, 1, 2, 4])
        try:
            routes.call(
                "beautify",
                client.predict,
                rng.choice(prompts),
                model,
                beams,
                beams,
                0,
                48,
                False,
                api_name="/beautify",
            )
        except Exception:  # noqa: BLE001 - counted by Routes
            client = live(app, client)
        time.sleep(rng.uniform(1.0, 4.0))


def admin(app: App, routes: Routes, args: argparse.Namespace, start: float, deadline: float, out: dict) -> None:
    """The admin's script: launch a training run, import rows, watch the run, cancel it at the end."""
    from gradio_client import handle_file

    total = deadline - start
    rows = write_import_rows(Path(args.workdir) / "import.jsonl", args.import_rows)
    pairs = training_pairs(Path(args.workdir) / "data" / "pairs.jsonl")
    overrides = f"data.path={pairs}\noptim.max_steps={args.train_steps}\noptim.epochs=1000"
    plan = [(0.05, "launch_training"), (0.25, "import_rows")]
    client, run_id = None, None
    while time.monotonic() < deadline:
        app.hold(deadline)
        client = client or connect(app, "boss", deadline)
        if client is None:
            return
        elapsed = (time.monotonic() - start) / total
        try:
            if plan and elapsed >= plan[0][0]:
                _at, what = plan.pop(0)
                if what == "launch_training":
                    _note, run_id, _timer = routes.call(
                        what, client.predict, "tiny-cpu", "", overrides, api_name="/launch_training"
                    )
                else:
                    out["import"] = routes.call(
                        what, client.predict, handle_file(str(rows)), False, api_name=f"/{what}"
                    )
            elif run_id:
                out["training"] = routes.call("training_status", client.predict, run_id, api_name="/training_status")[
                    0
                ]
        except Exception as exc:  # noqa: BLE001 - counted by Routes, kept for the report
            out.setdefault("admin_errors", []).append(" ".join(str(exc).split())[:200])
            client = live(app, client)
        time.sleep(5.0)
    out["run_id"] = run_id


# --------------------------------------------------------------------------- the verdict


def verdict(db_path: Path, acked: list[tuple[str, int, str]]) -> dict[str, Any]:
    """Lost and duplicated votes, and the database's integrity check."""
    with sqlite3.connect(db_path) as conn:
        stored = {
            (name, pair_id): choice
            for name, pair_id, choice in conn.execute(
                "SELECT a.name, j.pair_id, j.choice FROM judgement j JOIN annotator a ON a.id = j.annotator_id"
            )
        }
        decisive = conn.execute(
            "SELECT COUNT(*) FROM (SELECT pair_id FROM judgement WHERE choice <> 'skip' GROUP BY pair_id "
            "HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        drift = conn.execute(
            "SELECT COUNT(*) FROM pair p WHERE p.n_judgements <> (SELECT COUNT(*) FROM judgement j "
            "WHERE j.pair_id = p.id AND j.choice <> 'skip')"
        ).fetchone()[0]
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    lost = [(n, p) for n, p, _c in acked if (n, p) not in stored]
    return {
        "acked_votes": len(acked),
        "stored_judgements": len(stored),
        "lost_votes": len(lost),
        "duplicated_pairs": decisive,
        "count_drift_pairs": drift,
        "integrity": integrity,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-soak-"))
    args.workdir = str(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_accounts(workdir / "auth.json", args.annotators, args.demo_users)
    db_url = f"sqlite:///{workdir / 'studio.db'}"
    minutes_of_votes = args.annotators * args.minutes * 60 / max(args.think, 0.5)
    seed(db_url, int(minutes_of_votes * 1.5) + 100)
    app = App(workdir, ["--model", args.model])
    app.start()
    routes, acked, admin_out = Routes(), list[tuple[str, int, str]](), dict[str, Any]()
    start = time.monotonic()
    deadline = start + args.minutes * 60
    threads = [
        threading.Thread(target=annotator, args=(app, routes, f"ann{i:02d}", args.think, deadline, acked), daemon=True)
        for i in range(args.annotators)
    ]
    threads += [
        threading.Thread(target=demo_user, args=(app, routes, f"demo{i}", args.model, deadline), daemon=True)
        for i in range(args.demo_users)
    ]
    threads.append(threading.Thread(target=admin, args=(app, routes, args, start, deadline, admin_out), daemon=True))
    for thread in threads:
        thread.start()
    rests: list[float] = []
    _at(start, min(args.warmup_s, args.minutes * 6))
    app.processes[-1].snapshot("start")
    if args.rest_snapshots:
        rests.append(app.rest_snapshot(routes, "rest_start"))
    _at(start, args.minutes * 30)  # the middle
    if args.rest_snapshots:
        rests.append(app.rest_snapshot(routes, "rest_end"))
        time.sleep(10.0)  # traffic flows again when the kill lands
    app.kill_and_restart()
    _at(time.monotonic(), min(args.warmup_s, args.minutes * 6))
    app.processes[-1].snapshot("start")
    if args.rest_snapshots:
        rests.append(app.rest_snapshot(routes, "rest_start"))
    _at(deadline, 0)
    for thread in threads:
        thread.join(timeout=120)
    app.processes[-1].snapshot("rest_end")  # every client has stopped
    app.stop()
    return {
        "minutes": args.minutes,
        "annotators": args.annotators,
        "demo_users": args.demo_users,
        "model": args.model,
        "workdir": str(workdir),
        "votes": verdict(app.db_path, acked),
        "routes": routes.table(),
        "errors": {r: dict(c.most_common(3)) for r, c in routes.errors.items()},
        "processes": [p.finish() for p in app.processes],
        "restart_s": app.restart_s,
        "rest_waits_s": [round(r, 1) for r in rests],
        "admin": {k: str(v)[:300] for k, v in admin_out.items()},
        "client_thread_errors": dict(CLIENT_THREAD_ERRORS),
    }


def _at(moment: float, offset_s: float) -> None:
    time.sleep(max(0.0, moment + offset_s - time.monotonic()))


def _print(result: dict[str, Any]) -> None:
    votes = result["votes"]
    print(
        f"soak: {result['minutes']} min, {result['annotators']} annotators, {result['demo_users']} demo users "
        f"({result['model']}), kill -9 + restart at half time (back in {result['restart_s'] or 0:.1f} s)"
    )
    print(
        f"votes: {votes['acked_votes']} acknowledged, {votes['stored_judgements']} stored; "
        f"lost {votes['lost_votes']}, "
        f"duplicated {votes['duplicated_pairs']}, count drift {votes['count_drift_pairs']}, "
        f"integrity {votes['integrity']}"
    )
    for route, p in result["routes"].items():
        print(
            f"  {route:>16}: n {p['n']:>6}  p50 {p['p50']:8.1f} ms  p95 {p['p95']:8.1f} ms  max {p['max']:9.1f} ms"
            f"  errors {p['errors']}"
        )
    for i, proc in enumerate(result["processes"]):
        start, end = proc["start"] or {}, proc["end"] or {}
        growth = (end.get("rss_kb", 0) / start["rss_kb"] - 1) * 100 if start.get("rss_kb") else float("nan")
        print(
            f"app process {i + 1} (pid {proc['pid']}): RSS {start.get('rss_kb', 0) / 1024:.0f} -> "
            f"{end.get('rss_kb', 0) / 1024:.0f} MB ({growth:+.1f} %), peak {proc['peak_rss_kb'] / 1024:.0f} MB; "
            f"fds {start.get('fds')} -> {end.get('fds')}; db connections {start.get('db_connections')} -> "
            f"{end.get('db_connections')}; sockets {start.get('sockets')} -> {end.get('sockets')}"
        )
        rest0, rest1 = (proc.get("rest_start") or {}).get("rss_kb"), (proc.get("rest_end") or {}).get("rss_kb")
        if rest0 and rest1:
            print(
                f"app process {i + 1}: RSS at rest (clients paused, nothing in flight) {rest0 / 1024:.0f} -> "
                f"{rest1 / 1024:.0f} MB ({(rest1 / rest0 - 1) * 100:+.1f} %)"
            )
        first, last = proc.get("first_minute_median_kb"), proc.get("last_minute_median_kb")
        if first and last:
            print(
                f"app process {i + 1}: RSS median over the first minute {first / 1024:.0f} MB -> the last minute "
                f"{last / 1024:.0f} MB ({(last / first - 1) * 100:+.1f} %)"
            )
    for i, proc in enumerate(result["processes"]):
        start, end = (proc["start"] or {}).get("kinds", {}), (proc["end"] or {}).get("kinds", {})
        grew = {k: f"{start.get(k, 0)} -> {n}" for k, n in end.items() if n != start.get(k, 0)}
        if grew:
            print(f"app process {i + 1}: descriptors that changed: {json.dumps(grew)}")
    if result["errors"]:
        print(f"errors by route (top 3): {json.dumps(result['errors'])}")
    print(f"admin: {json.dumps(result['admin'])}")
    print(f"client reader-thread errors (the kill -9's resets): {json.dumps(result['client_thread_errors'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the traffic runs")
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--demo-users", type=int, default=2)
    parser.add_argument("--think", type=float, default=3.0, help="seconds an annotator looks at a pair (mean)")
    parser.add_argument("--model", default="smollm2-135m", help="the demo users' Beautify model")
    parser.add_argument("--import-rows", type=int, default=10_000, help="rows of the admin's import")
    parser.add_argument("--train-steps", type=int, default=300, help="steps of the admin's training run")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="seconds before an app's start snapshot")
    parser.add_argument(
        "--rest-snapshots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also read each process's RSS at rest: after its warm-up and before the kill (and at the end), the "
        "clients pause until no call is in flight; the kill lands 10 s after they resume",
    )
    parser.add_argument("--workdir", default=None, help="folder for the database, accounts and logs (default: new)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    threading.excepthook = _count_thread_error
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
