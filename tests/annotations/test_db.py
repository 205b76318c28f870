"""Engine setup, the write gate, schema versions and migrations (SQLite file)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, select

from annotations import db, store
from annotations.errors import SchemaError, StoreError
from annotations.models import Sample, content_key

# The first released schema (v1), frozen here as raw DDL: what an old database looks like.
V1_DDL = [
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at VARCHAR NOT NULL)",
    "INSERT INTO schema_version VALUES (1, '2025-01-01T00:00:00')",
    """CREATE TABLE sample (id INTEGER PRIMARY KEY, video VARCHAR NOT NULL, video_hash VARCHAR NOT NULL,
       content_key VARCHAR NOT NULL UNIQUE, short_prompt TEXT, split VARCHAR NOT NULL,
       created_at DATETIME NOT NULL)""",
    """CREATE TABLE response (id INTEGER PRIMARY KEY, sample_id INTEGER NOT NULL REFERENCES sample(id),
       task INTEGER NOT NULL, text TEXT NOT NULL, source VARCHAR NOT NULL, model VARCHAR, checkpoint VARCHAR,
       beam_rank INTEGER, meta_json TEXT, created_at DATETIME NOT NULL)""",
    """CREATE TABLE score (id INTEGER PRIMARY KEY, response_id INTEGER NOT NULL REFERENCES response(id),
       evaluator VARCHAR NOT NULL, value FLOAT NOT NULL, created_at DATETIME NOT NULL,
       UNIQUE (response_id, evaluator))""",
    """CREATE TABLE pair (id INTEGER PRIMARY KEY, sample_id INTEGER NOT NULL REFERENCES sample(id),
       task INTEGER NOT NULL, response_a_id INTEGER NOT NULL REFERENCES response(id),
       response_b_id INTEGER NOT NULL REFERENCES response(id), origin VARCHAR NOT NULL, hdpo_term VARCHAR NOT NULL,
       rejected_video VARCHAR, rejected_short_prompt TEXT, rejected_task INTEGER, meta_json TEXT,
       created_at DATETIME NOT NULL)""",
    """CREATE TABLE annotator (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, role VARCHAR NOT NULL,
       created_at DATETIME NOT NULL)""",
    """CREATE TABLE judgement (id INTEGER PRIMARY KEY, pair_id INTEGER NOT NULL REFERENCES pair(id),
       annotator_id INTEGER NOT NULL REFERENCES annotator(id), choice VARCHAR NOT NULL,
       shown_left_response_id INTEGER NOT NULL REFERENCES response(id), seconds_taken FLOAT,
       created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, UNIQUE (pair_id, annotator_id))""",
    """CREATE TABLE training_run (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, config_json TEXT NOT NULL,
       status VARCHAR NOT NULL, pid INTEGER, created_at DATETIME NOT NULL, started_at DATETIME,
       finished_at DATETIME, checkpoint_dir VARCHAR, log_path VARCHAR, error TEXT)""",
    """CREATE TABLE run_metric (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES training_run(id),
       step INTEGER NOT NULL, name VARCHAR NOT NULL, value FLOAT NOT NULL, UNIQUE (run_id, step, name))""",
    # One labelled pair, so the migration has data to keep and a counter to backfill.
    "INSERT INTO sample VALUES (1, '/v.mp4', 'h', 'k', 'a cat', 'train', '2025-01-01 00:00:00.000000')",
    "INSERT INTO response VALUES (1, 1, 1, 'good', 'teacher', NULL, NULL, NULL, NULL, '2025-01-01 00:00:00.000000')",
    "INSERT INTO response VALUES (2, 1, 1, 'bad', 'model', 'm', NULL, 0, NULL, '2025-01-01 00:00:00.000000')",
    """INSERT INTO pair VALUES (1, 1, 1, 1, 2, 'mined', 'dpo', NULL, NULL, NULL, NULL,
       '2025-01-01 00:00:00.000000')""",
    "INSERT INTO annotator VALUES (1, 'alice', 'annotator', '2025-01-01 00:00:00.000000')",
    """INSERT INTO judgement VALUES (1, 1, 1, 'b_better', 2, 3.5, '2025-01-01 00:00:00.000000',
       '2025-01-01 00:00:00.000000')""",
    "INSERT INTO training_run VALUES (1, 'old', '{}', 'finished', NULL, '2025-01-01 00:00:00.000000', "
    "NULL, NULL, NULL, NULL, NULL)",
]


def _schema(engine: Engine) -> dict[str, set[str]]:
    insp = inspect(engine)
    return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}


def test_sqlite_pragmas(sqlite_engine: Engine) -> None:
    with db.write_session(sqlite_engine) as session:
        pragma = {name: session.execute(text(f"PRAGMA {name}")).scalar() for name in ("journal_mode", "foreign_keys")}
        pragma["synchronous"] = session.execute(text("PRAGMA synchronous")).scalar()
        pragma["busy_timeout"] = session.execute(text("PRAGMA busy_timeout")).scalar()
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "synchronous": 2, "busy_timeout": db.BUSY_TIMEOUT_MS}


def test_foreign_keys_are_enforced(sqlite_engine: Engine) -> None:
    with pytest.raises(StoreError):
        store.add_response(sqlite_engine, 42, 1, "orphan", "model")  # no sample 42


@pytest.mark.parametrize("url", ["nosuchdb://x", "sqlite:::", "postgresql+nodriver://h/db"])
def test_broken_url_is_one_line_store_error(url: str) -> None:
    with pytest.raises(StoreError) as info:
        db.make_engine(url)
    assert "\n" not in str(info.value) and "bad database URL" in str(info.value)


def test_unreachable_server_is_store_error() -> None:
    engine = db.make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError, match="cannot open database"):
        db.init_db(engine)


def test_default_url_env_and_parent_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(db.DB_ENV_VAR, raising=False)
    assert db.default_db_url() == db.DEFAULT_DB_URL == "sqlite:///data/studio.db"
    target = tmp_path / "deep" / "er" / "x.db"
    monkeypatch.setenv(db.DB_ENV_VAR, f"sqlite:///{target}")
    db.open_db().dispose()
    assert target.is_file() and Path(f"{target}-writelock").is_file()


def test_write_session_rolls_back_and_is_not_reentrant(sqlite_engine: Engine) -> None:
    with pytest.raises(RuntimeError), db.write_session(sqlite_engine) as session:
        session.execute(text("INSERT INTO annotator (name, role, created_at) VALUES ('x', 'admin', '2025')"))
        raise RuntimeError("boom")
    assert store.list_annotators(sqlite_engine) == []
    with db.write_session(sqlite_engine), pytest.raises(StoreError, match="re-entrant"):
        with db.write_session(sqlite_engine):
            pass


def test_write_gate_serialises_threads(sqlite_engine: Engine) -> None:
    order: list[str] = []

    def slow_writer() -> None:
        with db.write_session(sqlite_engine):
            order.append("slow-start")
            time.sleep(0.3)
            order.append("slow-end")

    thread = threading.Thread(target=slow_writer)
    thread.start()
    time.sleep(0.05)
    store.get_or_create_annotator(sqlite_engine, "fast")
    order.append("fast-done")
    thread.join()
    assert order == ["slow-start", "slow-end", "fast-done"]


HOLD_LOCK = """
import sys, time
from annotations import db
with db.write_session(db.make_engine(sys.argv[1])):
    print("ready", flush=True)
    time.sleep(0.4)
