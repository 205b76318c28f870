"""kill -9 annotator processes at random points; after each kill the SQLite file must pass
``PRAGMA integrity_check`` and hold every judgement a writer acknowledged.

Each iteration starts two writer interpreters on the same file (next_pair + record_judgement in a
loop, printing ``ACK <pair_id>`` after each commit returns), kills both with SIGKILL at random
moments, then checks the file.

    .venv/bin/python bench/bench_annotations_crash.py [--iterations 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def seed(url: str, n_pairs: int, start: int = 0) -> None:
    from annotations.db import open_db, write_session
    from annotations.models import Pair, Response, Sample

    engine = open_db(url)
    with write_session(engine) as session:
        for i in range(start, start + n_pairs):
            sample = Sample(video=f"/v/{i}.mp4", video_hash=f"h{i}", content_key=f"k{i}", short_prompt=f"clip {i}")
            session.add(sample)
            session.flush()
            a = Response(sample_id=sample.id, task=1, text=f"good {i}", source="teacher")
            b = Response(sample_id=sample.id, task=1, text=f"bad {i}", source="model")
            session.add_all([a, b])
            session.flush()
            session.add(Pair(sample_id=sample.id, task=1, response_a_id=a.id, response_b_id=b.id))
    engine.dispose()


def writer(url: str, name: str) -> None:
    """Vote until killed; an ACK line is printed only after the commit has returned."""
    from annotations import store
    from annotations.db import make_engine

    engine = make_engine(url)
    rng = random.Random(name)
    while (view := store.next_pair(engine, name)) is not None:
        choice = rng.choice(["a_better", "b_better", "tie", "both_bad", "skip"])
        store.record_judgement(engine, view.pair_id, name, choice, view.left_response_id, 0.1)
        print(f"ACK {view.pair_id}", flush=True)


class _Writer:
    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.acked: list[int] = []
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--writer", url, name], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        self.first_ack = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.startswith("ACK "):
                self.acked.append(int(line.split()[1]))
                self.first_ack.set()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.reader.join(5)


def check(db_path: str, writers: list[_Writer]) -> dict[str, object]:
    with sqlite3.connect(db_path) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        rows = set(conn.execute("SELECT a.name, j.pair_id FROM judgement j JOIN annotator a ON a.id = j.annotator_id"))
    missing = [(w.name, p) for w in writers for p in w.acked if (w.name, p) not in rows]
    return {"integrity": integrity, "acked": sum(len(w.acked) for w in writers), "missing": len(missing)}


def _unjudged(db_path: str) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM pair WHERE n_judgements = 0").fetchone()[0]


def run(iterations: int, workdir: Path, seed_: int = 0, n_pairs: int = 20000) -> dict[str, object]:
    rng = random.Random(seed_)
    db_path = str(workdir / "crash.db")
    url = f"sqlite:///{db_path}"
    seed(url, n_pairs)
    seeded = n_pairs
    per_iteration = []
    for it in range(iterations):
        # Writers vote ~1000 times a second: top the queue up so that it never runs dry (a writer
        # with nothing to vote on exits without an ACK).
        if _unjudged(db_path) < n_pairs // 2:
            seed(url, n_pairs, start=seeded)
            seeded += n_pairs
        writers = [_Writer(url, f"w{it}_{k}") for k in range(2)]
        for w in writers:
            if not w.first_ack.wait(60):
                raise RuntimeError(f"writer {w.name} never acknowledged a vote")
        for w in writers:  # each dies at its own random point: mid-transaction, mid-fsync, idle
            time.sleep(rng.uniform(0.0, 0.4))
            w.kill()
        per_iteration.append(check(db_path, writers))
    bad = [r for r in per_iteration if r["integrity"] != "ok" or r["missing"]]
    return {
        "iterations": iterations,
        "acked_total": sum(r["acked"] for r in per_iteration),  # type: ignore[misc]
        "missing_total": sum(r["missing"] for r in per_iteration),  # type: ignore[misc]
        "integrity_ok": sum(r["integrity"] == "ok" for r in per_iteration),
        "bad_iterations": bad,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--writer"]:
        writer(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_crash_") as tmp:
        start = time.time()
        result = run(args.iterations, Path(tmp), args.seed)
    result["wall_s"] = round(time.time() - start, 1)
    print(json.dumps(result, indent=2))
    return 0 if not result["bad_iterations"] else 1


if __name__ == "__main__":
    sys.exit(main())
