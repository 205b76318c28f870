"""The bundled sample set's pairs (assets/sampleset/pairs.jsonl): train on them with no data of one's own.

The file is an annotations export whose clip paths are relative to its own folder, so it works from any
checkout. `bundled_export` writes a copy with absolute paths into a run folder (what the trainer reads);
`python -m training.sampleset EXPORT OUT` does the reverse for a fresh export (how the bundled file is
regenerated: assets/sampleset/README.md).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from annotations.files import atomic_write
from engine.paths import in_data_root
from training.config import ConfigError

PATH_COLUMNS = ("video", "rejected_video")


def locate(path: str) -> Path:
    """A sample-set path as given, else relative to the data root (assets/ lives there: engine.paths)."""
    return in_data_root(path)


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(f"data.sample_set: {path} not found")
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _rewrite(rows: list[dict[str, Any]], convert: Any) -> list[dict[str, Any]]:
    return [{k: (convert(v) if k in PATH_COLUMNS and v else v) for k, v in row.items()} for row in rows]


def bundled_export(sample_set: str, run_dir: Path) -> str:
    """<run_dir>/export.jsonl: the bundled pairs with clip paths made absolute (the trainer's input)."""
    source = locate(sample_set)
    base = source.parent
    rows = _rewrite(_rows(source), lambda v: str((base / v).resolve()) if not Path(v).is_absolute() else v)
    for row in rows:
        for column in PATH_COLUMNS:
            if row.get(column) and not Path(row[column]).is_file():
                raise ConfigError(f"data.sample_set: clip {row[column]} of {source} is missing")
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / "export.jsonl"
    atomic_write(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return str(out)


def relative_export(export: Path, out: Path) -> int:
    """Write `export` to `out` with clip paths relative to out's folder; returns the row count."""
    rows = _rewrite(_rows(export), lambda v: os.path.relpath(v, out.parent))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m training.sampleset EXPORT OUT", file=sys.stderr)
        return 2
    try:
        n = relative_export(Path(args[0]), Path(args[1]))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {n} pairs to {args[1]} (clip paths relative to its folder)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
