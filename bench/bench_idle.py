"""CPU an idle app burns (issue 24): app.py with nobody on it, Gradio's stock queue polling vs ours.

Gradio's queue polls for work every 1 ms and for progress every 10 ms on Linux; ui.layout.quiet_when_idle
raises that to QUEUE_POLL_S / PROGRESS_POLL_S. This starts app.py twice on a fresh SQLite file — once as it
ships, once with both constants set to 0 (quiet_when_idle keeps Gradio's own values: the baseline) — lets each
warm up, then reads the process's CPU time (/proc/<pid>/stat utime + stime, every thread) over --seconds
and prints the share of one core, and the ratio ours / stock (goal: well under 1).

    .venv/bin/python bench/bench_idle.py [--seconds 60] [--warmup 10]

Linux only (/proc). CPU time is the process's own, so other load barely moves it; a quiet machine is still best.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app_server import free_port, page_ok  # noqa: E402

# Runs app.py's main with the polling constants optionally zeroed (then Gradio's own 1 ms / 10 ms apply).
LAUNCH = """
import runpy, sys
import ui.layout as layout
if sys.argv[1] == "stock":
    layout.QUEUE_POLL_S = layout.PROGRESS_POLL_S = 0.0
sys.argv = [sys.argv[2], *sys.argv[3:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # fields 14, 15 of stat(5)


def idle_share(mode: str, seconds: float, warmup: float) -> float:
    """Share of one core app.py burns while idle, in `mode` ("ours" or "stock")."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        args = [sys.executable, "-c", LAUNCH, mode, str(ROOT / "app.py"), "--port", str(port)]
        args += ["--db", f"sqlite:///{tmp}/studio.db"]
        env = os.environ | {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        with open(Path(tmp) / "app.log", "w") as log:
            proc = subprocess.Popen(args, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + 120
            while not page_ok(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"app.py did not start ({mode}): see {tmp}/app.log")
                time.sleep(0.5)
            time.sleep(warmup)  # the page load's work is over
            before, start = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            return (cpu_seconds(proc.pid) - before) / (time.monotonic() - start)
        finally:
            proc.terminate()
            proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle time measured per app")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after the page is served")
    args = parser.parse_args()
    stock = idle_share("stock", args.seconds, args.warmup)
    ours = idle_share("ours", args.seconds, args.warmup)
    print(f"idle app, {args.seconds:.0f} s each: stock Gradio polling {stock:.2%} of a core, ours {ours:.2%}")
    print(json.dumps({"stock": round(stock, 4), "ours": round(ours, 4), "ratio": round(ours / stock, 3)}))


if __name__ == "__main__":
    main()
