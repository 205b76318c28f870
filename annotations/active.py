"""The active labelling queue's score: one uncertainty per pair, kept in ``pair.uncertainty``, which the
``active`` queue order serves highest first (:mod:`annotations.queue_order`).

The score of a pair (a, b) comes from the scores stored for its two responses (``score`` rows):

- ensemble margin ``d_E``: the mean over the ensemble members both sides were scored by of
  ``score_m(a) - score_m(b)`` (= the difference of the ensemble means over those members); without
  members, the stored ``ensemble`` mean's difference. Members are every evaluator name except
  :data:`AGGREGATE_SCORES` and :data:`JUDGE_SCORES`.
- judge margin ``d_J``: ``llm-judge(a) - llm-judge(b)`` (0-10 scale), when both sides have one.

and combines three signals, each in [0, 1]:

    c = exp(-|d| / tau)            small margin: d = d_E (tau = 2 points of 100 x cosine), else d_J (tau = 1
                                   judge point); 1 when the margin is 0
    g = 2 min(n_plus, n_minus) / n members disagreeing: n members, n_plus scoring a above b, n_minus below;
                                   1 for an even split, 0 when they agree (or fewer than 2 members)
    h = 1 if d_E and d_J have opposite signs (judge and evaluators disagree), else 0

    uncertainty = 1 - (1 - c)(1 - g)(1 - h)     (noisy-OR: high when any signal says "unsure")

A pair with no margin on either scale (no scores, or scores by different evaluators on each side) gets 0:
in the active order it comes after every scored pair, in FIFO order. Scored pairs are > 0 (c > 0).

The column is written with the pair (``pairs.add_pair``) and refreshed for the pairs of a response
whenever its scores are written (``samples.add_scores`` / ``add_responses``), so the queue's pick is
the FIFO pick with another ORDER BY over an index (``ix_pair_active``): no per-pick Python. This module
imports no engine or session machinery (the v5 migration runs it inside ``init_db``); the setting lives in
:mod:`annotations.queue_order`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Connection, bindparam, or_, select, update
from sqlmodel import Session

from annotations.models import Pair, Response, Score, core_table

#: Stored ensemble means (the miner's "ensemble"; "mean" as the task tabs name it): not members.
AGGREGATE_SCORES = frozenset({"ensemble", "mean"})
#: The LLM judge's score name (engine.mining.JUDGE_SCORE): its own margin, never a member.
JUDGE_SCORES = frozenset({"llm-judge"})
#: Margin scales: an ensemble margin of TAU_ENSEMBLE points (100 x cosine) or TAU_JUDGE judge points
#: gives c = 1/e.
TAU_ENSEMBLE = 2.0
TAU_JUDGE = 1.0

Scores = Mapping[str, float]
#: Where the statements run: the migration's Connection, or a store function's (flushed) Session.
Executor = Connection | Session
_PAIR = core_table(Pair)
_SCORE = core_table(Score)
_RESPONSE = core_table(Response)


# --------------------------------------------------------------------------- the formula


def _members(a: Scores, b: Scores) -> list[str]:
    return sorted(k for k in a.keys() & b.keys() if k not in AGGREGATE_SCORES and k not in JUDGE_SCORES)


def ensemble_margin(a: Scores, b: Scores) -> float | None:
    """d_E: mean member margin a - b over the members both sides share; else the stored ensemble means'."""
    members = _members(a, b)
    if members:
        return sum(a[m] - b[m] for m in members) / len(members)
    shared = sorted(a.keys() & b.keys() & AGGREGATE_SCORES)
    return a[shared[0]] - b[shared[0]] if shared else None


def judge_margin(a: Scores, b: Scores) -> float | None:
    """d_J: the judge's score of a minus b, when both sides were judged."""
    shared = sorted(a.keys() & b.keys() & JUDGE_SCORES)
    return a[shared[0]] - b[shared[0]] if shared else None


