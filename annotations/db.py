"""Database engine setup, the write path, and schema versioning (the write gate and per-engine state: `engine_state`).

SQLite (the default) gets WAL, ``busy_timeout``, foreign keys and ``synchronous=FULL`` on every
connection, and every write runs in ``BEGIN IMMEDIATE``. Writers are additionally serialised
across processes with a blocking ``flock`` on ``<db>-writelock``: SQLite's own busy handler
polls with sleeps of up to 100 ms, which gave 20 concurrent writers a p99.9 of ~1.2 s; a
blocked ``flock`` is woken by the kernel the moment the holder releases it (measured in
``docs/benchmarks.md``). ``busy_timeout`` stays as the safety net for writers that
do not take the lock (a ``sqlite3`` shell, an older release).

A SQLite file this process cannot write (a read-only file or folder) is opened read-only
(``mode=ro``; ``immutable`` in a read-only folder when no WAL content is left): reads work,
``init_db`` only checks the schema version, and every write raises :class:`ReadOnlyError` in
one line before touching anything.

Any other SQLAlchemy URL works (PostgreSQL for teams on many machines); there, each write
transaction takes one transaction-scoped advisory lock, which gives the queue the same
one-writer-at-a-time semantics as SQLite.

The vote path (``store.next_pair`` / ``record_judgement`` / ``undo_last``, the raw statements in
``annotations/queue_sqlite.py``) on a SQLite file runs
as plain DBAPI statements on raw ``sqlite3`` connections from a small pool per engine (:func:`raw_read`,
:func:`raw_write`), same pragmas, same gate, same ``BEGIN IMMEDIATE``: SQLAlchemy's per-statement
work cost ~3.7 ms of CPU per click, and with 20 annotator processes on 2 cores the click waited
for a CPU while holding the gate (see ``docs/benchmarks.md``). The pool keeps at most
:data:`RAW_POOL_SIZE` idle connections and closes the rest when they are handed back: a connection per
thread leaked one per worker thread Gradio ever started (issue 24 item 2).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel

from annotations import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from annotations.engine_state import STATES, STATES_LOCK, EngineState, WriteGate, state_of
from annotations.errors import DiskFullError, ReadOnlyError, SchemaError, StoreError, first_line, is_disk_full
from annotations.migrations import MIGRATIONS, SCHEMA_VERSION

DEFAULT_DB_URL = "sqlite:///data/studio.db"
DB_ENV_VAR = "VIDPROMPTER_DB"
BUSY_TIMEOUT_MS = 10_000
#: Idle raw sqlite3 connections kept per engine for the vote path; more are opened under load, closed after use.
RAW_POOL_SIZE = 8
# Arbitrary constant naming "the annotation store's write lock" among PostgreSQL advisory locks.
_PG_WRITE_LOCK_KEY = 0x56505354

_version_meta = MetaData()
schema_version = Table(
    "schema_version",
    _version_meta,
    Column("version", Integer, primary_key=True),
    Column("applied_at", String, nullable=False),
)


def default_db_url() -> str:
    """``$VIDPROMPTER_DB`` if set, else ``sqlite:///data/studio.db`` (relative to the cwd)."""
    return os.environ.get(DB_ENV_VAR) or DEFAULT_DB_URL


# --------------------------------------------------------------------------- engine


def _sqlite_file(url_db: str | None) -> Path | None:
    if not url_db or url_db == ":memory:" or url_db.startswith("file:"):
        return None
    return Path(url_db)


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, is_file: bool, read_only: bool = False) -> None:
    """The pragmas every connection gets, SQLAlchemy's pooled ones and the raw vote-path ones."""
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys = ON")
    if is_file and not read_only:  # switching the journal mode is a write
        cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = FULL")  # labels are precious: fsync every commit
    cur.close()


def _install_sqlite_listeners(engine: Engine, is_file: bool, read_only: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Driver autocommit: SQLAlchemy's "begin" listener below emits BEGIN itself, so that
        # write transactions can be BEGIN IMMEDIATE (pysqlite would otherwise defer BEGIN).
        dbapi_conn.isolation_level = None
        _sqlite_pragmas(dbapi_conn, is_file, read_only)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | None = None, *, raw_sqlite: bool = True) -> Engine:
    """Build an engine for ``url`` (default: :func:`default_db_url`). Nothing connects yet.

    ``raw_sqlite=False`` keeps the vote path on SQLAlchemy for a SQLite file too (the bench's
    "before" path). Raises StoreError with a one-line message when the URL cannot be parsed or its driver is
    missing; an unreachable server surfaces on first use (``init_db``).
    """
    url = url or default_db_url()
    try:
        parsed = make_url(url)
        is_sqlite = parsed.get_backend_name() == "sqlite"
        read_only = None
        if is_sqlite:
            engine, lock_path, read_only = _make_sqlite_engine(parsed)
        else:
            engine, lock_path = create_engine(parsed, pool_pre_ping=True), None
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError, OSError) as exc:
        raise StoreError(f"bad database URL {url!r}: {first_line(exc, limit=None)}") from exc
    write_engine = engine.execution_options(sqlite_begin="IMMEDIATE") if is_sqlite else engine
    raw_path = lock_path.removesuffix("-writelock") if lock_path and raw_sqlite else None
    state = EngineState(WriteGate(lock_path), write_engine, engine.dialect.name, raw_path, read_only=read_only)
    with STATES_LOCK:
        STATES[engine] = state
    if raw_path is not None:
        event.listen(engine, "engine_disposed", lambda _engine: _close_raw(state))
    return engine


