"""Small checks and row helpers shared by the store's modules (samples, pairs, queue, runs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session

from annotations.errors import NotFoundError, StoreError
from annotations.models import TASKS


def check_task(task: int) -> int:
    if task not in TASKS:
        raise StoreError(f"task must be one of {TASKS}, got {task!r}")
    return int(task)


def check_in(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise StoreError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def row_dict(row: Any) -> dict[str, Any]:
    """A table row as plain values, datetimes as ISO strings."""
    data = row.model_dump()
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in data.items()}


def get_row(session: Session, model: type, row_id: int, what: str) -> Any:
    """The row of ``model`` with this id; NotFoundError ("no <what> with id N") if there is none."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFoundError(f"no {what} with id {row_id}")
    return row
