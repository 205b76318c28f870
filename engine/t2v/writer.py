"""Writing a generated clip: checked before the (slow) generation, written atomically after it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from annotations.errors import first_line
from engine.errors import InputError
from engine.t2v.errors import GenerationError
from engine.video import write_video_atomic


def check_out_path(out: str | os.PathLike) -> Path:
    """The .mp4 path to write, refused up front (not after minutes of generation) when it cannot be one."""
    path = Path(out).expanduser()
    if path.suffix.lower() != ".mp4":
        raise InputError(f"the output must be an .mp4 file, got {path.name or str(path)!r}")
    if path.is_dir():
        raise InputError(f"{path} is a folder; name the .mp4 file to write")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the nearest existing ancestor decides whether we can create the folders
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write {path}: no write permission in {parent}")
    return path


def write_clip_atomic(frames: np.ndarray, out: str | os.PathLike, fps: float) -> Path:
    """Write uint8 frames (T, H, W, 3) to `out` as mp4 through a temporary file in the same folder and a rename
    (engine.video.write_video_atomic), so a failed or interrupted write leaves no half-written clip (and an
    existing file at `out` untouched)."""
    path = check_out_path(out)
    try:
        return write_video_atomic(frames, path, fps=fps)
    except Exception as exc:
        raise GenerationError(f"could not write {path}: {first_line(exc)}") from exc
