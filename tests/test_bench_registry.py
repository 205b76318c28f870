"""`make bench` runs every script in bench/: each must be listed in scripts/bench.sh (ten were not, and the
runner refused to start). The runner checks its list before anything else, so naming no real benchmark
exercises the check without running one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_every_script_in_bench_is_listed_in_the_runner() -> None:
    run = subprocess.run(
        ["bash", "scripts/bench.sh", "no-such-benchmark"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert "disagree" not in run.stderr, run.stderr
    assert run.returncode == 2 and "no benchmark named no-such-benchmark" in run.stderr