def member_split(a: Scores, b: Scores) -> float:
    """g: 2 min(n_plus, n_minus) / n over the shared members; 0 with fewer than 2 members."""
    diffs = [a[m] - b[m] for m in _members(a, b)]
    if len(diffs) < 2:
        return 0.0
    plus, minus = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return 2 * min(plus, minus) / len(diffs)


def pair_uncertainty(a: Scores, b: Scores) -> float:
    """The documented score in [0, 1] of a pair whose sides have scores ``a`` and ``b`` (evaluator -> value)."""
    d_e, d_j = ensemble_margin(a, b), judge_margin(a, b)
    if d_e is None and d_j is None:
        return 0.0
    c = math.exp(-abs(d_e) / TAU_ENSEMBLE) if d_e is not None else math.exp(-abs(d_j or 0.0) / TAU_JUDGE)
    g = member_split(a, b)
    h = float(d_e is not None and d_j is not None and d_e * d_j < 0)
    return 1.0 - (1.0 - c) * (1.0 - g) * (1.0 - h)


# --------------------------------------------------------------------------- keeping pair.uncertainty


def _scores_of(conn: Executor, response_ids: Iterable[int]) -> dict[int, dict[str, float]]:
    ids = sorted(set(response_ids))
    out: dict[int, dict[str, float]] = {rid: {} for rid in ids}
    for start in range(0, len(ids), 500):  # bound the IN list (SQLite's variable limit)
        query = select(_SCORE.c.response_id, _SCORE.c.evaluator, _SCORE.c.value)
        for rid, evaluator, value in conn.execute(query.where(_SCORE.c.response_id.in_(ids[start : start + 500]))):
            out[rid][evaluator] = value
    return out


def uncertainty_of(conn: Executor, response_a_id: int, response_b_id: int) -> float:
    """The uncertainty of a pair of these two stored responses (``conn``: a Connection or a flushed Session)."""
    if response_a_id == response_b_id:  # input / task hallucination pairs: nothing for a human to compare
        return 0.0
    scores = _scores_of(conn, (response_a_id, response_b_id))
    return pair_uncertainty(scores[response_a_id], scores[response_b_id])


def _write(conn: Executor, pairs: Sequence[tuple[int, int, int]]) -> int:
    """Recompute and store the uncertainty of (pair id, a, b) rows; returns how many were written."""
    if not pairs:
        return 0
    scores = _scores_of(conn, [r for _, a, b in pairs for r in (a, b)])
    rows = [{"pid": pid, "u": pair_uncertainty(scores[a], scores[b]) if a != b else 0.0} for pid, a, b in pairs]
    stmt = update(_PAIR).where(_PAIR.c.id == bindparam("pid")).values(uncertainty=bindparam("u"))
    conn.execute(stmt, rows)
    return len(rows)


def refresh_for_responses(conn: Executor, response_ids: Sequence[int]) -> int:
    """Refresh every pair with one of these responses on either side (their scores just changed). Finds the
    pairs through their samples (ix_pair_sample_task), not by scanning the pair table."""
    ids = sorted(set(response_ids))
    if not ids:
        return 0
    samples = select(_RESPONSE.c.sample_id).where(_RESPONSE.c.id.in_(ids)).distinct().scalar_subquery()
    query = select(_PAIR.c.id, _PAIR.c.response_a_id, _PAIR.c.response_b_id).where(
        _PAIR.c.sample_id.in_(samples), or_(_PAIR.c.response_a_id.in_(ids), _PAIR.c.response_b_id.in_(ids))
    )
    return _write(conn, [tuple(r) for r in conn.execute(query)])


def refresh_all(conn: Executor, batch: int = 5000) -> int:
    """Recompute every pair's uncertainty (the v5 migration's backfill); returns the number of pairs."""
    done, last = 0, 0
    while True:
        query = select(_PAIR.c.id, _PAIR.c.response_a_id, _PAIR.c.response_b_id).where(_PAIR.c.id > last)
        rows = [tuple(r) for r in conn.execute(query.order_by(_PAIR.c.id).limit(batch))]
        if not rows:
            return done
        done += _write(conn, rows)
        last = rows[-1][0]
