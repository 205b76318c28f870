"""Issue 24 item 2: database connections stay bounded however many threads come and go.

Gradio runs handlers on worker threads that come and go; each new thread used to open its own raw sqlite3
connection, never closed (18 -> 112 in 8 bursts; under `ulimit -n 256` annotators got internal errors).
Counted here as this process's open file descriptors on the database file."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sqlalchemy import Engine

from annotations import db, store


def _db_fds(path: Path) -> int:
    """Open descriptors of this process on the SQLite file (one per connection)."""
    target, count = str(path.resolve()), 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:
            continue
    return count


def _burst(engine: Engine, threads: int, requests: int, errors: list[BaseException]) -> None:
    """`threads` fresh threads, each making `requests` queue round trips (next pair, vote, progress)."""

    def work(i: int) -> None:
        try:
            for _ in range(requests):
                view = store.next_pair(engine, f"ann{i}")
                if view is not None:
                    store.record_judgement(engine, view.pair_id, f"ann{i}", "skip", view.left_response_id)
                store.progress(engine, f"ann{i}")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def test_connection_count_stays_flat_under_1000_requests_from_50_threads(
    tmp_path: Path, video: Path, make_pairs
) -> None:
    path = tmp_path / "studio.db"
    engine = db.open_db(f"sqlite:///{path}")
    make_pairs(engine, video, 40)
    errors: list[BaseException] = []
    _burst(engine, 50, 1, errors)
    first = _db_fds(path)
    for _ in range(8):  # 8 bursts of 50 new threads: 400 more threads, 1,200 more round trips
        _burst(engine, 50, 3, errors)
    assert not errors, errors[:3]
    last = _db_fds(path)
    assert last <= first + 2, (first, last)
    assert last <= db.RAW_POOL_SIZE + 15 + 2  # idle raw connections + SQLAlchemy's pool (5 + 10 overflow)
    engine.dispose()
    assert _db_fds(path) == 0


def test_raw_connections_are_reused_and_closed_on_dispose(tmp_path: Path) -> None:
    path = tmp_path / "studio.db"
    engine = db.open_db(f"sqlite:///{path}")
    with db.raw_read(engine) as mine:
        assert mine.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert mine.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert mine.execute("PRAGMA synchronous").fetchone() == (2,)
        assert mine.execute("PRAGMA busy_timeout").fetchone() == (db.BUSY_TIMEOUT_MS,)
    seen: list[object] = []

    def use() -> None:
        with db.raw_read(engine) as conn:
            seen.append(conn)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert seen == [mine]  # another thread takes the idle connection instead of opening its own
    engine.dispose()
    assert _db_fds(path) == 0
    assert store.get_or_create_annotator(engine, "after") and store.next_pair(engine, "after") is None
    engine.dispose()
