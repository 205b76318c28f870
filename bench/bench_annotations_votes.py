"""20 annotator processes x 200 votes on one SQLite file: lost / duplicated votes and latency.

Compares, in the same run and on the same disk:
- ``store``: the real path, ``next_pair`` then ``record_judgement``, one leased pair per vote at
  overlap 1; on a SQLite file their statements run on a raw sqlite3 connection per thread,
  ``BEGIN IMMEDIATE`` under the flock write gate (annotations.db.raw_write);
- ``store-sqlalchemy``: the same store functions on an engine made with ``raw_sqlite=False``,
  i.e. the SQLAlchemy Core path (what PostgreSQL uses, and the SQLite path before the raw one);
- ``store-active`` / ``store-sqlalchemy-active``: the same two with the project's queue order set to
  ``active`` (most uncertain first, annotations.queue_order) and every pair given a distinct random
  uncertainty, so each pick walks ix_pair_active in a different order than the pairs' ids;
- ``raw``: the baseline from issue 5: plain sqlite3 writers, WAL + busy_timeout, one
  ``BEGIN IMMEDIATE; INSERT; COMMIT`` per vote, no flock;
- ``raw+flock``: the same raw writers behind the flock gate, to isolate what the gate does.

    .venv/bin/python bench/bench_annotations_votes.py [--procs 20] [--votes 200] [--rounds 1] [--json]
        [--paths store,store-sqlalchemy,store-active,store-sqlalchemy-active,raw,raw+flock]

``--rounds N`` repeats the paths N times, rotating their order each round, so that a change in
the machine's load hits every path alike (the box is shared).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _percentiles(latencies_ms: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_ms)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    return {
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "p99.9": pct(99.9),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


# --------------------------------------------------------------------------- store path


def _seed_store(url: str, n_pairs: int, active: bool = False) -> None:
    """n_pairs mined pairs in one transaction (seeding is not what we measure): the crash bench's seed.
    ``active``: the project's queue order set to active, and the pairs' uncertainties a random permutation."""
    from bench_annotations_crash import seed  # same folder: the script's directory is on sys.path

    seed(url, n_pairs)
    if active:
        from annotations import store
        from annotations.db import make_engine

        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            ids = [pid for (pid,) in conn.execute("SELECT id FROM pair")]
            ranks = random.Random(0).sample(range(1, len(ids) + 1), len(ids))
            conn.executemany(
                "UPDATE pair SET uncertainty = ? WHERE id = ?",
                [(r / len(ids), i) for r, i in zip(ranks, ids, strict=True)],
            )
        engine = make_engine(url)
        store.set_queue_order(engine, "active", by="bench")
        engine.dispose()


def _store_worker(url: str, worker: int, votes: int, start_at: float, out_path: str, raw: bool = True) -> None:
    from annotations import store
    from annotations.db import make_engine

    engine = make_engine(url, raw_sqlite=raw)
    name = f"annotator{worker}"
    store.get_or_create_annotator(engine, name)
    vote_ms, next_ms, acked = [], [], []
    _wait_until(start_at)
    start = time.time()
    for _ in range(votes):
        t0 = time.perf_counter()
        view = store.next_pair(engine, name)
        t1 = time.perf_counter()
        if view is None:
            break
        store.record_judgement(engine, view.pair_id, name, "a_better", view.left_response_id, 1.0)
        t2 = time.perf_counter()
        next_ms.append((t1 - t0) * 1000)
        vote_ms.append((t2 - t1) * 1000)
        acked.append(view.pair_id)
    result = {"worker": worker, "vote_ms": vote_ms, "next_ms": next_ms, "acked": acked, "start": start}
    Path(out_path).write_text(json.dumps({**result, "end": time.time()}))


def _verify_store(url: str, results: list[dict]) -> dict[str, object]:
    path = url.removeprefix("sqlite:///")
    acked = [p for r in results for p in r["acked"]]
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT pair_id, annotator_id FROM judgement").fetchall()
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        # What the order served first: the mean uncertainty of the first tenth of the votes (about 0.5 for FIFO
        # over the active paths' random uncertainties, near 1 for the active order; 0 on the FIFO paths' seed).
        first = "SELECT pair_id FROM judgement ORDER BY id LIMIT ?"
        served = conn.execute(
            f"SELECT AVG(p.uncertainty) FROM ({first}) j JOIN pair p ON p.id = j.pair_id", (max(1, len(rows) // 10),)
        ).fetchone()[0]
    pairs_in_db = [p for p, _ in rows]
    return {
        "acked": len(acked),
        "rows": len(rows),
        "lost": len(set(acked) - set(pairs_in_db)),
        "duplicated_pairs": len(pairs_in_db) - len(set(pairs_in_db)),  # a pair voted twice at overlap 1
        "integrity": integrity,
        "served_uncertainty": served,
    }


# --------------------------------------------------------------------------- raw baseline


def _raw_worker(path: str, worker: int, votes: int, use_flock: bool, start_at: float, out_path: str) -> None:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    lock_path = f"{path}-writelock"
    vote_ms, acked = [], []
    _wait_until(start_at)
    start = time.time()
    for seq in range(votes):
        t0 = time.perf_counter()
        fd = None
        if use_flock:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO vote (worker, seq, choice) VALUES (?, ?, 'a_better')", (worker, seq))
        conn.execute("COMMIT")
        if fd is not None:
            os.close(fd)
        vote_ms.append((time.perf_counter() - t0) * 1000)
        acked.append((worker, seq))
    result = {"worker": worker, "vote_ms": vote_ms, "next_ms": [], "acked": acked, "start": start}
    Path(out_path).write_text(json.dumps({**result, "end": time.time()}))


def _seed_raw(path: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(
            "CREATE TABLE vote (id INTEGER PRIMARY KEY, worker INT, seq INT, choice TEXT, UNIQUE (worker, seq))"
        )


def _verify_raw(path: str, results: list[dict]) -> dict[str, object]:
    acked = {tuple(a) for r in results for a in r["acked"]}
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT worker, seq FROM vote").fetchall()
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    return {
        "acked": len(acked),
        "rows": len(rows),
        "lost": len(acked - set(rows)),
        "duplicated_pairs": len(rows) - len(set(rows)),
        "integrity": integrity,
    }


# --------------------------------------------------------------------------- driver


def _wait_until(start_at: float) -> None:
    # All workers start together; a sleep loop rather than a Barrier because workers are
    # separate interpreters (see _run).
    while time.time() < start_at:
        time.sleep(0.001)


def _run(mode: str, target: str, procs: int, votes: int, workdir: Path) -> tuple[list[dict], float]:
    """Start ``procs`` independent interpreters (not multiprocessing's fork: a child forked from
    a parent that has used SQLite inherits its state, which SQLite documents as unsupported and
    which lost committed rows here even for plain sqlite3 writers)."""
    start_at = time.time() + 3.0 + 0.1 * procs  # time for every interpreter to import and connect
    outs = [workdir / f"{mode}-{i}.json" for i in range(procs)]
    cmd = [sys.executable, __file__, "--worker", mode, target, str(votes), str(start_at)]
    workers = [subprocess.Popen([*cmd, str(i), str(outs[i])]) for i in range(procs)]
    if any(w.wait() != 0 for w in workers):
        raise RuntimeError(f"a {mode} worker failed")
    results = [json.loads(o.read_text()) for o in outs]
    for r in results:
        r["acked"] = [tuple(a) if isinstance(a, list) else a for a in r["acked"]]
    return results, max(r["end"] for r in results) - min(r["start"] for r in results)


def _worker_main(argv: list[str]) -> None:
    mode, target, votes, start_at, index, out_path = argv
    if mode in STORE_PATHS:
        raw = mode in ("store", "store-active")
        _store_worker(target, int(index), int(votes), float(start_at), out_path, raw=raw)
    else:
        _raw_worker(target, int(index), int(votes), mode == "raw+flock", float(start_at), out_path)


def _summary(results: list[dict], wall: float, verify: dict[str, object]) -> dict[str, object]:
    votes = [v for r in results for v in r["vote_ms"]]
    summary: dict[str, object] = {"votes": len(votes), "wall_s": wall, "votes_per_s": len(votes) / wall}
    summary["vote_latency_ms"] = _percentiles(votes)
    nexts = [v for r in results for v in r["next_ms"]]
    if nexts:
        summary["next_pair_latency_ms"] = _percentiles(nexts)
        summary["clicks_per_s"] = len(votes) / wall  # each click = next_pair + record_judgement
    summary.update(verify)
    return summary


STORE_PATHS = ("store", "store-sqlalchemy", "store-active", "store-sqlalchemy-active")
PATHS = (*STORE_PATHS, "raw", "raw+flock")


def bench_path(name: str, procs: int, votes: int, workdir: Path, round_: int = 0) -> dict[str, object]:
    """One path on a fresh database file."""
    stem = f"{name}-r{round_}"
    if name in STORE_PATHS:
        url = f"sqlite:///{workdir / f'{stem}.db'}"
        _seed_store(url, procs * votes, active=name.endswith("-active"))
        results, wall = _run(name, url, procs, votes, workdir)
        return _summary(results, wall, _verify_store(url, results))
    path = str(workdir / f"{stem}.db")
    _seed_raw(path)
    results, wall = _run(name, path, procs, votes, workdir)
    return _summary(results, wall, _verify_raw(path, results))


def bench(
    procs: int, votes: int, workdir: Path, rounds: int = 1, paths: tuple[str, ...] = PATHS
) -> list[dict[str, dict[str, object]]]:
    """Per round, {path: summary}; round r runs the paths rotated by r (the table keeps `paths` order)."""
    out = []
    for r in range(rounds):
        order = paths[r % len(paths) :] + paths[: r % len(paths)]
        done = {name: bench_path(name, procs, votes, workdir, r) for name in order}
        out.append({name: done[name] for name in paths})
    return out


def _table(results: dict[str, dict[str, object]]) -> str:
    lines = [
        "| path | votes | lost | dup | integrity | votes/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lat = r["vote_latency_ms"]
        lines.append(
            f"| {name} | {r['votes']} | {r['lost']} | {r['duplicated_pairs']} | {r['integrity']} | "
            f"{r['votes_per_s']:.0f} | {lat['p50']:.2f} | {lat['p95']:.2f} | {lat['p99']:.2f} | "
            f"{lat['p99.9']:.2f} | {lat['max']:.2f} |"
        )
    lines.append("")
    for name, r in results.items():
        if name.endswith("-active"):
            lines.append(f"{name} mean uncertainty of the first tenth of the votes: {r['served_uncertainty']:.3f}")
    for name, r in results.items():
        nxt = r.get("next_pair_latency_ms")
        if nxt:
            lines.append(
                f"{name} next_pair latency ms: p50 {nxt['p50']:.2f}, p95 {nxt['p95']:.2f}, p99 {nxt['p99']:.2f}, "
                f"p99.9 {nxt['p99.9']:.2f}, max {nxt['max']:.2f}; clicks/s {r['clicks_per_s']:.0f}"
            )
    return "\n".join(lines)


def _ratios(results: dict[str, dict[str, object]]) -> dict[str, float]:
    def lat(name: str, key: str) -> float:
        return results[name]["vote_latency_ms"][key]  # type: ignore[index]

    def rate(name: str) -> float:
        return results[name]["votes_per_s"]  # type: ignore[return-value]

    out = {}
    if {"raw", "store"} <= set(results):
        out["raw_p99.9 / store_p99.9"] = lat("raw", "p99.9") / lat("store", "p99.9")
        out["raw_max / store_max"] = lat("raw", "max") / lat("store", "max")
        out["store_votes_per_s / raw_votes_per_s"] = rate("store") / rate("raw")
    if {"raw", "raw+flock"} <= set(results):
        out["raw_p99.9 / raw+flock_p99.9"] = lat("raw", "p99.9") / lat("raw+flock", "p99.9")
    if {"store", "store-sqlalchemy"} <= set(results):
        out["store_votes_per_s / store-sqlalchemy_votes_per_s"] = rate("store") / rate("store-sqlalchemy")
        out["store-sqlalchemy_p95 / store_p95"] = lat("store-sqlalchemy", "p95") / lat("store", "p95")
    for fifo in ("store", "store-sqlalchemy"):  # the active order's cost on each path
        if {fifo, f"{fifo}-active"} <= set(results):
            out[f"{fifo}-active_p95 / {fifo}_p95"] = lat(f"{fifo}-active", "p95") / lat(fifo, "p95")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=20)
    parser.add_argument("--votes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the paths, rotating their order")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated subset of {', '.join(PATHS)}")
    parser.add_argument("--workdir", default=None, help="folder for the DB files (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    paths = tuple(p for p in args.paths.split(",") if p)
    if unknown := set(paths) - set(PATHS):
        parser.error(f"unknown path(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="bench_votes_") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rounds = bench(args.procs, args.votes, workdir, args.rounds, paths)
    if args.json:
        print(json.dumps({"rounds": [{"results": r, "ratios": _ratios(r)} for r in rounds]}, indent=2))
    else:
        print(f"{args.procs} processes x {args.votes} votes, one SQLite file each path (WAL, synchronous=FULL)")
        for i, results in enumerate(rounds):
            order = paths[i % len(paths) :] + paths[: i % len(paths)]
            print(f"\nround {i + 1} of {len(rounds)} (run order: {', '.join(order)})")
            print(_table(results))
            for key, value in _ratios(results).items():
                print(f"ratio {key}: {value:.2f}")
    ok = all(
        r["lost"] == 0 and r["duplicated_pairs"] == 0 and r["integrity"] == "ok" for rs in rounds for r in rs.values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
