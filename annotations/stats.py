"""Counts, annotator speed, inter-annotator agreement and human-vs-evaluator agreement.

Agreement uses the normalised choices (a_better / b_better / tie / both_bad) of pairs that at
least two annotators judged; skips are abstentions and are left out everywhere.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from annotations.db import read_session
from annotations.models import DECISIVE, Annotator, Judgement, Pair, Response, Sample, Score, stored_id


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's κ of two raters' labels on the same units; None when chance agreement is 1."""
    if len(first) != len(second) or not first:
        raise ValueError("cohen_kappa needs two equally long, non-empty label lists")
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    c1, c2 = Counter(first), Counter(second)
    expected = sum(c1[k] * c2[k] for k in c1) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def krippendorff_alpha_nominal(units: Sequence[Sequence[str]]) -> float | None:
    """Krippendorff's α (nominal) over units, each the labels it received (missing ones absent).

    Coincidences: every ordered pair of labels within a unit of m labels adds 1/(m-1).
    α = 1 - (n-1) · Σ_{c≠k} o_ck / Σ_{c≠k} n_c·n_k. None when fewer than 2 pairable labels or
    only one category is ever used (no disagreement is possible).
    """
    observed_disagree = 0.0
    totals: Counter[str] = Counter()
    for labels in units:
        m = len(labels)
        if m < 2:
            continue  # a unit with one label has nothing to pair with
        counts = Counter(labels)
        totals.update(counts)
        # Σ over ordered pairs (i≠j positions) with different labels, each weighted 1/(m-1).
        observed_disagree += sum(counts[c] * (m - counts[c]) for c in counts) / (m - 1)
    n = sum(totals.values())
    expected_disagree = n * n - sum(v * v for v in totals.values())  # Σ_{c≠k} n_c n_k
    if n < 2 or expected_disagree == 0:
        return None
    return 1 - (n - 1) * observed_disagree / expected_disagree


def _counts(session: Session) -> dict[str, Any]:
    def count(model: type) -> int:
        return int(session.exec(select(func.count()).select_from(model)).one())

    def by(column: Any) -> dict[str, int]:
        rows = session.exec(select(column, func.count()).group_by(column))
        return {str(k): int(v) for k, v in rows}

    return {
        "samples": count(Sample),
        "responses": count(Response),
        "pairs": count(Pair),
        "judgements": count(Judgement),
        "annotators": count(Annotator),
        "pairs_by_task": by(Pair.task),
        "pairs_by_origin": by(Pair.origin),
        "pairs_by_term": by(Pair.hdpo_term),
        "judgements_by_choice": by(Judgement.choice),
    }


def _annotator_rows(session: Session) -> list[dict[str, Any]]:
    per: dict[int, list[Judgement]] = defaultdict(list)
    for judgement in session.exec(select(Judgement)):
        per[judgement.annotator_id].append(judgement)
    rows = []
    for annotator in session.exec(select(Annotator).order_by(col(Annotator.id))):
        mine = per.get(stored_id(annotator.id), [])
        seconds = [j.seconds_taken for j in mine if j.seconds_taken is not None]
        rows.append(
            {
                "name": annotator.name,
                "role": annotator.role,
                "judgements": len(mine),
                "decisive": sum(j.choice in DECISIVE for j in mine),
                "skips": sum(j.choice == "skip" for j in mine),
                "median_seconds": statistics.median(seconds) if seconds else None,
            }
        )
    return rows


def agreement(votes: Mapping[int, Mapping[str, str]]) -> dict[str, Any]:
    """votes: pair_id -> {annotator: normalised non-skip choice}. Only pairs with ≥ 2 votes count."""
    units = {pid: v for pid, v in votes.items() if len(v) >= 2}
    raters = sorted({name for v in units.values() for name in v})
    pairwise = {}
    for first, second in combinations(raters, 2):
        shared = [v for v in units.values() if first in v and second in v]
        if shared:
            kappa = cohen_kappa([v[first] for v in shared], [v[second] for v in shared])
            pairwise[f"{first}/{second}"] = {"kappa": kappa, "pairs": len(shared)}
    return {
        "overlapped_pairs": len(units),
        "raters": raters,
        # κ is defined for two raters; with more, α is the figure to read (κ stays per pair).
        "cohen_kappa": next(iter(pairwise.values()))["kappa"] if len(pairwise) == 1 else None,
        "pairwise_kappa": pairwise,
        "krippendorff_alpha": krippendorff_alpha_nominal([list(v.values()) for v in units.values()]),
    }


def _human_votes(session: Session) -> dict[int, dict[str, str]]:
    rows = session.exec(
        select(Judgement.pair_id, Annotator.name, Judgement.choice)
        .join(Annotator, col(Annotator.id) == col(Judgement.annotator_id))
        .where(Judgement.choice != "skip")
    )
    votes: dict[int, dict[str, str]] = defaultdict(dict)
    for pair_id, name, choice in rows:
        votes[pair_id][name] = choice
    return votes


def human_vs_evaluator(
    votes: Mapping[int, Mapping[str, str]],
    pairs: Mapping[int, tuple[int, int]],
    scores: Mapping[int, Mapping[str, float]],
) -> dict[str, Any]:
    """Fraction of decisive human votes that agree with the evaluators' order of the pair.

    Evaluator order = mean score over the evaluators that scored BOTH responses (a level mean is
    no order and the vote is not counted); ``by_evaluator`` gives the same per evaluator.
    """
    agree = total = 0
    per_eval: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for pair_id, by_annotator in votes.items():
        a_id, b_id = pairs[pair_id]
        sa, sb = scores.get(a_id, {}), scores.get(b_id, {})
        common = sorted(set(sa) & set(sb))
        for choice in (c for c in by_annotator.values() if c in DECISIVE):
            human_a = choice == "a_better"
            diff = sum(sa[e] - sb[e] for e in common)
            if common and diff != 0:
                total += 1
                agree += int((diff > 0) == human_a)
            for e in common:
                if sa[e] != sb[e]:
                    per_eval[e][1] += 1
                    per_eval[e][0] += int((sa[e] > sb[e]) == human_a)
    return {
        "votes": total,
        "agree": agree,
        "fraction": agree / total if total else None,
        "by_evaluator": {e: {"votes": t, "fraction": a / t} for e, (a, t) in sorted(per_eval.items())},
    }


def compute_stats(engine: Engine) -> dict[str, Any]:
    """Everything ``python -m annotations stats`` prints, as a JSON-able dict."""
    with read_session(engine) as session:
        votes = _human_votes(session)
        pairs = {stored_id(p.id): (p.response_a_id, p.response_b_id) for p in session.exec(select(Pair))}
        scores: dict[int, dict[str, float]] = defaultdict(dict)
        for score in session.exec(select(Score)):
            scores[score.response_id][score.evaluator] = score.value
        return {
            "counts": _counts(session),
            "annotators": _annotator_rows(session),
            "agreement": agreement(votes),
            "human_vs_evaluator": human_vs_evaluator(votes, pairs, scores),
        }
