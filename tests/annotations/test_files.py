"""annotations.files (atomic writes, lock files) and the one-line error helpers of annotations.errors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from annotations.errors import error_line, first_line
from annotations.files import acquire_lock, atomic_dir, atomic_path, atomic_write, file_lock


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_text_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    assert atomic_write(path, "héllo\n") == path
    assert path.read_bytes() == "héllo\n".encode()
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # like any new file, not mkstemp's 0600
    atomic_write(tmp_path / "secret", "x", mode=0o600)
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "secret"]


def test_concurrent_writers_to_one_path_never_collide(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    texts = [f"writer {i}: " + str(i) * 50_000 for i in range(8)]
    start = threading.Barrier(len(texts))

    def write(text: str) -> None:
        start.wait()
        for _ in range(25):
            atomic_write(path, text)
            assert path.read_text() in texts  # a reader sees one whole file, never a mix or a torn one

    with ThreadPoolExecutor(len(texts)) as pool:
        list(pool.map(write, texts))  # re-raises any writer's error
    assert path.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind


def test_concurrent_processes_write_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    code = (
        "import sys\nfrom annotations.files import atomic_write\n"
        "for _ in range(30): atomic_write(sys.argv[1], sys.argv[2] * 20000)\n"
    )
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), c], cwd=root) for c in "abcd"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    assert path.read_text() in {c * 20000 for c in "abcd"}
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text("old\n")
    with pytest.raises(OSError, match="No space left"), atomic_path(path) as tmp:
        tmp.write_text("half of the new")
        raise OSError(28, "No space left on device")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["export.jsonl"]


def test_atomic_path_names_a_fresh_file_beside_the_target(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "clip.mp4", suffix=".part.mp4") as one, atomic_path(tmp_path / "clip.mp4") as two:
        assert one.parent == two.parent == tmp_path and one != two
        assert one.name.startswith(".clip.mp4.") and one.name.endswith(".part.mp4") and one.exists()
        one.write_bytes(b"1")
        two.write_bytes(b"2")
    assert (tmp_path / "clip.mp4").read_bytes() == b"1"  # the outer block ends last: its rename wins, whole


def test_atomic_dir_replaces_or_keeps_a_finished_copy(tmp_path: Path) -> None:
    target = tmp_path / "report"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # replaced whole
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "c.txt").write_text("3")
        raise RuntimeError("failed half-way")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # the old folder stays
    with atomic_dir(target, finished="b.txt") as tmp:  # another builder finished first: its copy stays
        (tmp / "d.txt").write_text("4")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
    unfinished = tmp_path / "model"
    (unfinished / "junk").mkdir(parents=True)
    with pytest.raises(OSError), atomic_dir(unfinished, finished="config.json") as tmp:
        (tmp / "config.json").write_text("{}")


def test_file_lock_excludes_other_holders(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with file_lock(lock):
        with pytest.raises(BlockingIOError):
            acquire_lock(lock, blocking=False)  # a flock belongs to the open file description
    os.close(acquire_lock(lock, blocking=False))  # released at the end of the block
    assert lock.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileNotFoundError):
        acquire_lock(tmp_path / "missing.lock", create=False)
    (tmp_path / "link.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        acquire_lock(tmp_path / "link.lock")
    assert not (tmp_path / "elsewhere").exists()


def test_file_lock_serialises_threads(tmp_path: Path) -> None:
    counter, lock = tmp_path / "n", tmp_path / "n.lock"
    counter.write_text("0")

    def bump(_: int) -> None:
        with file_lock(lock):
            counter.write_text(str(int(counter.read_text()) + 1))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(bump, range(200)))
    assert counter.read_text() == "200"


def test_first_line_and_error_line() -> None:
    exc = RuntimeError("\n  bad thing\n  at frame 3\n")
    assert first_line(exc) == "bad thing"
    assert first_line(RuntimeError("x" * 300)) == "x" * 200
    assert first_line(RuntimeError("x" * 300), limit=None) == "x" * 300
    assert first_line(ValueError("")) == "ValueError"
    assert error_line(exc) == "RuntimeError: bad thing"
    assert error_line(ValueError("")) == "ValueError: "
    assert error_line(RuntimeError("y" * 300), limit=200) == "RuntimeError: " + "y" * 200
    assert error_line(KeyError("wrapper"), message="database is locked\nSQL: ...") == "KeyError: database is locked"
