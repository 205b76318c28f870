"""Text-to-video end to end on a tiny random pipeline: seconds per clip at the preset's default size, against the
bare diffusers call with the same arguments (ratio = our checks + uint8 conversion + atomic mp4 write), and the
frame-quality metrics on the clip; with --eval-samples N, the Table-3 evaluation (python -m engine evaluate-video)
on N text-only samples: seconds per sample and per stage, fresh and resumed (every clip reused).

.venv/bin/python bench/bench_t2v.py [--model tiny-random-cogvideox] [--clips 5] [--device cpu] [--eval-samples 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from engine.t2v.backend import ClipRequest, generate_clip, load_t2v
from engine.t2v.quality import flicker_mad, motion_degree

PROMPT = "a dog runs on the beach at sunset, camera close view"


def _interleaved_medians(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median seconds of each function, run in turns (a, b, a, b, ...) so load from other processes on a shared
    machine hits both alike; one untimed warm-up round first (allocations, kernel selection)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, bucket in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _bare_call(pipeline, request: ClipRequest) -> Callable[[], object]:
    """The diffusers pipeline called directly, with the arguments our backend passes (no checks, no callback,
    no uint8 conversion, no file)."""

    def run() -> object:
        with torch.inference_mode():
            return pipeline.pipe(**pipeline.call_kwargs(request))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random-cogvideox")
    parser.add_argument("--clips", type=int, default=5, help="timed clips per variant (median reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eval-samples", type=int, default=0, help="also time evaluate-video on this many samples")
    parser.add_argument("--prompt-model", default="tiny-random-lm", help="base and trained model of the evaluation")
    args = parser.parse_args()

    start = time.perf_counter()
    pipeline = load_t2v(args.model, device=args.device)
    load_s = time.perf_counter() - start
    request = pipeline.check(ClipRequest(PROMPT))
    params = sum(
        p.numel() for name in ("transformer", "vae", "text_encoder") for p in getattr(pipeline.pipe, name).parameters()
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.mp4"
        ours, bare = _interleaved_medians(
            [lambda: generate_clip(pipeline, request, out), _bare_call(pipeline, request)], args.clips
        )
        frames = pipeline.generate(request).frames
        (metrics,) = _interleaved_medians(
            [lambda: (flicker_mad(frames), motion_degree(frames, request.fps or 8.0))], 5
        )
    label = " (random weights — pipeline check only)" if pipeline.random_weights else ""
    print(
        f"model: {pipeline.name}{label}, {params / 1e6:.2f} M parameters, {pipeline.device} {pipeline.dtype}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"clip: {request.frames} frames {request.width}x{request.height}, {request.steps} steps, "
        f"guidance {request.guidance:g} | load {load_s:.2f} s (first run includes building the tiny pipeline)"
    )
    print(f"generate-video end to end (generate + atomic mp4): {ours:.3f} s per clip (median of {args.clips})")
    print(f"bare diffusers call, same arguments: {bare:.3f} s per clip")
    print(f"ratio ours/bare = {ours / bare:.2f}")
    print(f"flicker + Farneback motion on the clip: {metrics * 1e3:.1f} ms")
    if args.eval_samples:
        bench_evaluation(args.eval_samples, args.model, args.prompt_model, args.device)


def bench_evaluation(samples: int, t2v: str, prompt_model: str, device: str) -> None:
    """Table 3 on `samples` text-only samples (3 clips each), tiny-random-clip as the evaluator, then again into
    the same folder (prompts and clips reused, scores recomputed)."""
    from annotations.db import open_db
    from annotations.store import upsert_sample
    from engine.service import Studio, StudioConfig
    from engine.t2v.eval_config import VideoEvalConfig

    words = "dog cat car bird horse boat child woman man train".split()
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(f"sqlite:///{tmp}/bench.db")
        for i in range(samples):
            upsert_sample(
                db, None, f"a {words[i % len(words)]} moves past a {words[(i + 3) % len(words)]} {i}", "test"
            )
        studio = Studio(StudioConfig(device=device))
        config = VideoEvalConfig(
            prompt_model, prompt_model, f"{tmp}/out", t2v=t2v, evaluators=("tiny-random-clip",), max_new_tokens=24
        )
        start = time.perf_counter()
        studio.load(prompt_model, 3), studio.t2v_pipeline(t2v), studio.require_evaluators(["tiny-random-clip"])
        load_s = time.perf_counter() - start
        fresh = studio.evaluate_video(db, config, progress=False).seconds
        resumed = studio.evaluate_video(db, config, progress=False).seconds
    stages = ", ".join(f"{k} {fresh[k]:.2f} s" for k in ("prompts", "clips", "scores"))
    print(
        f"evaluate-video, {samples} samples x 3 clips ({prompt_model} -> {t2v}; models loaded first: {load_s:.1f} s)"
    )
    print(f"  fresh: {fresh['per_sample']:.3f} s per sample ({stages})")
    print(f"  resumed (every prompt and clip reused): {resumed['per_sample']:.3f} s per sample")
    print(f"  ratio fresh/resumed = {fresh['per_sample'] / resumed['per_sample']:.2f}")


if __name__ == "__main__":
    main()
