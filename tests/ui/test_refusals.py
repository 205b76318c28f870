"""Expected refusals log one line; tracebacks are for bugs only (issue 26 item 8). Through `guard` as a plain
function, and through the launched app's log after refusals a user can cause."""

from __future__ import annotations

import logging

import gradio as gr
import pytest
from gradio_client.exceptions import AppError

from engine.errors import InputError
from tests.app_server import Server
from ui.common import guard


def _refuse_with(exc: BaseException):
    def handler() -> None:
        raise exc

    return guard(handler)


@pytest.mark.parametrize(
    "exc", [gr.Error("the short prompt is empty"), InputError("the short prompt is empty"), ValueError("bad seed")]
)
def test_a_refusal_is_one_log_line_and_gradio_prints_no_traceback(
    caplog, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    # Without app.py's ErrorThrottle (another test may have installed it): it drops a repeat of the same line,
    # and the three cases refuse with the same message.
    monkeypatch.setattr(logging.getLogger("vidprompter.ui"), "filters", [])
    with caplog.at_level(logging.INFO, logger="vidprompter.ui"), pytest.raises(gr.Error) as raised:
        _refuse_with(exc)()
    assert raised.value.print_exception is False  # Gradio prints a traceback for every gr.Error unless told not to
    [record] = caplog.records
    assert record.exc_info is None and "handler refused:" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_a_bug_keeps_its_traceback_once(caplog, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without app.py's ErrorThrottle (another test may have installed it here): it folds tracebacks into one line.
    monkeypatch.setattr(logging.getLogger("vidprompter.ui"), "filters", [])
    with caplog.at_level(logging.INFO, logger="vidprompter.ui"), pytest.raises(gr.Error) as raised:
        _refuse_with(RuntimeError("boom"))()
    [record] = caplog.records
    assert record.exc_info is not None and record.levelno == logging.ERROR  # ours: the log has the traceback
    assert raised.value.print_exception is False  # ... once: Gradio does not print it a second time


def test_the_apps_log_has_no_traceback_for_refusals(local_client, local_app: Server) -> None:
    before = local_app.log.read_text()
    # Refusals no other test makes: the app's ErrorThrottle (one line per distinct error per minute) drops a
    # line another test of this session-wide app logged within the minute ("the short prompt is empty").
    for args, api in [
        (("A dog runs.", "refusal-log-probe", 1, 1, 0, 8, False), "/beautify"),
        (("A cat sits.", "refusal-log-probe-2", 1, 1, 0, 8, False), "/beautify"),
        (("refusal-log-probe", None), "/vote"),
    ]:
        with pytest.raises(AppError):
            local_client.predict(*args, api_name=api)
    added = local_app.log.read_text()[len(before) :]
    assert "Traceback" not in added
    assert len([line for line in added.splitlines() if "refused:" in line]) == 3
