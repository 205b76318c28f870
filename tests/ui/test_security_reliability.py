"""Issue 24, in process: what a failing handler leaves in the log (item 2), and app.py's other guards."""

from __future__ import annotations

import logging

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


def test_the_throttle_is_installed_once() -> None:
    app.install_log_throttle()
    app.install_log_throttle()
    throttles = [f for f in logging.getLogger("vidprompter.ui").filters if isinstance(f, app.ErrorThrottle)]
    assert len(throttles) == 1
