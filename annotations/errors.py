"""Errors the annotation store raises; each carries a one-line message fit for a CLI."""

from __future__ import annotations


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

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report


class LeaseLost(StoreError):
    """A vote on a pair the voter does not hold (any more): its lease expired and it went to someone else."""


class ReadOnlyError(StoreError):
    """A write to a database this process may only read (a read-only file or folder); reads still work."""