"""


def test_write_gate_serialises_processes_without_busy_waits(sqlite_url: str, sqlite_engine: Engine) -> None:
    # A separate interpreter, not a fork: forking after using SQLite is unsupported.
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, sqlite_url], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    store.get_or_create_annotator(sqlite_engine, "waiter")
    waited = time.perf_counter() - start
    assert holder.wait(10) == 0
    # Blocked on the flock, then woken by the kernel at release: no 100 ms busy-handler naps.
    assert 0.2 < waited < 0.7


def test_migrates_v1_database(tmp_path: Path, sqlite_engine: Engine) -> None:
    old_path = tmp_path / "old.db"
    import sqlite3

    with sqlite3.connect(old_path) as conn:
        for statement in V1_DDL:
            conn.execute(statement)
    engine = db.make_engine(f"sqlite:///{old_path}")
    assert db.init_db(engine) == db.SCHEMA_VERSION
    assert _schema(engine) == _schema(sqlite_engine)  # migrated == freshly created
    with engine.connect() as conn:
        versions = [r[0] for r in conn.execute(text("SELECT version FROM schema_version ORDER BY version"))]
        assert versions == list(range(1, db.SCHEMA_VERSION + 1))
        assert conn.execute(text("SELECT n_judgements FROM pair WHERE id = 1")).scalar() == 1
        assert conn.execute(text("SELECT progress, step FROM training_run")).one() == (0.0, 0)
    # The old judgement is still there and the store works on the migrated file.
    assert store.recent_judgements(engine)[0]["choice"] == "b_better"
    assert store.undo_last(engine, "alice") == 1
    assert db.init_db(engine) == db.SCHEMA_VERSION  # idempotent
    # v3: sample.video is nullable on the migrated file too, and a text-only sample fits.
    assert {c["name"]: c["nullable"] for c in inspect(engine).get_columns("sample")}["video"] is True
    assert store.upsert_sample(engine, None, "a lone prompt") == 2


def test_v4_records_instructions_and_repairs_empty_video_text_only_samples(engine: Engine) -> None:
    """A v3 database whose UI stored text-only samples with video "" (kept as the app's cwd,
    video_hash 'text-only') migrates to video NULL; a clashing content key is left alone."""
    kept = store.upsert_sample(engine, None, "a red kite")
    legacy = {}
    with db.write_session(engine) as session:
        session.execute(text("UPDATE schema_version SET version = 3"))  # a fresh file is stamped once
        session.execute(text("DROP TABLE task_instruction"))
        for prompt in ("a lone kite", "a red kite"):
            row = Sample(video="/srv/app", video_hash="text-only", content_key=content_key("text-only", prompt))
            row.short_prompt = prompt
            session.add(row)
            session.flush()
            legacy[prompt] = (row.id, row.content_key)
    assert db.init_db(engine) == db.SCHEMA_VERSION
    with Session(engine) as session:
        rows = {s.id: (s.video, s.video_hash, s.content_key) for s in session.exec(select(Sample))}
    lone, red = legacy["a lone kite"], legacy["a red kite"]
    assert rows[lone[0]] == (None, store.NO_VIDEO_HASH, content_key(store.NO_VIDEO_HASH, "a lone kite"))
    assert rows[red[0]] == (None, store.NO_VIDEO_HASH, red[1])  # the key belongs to sample `kept`
    assert store.upsert_sample(engine, None, "a lone kite") == lone[0]  # found by its repaired key
    assert store.upsert_sample(engine, None, "a red kite") == kept
    store.record_instructions(engine, {1: "Describe the video."})  # the table is back
    assert store.instructions(engine) == {1: "Describe the video."}


def test_refuses_newer_schema(sqlite_engine: Engine) -> None:
    with db.write_session(sqlite_engine) as session:
        session.execute(text("INSERT INTO schema_version VALUES (99, 'future')"))
    with pytest.raises(SchemaError, match="newer than this release"):
        db.init_db(sqlite_engine)


def test_import_annotations_does_not_import_torch() -> None:
    code = (
        "import sys, annotations, annotations.db, annotations.store, annotations.io, annotations.stats, "
        "annotations.cli; bad = [m for m in ('torch', 'gradio', 'pandas') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
