"""The whole loop on the bundled sample set with the tiny models on CPU: wall time per stage (goal: < 10 minutes).

Runs `python -m training loop --config configs/loops/tiny.yaml` into a fresh folder (a fresh database:
nothing done before), then prints each stage's seconds from its state.json, the total, and the ratio of
the total to the 600-second goal.

    .venv/bin/python bench/bench_loop.py [--config configs/loops/tiny.yaml] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 600.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "loops" / "tiny.yaml"))
    p.add_argument("--keep", help="write the loop folder here and keep it (default: a temp folder, removed)")
    args = p.parse_args()
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-loop-")) / "loop"
    if out.exists():
        raise SystemExit(f"{out} exists: the bench times a loop from scratch")
    argv = [sys.executable, "-m", "training", "loop", "--config", args.config, "--out", str(out), "--json"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the loop failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    state = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"loop {Path(args.config).name} from scratch (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    for name, record in state["stages"].items():
        print(f"  {name:9s} {record['seconds']:7.1f} s  {json.dumps(record['counts'], default=str)[:110]}")
    stages = sum(r["seconds"] for r in state["stages"].values())
    print(f"  {'stages':9s} {stages:7.1f} s; process wall time {wall:.1f} s (with interpreter start and imports)")
    print(f"ratio wall time / {GOAL_S:.0f} s goal: {wall / GOAL_S:.2f} (goal < 1)")
    if not args.keep:
        shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
