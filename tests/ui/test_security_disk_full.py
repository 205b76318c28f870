"""Issue 24 item 4 against a running app.py: the database, the log and the temp folder on a disk that fills up.

Before: vote, undo, queue, set order and export never answered (a write to the full log raised inside Gradio's
own error path); with only the log there, annotators got `internal error in vote_api` and export answered
None. Now every write path answers within 2 s with "the disk is full: nothing was saved", and the app serves
again once space is freed. Needs root to mount a small tmpfs (CI runs as root); elsewhere it skips, saying why."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_server import ADMIN, ANNOTATOR, Server, judgements, seed_pairs, start_app

DISK_FULL = "the disk is full: nothing was saved"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * (1 << 16))
                fh.flush()
    return filler


def _answer(client, *args, api_name: str) -> tuple[float, str]:  # type: ignore[no-untyped-def]
    """(seconds until the app answered, its error text or '' when it succeeded)."""
    start = time.monotonic()
    job = client.submit(*args, api_name=api_name)
    try:
        job.result(timeout=20)
        error = ""
    except Exception as exc:  # noqa: BLE001 - the app's answer is the error
        error = str(exc)
    return time.monotonic() - start, error


@pytest.mark.slow
def test_every_write_path_answers_disk_full_within_2_s_and_recovers(small_disk: Path) -> None:
    from gradio_client import Client

    (small_disk / "tmp").mkdir()
    server: Server = start_app(small_disk / "app", auth=True, env={"TMPDIR": str(small_disk / "tmp")})
    try:
        seed_pairs(server.db_url, 6)
        ann = Client(server.url, auth=ANNOTATOR, verbose=False)
        admin = Client(server.url, auth=ADMIN, verbose=False)
        ann.predict(api_name="/next_pair")
        ann.predict("a_better", api_name="/vote")  # something for undo to take back
        filler = _fill(small_disk)
        probes = [
            (ann, ("b_better",), "/vote"),
            (ann, (), "/undo_vote"),
            (ann, (), "/next_pair"),
            (admin, ("active",), "/set_queue_order"),
            (admin, ("jsonl",), "/export_pairs"),
        ]
        for client, args, api_name in probes:
            seconds, error = _answer(client, *args, api_name=api_name)
            assert DISK_FULL in error, (api_name, error)
            assert seconds < 2.0, (api_name, seconds)
        assert server.alive()
        os.remove(filler)
        ann.predict(api_name="/next_pair")
        ann.predict("tie", api_name="/vote")
        assert len(judgements(server.db_url, ANNOTATOR[0])) == 2
        path, _summary = admin.predict("jsonl", api_name="/export_pairs")
        assert Path(path).stat().st_size > 0
    finally:
        server.stop()
