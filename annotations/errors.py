"""Errors the annotation store raises; each carries a one-line message fit for a CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from annotations.import_report import ImportReport


class StoreError(Exception):
    """Anything the caller can fix: a bad URL, an unknown pair, an invalid choice."""


class SchemaError(StoreError):
    """The database was written by a newer release, or a migration failed."""


class NotFoundError(StoreError):
    """A row named by id does not exist."""


class ImportRejected(StoreError):
    """An import file had bad rows and ``skip_bad`` was off; nothing was imported.

    ``report`` is the :class:`annotations.io.ImportReport` listing every bad line.
    """

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


class LeaseLost(StoreError):
    """A vote on a pair the voter does not hold (any more): its lease expired and it went to someone else."""


class ReadOnlyError(StoreError):
    """A write to a database this process may only read (a read-only file or folder); reads still work."""


#: What every write on a full disk answers (issue 24 item 4): nothing half-written, nothing hangs.
DISK_FULL_MESSAGE = "the disk is full: nothing was saved; free some space on the server and try again"


class DiskFullError(StoreError):
    """A write failed because the disk (or quota) is full; the transaction rolled back, nothing was saved."""

    def __init__(self, message: str = DISK_FULL_MESSAGE) -> None:
        super().__init__(message)


_ENOSPC, _EDQUOT = 28, 122
_FULL_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded")


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (or what it wraps: SQLAlchemy's ``orig``, a cause, a context) says the disk is full:
    ENOSPC / EDQUOT, SQLite's SQLITE_FULL, PostgreSQL's disk_full (SQLSTATE 53100)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFullError) or getattr(exc, "errno", None) in (_ENOSPC, _EDQUOT):
            return True
        if getattr(exc, "sqlstate", None) == "53100" or any(t in str(exc).lower() for t in _FULL_TEXTS):
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False


def first_line(exc: BaseException, limit: int | None = 200) -> str:
    """The first line of `exc`'s message (its type's name when the message is empty), cut to `limit` characters:
    what a one-line refusal quotes of a library's multi-line error."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def error_line(exc: BaseException, limit: int | None = None, *, message: object = None) -> str:
    """``TypeName: first line of the message`` (of `message` when given, e.g. a wrapped DBAPI error), the message
    part cut to `limit` characters; the message part is empty when there is none."""
    lines = str(exc if message is None else message).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit] if lines else ''}"
