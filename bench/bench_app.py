"""App benchmarks: start-up, memory before any model loads, and /vote latency under 20 concurrent clients.

1. `python app.py` spawned → first page served (HTTP 200 on /), median of --starts runs. Goal < 5 s.
2. Resident memory of the app process once the page is served and a client has fetched the config
   (no model loaded: models load lazily), and whether libtorch is mapped at all. Goal < 1 GB.
3. `/vote` round trip through gradio_client: 20 annotator accounts, each in its own thread, vote
   --votes times (each vote also returns the next pair). Baseline: one client voting alone, same
   server, same DB. Prints p50 / p95 / max and the p95 ratio (concurrent / alone); checks that the DB
   holds exactly one judgement per vote.

    .venv/bin/python bench/bench_app.py [--starts 3] [--clients 20] [--votes 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.app_server import judgements, page_ok, seed_pairs, start_app  # noqa: E402

START_GOAL_S = 5.0
RSS_GOAL_MB = 1024.0
PASSWORD = "bench-password-1"


def percentiles(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {"n": len(ordered), "p50": pct(50), "p95": pct(95), "max": ordered[-1], "mean": statistics.fmean(ordered)}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def torch_mapped(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def bench_start(starts: int) -> dict[str, object]:
    """Spawn → first page, and memory once a client has loaded the app's config."""
    from gradio_client import Client

    times, rss, torch = [], [], []
    for _ in range(starts):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            server = start_app(Path(tmp), timeout=60)
            times.append(time.perf_counter() - t0)
            try:
                Client(server.url, verbose=False).predict(api_name="/next_pair")  # config + one DB round trip
                rss.append(rss_mb(server.proc.pid))
                torch.append(torch_mapped(server.proc.pid))
            finally:
                server.stop()
    return {
        "start_to_page_s": statistics.median(times),
        "start_runs_s": [round(t, 2) for t in times],
        "rss_mb": max(rss),
        "torch_loaded": any(torch),
    }


def _accounts(path: Path, clients: int) -> list[str]:
    from ui.auth import add_user

    names = [f"bench{i:02d}" for i in range(clients)]
    for name in names:
        add_user(path, name, PASSWORD, "annotator", rounds=4)
    return names


def _voter(url: str, name: str, votes: int) -> list[float]:
    from gradio_client import Client

    client = Client(url, auth=(name, PASSWORD), verbose=False, download_files=False)  # as a browser: no video download
    client.predict(api_name="/next_pair")
    latencies = []
    for i in range(votes):
        t0 = time.perf_counter()
        client.predict(("a_better", "b_better", "tie")[i % 3], api_name="/vote")
        latencies.append((time.perf_counter() - t0) * 1000)
    return latencies


def bench_votes(clients: int, votes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        names = _accounts(Path(tmp) / "auth.json", clients + 1)
        server = start_app(Path(tmp), extra=["--auth-file", str(Path(tmp) / "auth.json")], timeout=60)
        try:
            # each client also holds a lease on the pair shown after its last vote
            seed_pairs(server.db_url, clients * (votes + 1) + (2 * votes + 1) + 5)
            alone = _voter(server.url, names[-1], votes * 2)
            with ThreadPoolExecutor(clients) as pool:
                t0 = time.perf_counter()
                runs = list(pool.map(lambda n: _voter(server.url, n, votes), names[:clients]))
                wall = time.perf_counter() - t0
            stored = len(judgements(server.db_url))
            still_up = page_ok(server.url)
        finally:
            server.stop()
    concurrent = percentiles([ms for run in runs for ms in run])
    baseline = percentiles(alone)
    return {
        "clients": clients,
        "votes_per_client": votes,
        "concurrent_ms": concurrent,
        "alone_ms": baseline,
        "p95_ratio_vs_alone": concurrent["p95"] / baseline["p95"],
        "votes_per_s": clients * votes / wall,
        "judgements_stored": stored,
        "judgements_expected": clients * votes + votes * 2,
        "server_still_serving": still_up,
    }


def report(start: dict[str, object], votes: dict[str, object]) -> str:
    c, a = votes["concurrent_ms"], votes["alone_ms"]
    return "\n".join(
        [
            f"start → first page: {start['start_to_page_s']:.2f} s (runs {start['start_runs_s']}; "
            f"goal < {START_GOAL_S} s; ratio to goal {start['start_to_page_s'] / START_GOAL_S:.2f})",
            f"RSS before any model loads: {start['rss_mb']:.0f} MB (goal < {RSS_GOAL_MB:.0f} MB; ratio to goal "
            f"{start['rss_mb'] / RSS_GOAL_MB:.2f}); libtorch mapped: {start['torch_loaded']}",
            f"/vote with {votes['clients']} concurrent clients: p50 {c['p50']:.0f} ms, p95 {c['p95']:.0f} ms, "
            f"max {c['max']:.0f} ms over {c['n']} votes ({votes['votes_per_s']:.1f} votes/s)",
            f"/vote alone (baseline): p50 {a['p50']:.0f} ms, p95 {a['p95']:.0f} ms; p95 ratio concurrent/alone "
            f"{votes['p95_ratio_vs_alone']:.2f}",
            f"judgements stored {votes['judgements_stored']} / expected {votes['judgements_expected']}; "
            f"server still serving: {votes['server_still_serving']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--votes", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    start = bench_start(args.starts)
    votes = bench_votes(args.clients, args.votes)
    print(json.dumps({"start": start, "votes": votes}, indent=2) if args.json else report(start, votes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
