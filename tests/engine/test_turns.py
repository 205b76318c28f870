"""Issue 24 item 6: fair model time. One user's big generation held the model for minutes while others waited,
and an API call could not be cancelled. engine.turns.ModelTurns (used by Studio.run_task / stream_task): a cap on
rows x tokens per request, one generation per caller, first come first served with the place in the queue told,
and a time limit per call that stops the generation server-side."""

from __future__ import annotations

import threading
import time

import pytest

from engine.errors import InputError
from engine.service import Studio
from engine.turns import CALLER, NOTIFY, GenerationBusy, GenerationTimeout, ModelTurns, TurnsConfig
from engine.types import GenerationParams


def _params(beams: int = 1, tokens: int = 32) -> GenerationParams:
    return GenerationParams(num_beams=beams, num_return_sequences=beams, max_new_tokens=tokens)


def test_a_request_over_the_token_rows_cap_is_refused_in_one_line() -> None:
    turns = ModelTurns()
    with pytest.raises(InputError) as info, turns.turn(_params(8, 512)):
        pass
    assert "8 beams/candidates x 512 new tokens is 4,096 token rows; the limit per request is 2,048" in str(info.value)
    with turns.turn(_params(8, 256)):
        pass


def _hold(turns: ModelTurns, caller: str, entered: threading.Event, release: threading.Event, log: list) -> None:
    CALLER.set(caller)
    NOTIFY.set(lambda message: log.append((caller, message)))
    with turns.turn(_params()):
        log.append((caller, "running"))
        entered.set()
        release.wait(10)


def test_one_generation_per_caller_and_first_come_first_served_with_places_told() -> None:
    turns = ModelTurns()
    log: list[tuple[str, str]] = []
    gates = {name: (threading.Event(), threading.Event()) for name in ("ann", "bob", "cid")}
    threads = {n: threading.Thread(target=_hold, args=(turns, n, *gates[n], log)) for n in gates}
    threads["ann"].start()
    assert gates["ann"][0].wait(5)
    CALLER.set("ann")
    with pytest.raises(GenerationBusy, match="you already have a generation running or waiting"):
        with turns.turn(_params()):
            pass
    CALLER.set(None)
    threads["bob"].start()
    time.sleep(0.2)
    threads["cid"].start()
    time.sleep(0.2)
    assert ("bob", "waiting for the model: 1 generation(s) ahead of yours") in log
    assert ("cid", "waiting for the model: 2 generation(s) ahead of yours") in log
    gates["ann"][1].set()  # ann's turn ends: bob is next, cid moves up
    assert gates["bob"][0].wait(5) and not gates["cid"][0].is_set()
    gates["bob"][1].set()
    assert gates["cid"][0].wait(5)
    gates["cid"][1].set()
    for thread in threads.values():
        thread.join(5)
    assert [c for c, m in log if m == "running"] == ["ann", "bob", "cid"]
    assert ("cid", "waiting for the model: 1 generation(s) ahead of yours") in log


class SlowBackend:
    """A backend that decodes one token a step until told to stop (as the transformers backend does)."""

    name = model_name = "slow"
    random_weights = True

    def __init__(self) -> None:
        self.stopped_after: float | None = None

    def generate(self, requests, params):  # type: ignore[no-untyped-def]
        raise AssertionError("an interactive generation must be stoppable: run_task streams it")

    def stream(self, request, params, stop=None):  # type: ignore[no-untyped-def]
        start, text = time.monotonic(), ""
        while not stop.is_set():
            text += "word "
            yield [text]
            time.sleep(0.01)
        self.stopped_after = time.monotonic() - start
        yield [text]


def test_a_call_past_its_time_limit_is_stopped_server_side() -> None:
    backend = SlowBackend()
    studio = Studio(backends={"slow": backend})
    studio.turns = ModelTurns(TurnsConfig(call_limit_s=0.3))
    start = time.monotonic()
    with pytest.raises(GenerationTimeout, match="generation stopped after the 0.3 s limit per call"):
        studio.run_task(3, short_prompt="A dog runs.", model="slow", params=_params())
    assert backend.stopped_after is not None and backend.stopped_after < 1.0
    assert time.monotonic() - start < 2.0
    with pytest.raises(GenerationTimeout):  # the page's streamed run: the same limit, the same stop
        list(studio.stream_task(3, short_prompt="A dog runs.", model="slow", params=_params()))
    assert studio.turns._running == [] and studio.turns._queue == []  # the turn is free again


def test_the_command_line_studio_has_no_cap_and_no_time_limit() -> None:
    """The CLIs' runs are the operator's own: one at a time, but never cut short; app.py sets the app's bounds."""
    turns = Studio().turns
    with turns.turn(_params(16, 4096)):
        pass
    assert turns.config.call_limit_s == float("inf")


def test_a_second_call_of_the_same_caller_is_refused_at_once_while_the_model_generates() -> None:
    """The loaded model is looked up without waiting on the lock of the generation running on it: the refusal
    (and a waiting caller's place in the queue) comes at once, not after the first call ends."""
    backend = SlowBackend()
    studio = Studio()
    studio._backends[studio.model_key("tiny-random-lm")] = backend  # stands in for the loaded preset
    studio.turns = ModelTurns(TurnsConfig(call_limit_s=2.0))
    errors: list[BaseException] = []

    def long_call() -> None:
        CALLER.set("ann")
        try:
            studio.run_task(3, short_prompt="A dog runs.", model="tiny-random-lm", params=_params())
        except GenerationTimeout as exc:
            errors.append(exc)

    thread = threading.Thread(target=long_call)
    thread.start()
    time.sleep(0.3)
    CALLER.set("ann")
    start = time.monotonic()
    with pytest.raises(GenerationBusy):
        studio.run_task(3, short_prompt="A dog runs.", model="tiny-random-lm", params=_params())
    assert time.monotonic() - start < 0.5
    CALLER.set(None)
    thread.join(10)
    assert len(errors) == 1
