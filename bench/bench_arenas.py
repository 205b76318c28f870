"""RSS growth of demo-like generations from many worker threads: glibc's defaults vs the app's settings (issue 24).

The 30-minute soak's app grew +20 % / +25 % RSS. A Gradio app runs each request on one of ~40 worker
threads; glibc gives each allocating thread its own arena and every arena keeps its freed pages. This runs
the same work in each arm, each in a fresh process: the embedded smollm2-135m (Studio.run_task, Task 3) from a
pool of 16 threads, beam search as the soak's demo users call it (Beautify's API: 1, 1, 2 or 4 beams, each
beam returned, 48 new tokens), every thread warmed up first, then --rounds rounds of --calls calls. Arm
`default` is glibc as it starts; arm `capped` calls engine.malloc.cap_arenas() first, as app.main does; arm
`trimmed` also trims the heap after every model call (StudioConfig.trim_after_call, as the app's Studio does).
Prints each arm's RSS after warm-up and after each round, its growth, the arenas it ended with, its seconds,
and the ratio of each arm's growth to the default's.

    .venv/bin/python bench/bench_arenas.py [--calls 12] [--rounds 3] [--arms default capped trimmed]

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
if sys.argv[1] != "default":
    malloc.cap_arenas()
from engine.service import Studio, StudioConfig
from engine.types import GenerationParams

def rss_mb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

calls, rounds = int(sys.argv[2]), int(sys.argv[3])
prompts = [p for p in open("bench/data/demo_prompts.txt").read().splitlines() if p.strip()]
studio = Studio(StudioConfig(trim_after_call=sys.argv[1] == "trimmed"))
studio.load("smollm2-135m", 3)

def one(i):
    # The soak's demo users: Beautify's API (ui.tasks.beautify -> Studio.run_task), beam search of 1, 1, 2 or 4
    # beams returning every beam, 48 new tokens.
    beams = (1, 1, 2, 4)[i % 4]
    params = GenerationParams(max_new_tokens=48, num_beams=beams, num_return_sequences=beams)
    studio.run_task(3, short_prompt=prompts[i % len(prompts)], model="smollm2-135m", params=params)

pool = ThreadPoolExecutor(16)
list(pool.map(one, range(16)))  # each worker thread has generated once
start, marks, t0 = rss_mb(), [], time.time()
for k in range(rounds):
    list(pool.map(one, range(16 + k * calls, 16 + (k + 1) * calls)))
    marks.append(rss_mb())
print(json.dumps({"start_mb": start, "marks_mb": marks, "arenas": malloc.arena_count(), "s": time.time() - t0}))
"""


#: The arms: glibc as it starts; arenas capped (engine.malloc.cap_arenas, as app.main does); capped and the heap
#: trimmed after each model call (StudioConfig.trim_after_call, as the app's Studio does).
ARMS = ("default", "capped", "trimmed")


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
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="which arms (default all)")
    args = parser.parse_args(argv)
    growth = {}
    for mode in args.arms:
        r = arm(mode, args.calls, args.rounds)
        growth[mode] = (r["marks_mb"][-1] / r["start_mb"] - 1) * 100
        marks = ", ".join(f"{m:.0f}" for m in r["marks_mb"])
        print(
            f"{mode:8s} RSS {r['start_mb']:.0f} MB after warm-up -> {marks} MB: {growth[mode]:+.1f} %, "
            f"{r['arenas']} arenas, {r['s']:.0f} s"
        )
    for mode in [m for m in growth if m != "default" and "default" in growth]:
        ratio = growth[mode] / growth["default"] if growth["default"] else float("nan")
        print(f"growth {mode} / default: {ratio:.2f} (goal of the soak: growth < 10 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
