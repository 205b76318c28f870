"""Feeding the step: micro-batches are encoded (frame arrays -> processor tensors, token ids, collation)
by worker threads ahead of the step that needs them, so the accelerator does not wait on the CPU.

The trainer knows its schedule (which examples each micro-batch of each step holds: a pure function of the
seed), so it asks for the batches it will need next (`prefetch`) and takes the one it needs now (`take`).
A batch that was not prefetched is encoded inline: with 0 workers the feed is the old synchronous path.
Threads, not processes: the encoder shares the PromptCache and the processor with the trainer, numpy and
torch release the GIL in the heavy parts, and a thread pool needs no pickling of a 7B model's processor.
On CUDA the tensors are pinned, so `forward_logps`' `.to(device, non_blocking=True)` copies asynchronously.
Results do not depend on timing: each batch is a pure function of its examples.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

Thunk = Callable[[], Any]


def pin(value: Any) -> Any:
    """CPU tensors of a batch (dicts, lists, dataclass-free containers) in page-locked memory."""
    if isinstance(value, torch.Tensor):
        return value.pin_memory() if value.device.type == "cpu" else value
    if isinstance(value, dict):
        return {k: pin(v) for k, v in value.items()}
    return value


class BatchFeed:
    """Encodes keyed work items in `workers` threads, at most `depth` ahead; `take` returns them in any order."""

    def __init__(self, workers: int = 0, depth: int = 4, pin_memory: bool = False) -> None:
        self.workers, self.depth, self.pin_memory = workers, depth, pin_memory
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="feed") if workers > 0 else None
        self._pending: OrderedDict[Hashable, Future] = OrderedDict()
        self.prefetched = self.inline = 0

    def _run(self, thunk: Thunk) -> Any:
        out = thunk()
        return pin(out) if self.pin_memory else out

    def prefetch(self, items: Iterable[tuple[Hashable, Thunk]]) -> None:
        """Start encoding the next items (in order) until `depth` are in flight; no-op without workers."""
        if self._pool is None:
            return
        for key, thunk in items:
            if len(self._pending) >= self.depth:
                return
            if key not in self._pending:
                self._pending[key] = self._pool.submit(self._run, thunk)

    def take(self, key: Hashable, thunk: Thunk) -> Any:
        """The item `key`: its prefetched result (waiting for it if still running), else encoded now."""
        future = self._pending.pop(key, None)
        if future is not None:
            self.prefetched += 1
            return future.result()  # a worker's exception surfaces here, in the training thread
        self.inline += 1
        return self._run(thunk)

    def close(self) -> None:
        """Drop what is queued and stop the workers (a cancelled run does not wait for unneeded batches)."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def feed_workers(configured: int | None, device: torch.device) -> int:
    """data.prefetch_workers, or its default: 2 threads on CUDA, none on CPU (they would take the cores
    the step itself runs on)."""
    if configured is not None:
        return configured
    return 2 if device.type == "cuda" else 0
