"""Issue 24, in process: what a failing handler leaves in the log (item 2), and app.py's other guards."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import pytest

import app
from ui.common import guard


def _failing(exc: BaseException):
    def handler() -> None:
        raise exc

    handler.__name__ = "pair_values"
    return handler


def test_a_failing_handler_logs_one_line_per_distinct_error_per_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = [1000.0]
    app.install_log_throttle(clock=lambda: clock[0])
    caplog.set_level(logging.ERROR, logger="vidprompter.ui")
    too_many = guard(_failing(OSError(24, "Too many open files")))
    other = guard(_failing(KeyError("left_id")))
    for _ in range(200):
        for handler in (too_many, other):
            with pytest.raises(gr.Error) as info:
                handler()
            assert info.value.print_exception is False  # Gradio prints no traceback of its own either
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert all("\n" not in line and "Traceback" not in line for line in lines)
    assert "OSError" in lines[0] and "Too many open files" in lines[0] and "pair_values" in lines[0]
    assert "KeyError" in lines[1]
    assert all(r.exc_info is None for r in caplog.records)
    caplog.clear()
    clock[0] += 61  # a minute on: one line again, saying how many were left out
    with pytest.raises(gr.Error):
        too_many()
    (line,) = [r.getMessage() for r in caplog.records]
    assert "199 more like it" in line


def test_a_flood_of_the_same_refusal_logs_one_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    app.install_log_throttle(clock=lambda: 5000.0)
    caplog.set_level(logging.WARNING, logger="vidprompter.ui")
    read_only = guard(_failing(ValueError("database sqlite:///x.db is read-only: nothing can be saved")))
    other = guard(_failing(ValueError("unknown choice 'x'")))
    for _ in range(100):
        with pytest.raises(gr.Error):
            read_only()
    with pytest.raises(gr.Error):
        other()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "read-only" in lines[0] and "unknown choice" in lines[1]


def test_the_throttle_is_installed_once() -> None:
    app.install_log_throttle()
    app.install_log_throttle()
    throttles = [f for f in logging.getLogger("vidprompter.ui").filters if isinstance(f, app.ErrorThrottle)]
    assert len(throttles) == 1


# -- item 10: nothing piles up ----------------------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    for item in [path, *path.rglob("*")]:
        os.utime(item, (old, old))


def test_stale_work_folders_of_dead_apps_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    mine, _fd = app.make_work_dir(tmp_path)
    dead, dead_fd = app.make_work_dir(tmp_path)
    os.close(dead_fd)  # its process is gone: the lock is free
    live = tmp_path / "vidprompter-ui-live"
    live.mkdir()
    holder = subprocess.Popen(  # another running app holds its folder's lock
        [sys.executable, "-c", LOCK_AND_WAIT, str(live / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        legacy_old, legacy_new = tmp_path / "vidprompter-ui-old", tmp_path / "vidprompter-ui-new"
        for folder in (legacy_old, legacy_new):
            (folder / "viewer").mkdir(parents=True)
            (folder / "viewer" / "clip.mp4").write_bytes(b"x" * 1000)
        _age(legacy_old, 2 * app.CACHE_MAX_AGE_S)
        removed = app.sweep_stale_work_dirs(tmp_path, mine=mine)
        assert sorted(p.name for p in removed) == sorted([dead.name, legacy_old.name])
        assert mine.is_dir() and live.is_dir() and legacy_new.is_dir() and not dead.exists()
    finally:
        holder.kill()
        holder.wait()


LOCK_AND_WAIT = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_the_scheduled_sweep_empties_old_outputs_exports_and_unused_extractions(tmp_path: Path) -> None:
    from annotations.db import open_db

    db = open_db(f"sqlite:///{tmp_path / 's.db'}")
    work, fd = app.make_work_dir(tmp_path)
    uploads = tmp_path / "uploads"
    old_export, new_export = work / "exports" / "pairs-old.jsonl", work / "exports" / "pairs-new.jsonl"
    old_clip = work / "viewer" / "abc" / "clip-original.mp4"
    extracted = uploads / "imports" / "set-0123456789ab"
    used, unused = extracted / "clips" / "a.mp4", extracted / "rows.jsonl"
    crashed = uploads / "imports" / ".set-xyz.tmp"
    for path in (old_export, new_export, old_clip, used, unused, crashed / "part.mp4"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    from annotations import store

    store.upsert_sample(db, str(used), "a used clip", video_hash="h")
    for path in (old_export, old_clip.parent, extracted, crashed):
        _age(path, 2 * app.CACHE_MAX_AGE_S)
    app.sweep_once(work, uploads, db)
    assert not old_export.exists() and new_export.exists() and not old_clip.exists()
    assert used.exists() and not unused.exists() and not crashed.exists()
    db.dispose()
    os.close(fd)


def test_the_app_owns_a_locked_work_folder_and_sweeps_at_start(tmp_path: Path, monkeypatch) -> None:
    import asyncio
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale, stale_fd = app.make_work_dir(tmp_path)
    os.close(stale_fd)
    demo, kwargs = app.build(app.parse_args(["--db", f"sqlite:///{tmp_path / 's.db'}"]))
    lifespan = kwargs["app_kwargs"]["lifespan"]
    work = next(p for p in tmp_path.glob("vidprompter-ui-*") if p != stale)

    async def start_and_stop() -> None:
        async with lifespan(None):
            await asyncio.sleep(0.5)
            assert not stale.exists()  # swept at start
            assert work.is_dir()

    asyncio.run(start_and_stop())
    assert not work.exists()  # its own folder goes with the app


# -- item 7: nobody locks another out -----------------------------------------------------------------------


def _attempt(accounts, name: str, password: str, address: str) -> bool | str:  # type: ignore[no-untyped-def]
    import asyncio

    from ui.auth import SignInRefused

    async def go() -> bool | str:
        try:
            return await accounts.authenticate(name, password, address)
        except SignInRefused as exc:
            return f"{exc.status} {exc}"

    return asyncio.run(go())


def _accounts(tmp_path: Path):  # type: ignore[no-untyped-def]
    from ui.auth import Accounts, add_user

    path = tmp_path / "auth.json"
    add_user(path, "ada", "admin-password-1", "admin", rounds=4)
    add_user(path, "ann", "annotator-password-1", rounds=4)
    accounts = Accounts.load(path, refusal_delay_s=0)
    return accounts


def test_bad_passwords_from_another_address_do_not_lock_the_owner_out(tmp_path: Path) -> None:
    accounts = _accounts(tmp_path)
    for _ in range(10):  # anyone, anywhere, ~10 bad passwords for the admin's name
        _attempt(accounts, "ada", "guess-password", "203.0.113.66")
    assert _attempt(accounts, "ada", "guess-password", "203.0.113.66").startswith("429 too many failed sign-ins")
    assert _attempt(accounts, "ada", "admin-password-1", "10.0.0.1") is True  # the owner, from her own address
    assert _attempt(accounts, "ann", "annotator-password-1", "10.0.0.2") is True


def test_one_address_spraying_many_names_is_throttled_as_a_whole(tmp_path: Path) -> None:
    accounts = _accounts(tmp_path)
    free = accounts.throttle.address_free_failures
    for i in range(free):
        assert _attempt(accounts, f"user{i}", "guess-password", "203.0.113.7") is False
    assert _attempt(accounts, "nobody", "guess-password", "203.0.113.7").startswith("429")
    assert _attempt(accounts, "ann", "annotator-password-1", "203.0.113.7").startswith("429")  # the address waits
    assert _attempt(accounts, "ann", "annotator-password-1", "10.0.0.2") is True


# -- item 6: fair model time ----------------------------------------------------------------------------------


def test_generation_handlers_take_fair_turns_with_the_apps_bounds(tmp_path: Path) -> None:
    args = ["--db", f"sqlite:///{tmp_path / 's.db'}", "--generation-time-limit", "30", "--max-token-rows", "1024"]
    demo, _kwargs = app.build(app.parse_args(args))
    names = {getattr(fn.fn, "__name__", ""): fn for fn in demo.fns.values()}
    fair = {name for name, fn in names.items() if fn.concurrency_id == "generate"}
    assert {"beautify", "describe_video", "describe_video_with_caption"} <= fair  # the contract API
    assert {"stream_beautify_in_budget", "stream_describe", "_stream_task1"} <= fair  # the page's streamed runs
    assert fair <= app.GENERATION_HANDLERS
    assert all(names[n].concurrency_limit == app.GENERATION_CONCURRENCY for n in fair)
    assert names["ground_candidates"].concurrency_id == "models"  # other model work keeps its queue


def test_the_generation_context_names_the_caller_and_tells_it_its_place(monkeypatch) -> None:
    from gradio.context import LocalContext

    from engine.turns import CALLER, NOTIFY

    told: list[str] = []
    monkeypatch.setattr(gr, "Info", lambda message, **_kw: told.append(message))
    request = gr.Request()
    request.username = "ann"  # type: ignore[misc]
    token = LocalContext.request.set(request)
    try:
        with app._generation_context():
            assert CALLER.get() == "ann"
            NOTIFY.get()("waiting for the model: 1 generation(s) ahead of yours")
    finally:
        LocalContext.request.reset(token)
    assert CALLER.get() is None and told == ["waiting for the model: 1 generation(s) ahead of yours"]