def _make_sqlite_engine(parsed: URL) -> tuple[Engine, str | None, str | None]:
    """(engine, write-lock path or None, why it is read-only or None)."""
    path = _sqlite_file(parsed.database)
    if path is None:
        # One shared in-memory database across threads, not one per thread.
        engine = create_engine(parsed, connect_args={"check_same_thread": False}, poolclass=StaticPool)
        _install_sqlite_listeners(engine, is_file=False)
        return engine, None, None
    read_only = _read_only_reason(path)
    if read_only is not None:
        # No write lock (its file could not be created), no journal-mode switch: reads only.
        engine = create_engine(parsed, creator=_read_only_connect(path))
        _install_sqlite_listeners(engine, is_file=True, read_only=True)
        return engine, None, read_only
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
    _install_sqlite_listeners(engine, is_file=True)
    return engine, f"{path}-writelock", None


def _read_only_reason(path: Path) -> str | None:
    """Why this process cannot write an existing SQLite file (its -wal, -shm and write lock live beside it)."""
    if not path.is_file():
        return None
    if not os.access(path, os.W_OK):
        return "the file is read-only"
    if not os.access(path.parent, os.W_OK):
        return "its folder is read-only"
    return None


def _read_only_connect(path: Path) -> Callable[[], sqlite3.Connection]:
    """sqlite3 connections opened read-only. In a read-only folder a WAL database cannot get the -shm file
    a reader needs; with no WAL content left to read (the last writer checkpointed) it is opened immutable."""
    wal = path.with_name(path.name + "-wal")
    immutable = not os.access(path.parent, os.W_OK) and (not wal.exists() or wal.stat().st_size == 0)
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro" + ("&immutable=1" if immutable else "")

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)

    return connect


def read_only_reason(engine: Engine) -> str | None:
    """Why ``engine`` may only read (None: it may write): for a note at start and in messages."""
    return state_of(engine).read_only


def describe_url(engine: Engine) -> str:
    """The engine's URL with any password masked, for messages and dataset cards."""
    return engine.url.render_as_string(hide_password=True)


# --------------------------------------------------------------------------- sessions


@contextmanager
def _write_gate(engine: Engine) -> Iterator[EngineState]:
    state = state_of(engine)
    if state.read_only is not None:
        raise ReadOnlyError(
            f"database {describe_url(engine)} is read-only ({state.read_only}): nothing can be saved; reading works"
        )
    if getattr(state.local, "writing", False):
        raise StoreError("write_session is not re-entrant; pass the open session down instead")
    state.local.writing = True
    try:
        with state.gate.hold():
            yield state
    finally:
        state.local.writing = False


@contextmanager
def _disk_full_is_one_line() -> Iterator[None]:
    """A write that fails because the disk is full raises DiskFullError ("the disk is full: nothing was
    saved"), a StoreError every caller shows as it is, instead of the driver's error (issue 24 item 4)."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFullError() from exc
        raise


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction is the only writer: commits on exit, rolls back on error.

    SQLite: ``BEGIN IMMEDIATE`` under the write gate. PostgreSQL: an advisory xact lock.
    Not re-entrant: a nested write_session in the same thread raises StoreError instead of
    deadlocking on its own lock. A full disk raises DiskFullError.
    """
    with (
        _disk_full_is_one_line(),
        _write_gate(engine) as state,
        Session(state.write_engine, expire_on_commit=False) as session,
    ):
        if state.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITE_LOCK_KEY})
        yield session
        session.commit()


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """Like :func:`write_session` but a Core connection: the vote path's critical section is
    held by every other writer, so it skips the ORM's per-statement bookkeeping."""
    with _disk_full_is_one_line(), _write_gate(engine) as state, state.write_engine.begin() as conn:
        if state.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITE_LOCK_KEY})
        yield conn


def yield_to_writers(engine: Engine, rest_s: float, max_wait_s: float = 2.0) -> None:
    """A bulk writer's pause between two transactions (the importer's): sleep ``rest_s``, then on while other
    threads of this process wait for the write gate (votes go first), at most ``max_wait_s`` in all."""
    if rest_s > 0:
        time.sleep(rest_s)
    gate, deadline = state_of(engine).gate, time.monotonic() + max_wait_s
    while gate.waiting > 0 and time.monotonic() < deadline:
        time.sleep(0.002)


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads; under WAL it never waits for writers."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


