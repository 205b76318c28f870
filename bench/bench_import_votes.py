"""Vote latency while a 10k-row import runs in the same process (issue 24 item 8).

The app runs an admin's import on a handler thread of the process that also answers annotators' votes.
This bench does the same, in one process on one SQLite file:

1. seeds ``--pairs`` labelling pairs, writes a rows file of ``--rows`` rows (each names one of the sample clips,
   with its own short prompt and a detailed prompt: 3 teacher responses per row);
2. idle: ``--voters`` threads click (next pair + vote, then ``--think`` s) for ``--idle-s`` seconds;
3. the same voters click while ``annotations.importer.import_rows`` imports the rows file on another thread.

It prints each phase's click latency (p50 / p95 / max, ms), the import's wall time and rows/s, and the ratio of
p95 during the import to p95 idle (goal <= 2). ``--chunk N`` / ``--no-yield`` run the importer with another
transaction size / without yielding to waiting writers, to compare with the old behaviour (500 rows, no yield).

    .venv/bin/python bench/bench_import_votes.py [--rows 10000] [--voters 4] [--idle-s 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def percentiles(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(values_ms)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    return {"n": len(ordered), "p50": pct(50), "p95": pct(95), "max": ordered[-1], "mean": statistics.fmean(ordered)}


def write_rows(path: Path, n: int) -> Path:
    clips = sorted((ROOT / "assets" / "samples").glob("*.mp4"))
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            row = {
                "video": str(clips[i % len(clips)]),
                "short_prompt": f"imported clip {i}: a rabbit in a meadow",
                "detailed_prompt": f"A large white rabbit sits in a sunny meadow, take {i}, the camera still.",
            }
            fh.write(json.dumps(row) + "\n")
    return path


class Voters:
    """`n` threads clicking next pair + vote until stopped; each click's latency in ms, per phase."""

    def __init__(self, engine, n: int, think_s: float) -> None:  # type: ignore[no-untyped-def]
        self.engine, self.n, self.think_s = engine, n, think_s
        self.phase = "idle"
        self.latencies: dict[str, list[float]] = {"idle": [], "import": []}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._click, args=(i,), daemon=True) for i in range(n)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _click(self, i: int) -> None:
        from annotations import store

        name = f"voter{i}"
        store.get_or_create_annotator(self.engine, name)
        while not self._stop.is_set():
            phase = self.phase
            t0 = time.perf_counter()
            try:
                view = store.next_pair(self.engine, name)
                if view is None:
                    self.errors.append("queue ran dry: seed more --pairs")
                    return
                store.record_judgement(self.engine, view.pair_id, name, "a_better", view.left_response_id, 1.0)
            except Exception as exc:  # noqa: BLE001 - counted and printed
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            self.latencies[phase].append((time.perf_counter() - t0) * 1000)
            self._stop.wait(self.think_s)


def run(args: argparse.Namespace) -> dict:
    from bench_annotations_crash import seed

    from annotations import importer
    from annotations.db import open_db

    if args.chunk:
        importer.IMPORT_CHUNK = args.chunk
    if args.no_yield:
        importer.IMPORT_YIELD_S = 0.0
        importer.IMPORT_MAX_TX_S = float("inf")
        importer.IMPORT_REST_FACTOR = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-import-votes-") as tmp:
        url = f"sqlite:///{tmp}/studio.db"
        seed(url, args.pairs)
        rows = write_rows(Path(tmp) / "rows.jsonl", args.rows)
        engine = open_db(url)
        voters = Voters(engine, args.voters, args.think)
        voters.start()
        time.sleep(args.idle_s)
        voters.phase = "import"
        t0 = time.perf_counter()
        report = importer.import_rows(engine, rows)
        wall = time.perf_counter() - t0
        voters.stop()
        engine.dispose()
    idle, during = percentiles(voters.latencies["idle"]), percentiles(voters.latencies["import"])
    return {
        "rows": args.rows,
        "imported": report.imported,
        "import_s": wall,
        "rows_per_s": args.rows / wall,
        "chunk": importer.IMPORT_CHUNK,
        "yield": not args.no_yield,
        "voters": args.voters,
        "idle_ms": idle,
        "during_import_ms": during,
        "p95_ratio": during["p95"] / idle["p95"] if idle["p95"] else float("nan"),
        "errors": voters.errors[:5],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows in the imported file")
    parser.add_argument("--pairs", type=int, default=20_000, help="labelling pairs seeded for the voters")
    parser.add_argument("--voters", type=int, default=4, help="voting threads")
    parser.add_argument("--think", type=float, default=0.05, help="seconds each voter waits between clicks")
    parser.add_argument("--idle-s", type=float, default=15.0, help="seconds of voting before the import")
    parser.add_argument("--chunk", type=int, default=0, help="rows per import transaction (0: the importer's)")
    parser.add_argument("--no-yield", action="store_true", help="no yielding between transactions (old behaviour)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    idle, during = result["idle_ms"], result["during_import_ms"]
    print(
        f"import of {result['rows']} rows: {result['import_s']:.1f} s ({result['rows_per_s']:.0f} rows/s), "
        f"chunk {result['chunk']}, yield {'on' if result['yield'] else 'off'}"
    )
    for name, p in (("idle", idle), ("during import", during)):
        ms = f"p50 {p['p50']:.1f} ms, p95 {p['p95']:.1f} ms, max {p['max']:.1f} ms"
        print(f"vote click {name:>13}: n {p['n']}, {ms}")
    print(f"p95 during / idle: {result['p95_ratio']:.2f}x (goal <= 2)")
    if result["errors"]:
        print(f"errors: {result['errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
