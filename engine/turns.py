"""Fair model time for generation (issue 24 item 6): whose turn it is, how big a request may be, how long it runs.

One `/beautify` with 8 beams x 8 candidates made another user's 0.2 s call wait 95 s; at 512 tokens one call
held the model 1,117 s, and an API call could not be cancelled. `ModelTurns`, used by `engine.service.Studio`
around every interactive generation (`run_task`, `stream_task`):

- a request may ask for at most `max_token_rows` rows x new tokens (rows: beams, or candidates when sampling);
  beyond that it is refused in one line before it waits;
- each caller has at most one generation running or waiting; a second one is refused in one line;
- waiting callers take turns first come, first served (with one ticket each, that is round-robin between
  users), and each is told its place in the queue (`NOTIFY`) whenever it changes;
- a turn lasts at most `call_limit_s`: then its stop event is set (the backend ends generation within one
  decoding step, server-side, whether or not anyone is still listening) and `GenerationTimeout` says so.

Who is asking is the context variable `CALLER` (the app's handler layer sets it from the signed-in user or the
browser session; None, as in the CLIs and tests, means an unnamed caller with no per-caller rule). Torch-free.
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from engine.errors import InputError
from engine.types import GenerationParams

#: Who is generating: a user name or browser session (set by the app's handler layer); None: unnamed.
CALLER: ContextVar[str | None] = ContextVar("vidprompter_generation_caller", default=None)
#: Tells the waiting caller something (its place in the queue); None: nobody to tell.
NOTIFY: ContextVar[Callable[[str], None] | None] = ContextVar("vidprompter_generation_notify", default=None)


class GenerationBusy(InputError):
    """The caller already has a generation running or waiting."""


class GenerationTimeout(InputError):
    """A generation ran past its time limit and was stopped (what it wrote so far is discarded or shown)."""


@dataclass
class TurnsConfig:
    """The bounds of fair model time."""

    max_token_rows: int = 2048
    """Most rows x max new tokens one request may ask for (rows: max(beams, candidates)); 8 x 256, 4 x 512."""
    call_limit_s: float = 120.0
    """Longest a generation may hold the model; then it is stopped server-side."""
    slots: int = 1
    """Generations that run at once (one model run at a time on a CPU host)."""
    max_wait_s: float = 900.0
    """Longest a caller waits for its turn before it is told to try again."""

    def __post_init__(self) -> None:
        if self.max_token_rows < 1 or self.call_limit_s <= 0 or self.slots < 1 or self.max_wait_s <= 0:
            raise ValueError("turn limits must be positive")

    @classmethod
    def unbounded(cls) -> TurnsConfig:
        """No cap and no time limit, one generation at a time: the CLIs' Studio (the operator's own runs)."""
        return cls(max_token_rows=sys.maxsize, call_limit_s=math.inf, max_wait_s=math.inf)


def token_rows(params: GenerationParams) -> int:
    """Rows x max new tokens of a request: what a generation costs, beam search or sampling alike."""
    return max(params.num_beams, params.num_return_sequences) * params.max_new_tokens


@dataclass
class _Ticket:
    number: int
    caller: str | None
    stop: threading.Event
    timed_out: bool = False
    timer: threading.Timer | None = None


@dataclass
class ModelTurns:
    """Turn-taking for generation: a fair queue, one ticket per caller, a size cap and a time limit per call."""

    config: TurnsConfig = field(default_factory=TurnsConfig)
    _queue: list[_Ticket] = field(default_factory=list)  # waiting, in arrival order
    _running: list[_Ticket] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def check(self, params: GenerationParams) -> None:
        """InputError (one line) when a request asks for more than `max_token_rows`."""
        cost, limit = token_rows(params), self.config.max_token_rows
        if cost > limit:
            rows = max(params.num_beams, params.num_return_sequences)
            raise InputError(
                f"{rows} beams/candidates x {params.max_new_tokens} new tokens is {cost:,} token rows; the limit per "
                f"request is {limit:,}: ask for fewer beams, candidates or tokens"
            )

    @contextmanager
    def turn(self, params: GenerationParams, stop: threading.Event | None = None) -> Iterator[threading.Event]:
        """Wait for a turn, then hold it; yields the stop event the generation must watch (`stop`, or a new one),
        which the time limit sets. GenerationBusy / InputError before waiting; GenerationTimeout at the end of
        a turn that ran past `call_limit_s`."""
        self.check(params)
        ticket = self._enter(CALLER.get(), stop or threading.Event())
        try:
            self._wait(ticket, NOTIFY.get())
            if math.isfinite(self.config.call_limit_s):
                ticket.timer = threading.Timer(self.config.call_limit_s, self._expire, args=(ticket,))
                ticket.timer.daemon = True
                ticket.timer.start()
            yield ticket.stop
        finally:
            self._leave(ticket)
        if ticket.timed_out:
            raise GenerationTimeout(
                f"generation stopped after the {self.config.call_limit_s:g} s limit per call (it was "
                f"{token_rows(params):,} token rows); ask for fewer beams, candidates or tokens"
            )

    def _enter(self, caller: str | None, stop: threading.Event) -> _Ticket:
        with self._cond:
            if caller is not None and any(t.caller == caller for t in (*self._running, *self._queue)):
                raise GenerationBusy(
                    "you already have a generation running or waiting; wait for it to finish (or press Stop), "
                    "then run again"
                )
            ticket = _Ticket(next(self._numbers), caller, stop)
            self._queue.append(ticket)
            return ticket

    def _ahead(self, ticket: _Ticket) -> int:
        """Turns ahead of a waiting ticket: the tickets before it, plus the running ones beyond the free slots."""
        before = self._queue.index(ticket)
        return before + max(0, len(self._running) - self.config.slots + 1)

    def _wait(self, ticket: _Ticket, notify: Callable[[str], None] | None) -> None:
        deadline, told = time.monotonic() + min(self.config.max_wait_s, 1e9), None
        with self._cond:
            while not (self._queue.index(ticket) == 0 and len(self._running) < self.config.slots):
                ahead = self._ahead(ticket)
                if notify is not None and ahead != told:
                    told = ahead
                    self._tell(notify, f"waiting for the model: {ahead} generation(s) ahead of yours")
                left = deadline - time.monotonic()
                if left <= 0 or ticket.stop.is_set():
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                    raise GenerationBusy(
                        "the model is busy with other users' generations; try again in a few minutes"
                        if left <= 0
                        else "stopped while waiting for the model"
                    )
                self._cond.wait(min(left, 1.0))  # wakes on every leave; re-checks a Stop pressed while waiting
            self._queue.remove(ticket)
            self._running.append(ticket)
            self._cond.notify_all()

    def _tell(self, notify: Callable[[str], None], message: str) -> None:
        self._cond.release()  # a slow notifier must not hold everyone's lock
        try:
            notify(message)
        except Exception:  # noqa: BLE001 - telling is best effort
            pass
        finally:
            self._cond.acquire()

    def _expire(self, ticket: _Ticket) -> None:
        ticket.timed_out = True
        ticket.stop.set()

    def _leave(self, ticket: _Ticket) -> None:
        if ticket.timer is not None:
            ticket.timer.cancel()
        with self._cond:
            if ticket in self._running:
                self._running.remove(ticket)
            elif ticket in self._queue:
                self._queue.remove(ticket)
            self._cond.notify_all()
