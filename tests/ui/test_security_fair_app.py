"""Issue 24 item 6 against a running app.py (the tiny random text model): one user's long generation no longer
holds the model for everyone, a second call of the same user is refused, and the time limit ends a call
server-side. Before: Gradio's one-at-a-time queue served calls in arrival order, whatever they cost."""

from __future__ import annotations

import time

import pytest

from tests.app_server import ADMIN, ANNOTATOR, start_app

MODEL = "tiny-random-lm"


def _beautify(client, beams: int, tokens: int):  # type: ignore[no-untyped-def]
    return client.submit("A dog runs on the beach.", MODEL, beams, beams, 0, tokens, False, api_name="/beautify")


def _wait_until_processing(job, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Until the server runs `job`'s handler: the per-user check below needs the first call admitted."""
    from gradio_client.utils import Status

    deadline = time.monotonic() + timeout
    while job.status().code != Status.PROCESSING:
        assert time.monotonic() < deadline, f"the long call never started: {job.status()}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_long_call_is_cut_at_the_limit_and_others_take_turns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gradio_client import Client

    server = start_app(tmp_path / "app", auth=True, extra=["--generation-time-limit", "1"])
    try:
        ann = Client(server.url, auth=ANNOTATOR, verbose=False)
        ada = Client(server.url, auth=ADMIN, verbose=False)
        _beautify(ada, 1, 8).result(timeout=120)  # the model loads once, outside anyone's turn
        with pytest.raises(Exception, match="token rows; the limit per request is 2,048"):
            _beautify(ann, 8, 512).result(timeout=30)
        start = time.monotonic()
        long_call = _beautify(ann, 4, 512)  # ~1.6 s on 2 idle cores without a limit
        _wait_until_processing(long_call)  # a fixed sleep lost the race on a loaded CI machine
        with pytest.raises(Exception, match="you already have a generation running or waiting"):
            _beautify(ann, 1, 8).result(timeout=30)
        status, _table = _beautify(ada, 1, 8).result(timeout=60)  # waits for ann's turn only
        ada_done = time.monotonic() - start
        assert "Task 3" in status
        with pytest.raises(Exception, match="generation stopped after the 1 s limit per call"):
            long_call.result(timeout=60)
        assert time.monotonic() - start < 15 and ada_done < 15, (time.monotonic() - start, ada_done)
        assert server.alive()
    finally:
        server.stop()
