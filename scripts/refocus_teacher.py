"""Seed a new SQLite corpus from an old one's teacher responses, each focused (engine.rerank.focus).

    .venv/bin/python scripts/refocus_teacher.py --src runs/smollm2/corpus.db --dst runs/smollm2-focus/corpus.db \
        --focus-words 80

Best-of-8 sampling of SmolLM2 took ~2 h of this CPU for ~280 training prompts (issue 21). The teacher's
`focus_words` (TeacherConfig) ends each chosen response once it has said every tagged element; this script
gives the responses written before that option existed the same treatment instead of sampling them again:

- the samples, their tags, the task instructions and the `teacher` / `teacher-unfaithful` responses are kept;
- every other response (mined beams), its scores, pairs, leases and judgements are removed: they belong to
  the models trained on the unfocused targets;
- each teacher response's text becomes focus(text) with the sample's stored tags; its meta records
  `focus_words` and the text it had (`unfocused`).

SQLite only (a file copy); the source is never written. Refuses to overwrite an existing destination.
Difference from a fresh teacher run with focus_words: the teacher focuses all 8 candidates before ranking
them, so it may pick another sample; here the already-chosen sample is focused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.faithfulness.rank import elements_for  # noqa: E402
from engine.rerank import focus  # noqa: E402

#: Rows of these tables belong to models trained on the old targets (children before parents).
DROPPED_TABLES = ("judgement", "pair_lease", "pair", "score", "run_metric", "training_run")


def refocus(src: Path, dst: Path, focus_words: int) -> dict[str, int]:
    """Copy src to dst, drop the mined data, focus every teacher response; returns counts."""
    if dst.exists():
        raise SystemExit(f"{dst} exists: refusing to overwrite it")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    con = sqlite3.connect(dst)
    try:
        with con:
            for table in DROPPED_TABLES:
                con.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed table names above)
            kept_sources = "('teacher', 'teacher-unfaithful')"
            removed = con.execute(f"DELETE FROM response WHERE source NOT IN {kept_sources}").rowcount  # noqa: S608
            counts = {"removed_responses": removed, "focused": 0, "unchanged": 0}
            rows = con.execute(
                "SELECT r.id, r.text, r.meta_json, s.short_prompt, t.tags_json FROM response r "
                "JOIN sample s ON s.id = r.sample_id LEFT JOIN sample_tags t ON t.sample_id = s.id "
                "WHERE r.source = 'teacher'"
            ).fetchall()
            for rid, text, meta_json, short_prompt, tags_json in rows:
                elements = elements_for(short_prompt, json.loads(tags_json) if tags_json else None)
                new = focus(text, elements, short_prompt, focus_words)
                meta = json.loads(meta_json) if meta_json else {}
                meta["focus_words"] = focus_words
                if new != text:
                    meta["unfocused"] = text
                con.execute("UPDATE response SET text = ?, meta_json = ? WHERE id = ?", (new, json.dumps(meta), rid))
                counts["focused" if new != text else "unchanged"] += 1
        con.execute("VACUUM")
    finally:
        con.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, required=True, help="the SQLite corpus to read (never written)")
    parser.add_argument("--dst", type=Path, required=True, help="the new SQLite corpus (must not exist)")
    parser.add_argument("--focus-words", type=int, default=80, help="words after which a target ends (default 80)")
    args = parser.parse_args(argv)
    if not args.src.is_file():
        raise SystemExit(f"{args.src} is not a file")
    print(json.dumps(refocus(args.src, args.dst, args.focus_words)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
