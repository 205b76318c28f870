"""Training runs (the admin tab's jobs) and their metrics per step."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from annotations.common import check_in, get_row, row_dict
from annotations.db import read_session, write_session
from annotations.errors import StoreError
from annotations.models import RUN_STATUSES, RunMetric, TrainingRun, stored_id, utcnow

TERMINAL_STATUSES = ("finished", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
#: Called with the active runs inside the write transaction that then creates / requeues a run; raises to refuse.
Admit = Callable[[list[dict[str, Any]]], None]
_RUN_FIELDS = set(TrainingRun.model_fields) - {"id"}


def _run_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(fields)
    if "config" in values:
        config = values.pop("config")
        values["config_json"] = config if isinstance(config, str) else json.dumps(config, sort_keys=True)
    unknown = set(values) - _RUN_FIELDS
    if unknown:
        raise StoreError(f"unknown training run field(s): {', '.join(sorted(unknown))}")
    if "status" in values:
        check_in(values["status"], RUN_STATUSES, "status")
        now = utcnow()
        if values["status"] == "running":
            values.setdefault("started_at", now)
        if values["status"] in TERMINAL_STATUSES:
            values.setdefault("finished_at", now)
    return values


def _run_dict(row: TrainingRun) -> dict[str, Any]:
    data = row_dict(row)
    try:
        data["config"] = json.loads(row.config_json)
    except ValueError:
        data["config"] = None
    return data


def create_run(engine: Engine, name: str, config: Mapping[str, Any] | str | None = None, **fields: Any) -> int:
    """A new training run (status ``queued`` unless given); returns its id."""
    values = _run_values({"config": config or {}, **fields})
    with write_session(engine) as session:
        row = TrainingRun(name=name, **values)
        session.add(row)
        session.flush()
        return stored_id(row.id)


def update_run(engine: Engine, run_id: int, **fields: Any) -> None:
    """Set fields of a run. Status ``running`` stamps started_at, a terminal one finished_at."""
    values = _run_values(fields)
    with write_session(engine) as session:
        row = get_row(session, TrainingRun, run_id, "training run")
        for key, value in values.items():
            setattr(row, key, value)
        session.add(row)


def create_run_if(
    engine: Engine, name: str, admit: Admit, config: Mapping[str, Any] | str | None = None, **fields: Any
) -> int:
    """create_run, in the one write transaction that read the active runs: `admit(active)` raises to refuse.
    Check and create are atomic: of four concurrent launches on one device exactly one is created."""
    values = _run_values({"config": config or {}, **fields})
    with write_session(engine) as session:
        admit(_active_runs(session))
        row = TrainingRun(name=name, **values)
        session.add(row)
        session.flush()
        return stored_id(row.id)


def update_run_if(engine: Engine, run_id: int, admit: Admit, **fields: Any) -> None:
    """update_run after `admit(active runs)` in the same write transaction (a resume claiming its device)."""
    values = _run_values(fields)
    with write_session(engine) as session:
        admit(_active_runs(session))
        row = get_row(session, TrainingRun, run_id, "training run")
        for key, value in values.items():
            setattr(row, key, value)
        session.add(row)


def _active_runs(session: Session) -> list[dict[str, Any]]:
    query = select(TrainingRun).where(col(TrainingRun.status).in_(ACTIVE_STATUSES)).order_by(col(TrainingRun.id))
    return [_run_dict(r) for r in session.exec(query)]


def get_run(engine: Engine, run_id: int) -> dict[str, Any] | None:
    with read_session(engine) as session:
        row = session.get(TrainingRun, run_id)
        return _run_dict(row) if row is not None else None


def list_runs(engine: Engine, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first."""
    query = select(TrainingRun).order_by(col(TrainingRun.id).desc()).limit(limit)
    if status is not None:
        query = query.where(TrainingRun.status == status)
    with read_session(engine) as session:
        return [_run_dict(r) for r in session.exec(query)]


def add_run_metrics(engine: Engine, run_id: int, step: int, metrics: Mapping[str, float]) -> None:
    """Record metric values at a step; writing the same (step, name) again overwrites."""
    with write_session(engine) as session:
        get_row(session, TrainingRun, run_id, "training run")
        existing = {
            m.name: m
            for m in session.exec(
                select(RunMetric).where(
                    RunMetric.run_id == run_id, RunMetric.step == step, col(RunMetric.name).in_(list(metrics))
                )
            )
        }
        for name, value in metrics.items():
            row = existing.get(name) or RunMetric(run_id=run_id, step=step, name=name, value=0.0)
            row.value = float(value)
            session.add(row)


def run_metrics(engine: Engine, run_id: int, name: str | None = None) -> list[dict[str, Any]]:
    """[{step, name, value}] ordered by step then name."""
    query = select(RunMetric).where(RunMetric.run_id == run_id).order_by(col(RunMetric.step), col(RunMetric.name))
    if name is not None:
        query = query.where(RunMetric.name == name)
    with read_session(engine) as session:
        return [{"step": m.step, "name": m.name, "value": m.value} for m in session.exec(query)]
