"""The importer's clip checks: a row's video path resolved (and confined to a folder when asked), probed as a
video without decoding a frame, and hashed, each distinct file once however many rows name it."""

from __future__ import annotations

import os
from pathlib import Path

from annotations.samples import hash_file

# Container signatures for when PyAV is not importable: (offset, bytes).
_MAGIC = [
    (4, b"ftyp"),  # mp4 / mov / m4v / 3gp
    (0, b"\x1a\x45\xdf\xa3"),  # matroska / webm
    (0, b"RIFF"),  # avi
    (0, b"GIF8"),
    (0, b"\x00\x00\x01\xba"),  # mpeg-ps
    (0, b"FLV"),
]


def video_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable video, or None. Cheap: no frame is decoded."""
    if not path.is_file():
        return f"missing video {path}"
    if path.stat().st_size == 0:
        return f"unreadable video {path} (empty file)"
    try:
        import av  # optional: a container check that understands every format FFmpeg does
    except ImportError:
        return _magic_problem(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return f"unreadable video {path} (no video stream)"
    except Exception as exc:  # PyAV raises many error types; all mean "not a video"
        return f"unreadable video {path} ({type(exc).__name__})"
    return None


def _magic_problem(path: Path) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(16)
    if any(head[off : off + len(sig)] == sig for off, sig in _MAGIC) or head[:1] == b"\x47":
        return None
    return f"unreadable video {path} (not a known video container)"


class VideoChecks:
    """Resolves a row's video path and probes + hashes each distinct file once.

    base: where relative paths resolve; confine: a folder every clip must lie inside (None: anywhere).
    """

    def __init__(self, base: Path, confine: Path | None = None) -> None:
        self.base = base
        self.confine = Path(os.path.realpath(confine)) if confine is not None else None
        self._seen: dict[str, tuple[str | None, str]] = {}  # real path -> (problem, content hash)
        self.probes = 0

    def check(self, value: str) -> tuple[str, str] | str:
        """(absolute path, content hash) of a readable clip, or the reason it is not one."""
        given = Path(value).expanduser()
        path = given if given.is_absolute() else self.base / given
        real = os.path.realpath(path)
        if self.confine is not None and not _inside(Path(real), self.confine):
            return f"video {value} is outside the media folder {self.confine}"
        if real not in self._seen:
            self.probes += 1
            problem = video_problem(Path(real))
            self._seen[real] = (problem, "" if problem else hash_file(real))
        problem, digest = self._seen[real]
        return problem if problem else (os.path.abspath(path), digest)

    @property
    def distinct(self) -> int:
        return sum(problem is None for problem, _ in self._seen.values())


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
