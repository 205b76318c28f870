"""Issue 13 against a running app.py (the probes of docs/security.md, as tests): sign-in back-off over
HTTP, the model picker's refusal, a vote through another user's session hash, the upload limit, a
read-only database, and SIGTERM with a training run in flight (issue 11 item 7)."""

from __future__ import annotations

import http.client
import os
import re
import signal
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_server import ADMIN, ANNOTATOR, Server, judgements, seed_pairs, start_app
from tests.unprivileged import unprivileged
from training.jobs import Folders, Jobs, pid_alive


@pytest.fixture(scope="module")
def guarded_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Accounts, a model root holding one checkpoint folder, a 1 MB upload limit, 2 seeded pairs."""
    workdir = tmp_path_factory.mktemp("guarded-app")
    (workdir / "models" / "ckpt").mkdir(parents=True)
    extra = ["--model-root", str(workdir / "models"), "--max-upload-mb", "1"]
    server = start_app(workdir, auth=True, extra=extra)
    seed_pairs(server.db_url, 2)
    yield server
    server.stop()


def _login(server: Server, user: str, password: str, source: str) -> tuple[int, str]:
    """POST /login from the loopback address `source` (each test its own, so back-off stays its own)."""
    url = urllib.parse.urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=(source, 0))
    body = urllib.parse.urlencode({"username": user, "password": password})
    conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    return response.status, response.read().decode()


def test_repeated_bad_sign_ins_back_off_per_address(guarded_app: Server) -> None:
    # A spray over many names from one address: its 20 free failures (LoginThrottle.address_free_failures).
    statuses = [_login(guarded_app, f"nobody-{i}", "wrong-password", "127.0.0.7")[0] for i in range(20)]
    assert statuses == [400] * 20
    status, body = _login(guarded_app, ANNOTATOR[0], ANNOTATOR[1], "127.0.0.7")  # right, but the address waits
    assert status == 429 and "too many failed sign-ins; try again in" in body
    assert _login(guarded_app, ANNOTATOR[0], ANNOTATOR[1], "127.0.0.8")[0] == 200  # another address is served
    time.sleep(1.2)
    assert _login(guarded_app, ANNOTATOR[0], ANNOTATOR[1], "127.0.0.7")[0] == 200


def test_bad_passwords_for_an_account_do_not_lock_its_owner_out(guarded_app: Server) -> None:
    """Issue 24 item 7: ~10 bad passwords for a name from one address, then the owner from her own address."""
    statuses = [_login(guarded_app, ADMIN[0], "guess-password", "127.0.0.11")[0] for _ in range(10)]
    assert statuses[:5] == [400] * 5 and 429 in statuses[5:]  # the prober backs off ...
    assert _login(guarded_app, ADMIN[0], ADMIN[1], "127.0.0.12")[0] == 200  # ... the owner elsewhere does not


def test_the_model_picker_refuses_folders_alike_and_tells_nothing_about_them(guarded_app: Server) -> None:
    from gradio_client import Client

    client = Client(guarded_app.url, auth=ANNOTATOR, verbose=False)
    names = ["/etc", "/no/such/folder", str(guarded_app.workdir / "models" / "ckpt"), "../../../../etc/."]
    messages = set()
    for name in names:
        with pytest.raises(Exception) as info:
            client.predict("A dog runs.", name, 1, 1, 0, 8, False, api_name="/beautify")
        messages.add(re.sub(r"model '.*?' is not", "model NAME is not", str(info.value)))  # the name, redacted
    assert len(messages) == 1 and "is not available here" in messages.pop()
    assert guarded_app.alive()


def test_a_vote_through_another_users_session_hash_is_refused(guarded_app: Server) -> None:
    from gradio_client import Client

    owner = Client(guarded_app.url, auth=ANNOTATOR, verbose=False)
    shown = owner.predict(api_name="/next_pair")
    assert "Pair #" in shown[0]
    intruder = Client(guarded_app.url, auth=ADMIN, verbose=False)
    intruder.session_hash = owner.session_hash  # gr.State is keyed by it
    with pytest.raises(Exception, match="belongs to another signed-in session"):
        intruder.predict("a_better", api_name="/vote")
    assert judgements(guarded_app.db_url) == []


def test_an_upload_over_the_limit_is_refused(guarded_app: Server, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    client = Client(guarded_app.url, auth=ANNOTATOR, verbose=False)
    with pytest.raises(Exception, match="(?i)size|large|413"):
        client.predict(handle_file(big), ["shuffle"], 0.3, 0.5, 0.8, 1.0, 4, 0, api_name="/hallucinate_video")
    kept = [p for p in (guarded_app.workdir / "gradio-tmp").rglob("*") if p.is_file() and p.stat().st_size > 10**6]
    assert kept == [] and guarded_app.alive()


# -- a read-only database ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_app_starts_on_a_read_only_database_and_says_so_on_write(tmp_path_factory) -> None:
    from gradio_client import Client

    from annotations.db import open_db

    workdir = tmp_path_factory.mktemp("ro-app")
    seed_pairs(f"sqlite:///{workdir / 'studio.db'}", 1)  # created writable, with its task instructions
    open_db(f"sqlite:///{workdir / 'studio.db'}").dispose()
    (workdir / "studio.db-writelock").unlink()
    os.chmod(workdir / "studio.db", 0o444)
    for folder in (workdir, *workdir.parents[:3]):  # nobody must reach it and write logs beside it
        os.chmod(folder, os.stat(folder).st_mode | 0o755)
    os.chmod(workdir, 0o777)
    server = start_app(workdir, prefix=unprivileged(), env={"HOME": str(workdir), "MPLCONFIGDIR": str(workdir)})
    try:
        client = Client(server.url, verbose=False)
        with pytest.raises(Exception, match=r"is read-only \(the file is read-only\): nothing can be saved"):
            client.predict(api_name="/next_pair")
        log = server.log.read_text()  # Gradio logs each refused call's traceback; the start had none
        assert server.alive() and "writelock" not in log and "OSError" not in log
        assert "is read-only (the file is read-only): nothing can be saved; reading works; serving it read-only" in log
    finally:
        server.stop()


# -- SIGTERM with a run in flight -------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_stops_the_app_within_5_s_and_leaves_the_run_resumable(tmp_path_factory) -> None:
    from gradio_client import Client

    from annotations.db import open_db

    server = start_app(tmp_path_factory.mktemp("sigterm-app"))
    seed_pairs(server.db_url, 4)
    client = Client(server.url, verbose=False)
    overrides = "optim.max_steps=400\noptim.epochs=200\nrun.checkpoint_every=1000\nrun.tensorboard=false"
    client.predict("tiny-cpu", "", overrides, api_name="/launch_training")
    jobs = Jobs(open_db(server.db_url), server.db_url, Folders(runs=(server.workdir / "runs",)))
    run_id = jobs.history(1)[0]["id"]
    deadline = time.monotonic() + 180
    while jobs.status(run_id)["step"] < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert jobs.status(run_id)["status"] == "running"
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(30)
    took = time.monotonic() - started
    assert took <= 5.0, f"the app took {took:.1f} s to stop"
    run = jobs.status(run_id)
    assert run["status"] == "running" and pid_alive(run["pid"])  # the run outlives the app
    jobs.cancel(run_id)
    stopped = jobs.wait(run_id, timeout=120)
    assert stopped["status"] == "cancelled" and (Path(stopped["checkpoint_dir"])).is_dir()
    jobs.resume(run_id)
    deadline = time.monotonic() + 180
    while jobs.status(run_id)["step"] <= stopped["step"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert jobs.status(run_id)["step"] > stopped["step"]
    jobs.cancel(run_id)
    jobs.wait(run_id, timeout=120)
