"""The project's labelling queue order, stored in the database (one database = one annotation project):
``fifo`` (the default: fewest judgements, then oldest) or ``active`` (fewest judgements, then the most
uncertain label first, then oldest; the score is :mod:`annotations.active`'s). An admin sets it (the
Admin tab's queue panel checks the role); ``store.next_pair`` reads it on every pick, so a change
reaches every annotator process on their next pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, case, func, select

from annotations.active import refresh_all
from annotations.common import check_in
from annotations.db import read_session, write_session
from annotations.models import Pair, ProjectSetting, core_table, utcnow

QUEUE_ORDERS = ("fifo", "active")
DEFAULT_QUEUE_ORDER = "fifo"
#: ``project_setting.key`` of the queue order.
QUEUE_ORDER_KEY = "queue_order"
_SETTING = core_table(ProjectSetting)


@dataclass(frozen=True)
class QueueOrder:
    """The queue order in force: ``order`` (fifo / active), who set it and when (None: never set)."""

    order: str
    updated_by: str | None = None
    updated_at: datetime | None = None


def check_order(order: str) -> str:
    """``order`` if it is a queue order; StoreError naming the choices otherwise."""
    return check_in(order, QUEUE_ORDERS, "queue order")


def stored_order(value: str | None) -> str:
    """The order a stored setting value means: an unset (or unknown) value is the default, FIFO."""
    return value if value in QUEUE_ORDERS else DEFAULT_QUEUE_ORDER


def queue_order_info(engine: Engine) -> QueueOrder:
    """The project's queue order (fifo until an admin sets another), with who set it and when."""
    query = select(_SETTING.c.value, _SETTING.c.updated_by, _SETTING.c.updated_at)
    with read_session(engine) as session:
        row = session.execute(query.where(_SETTING.c.key == QUEUE_ORDER_KEY)).first()
    if row is None or row[0] not in QUEUE_ORDERS:
        return QueueOrder(DEFAULT_QUEUE_ORDER)
    return QueueOrder(row[0], row[1], row[2])


def queue_order(engine: Engine) -> str:
    """``fifo`` (the default) or ``active``."""
    return queue_order_info(engine).order


def set_queue_order(engine: Engine, order: str, by: str | None = None) -> QueueOrder:
    """Set the project's queue order; ``by`` names who did (the caller checks they are an admin)."""
    check_order(order)
    now = utcnow()
    with write_session(engine) as session:
        row = session.get(ProjectSetting, QUEUE_ORDER_KEY) or ProjectSetting(key=QUEUE_ORDER_KEY, value=order)
        row.value, row.updated_by, row.updated_at = order, by, now
        session.add(row)
    return QueueOrder(order, by, now)


def recompute_uncertainty(engine: Engine) -> int:
    """Recompute every pair's uncertainty in one write transaction; returns the number of pairs."""
    with write_session(engine) as session:
        return refresh_all(session)


#: A pair at or above this uncertainty counts as "uncertain" in the admin's summary (e.g. members split 1:2,
#: or an ensemble margin under ~1.4 points).
UNCERTAIN_AT = 0.5


@dataclass(frozen=True)
class Waiting:
    """Pairs still waiting for their first vote, by what the active order knows of them."""

    total: int
    uncertain: int  # uncertainty >= UNCERTAIN_AT: served first under the active order
    unscored: int  # uncertainty 0: no comparable scores, served last (in FIFO order) under the active order


def waiting_pairs(engine: Engine, origins: Sequence[str]) -> Waiting:
    """How many queue pairs (of ``origins``, two different responses) have no vote yet, and how uncertain."""
    p = core_table(Pair)
    query = select(
        func.count(),
        func.coalesce(func.sum(case((p.c.uncertainty >= UNCERTAIN_AT, 1), else_=0)), 0),
        func.coalesce(func.sum(case((p.c.uncertainty <= 0, 1), else_=0)), 0),
    ).where(p.c.n_judgements == 0, p.c.response_a_id != p.c.response_b_id, p.c.origin.in_(list(origins)))
    with read_session(engine) as session:
        total, uncertain, unscored = session.execute(query).one()
    return Waiting(int(total), int(uncertain), int(unscored))
