"""An installable product: the wheel lists every package and ships configs/ and assets/ (issue 23 item 4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_lists_every_package_on_disk():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts)
        for top in ("annotations", "engine", "training", "ui", "vidprompter")
        for p in (REPO / top).rglob("__init__.py")
    }
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert {"vidprompter.configs", "vidprompter.assets"} <= listed


def test_data_paths_come_from_one_module():
    from engine import paths
    from training.config import CONFIGS_DIR
    from ui.common import ASSETS_DIR, SAMPLES_DIR

    assert CONFIGS_DIR == paths.CONFIGS_DIR == REPO / "configs"
    assert ASSETS_DIR == paths.ASSETS_DIR and SAMPLES_DIR == paths.SAMPLES_DIR
    assert paths.in_data_root("configs/hdpo.yaml").resolve() == REPO / "configs" / "hdpo.yaml"
    assert paths.in_data_root("no/such.yaml") == paths.DATA_ROOT / "no" / "such.yaml"


def test_the_console_command_dispatches(capsys):
    import app

    assert app.console(["--help"]) == 0
    assert "vidprompter <command>" in capsys.readouterr().out
    assert app.console(["hallucinate-text", "Two boys throw a white ball.", "--seed", "3", "--json"]) == 0
    assert '"edits"' in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_a_wheel_installs_outside_the_checkout_and_runs(tmp_path):
    """pip install of the built wheel (not editable) into a fresh venv outside the checkout: the console
    command, one Task-3 generation with the embedded model, and the app's first page (tests/wheel_check.sh)."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        ["bash", str(REPO / "tests" / "wheel_check.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    tail = (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 0, tail
    assert "wheel check: ok" in result.stdout, tail