# --------------------------------------------------------------------------- raw sqlite3 vote path


def uses_raw_sqlite(engine: Engine) -> bool:
    """Whether the vote path of ``engine`` runs on raw sqlite3 (a SQLite file from make_engine)."""
    return state_of(engine).raw_path is not None


def _open_raw(state: EngineState) -> sqlite3.Connection:
    assert state.raw_path is not None
    conn = sqlite3.connect(
        state.raw_path,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,  # autocommit: raw_write issues BEGIN IMMEDIATE / COMMIT itself
        check_same_thread=False,  # pooled: each checkout may come from another thread
        cached_statements=256,
    )
    _sqlite_pragmas(conn, is_file=True)
    return conn


@contextmanager
def _raw_conn(state: EngineState) -> Iterator[sqlite3.Connection]:
    """A raw connection for the length of one read or write: the most recently used idle one, else a new
    one. Handed back to the pool (at most RAW_POOL_SIZE idle), or closed when the pool is full, the engine
    was disposed meanwhile or the connection was left inside a transaction."""
    with STATES_LOCK:
        gen = state.generation
        conn = state.raw_idle.pop()[1] if state.raw_idle else None
    if conn is None:
        conn = _open_raw(state)
    keep = False
    try:
        yield conn
        keep = not conn.in_transaction
    finally:
        with STATES_LOCK:
            if keep and gen == state.generation and len(state.raw_idle) < RAW_POOL_SIZE:
                state.raw_idle.append((gen, conn))
                conn = None
        if conn is not None:
            _close_quietly(conn)


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:  # pragma: no cover - closing is best effort
        pass


def _close_raw(state: EngineState) -> None:
    with STATES_LOCK:
        idle, state.raw_idle = state.raw_idle, []
        state.generation += 1
    for _gen, conn in idle:
        _close_quietly(conn)


@contextmanager
def raw_read(engine: Engine) -> Iterator[sqlite3.Connection]:
    """A pooled raw sqlite3 connection for reads (autocommit: each statement is its own WAL snapshot, never
    waits for writers). Only for :func:`uses_raw_sqlite` engines."""
    with _raw_conn(state_of(engine)) as conn:
        yield conn


@contextmanager
def raw_write(engine: Engine) -> Iterator[sqlite3.Connection]:
    """The raw counterpart of :func:`write_connection`: the write gate, then ``BEGIN IMMEDIATE``
    on a pooled raw sqlite3 connection; commits on exit, rolls back on error."""
    with _disk_full_is_one_line(), _write_gate(engine) as state, _raw_conn(state) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # a failed rollback: the connection is closed, not reused
                    conn.execute("ROLLBACK")
            raise


# --------------------------------------------------------------------------- schema versions


def current_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table("schema_version"):
        return None
    return conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar()


def _stamp(conn: Connection, version: int) -> None:
    conn.execute(schema_version.insert().values(version=version, applied_at=models.utcnow().isoformat()))


def init_db(engine: Engine) -> int:
    """Create the schema on an empty database or migrate an older one; returns the version.

    Runs in one write transaction, so concurrent starters do not race and a failed migration
    leaves the database as it was.
    """
    try:
        if state_of(engine).read_only is not None:
            return _check_read_only(engine)
        with write_session(engine) as session:
            return _init_in(session.connection())
    except OperationalError as exc:
        raise StoreError(
            f"cannot open database {describe_url(engine)}: {first_line(exc.orig or exc, limit=None)}"
        ) from exc


def _check_read_only(engine: Engine) -> int:
    """init_db on a read-only database: it must already be at this release's schema (nothing can migrate it)."""
    with engine.connect() as conn:
        version = current_version(conn)
    if version == SCHEMA_VERSION:
        return version
    have = "no annotation schema" if version is None else f"schema v{version}"
    raise ReadOnlyError(
        f"database {describe_url(engine)} is read-only ({state_of(engine).read_only}) and has {have}; this release "
        f"needs v{SCHEMA_VERSION}: open it once with write access"
    )


def _init_in(conn: Connection) -> int:
    version = current_version(conn)
    if version is None:
        if inspect(conn).has_table("pair"):
            raise SchemaError("database has annotation tables but no schema_version; refusing to guess its version")
        SQLModel.metadata.create_all(conn)
        _version_meta.create_all(conn)
        _stamp(conn, SCHEMA_VERSION)
        return SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise SchemaError(f"database schema v{version} is newer than this release (v{SCHEMA_VERSION}); upgrade")
    for target, _desc, step in MIGRATIONS:
        if target > version:
            step(conn)
            _stamp(conn, target)
    SQLModel.metadata.create_all(conn)  # checkfirst: adds tables that later versions introduced
    return SCHEMA_VERSION


def open_db(url: str | None = None) -> Engine:
    """``make_engine`` + ``init_db``: what the app and the CLI call."""
    engine = make_engine(url)
    init_db(engine)
    return engine
