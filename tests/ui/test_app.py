"""app.py's build: what it sets up in the database before the first page is served."""

from __future__ import annotations

from pathlib import Path

import app
from annotations.db import open_db
from annotations.store import instructions
from engine.tasks import instruction_templates


def test_app_records_the_task_instructions_its_exports_build_prompts_from(tmp_path: Path) -> None:
    """The admin tab's launch exports pairs from this DB; the export refuses tasks with no recorded template."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    app.build(app.parse_args(["--db", url]))
    assert instructions(open_db(url)) == instruction_templates()
