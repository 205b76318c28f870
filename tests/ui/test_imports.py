"""The UI never imports torch: `import ui` and building the whole app leave it out."""

from __future__ import annotations

import subprocess
import sys

from tests.app_server import REPO

SCRIPT = """
import sys
import ui
assert "torch" not in sys.modules, "import ui pulled torch"
from annotations.db import open_db
from engine.service import Studio
from training.jobs import Jobs
db = open_db("sqlite://")
ctx = ui.AppContext(studio=Studio(), db=db, jobs=Jobs(db, "sqlite://"))
demo = ui.build_app(ctx)
heavy = sorted(m for m in ("torch", "transformers", "open_clip", "spacy", "decord") if m in sys.modules)
assert not heavy, f"building the app imported {heavy}"
print("ok")
"""


def test_import_ui_and_build_app_do_not_import_torch() -> None:
    env = {"GRADIO_ANALYTICS_ENABLED": "False", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
