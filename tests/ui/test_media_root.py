"""`python app.py --media-root DIR`: the Data tab's import resolves a rows file's relative clip paths against
the admin's media folder (issue 11 item 5), through the app's own /import_rows endpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.app_server import SAMPLES, start_app


@pytest.mark.slow
def test_an_uploaded_rows_file_finds_its_clips_in_the_media_root(tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "clips").mkdir(parents=True)
    shutil.copyfile(SAMPLES / "bikes.mp4", media / "clips" / "bikes.mp4")
    rows = tmp_path / "upload" / "rows.jsonl"
    rows.parent.mkdir()
    rows.write_text(json.dumps({"video": "clips/bikes.mp4", "short_prompt": "People ride bikes."}) + "\n")
    server = start_app(tmp_path / "app", extra=["--media-root", str(media)])
    try:
        message = Client(server.url, verbose=False).predict(handle_file(str(rows)), False, api_name="/import_rows")
    finally:
        server.stop()
    assert message.startswith("✅ Imported **1** new sample(s) from `rows.jsonl`: 1 row(s) read, 1 clip(s)")
