"""Run `python app.py` as a local server, for tests and benches: a subprocess on a free port with its
own SQLite file (and optionally an auth file with two demo accounts), plus helpers that seed the
annotation store with labelling pairs over the sample clips and read back the votes.

Torch-free like the rest of ui/: it starts the app as a separate process and talks to it over HTTP.
Used by tests/ui and bench/bench_app.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from annotations import store
from annotations.db import open_db
from ui.auth import add_user
from ui.common import REPO_ROOT, SAMPLES_DIR

REPO = REPO_ROOT
SAMPLES = SAMPLES_DIR
ADMIN = ("ada", "admin-password-1")  # demo accounts of write_auth_file: local checks only
ANNOTATOR = ("ann", "annotator-password-1")

SEED_RESPONSES = [
    "A large white rabbit stands in a sunny green meadow beside a tree, looking at two butterflies.",
    "A small brown dog runs across a snowy parking lot at night under orange street lights.",
    "A large white rabbit sits in a meadow.",
]


@dataclass
class Server:
    """A running app.py: its URL, DB URL, process, working folder and log file."""

    url: str
    db_url: str
    proc: subprocess.Popen
    workdir: Path
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def alive(self) -> bool:
        return self.proc.poll() is None and page_ok(self.url)


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def page_ok(url: str, timeout: float = 5.0) -> bool:
    """Does `url` answer HTTP 200 within `timeout` seconds?"""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own local server
            return resp.status == 200
    except OSError:
        return False


def write_auth_file(path: Path) -> Path:
    """An auth file with ADMIN (admin) and ANNOTATOR (annotator); cheap bcrypt rounds."""
    add_user(path, *ADMIN, role="admin", rounds=4)
    add_user(path, *ANNOTATOR, role="annotator", rounds=4)
    return path


def start_app(
    workdir: Path,
    auth: bool = False,
    timeout: float = 90.0,
    extra: list[str] | None = None,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """Launch app.py with cwd=workdir (runs/, data/ land there) and wait until the page is served.

    prefix: a command to run it under (e.g. setpriv to drop to another user); env: extra variables."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    db_url = f"sqlite:///{workdir / 'studio.db'}"
    args = [*(prefix or []), sys.executable, str(REPO / "app.py"), "--port", str(port), "--db", db_url, *(extra or [])]
    if auth:
        args += ["--auth-file", str(write_auth_file(workdir / "auth.json"))]
    env = (
        os.environ
        | (env or {})
        | {
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_TEMP_DIR": str(workdir / "gradio-tmp"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO),
        }
    )
    log = workdir / "app.log"
    proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}/", db_url, proc, workdir, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if page_ok(server.url, 2.0):
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"app.py did not serve {server.url} within {timeout} s:\n{log.read_text()[-3000:]}")


def seed_pairs(db_url: str, n: int = 4) -> list[int]:
    """n mined pairs over the sample clips (distinct short prompts), with evaluator scores."""
    engine = open_db(db_url)
    videos = sorted(SAMPLES.glob("*.mp4"))
    pair_ids = []
    for i in range(n):
        video = videos[i % len(videos)]
        sample = store.upsert_sample(engine, str(video), f"A rabbit in a meadow, take {i}.")
        ids = [
            store.add_response(engine, sample, 1, f"{text} (take {i})", "model", model="seed")
            for text in SEED_RESPONSES
        ]
        for rid, score in zip(ids, (30.0, 12.0, 25.0), strict=True):
            store.add_scores(engine, rid, {"tiny-random-clip": score})
        pair_ids.append(store.add_pair(engine, sample, 1, ids[0], ids[1], origin="mined"))
    engine.dispose()
    return pair_ids


def judgements(db_url: str, annotator: str | None = None) -> list[dict]:
    """The store's judgements (newest first), optionally one annotator's."""
    engine = open_db(db_url)
    try:
        return store.recent_judgements(engine, 1000, annotator=annotator)
    finally:
        engine.dispose()
