"""RSS of one app.py process through the soak's kinds of traffic, one kind at a time (issue 24): which one grows.

The soak mixes everything, so its RSS growth does not say where memory goes. This starts one app on the embedded
smollm2-135m with 6,000 seeded pairs and runs, in order: a warm-up (two Beautify calls at 4 beams), 20
annotators voting for 2 minutes, twice; one 10k-row import; 20 annotators for 2 minutes; 2 demo users calling
/beautify (the soak's calls) for 3 minutes, twice. After each phase it prints RSS, its anonymous and file-backed
parts (the model's weights are file-backed) and the thread count. A phase whose RSS keeps rising when repeated
is the one to read further (tracemalloc for Python objects; else native memory).

    .venv/bin/python bench/bench_rss_phases.py [--minutes-scale 1.0]

Linux only (/proc). About 16 minutes at scale 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MODEL = "smollm2-135m"


def memory(pid: int) -> str:
    """'rss R anon A file F MB, T threads' from /proc/PID/status."""
    from bench_soak import status_values

    v = status_values(pid, "VmRSS", "RssAnon", "RssFile", "Threads")
    return (
        f"rss {v['VmRSS'] // 1024} anon {v['RssAnon'] // 1024} file {v['RssFile'] // 1024} MB, {v['Threads']} threads"
    )


def main(argv: list[str] | None = None) -> int:
    import bench_soak as soak
    from gradio_client import Client, handle_file

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes-scale", type=float, default=1.0, help="multiplies every phase's length")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-rss-phases-"))
    soak.write_accounts(workdir / "auth.json", 20, 2)
    soak.seed(f"sqlite:///{workdir / 'studio.db'}", 6000)
    app = soak.App(workdir, ["--model", MODEL])
    app.start()
    pid, routes = app.processes[-1].pid, soak.Routes()

    def mark(phase: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {phase}: {memory(pid)}", flush=True)

    def clients(run: Callable[[str, float], None], names: list[str], minutes: float) -> None:
        """run(name, deadline) on a thread per name, until the deadline."""
        deadline = time.monotonic() + minutes * 60 * args.minutes_scale
        threads = [threading.Thread(target=run, args=(name, deadline)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    annotators = [f"ann{i:02d}" for i in range(20)]
    try:
        mark("started")
        demo = Client(app.url, auth=("demo0", soak.PASSWORD), verbose=False)
        for _ in range(2):
            demo.predict("A dog runs on the beach.", MODEL, 4, 4, 0, 48, False, api_name="/beautify")
        mark("warm-up: Beautify twice at 4 beams")
        voted: list = []

        def annotator(name: str, deadline: float) -> None:
            soak.annotator(app, routes, name, 3.0, deadline, voted)  # think time 3 s, as the soak's

        def demo_user(name: str, deadline: float) -> None:
            soak.demo_user(app, routes, name, MODEL, deadline)

        for phase in ("20 annotators 2 min", "20 annotators 2 more min"):
            clients(annotator, annotators, 2.0)
            mark(phase)
        boss = Client(app.url, auth=("boss", soak.PASSWORD), verbose=False)
        rows = soak.write_import_rows(workdir / "import.jsonl", 10_000)
        boss.predict(handle_file(str(rows)), False, api_name="/import_rows")
        mark("a 10k-row import")
        clients(annotator, annotators, 2.0)
        mark("20 annotators 2 min after the import")
        for phase in ("2 demo users 3 min", "2 demo users 3 more min"):
            clients(demo_user, ["demo0", "demo1"], 3.0)
            mark(phase)
        print(f"votes acknowledged: {len(voted)}")
    finally:
        app.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
