"""Issue 24 item 9 (and the import side of item 5): malformed rows files give one line naming the row, on the
command line and in the report the Data tab shows; no traceback, nothing half-imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from annotations import importer
from annotations.errors import ImportRejected

REPO = Path(__file__).resolve().parents[2]


def _rows(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _bad(engine: Engine, path: Path) -> dict[int, str]:
    with pytest.raises(ImportRejected) as info:
        importer.import_rows(engine, path)
    return {b.line: b.reason for b in info.value.report.bad}  # type: ignore[attr-defined]


def test_a_deeply_nested_json_line_is_one_bad_row(sqlite_engine: Engine, tmp_path: Path) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    path = _rows(tmp_path, "rows.jsonl", f'{{"short_prompt": "a cat"}}\n{nested}\n{{"short_prompt": "a dog"}}\n')
    assert _bad(sqlite_engine, path) == {2: f"JSON nested deeper than {importer.MAX_JSON_DEPTH} levels"}
    report = importer.import_rows(sqlite_engine, path, skip_bad=True)
    assert report.imported == 2


def test_a_csv_field_over_128_kib_is_one_bad_row(sqlite_engine: Engine, tmp_path: Path) -> None:
    huge = "x" * (130 * 1024)
    path = _rows(tmp_path, "rows.csv", f'short_prompt,video\na cat,\n"{huge}",\na dog,\n')
    assert _bad(sqlite_engine, path) == {3: "a field is larger than 128 KiB"}
    assert importer.import_rows(sqlite_engine, path, skip_bad=True).imported == 2


def test_over_long_text_fields_are_bad_rows(sqlite_engine: Engine, tmp_path: Path) -> None:
    long_short = "a cat " * 1000
    long_detail = "word " * 20_000
    path = _rows(
        tmp_path,
        "rows.jsonl",
        f'{{"short_prompt": "{long_short}"}}\n{{"short_prompt": "a dog", "detailed_prompt": "{long_detail}"}}\n',
    )
    bad = _bad(sqlite_engine, path)
    assert bad[1] == f"short_prompt is {len(long_short.strip())} characters; the limit is {importer.MAX_SHORT_PROMPT}"
    assert bad[2].startswith("detailed_prompt is ") and f"the limit is {importer.MAX_DETAILED_PROMPT}" in bad[2]


def test_the_cli_names_the_row_in_one_line(tmp_path: Path) -> None:
    nested = "[" * 50_000 + "]" * 50_000
    path = _rows(tmp_path, "rows.jsonl", f'{{"short_prompt": "a cat"}}\n{nested}\n')
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "annotations", "import", str(path), "--db", db],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"{path}:2: JSON nested deeper than {importer.MAX_JSON_DEPTH} levels" in done.stderr
