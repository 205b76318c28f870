"""RSS of a running app.py under the demo's generations: the heap trimmed after each model call or not (issue 24).

The soak's app process grew past the < 10 % RSS goal with the glibc arenas capped; tracemalloc found no Python
object growing (the growth was native: pages a generation freed, kept as fragments of the heap). This starts the
app twice on the embedded smollm2-135m, arm `untrimmed` with `--no-trim-after-call` (the app before) and arm
`trimmed` as it starts by default, and in each: three Beautify calls through its API at 4, 2 and 1 beams (the
warm-up), then `--users` demo users calling /beautify as the soak's do (1, 1, 2 or 4 beams, each beam returned, 48 new
tokens, 1-4 s between calls) for `--minutes`. RSS is read at rest (no call running) after the warm-up and after the
traffic, and every second in between (peak: the soak's AppProcess sampler). Prints per arm: RSS at rest before and
after, growth, peak, calls and p50 latency; then the ratio of the growths (trimmed / untrimmed).

    .venv/bin/python bench/bench_demo_rss.py [--minutes 4] [--users 2]

Linux only (/proc). RSS does not depend on CPU load; the latencies do, so run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MODEL = "smollm2-135m"


def rss_mb(pid: int) -> float:
    from bench_soak import status_values

    return status_values(pid, "VmRSS")["VmRSS"] / 1024


def arm(name: str, flags: list[str], minutes: float, users: int) -> dict[str, float]:
    """One fresh app process: warm-up, `users` demo users for `minutes`, RSS at rest before and after."""
    import bench_soak as soak
    from gradio_client import Client

    workdir = Path(tempfile.mkdtemp(prefix=f"bench-demo-rss-{name}-"))
    soak.write_accounts(workdir / "auth.json", 0, users)
    app = soak.App(workdir, ["--model", MODEL, *flags])
    app.start()  # its AppProcess samples RSS every second: the peak
    try:
        proc = app.processes[-1]
        warm = Client(app.url, auth=("demo0", soak.PASSWORD), verbose=False)
        for beams in (4, 2, 1):  # every shape the traffic uses, largest first
            warm.predict("A dog runs on the beach.", MODEL, beams, beams, 0, 48, False, api_name="/beautify")
        before = rss_mb(proc.pid)
        routes = soak.Routes()
        deadline = time.monotonic() + minutes * 60
        threads = [
            threading.Thread(target=soak.demo_user, args=(app, routes, f"demo{i}", MODEL, deadline), daemon=True)
            for i in range(users)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = rss_mb(proc.pid)  # every client has its answer: at rest
        latency = routes.latency.get("beautify", [])
        return {
            "before": before,
            "after": after,
            "growth": (after / before - 1) * 100,
            "peak": max(proc.peak_rss_kb / 1024, after),
            "calls": len(latency),
            "p50_s": statistics.median(latency) / 1000 if latency else float("nan"),
            "errors": sum(routes.errors.get("beautify", {}).values()),
        }
    finally:
        app.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="traffic per arm (default 4)")
    parser.add_argument("--users", type=int, default=2, help="demo users calling /beautify (default 2)")
    args = parser.parse_args(argv)
    out = {}
    for name, flags in (("untrimmed", ["--no-trim-after-call"]), ("trimmed", [])):
        r = out[name] = arm(name, flags, args.minutes, args.users)
        print(
            f"{name:9s} RSS at rest {r['before']:.0f} -> {r['after']:.0f} MB ({r['growth']:+.1f} %), peak "
            f"{r['peak']:.0f} MB; {r['calls']:.0f} calls, p50 {r['p50_s']:.1f} s, {r['errors']:.0f} errors",
            flush=True,
        )
    ratio = out["trimmed"]["growth"] / out["untrimmed"]["growth"] if out["untrimmed"]["growth"] else float("nan")
    print(f"growth trimmed / untrimmed: {ratio:.2f} (the soak's goal: growth < 10 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
