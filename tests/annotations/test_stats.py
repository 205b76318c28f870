"""Agreement statistics against hand calculations."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from annotations import store
from annotations.models import Pair
from annotations.stats import cohen_kappa, compute_stats, krippendorff_alpha_nominal

# Two annotators on four pairs: (A,A) (A,B) (B,B) (A,A).
FIRST = ["a_better", "a_better", "b_better", "a_better"]
SECOND = ["a_better", "b_better", "b_better", "a_better"]


def test_cohen_kappa_hand_computed() -> None:
    # p_o = 3/4; first says a 3/4, b 1/4; second a 1/2, b 1/2 -> p_e = 3/8 + 1/8 = 1/2;
    # kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2.
    assert cohen_kappa(FIRST, SECOND) == pytest.approx(0.5)
    assert cohen_kappa(["tie"] * 3, ["tie"] * 3) is None  # chance agreement 1: undefined


def test_krippendorff_alpha_hand_computed() -> None:
    # Coincidences: o_aa = 4, o_bb = 2, o_ab = o_ba = 1; n_a = 5, n_b = 3, n = 8.
    # alpha = 1 - (n - 1) * (o_ab + o_ba) / (2 n_a n_b) = 1 - 7 * 2 / 30 = 8/15.
    units = [list(u) for u in zip(FIRST, SECOND, strict=True)]
    assert krippendorff_alpha_nominal(units) == pytest.approx(8 / 15)
    # Three raters, one missing label and one unpaired unit:
    # (a,a,a) (a,a,b) (b,b) (a): the unit with m=3 and labels a,a,b gives o_ab = o_ba = 2*1/(3-1) = 1;
    # n_a = 5, n_b = 3 (the lone (a) does not pair) -> alpha = 1 - 7 * 2 / 30 = 8/15 again.
    assert krippendorff_alpha_nominal([["a"] * 3, ["a", "a", "b"], ["b", "b"], ["a"]]) == pytest.approx(8 / 15)
    # (a,a,a) (a,a,b) (b,b,b): n_a = 5, n_b = 4, n = 9, D = 2 -> 1 - 8 * 2 / 40 = 0.6.
    assert krippendorff_alpha_nominal([["a"] * 3, ["a", "a", "b"], ["b"] * 3]) == pytest.approx(0.6)
    assert krippendorff_alpha_nominal([["a", "a"]]) is None


def test_compute_stats_on_a_database(engine: Engine, video: Path, make_pairs) -> None:
    pair_ids = make_pairs(engine, video, 4)  # every pair: teacher (a) scored above beam (b)
    for pair_id, first, second in zip(pair_ids, FIRST, SECOND, strict=True):
        with Session(engine) as session:
            a = session.get(Pair, pair_id).response_a_id
        store.record_judgement(engine, pair_id, "ann", first, a, 2.0, require_lease=False)
        store.record_judgement(engine, pair_id, "bea", second, a, 4.0 if pair_id % 2 else 6.0, require_lease=False)
    view = store.next_pair(engine, "cid", overlap=3)
    store.record_judgement(engine, view.pair_id, "cid", "skip", view.left_response_id)  # an abstention
    stats = compute_stats(engine)
    counts = stats["counts"]
    assert (counts["pairs"], counts["judgements"], counts["pairs_by_task"], counts["pairs_by_origin"]) == (
        4,
        9,
        {"1": 4},
        {"mined": 4},
    )
    people = {a["name"]: a for a in stats["annotators"]}
    assert people["ann"]["judgements"] == 4 and people["ann"]["median_seconds"] == 2.0
    assert people["bea"]["median_seconds"] == 5.0 and people["cid"]["skips"] == 1
    agreement = stats["agreement"]
    assert agreement["overlapped_pairs"] == 4 and agreement["raters"] == ["ann", "bea"]
    assert agreement["cohen_kappa"] == pytest.approx(0.5)
    assert agreement["krippendorff_alpha"] == pytest.approx(8 / 15)
    # Evaluators prefer a everywhere; 5 of the 8 decisive votes say a.
    hve = stats["human_vs_evaluator"]
    assert (hve["votes"], hve["agree"], hve["fraction"]) == (8, 5, pytest.approx(5 / 8))
    assert hve["by_evaluator"]["clip"] == {"votes": 8, "fraction": pytest.approx(5 / 8)}
