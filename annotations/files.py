"""Writing files so that a reader never sees half of one, and holding a lock file across processes.

The one place for both (issue 23 item 5); the bottom layer, so engine, training and ui use it too.
- :func:`atomic_path` / :func:`atomic_write`: a fresh, uniquely named temp file in the target's folder
  (``.<name>.<random>.tmp``; created with ``O_EXCL | O_NOFOLLOW``, so never an existing file or a symlink
  someone left there), fsynced, then ``os.replace``d over the target: a reader sees the old file or the whole
  new one, concurrent writers to one path never share a temp file, and a failed write leaves the old file.
- :func:`atomic_dir`: the same for a folder (a report, a model), built beside its target and renamed in.
- :func:`acquire_lock` / :func:`file_lock`: an exclusive ``flock`` on a lock file.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Mode of a new file before the umask, as ``open()`` creates one (mkstemp's would be 0600).
FILE_MODE = 0o666


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp", mode: int = FILE_MODE) -> Iterator[Path]:
    """A new empty temp file beside `path` for the block to write (by name: pandas, PyAV and np.save take one).

    When the block ends cleanly the temp file is fsynced and renamed over `path`; when it raises, the temp
    file is removed and `path` is as it was. `suffix` ends the temp name (``.part.mp4`` where a writer picks
    its format by suffix); `mode` is the new file's mode before the umask.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{suffix}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    os.close(fd)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)  # atomic on one filesystem
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; the partial file otherwise


def atomic_write(
    path: str | os.PathLike[str], data: str | bytes, *, encoding: str = "utf-8", mode: int = FILE_MODE
) -> Path:
    """Write `data` (text, encoded with `encoding`, or bytes) to `path` through :func:`atomic_path`; returns `path`."""
    raw = data.encode(encoding) if isinstance(data, str) else data
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_bytes(raw)
    return Path(path)


@contextmanager
def atomic_dir(target: str | os.PathLike[str], *, finished: str | None = None) -> Iterator[Path]:
    """A new empty folder beside `target` for the block to fill; when the block ends cleanly it is renamed to
    `target`, replacing an old one. With `finished` (a file name), a `target` holding that file is another
    builder's finished copy: the rename leaves it in place and this folder is dropped. When the block raises,
    the folder is removed and `target` is as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if finished is None:
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)  # a folder replaces only a missing or empty one
        except OSError:
            if finished is None or not (target / finished).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def acquire_lock(
    path: str | os.PathLike[str], *, blocking: bool = True, create: bool = True, mode: int = 0o600
) -> int:
    """An exclusive ``flock`` on `path` (created at `mode` unless `create` is off; never through a symlink):
    returns the descriptor that holds it. Closing it releases the lock; the kernel does so on any exit, kill -9
    included. A fresh descriptor per hold: a flock belongs to the open file description, and one inherited
    across fork() would let parent and child hold it at once. Without `blocking`, a lock another holds raises
    BlockingIOError; a path that cannot be opened raises its OSError."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def file_lock(path: str | os.PathLike[str], *, mode: int = 0o600) -> Iterator[None]:
    """Hold an exclusive ``flock`` on `path` (see :func:`acquire_lock`) for the block; waits for it."""
    fd = acquire_lock(path, mode=mode)
    try:
        yield
    finally:
        os.close(fd)
