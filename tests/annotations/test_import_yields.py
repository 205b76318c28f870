"""Issue 24 item 8: an import runs in short transactions that yield to votes in the same process.

A 10k-row import pushed vote p95 from 0.32 s to 3.0 s (500-row transactions held the write gate for seconds;
bench/bench_import_votes.py measures it). Here: while an import runs on one thread, an annotator voting on
another is never kept waiting for longer than a short transaction."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from annotations import importer, store


@pytest.mark.slow
def test_votes_keep_flowing_while_a_large_import_writes(
    sqlite_engine: Engine, videos: list[Path], tmp_path: Path, make_pairs
) -> None:
    make_pairs(sqlite_engine, videos[0], 600)
    rows = tmp_path / "rows.jsonl"
    with open(rows, "w") as fh:
        for i in range(1500):
            fh.write(json.dumps({"video": str(videos[i % 3]), "short_prompt": f"row {i}", "detailed_prompt": "d"}))
            fh.write("\n")
    done = threading.Event()
    stamps: list[float] = []

    def vote() -> None:
        while not done.is_set():
            view = store.next_pair(sqlite_engine, "alice")
            assert view is not None
            store.record_judgement(sqlite_engine, view.pair_id, "alice", "a_better", view.left_response_id)
            stamps.append(time.monotonic())
            time.sleep(0.02)

    voter = threading.Thread(target=vote)
    voter.start()
    time.sleep(0.3)
    start = time.monotonic()
    report = importer.import_rows(sqlite_engine, rows)
    end = time.monotonic()
    done.set()
    voter.join()
    assert report.imported == 1500
    during = [start] + [s for s in stamps if start <= s <= end] + [end]
    gaps = [b - a for a, b in zip(during, during[1:], strict=False)]
    assert max(gaps) < 1.0, f"a vote waited {max(gaps):.2f} s behind the import"
