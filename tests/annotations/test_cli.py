"""``python -m annotations`` through ``main(argv)``, plus one real subprocess run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from annotations.cli import main


def _rows(tmp_path: Path, videos: list[Path], bad: bool = False) -> Path:
    rows = [
        {"video": str(v), "short_prompt": f"clip {i}", "detailed_prompt": f"detail {i}"} for i, v in enumerate(videos)
    ]
    if bad:
        rows.append({"video": str(tmp_path / "missing.mp4"), "short_prompt": "x"})
    path = tmp_path / ("bad.jsonl" if bad else "rows.jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_import_export_stats(tmp_path: Path, videos: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["import", str(_rows(tmp_path, videos)), "--db", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["imported"] == 3
    assert main(["add-annotator", "boss", "--role", "admin", "--db", url]) == 0
    out = tmp_path / "out" / "pairs.parquet"
    assert main(["export", "--db", url, "--format", "parquet", "--out", str(out)]) == 0
    assert out.is_file() and (out.parent / "README.md").is_file()
    capsys.readouterr()
    assert main(["stats", "--db", url, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["counts"]["samples"] == 3 and stats["annotators"][0]["role"] == "admin"
    assert main(["stats", "--db", url]) == 0
    text = capsys.readouterr().out
    assert "samples 3" in text
    assert "Cohen's kappa None, Krippendorff's alpha None (not computable yet: no pair has decisive votes" in text


def test_stats_text_says_why_agreement_is_undefined() -> None:
    from annotations.cli import _why_no_agreement

    same = {"cohen_kappa": None, "krippendorff_alpha": None, "overlapped_pairs": 4}
    assert _why_no_agreement(same).startswith(" (undefined: every shared vote was the same answer")
    assert _why_no_agreement(same | {"cohen_kappa": 0.5}) == ""


def test_bad_import_reports_lines_and_fails(
    tmp_path: Path, videos: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    path = _rows(tmp_path, videos, bad=True)
    assert main(["import", str(path), "--db", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"{path}:4: missing video {tmp_path / 'missing.mp4'}"
    assert err[-1].startswith("error: ") and "nothing imported" in err[-1]
    assert main(["import", str(path), "--db", url, "--skip-bad"]) == 0


def test_bad_input_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--db", "nosuch://x"]) == 2
    assert main(["import", str(tmp_path / "none.jsonl"), "--db", f"sqlite:///{tmp_path / 'a.db'}"]) == 2
    assert main(["import", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'a.db'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert main(["export", "--db", "sqlite://", "--format", "xml", "--out", "x"]) == 2  # argparse usage error


def test_module_entrypoint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "annotations", "stats", "--db", url, "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0 and json.loads(done.stdout)["counts"]["pairs"] == 0
    bad = subprocess.run([sys.executable, "-m", "annotations", "stats", "--db", "::"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
