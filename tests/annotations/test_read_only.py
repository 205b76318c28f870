"""Issue 13 item 8: a read-only SQLite file (or folder) is read, and every write says so in one line.

Permission bits do not bind root, so as root the commands run as `nobody`; as anyone else the file and
its folder lose their write bits."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from annotations import store
from annotations.db import open_db
from tests.unprivileged import NOBODY, unprivileged

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def read_only_db() -> Iterator[str]:
    """A store with one annotator and one sample, then made unwritable: file 0444 in a 0555 folder
    (in a folder of its own under the system temp dir: pytest's is private to its user)."""
    top = Path(tempfile.mkdtemp(prefix="vp-readonly-"))
    os.chmod(top, 0o755)  # nobody may reach it
    folder = top / "data"
    folder.mkdir()
    url = f"sqlite:///{folder / 'studio.db'}"
    engine = open_db(url)
    store.get_or_create_annotator(engine, "ann")
    store.upsert_sample(engine, None, "a red kite over a beach")
    engine.dispose()
    (folder / "studio.db-writelock").unlink()
    os.chmod(folder / "studio.db", 0o444)
    os.chmod(folder, 0o555)
    yield url
    os.chmod(folder, 0o755)
    shutil.rmtree(top)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [*unprivileged(), sys.executable, "-m", "annotations", *args],
        capture_output=True,
        text=True,
        cwd="/",
        env=env,
        timeout=120,
    )


def test_stats_reads_a_read_only_database(read_only_db: str) -> None:
    result = _cli("stats", "--json", "--db", read_only_db)
    assert result.returncode == 0, result.stderr
    assert '"samples": 1' in result.stdout and "Traceback" not in result.stderr


def test_a_write_to_a_read_only_database_is_one_line(read_only_db: str) -> None:
    result = _cli("add-annotator", "bob", "--db", read_only_db)
    assert result.returncode == 2
    line = f"error: database {read_only_db} is read-only (the file is read-only): nothing can be saved; reading works"
    assert result.stderr.strip() == line


def test_read_only_folder_leaves_no_files_behind(read_only_db: str) -> None:
    folder = Path(read_only_db.removeprefix("sqlite:///")).parent
    _cli("stats", "--db", read_only_db)
    assert sorted(p.name for p in folder.iterdir()) == ["studio.db"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o555


def test_a_writable_file_in_a_read_only_folder_is_read_read_only(read_only_db: str) -> None:
    """WAL needs -shm and the write lock beside the file: a folder we cannot write makes it read-only too."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file to nobody")
    path = Path(read_only_db.removeprefix("sqlite:///"))
    os.chmod(path, 0o644)
    os.chown(path, NOBODY, NOBODY)  # nobody may write the file, not its folder
    assert _cli("stats", "--db", read_only_db).returncode == 0
    result = _cli("add-annotator", "bob", "--db", read_only_db)
    assert result.returncode == 2 and "is read-only (its folder is read-only)" in result.stderr
