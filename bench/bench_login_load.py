"""Sign-in load check (issue 13 item 2): a signed-in annotator's `/vote` latency while bad logins flood
`POST /login`.

An app.py with real-cost accounts (bcrypt 12 rounds) is started from --repo (default: this checkout;
point it at an older checkout for the "before" figure). One annotator signs in, then votes --votes times
through gradio_client (each vote also returns the next pair): first alone (baseline), then while
--attackers threads each keep one bad login in flight, every thread from its own loopback address
(127.0.1.x, so per-address back-off alone does not stop them) with a fresh unknown user name per try.
Prints p50 / p95 / max of /vote in both phases, the login answers the attackers got (400 wrong, 429
back-off, 503 busy) and their count. Goal: p95 under attack < 1 s.

    .venv/bin/python bench/bench_login_load.py [--attackers 200] [--votes 40] [--repo PATH] [--json]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_app import percentiles  # noqa: E402
from tests.app_server import free_port, page_ok, seed_pairs  # noqa: E402
from ui.auth import add_user  # noqa: E402

GOAL_P95_MS = 1000.0
ANNOTATOR = ("ann", "annotator-password-1")


def start(repo: Path, workdir: Path) -> tuple[subprocess.Popen, str, str]:
    """app.py of `repo` on a free port with a 12-round auth file; returns (process, url, db url)."""
    auth = workdir / "auth.json"
    add_user(auth, "ada", "admin-password-1", "admin")  # bcrypt default cost: 12 rounds
    add_user(auth, *ANNOTATOR)
    port, db_url = free_port(), f"sqlite:///{workdir / 'studio.db'}"
    env = os.environ | {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo)}
    env["GRADIO_TEMP_DIR"] = str(workdir / "gradio-tmp")
    command = [sys.executable, str(repo / "app.py"), "--port", str(port), "--db", db_url, "--auth-file", str(auth)]
    log = (workdir / "app.log").open("w")
    proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while not page_ok(url, 2.0):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"app.py did not start:\n{(workdir / 'app.log').read_text()[-2000:]}")
        time.sleep(0.3)
    return proc, url, db_url


def vote_latencies(client: object, votes: int) -> list[float]:
    """ms per /vote of the signed-in annotator's client."""
    client.predict(api_name="/next_pair")
    out = []
    for _ in range(votes):
        time.sleep(0.35)  # a vote sooner than 0.3 s after its pair appeared is ignored as a double click
        started = time.perf_counter()
        client.predict("a_better", api_name="/vote")
        out.append((time.perf_counter() - started) * 1000)
    return out


def attack(url: str, attackers: int, stop: threading.Event, answers: collections.Counter) -> list[threading.Thread]:
    """`attackers` threads, each keeping one bad login in flight from its own loopback address."""
    parsed = urllib.parse.urlparse(url)

    def one(i: int) -> None:
        source = f"127.0.{1 + i // 250}.{1 + i % 250}"
        while not stop.is_set():
            body = urllib.parse.urlencode({"username": f"x{secrets.token_hex(4)}", "password": "wrong-password"})
            try:
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60, source_address=(source, 0))
                conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
                status = conn.getresponse().status
                conn.close()
            except OSError as exc:
                status = type(exc).__name__
            answers[status] += 1
            if status in (429, 503):
                time.sleep(0.2)  # a client told to come back later comes back a little later

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(attackers)]
    for t in threads:
        t.start()
    return threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=200)
    parser.add_argument("--votes", type=int, default=40)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, db_url = start(args.repo.resolve(), Path(tmp))
        try:
            seed_pairs(db_url, 2 * args.votes + 4)
            from gradio_client import Client

            client = Client(url, auth=ANNOTATOR, verbose=False)  # signed in before the flood starts
            alone = vote_latencies(client, args.votes)
            stop, answers = threading.Event(), collections.Counter()
            threads = attack(url, args.attackers, stop, answers)
            time.sleep(2.0)  # let the flood build up
            attacked = vote_latencies(client, args.votes)
            stop.set()
            for t in threads:
                t.join(5)
        finally:
            proc.terminate()
            proc.wait(15)
    result = {
        "repo": str(args.repo),
        "attackers": args.attackers,
        "vote_alone_ms": percentiles(alone),
        "vote_under_attack_ms": percentiles(attacked),
        "login_answers": {str(k): v for k, v in sorted(answers.items(), key=str)},
    }
    result["ok"] = result["vote_under_attack_ms"]["p95"] < GOAL_P95_MS
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        a, b = result["vote_alone_ms"], result["vote_under_attack_ms"]
        print(f"/vote alone:         p50 {a['p50']:.0f} ms  p95 {a['p95']:.0f} ms  max {a['max']:.0f} ms")
        print(f"/vote under attack:  p50 {b['p50']:.0f} ms  p95 {b['p95']:.0f} ms  max {b['max']:.0f} ms")
        print(f"login answers during the attack: {result['login_answers']}")
        print(f"goal p95 < {GOAL_P95_MS:.0f} ms: {'met' if result['ok'] else 'NOT met'}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
