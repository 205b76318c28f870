"""Per-engine state of the annotation store: the write gate every write transaction passes (a thread lock,
then a blocking ``flock`` across processes), the raw sqlite3 pool's idle connections, and whether the process
may write at all. `annotations.db` builds engines and their write paths on it; split out of it so the gate
reads on its own. After a fork the child gets fresh gates and leaves the parent's pooled connections alone.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine

from annotations.files import file_lock


class WriteGate:
    """Serialises write transactions: a thread lock in-process, then ``flock`` across processes."""

    def __init__(self, lock_path: str | None) -> None:
        self.lock_path = lock_path
        self._lock = threading.Lock()
        self.waiting = 0  # threads of this process queued for the gate: bulk writers let them go first
        self._count = threading.Lock()

    def _queued(self, delta: int) -> None:
        with self._count:
            self.waiting += delta

    @contextmanager
    def hold(self) -> Iterator[None]:
        self._queued(+1)
        try:
            self._lock.acquire()
        finally:
            self._queued(-1)
        try:
            if self.lock_path is None:
                yield
                return
            try:
                with file_lock(self.lock_path, mode=0o644):  # a fresh descriptor per hold (see file_lock)
                    yield
            finally:
                # flock is not FIFO: the release wakes the waiters, but this process, still on
                # its CPU, would win the lock again on its next write (next_pair then
                # record_judgement) before a woken waiter is scheduled. Yielding lets one run:
                # with 20 voting processes on 2 cores it cut the vote max from ~0.8 s to
                # ~0.15 s (docs/benchmarks.md). A no-op when nothing else is runnable.
                os.sched_yield()
        finally:
            self._lock.release()

    def reset_after_fork(self) -> None:
        # A lock held by another thread at fork time would stay held forever in the child.
        self._lock, self._count, self.waiting = threading.Lock(), threading.Lock(), 0


@dataclass
class EngineState:
    gate: WriteGate
    write_engine: Engine
    dialect: str
    # A SQLite file whose vote path runs on raw sqlite3 connections (None: SQLAlchemy path).
    raw_path: str | None = None
    local: threading.local = field(default_factory=threading.local)
    # Idle raw connections (most recently used last), each tagged with the generation it was opened in;
    # engine.dispose() closes them and bumps the generation, so a connection checked out meanwhile is
    # closed when it comes back instead of rejoining the pool.
    raw_idle: list[tuple[int, sqlite3.Connection]] = field(default_factory=list)
    generation: int = 0
    # Why this process may only read the database (a read-only SQLite file or folder); None: it may write.
    read_only: str | None = None


STATES: weakref.WeakKeyDictionary[Engine, EngineState] = weakref.WeakKeyDictionary()
STATES_LOCK = threading.Lock()


# Raw connections inherited by a forked child: kept referenced, never used or closed there
# (closing one would run SQLite's close path on the parent's handles).
_FORK_ORPHANS: list[sqlite3.Connection] = []


def _reset_gates_after_fork() -> None:
    for state in list(STATES.values()):
        state.gate.reset_after_fork()
        _FORK_ORPHANS.extend(conn for _gen, conn in state.raw_idle)
        state.raw_idle = []
        state.generation += 1


os.register_at_fork(after_in_child=_reset_gates_after_fork)


def state_of(engine: Engine) -> EngineState:
    """The engine's gate, raw pool and read-only reason (make_engine registers them; any other engine gets a
    plain one: no flock, plain BEGIN)."""
    with STATES_LOCK:
        state = STATES.get(engine)
        if state is None:  # an engine not built by make_engine: no flock, plain BEGIN
            state = EngineState(WriteGate(None), engine, engine.dialect.name)
            STATES[engine] = state
        return state
