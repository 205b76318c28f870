"""Schema migrations of the annotation store: one step per version, each idempotent, run in order by
:func:`annotations.db.init_db` inside its single write transaction (a failed step leaves the database
as it was). Never edit a released step; append a new one and bump SCHEMA_VERSION.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import Connection, inspect, text

from annotations import active, models
from annotations.errors import SchemaError


def _columns(conn: Connection, table: str) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns(table)}


def _add_column(conn: Connection, table: str, column: str, ddl: str) -> None:
    """ALTER TABLE ADD COLUMN unless present; idempotent, so a half-applied migration reruns."""
    if column not in _columns(conn, table):
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")


def _migrate_v2(conn: Connection) -> None:
    """v2: run progress fields, the queue's judgement counter (backfilled) and pair leases."""
    _add_column(conn, "training_run", "progress", "FLOAT NOT NULL DEFAULT 0")
    _add_column(conn, "training_run", "step", "INTEGER NOT NULL DEFAULT 0")
    _add_column(conn, "training_run", "total_steps", "INTEGER")
    _add_column(conn, "pair", "n_judgements", "INTEGER NOT NULL DEFAULT 0")
    conn.exec_driver_sql(
        "UPDATE pair SET n_judgements = (SELECT COUNT(*) FROM judgement j "
        "WHERE j.pair_id = pair.id AND j.choice <> 'skip')"
    )
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_pair_queue ON pair (n_judgements, id)")
    # pair_lease is a new table: create_all(checkfirst) after the migrations creates it.


_VIDEO_NOT_NULL = re.compile(r"(\bvideo\s+VARCHAR)\s+NOT\s+NULL", re.IGNORECASE)


def _migrate_v3(conn: Connection) -> None:
    """v3: ``sample.video`` nullable, for text-only (Task 3) samples."""
    if next(c for c in inspect(conn).get_columns("sample") if c["name"] == "video")["nullable"]:
        return
    if conn.dialect.name != "sqlite":
        conn.exec_driver_sql("ALTER TABLE sample ALTER COLUMN video DROP NOT NULL")
        return
    # SQLite has no ALTER COLUMN, and the 12-step table rebuild cannot run here: it needs
    # foreign_keys OFF, which is a no-op inside this (BEGIN IMMEDIATE) transaction, and with
    # it ON, DROP TABLE sample fails on the responses and pairs that reference it. Dropping a
    # NOT NULL does not change the file format, so SQLite's documented "simpler procedure"
    # applies (sqlite.org/lang_altertable.html#otheralter): edit the table's CREATE text in
    # sqlite_schema and bump schema_version, all in this transaction.
    sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'sample'").scalar_one()
    new_sql, n = _VIDEO_NOT_NULL.subn(r"\1", sql)
    if n != 1:
        raise SchemaError(f"v3 migration: cannot find 'video VARCHAR NOT NULL' in the sample table: {sql!r}")
    version = int(conn.exec_driver_sql("PRAGMA schema_version").scalar_one())
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        conn.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'sample'", (new_sql,))
        conn.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema = OFF")
    if conn.exec_driver_sql("PRAGMA quick_check").scalar_one() != "ok":
        raise SchemaError("v3 migration: quick_check failed after editing the sample table")


# What the UI passed as the video hash of a text-only sample before schema v4, with video "":
# stored as video = os.path.abspath("") (the app's working directory).
_LEGACY_TEXT_ONLY_HASH = "text-only"


def _migrate_v4(conn: Connection) -> None:
    """v4: the task_instruction table (created by create_all after the migrations), and text-only
    samples stored with an empty video path repaired to video NULL, video_hash NO_VIDEO_HASH."""
    legacy = conn.execute(
        text("SELECT id, short_prompt FROM sample WHERE video_hash = :h"), {"h": _LEGACY_TEXT_ONLY_HASH}
    ).all()
    for sample_id, short_prompt in legacy:
        key = models.content_key(models.NO_VIDEO_HASH, short_prompt)
        taken = conn.execute(text("SELECT 1 FROM sample WHERE content_key = :k"), {"k": key}).first()
        # A proper text-only sample with the same prompt keeps the key; this one keeps its old one.
        set_key = "" if taken else ", content_key = :k"
        conn.execute(
            text(f"UPDATE sample SET video = NULL, video_hash = :h{set_key} WHERE id = :id"),
            {"h": models.NO_VIDEO_HASH, "k": key, "id": sample_id},
        )


def _migrate_v5(conn: Connection) -> None:
    """v5: ``pair.uncertainty`` (the active queue order's score, backfilled from the stored scores) and its
    index ix_pair_active; the project_setting table (created by create_all after the migrations)."""
    _add_column(conn, "pair", "uncertainty", "FLOAT NOT NULL DEFAULT 0")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_pair_active ON pair (n_judgements, uncertainty DESC, id)")
    active.refresh_all(conn)


# Ordered (version, description, step). Never edit a released step; append a new one.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (2, "run progress fields, pair.n_judgements, pair_lease", _migrate_v2),
    (3, "sample.video nullable (text-only samples)", _migrate_v3),
    (4, "task_instruction; text-only samples stored with an empty video path get video NULL", _migrate_v4),
    (5, "pair.uncertainty and ix_pair_active (the active queue order); project_setting", _migrate_v5),
]
SCHEMA_VERSION = 5
