"""Issue 24 item 10, the import side: an extracted zip keeps only the clips samples use, a rejected zip leaves
nothing, and an archive may expand only so far beyond its own size."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import Engine

from annotations import archive
from annotations.errors import ImportRejected, StoreError
from annotations.importer import import_rows


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_rejected_zip_leaves_nothing_behind(sqlite_engine: Engine, videos: list[Path], tmp_path: Path) -> None:
    rows = [{"video": "a.mp4", "short_prompt": "fine"}, {"video": "missing.mp4", "short_prompt": "bad"}]
    members = {"rows.jsonl": "".join(json.dumps(r) + "\n" for r in rows).encode(), "a.mp4": videos[0].read_bytes()}
    media = tmp_path / "imports"
    with pytest.raises(ImportRejected):
        import_rows(sqlite_engine, _zip(tmp_path / "up.zip", members), extract_to=media)
    assert not media.exists() or _files(media) == []


def test_an_imported_zip_keeps_only_the_clips_its_samples_use(
    sqlite_engine: Engine, videos: list[Path], tmp_path: Path
) -> None:
    rows = [{"video": "clips/a.mp4", "short_prompt": "a clip"}]
    members = {
        "rows.jsonl": json.dumps(rows[0]).encode(),
        "clips/a.mp4": videos[0].read_bytes(),
        "clips/unused.mp4": videos[1].read_bytes(),
        "notes.txt": b"x" * 10_000,
    }
    upload = _zip(tmp_path / "up.zip", members)
    report = import_rows(sqlite_engine, upload, extract_to=tmp_path / "imports")
    folder = Path(report.extracted_to or "")
    assert _files(folder) == ["clips/a.mp4"]
    again = import_rows(sqlite_engine, upload, extract_to=tmp_path / "imports")  # re-extracts what it needs
    assert (again.imported, again.existing) == (0, 1) and _files(folder) == ["clips/a.mp4"]


def test_an_archive_expands_at_most_a_few_times_its_size(tmp_path: Path) -> None:
    # 40 members of 2 MB, each a 25 KB random block repeated (~80x smaller stored, under the per-member
    # 200x bomb ratio): ~1 MB of zip, 80 MB extracted (the issue: a 6 MB zip left 321 MB).
    block = os.urandom(25_000)
    members = {"rows.jsonl": b'{"short_prompt": "x"}\n'} | {f"c{i}.mp4": block * 80 for i in range(40)}
    upload = _zip(tmp_path / "big.zip", members)
    cap = archive.extract_cap(upload.stat().st_size)
    assert cap == archive.MIN_EXTRACT_CAP
    with pytest.raises(StoreError, match=r"archive expands past 64 MiB \(its size limit\); nothing extracted"):
        archive.extract_archive(upload, tmp_path / "imports")
    assert not (tmp_path / "imports").exists() or _files(tmp_path / "imports") == []
    assert archive.extract_cap(50 << 20) == 500 << 20
    assert archive.extract_cap(10 << 30) == archive.MAX_TOTAL_BYTES
