"""Run a child process as an unprivileged user: permission bits do not bind root, so tests of read-only files
drop root to `nobody` (65534) for the command under test."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NOBODY = 65534
ROOT = Path(__file__).resolve().parents[1]


def unprivileged() -> list[str]:
    """A command prefix that drops root to nobody (empty when not root: the mode bits already bind us).

    Skips the test, saying why, when root cannot drop (no setpriv) or when nobody cannot read this checkout or
    its Python (a clone in a 0700 temp folder, a home directory): the child would fail to start, not test."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop to an unprivileged user")
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    problem = _nobody_cannot_run_here(tuple(prefix))
    if problem:
        pytest.skip(f"nobody cannot run this checkout's code ({problem}): keep the checkout world-readable")
    return prefix


@functools.cache
def _nobody_cannot_run_here(prefix: tuple[str, ...]) -> str | None:
    """None when nobody can start this Python and import the project from ROOT, else the child's last line."""
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import annotations, engine, ui"],
        cwd="/",
        env=os.environ | {"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode == 0:
        return None
    lines = (probe.stderr or probe.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {probe.returncode}"
