"""kill -9 writers at random points (10 iterations; the 50-iteration run is bench/bench_annotations_crash.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_annotations_crash.py"


@pytest.mark.slow
def test_kill_nine_loses_no_acknowledged_judgement(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_annotations_crash", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    result = module.run(iterations=10, workdir=tmp_path, seed_=1, n_pairs=5000)
    assert result["bad_iterations"] == [] and result["integrity_ok"] == 10
    assert result["acked_total"] > 20 and result["missing_total"] == 0
