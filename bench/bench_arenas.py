"""RSS growth of demo-like generations from many worker threads: glibc's default arenas vs the app's cap (issue 24).

The 30-minute soak's app grew +20 % / +25 % RSS. A Gradio app runs each request on one of ~40 worker
threads; glibc gives each allocating thread its own arena and every arena keeps its freed pages. This runs
the same work twice, each in a fresh process: the embedded smollm2-135m (Studio.run_task, Task 3) from a pool
of 16 threads, 1-4 sampled candidates of 32-96 new tokens per call, every thread warmed up first, then
--rounds rounds of --calls calls. Arm `default` is glibc as it starts; arm `capped` calls engine.malloc.cap_arenas()
first, as app.main does. Prints each arm's RSS after warm-up and after each round, its growth, the arenas it
ended with, and the ratio of the growths (capped / default).

    .venv/bin/python bench/bench_arenas.py [--calls 12] [--rounds 3]

Linux + glibc only. RSS does not depend on CPU load, so a loaded machine slows it but does not skew it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One arm: argv = mode, calls, rounds. Prints one JSON line.
ARM = """
import json, re, sys, time
from concurrent.futures import ThreadPoolExecutor
from engine import malloc
if sys.argv[1] == "capped":
    malloc.cap_arenas()
from engine.service import Studio
from engine.types import GenerationParams

def rss_mb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

calls, rounds = int(sys.argv[2]), int(sys.argv[3])
prompts = [p for p in open("bench/data/demo_prompts.txt").read().splitlines() if p.strip()]
studio = Studio()
studio.load("smollm2-135m", 3)

def one(i):
    params = GenerationParams(
        max_new_tokens=32 + 16 * (i % 5), do_sample=True, num_return_sequences=1 + i % 4, seed=i
    )
    studio.run_task(3, short_prompt=prompts[i % len(prompts)], model="smollm2-135m", params=params)

pool = ThreadPoolExecutor(16)
list(pool.map(one, range(16)))  # each worker thread has generated once
start, marks, t0 = rss_mb(), [], time.time()
for k in range(rounds):
    list(pool.map(one, range(16 + k * calls, 16 + (k + 1) * calls)))
    marks.append(rss_mb())
print(json.dumps({"start_mb": start, "marks_mb": marks, "arenas": malloc.arena_count(), "s": time.time() - t0}))
"""


def arm(mode: str, calls: int, rounds: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", ARM, mode, str(calls), str(rounds)],
        cwd=ROOT,
        env=env | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=12, help="generations per round (default 12)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds after the warm-up (default 3)")
    args = parser.parse_args(argv)
    growth = {}
    for mode in ("default", "capped"):
        r = arm(mode, args.calls, args.rounds)
        growth[mode] = (r["marks_mb"][-1] / r["start_mb"] - 1) * 100
        marks = ", ".join(f"{m:.0f}" for m in r["marks_mb"])
        print(
            f"{mode:8s} RSS {r['start_mb']:.0f} MB after warm-up -> {marks} MB: {growth[mode]:+.1f} %, "
            f"{r['arenas']} arenas, {r['s']:.0f} s"
        )
    ratio = growth["capped"] / growth["default"] if growth["default"] else float("nan")
    print(f"growth capped / default: {ratio:.2f} (goal of the soak: growth < 10 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
