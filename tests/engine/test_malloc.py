"""engine.malloc: the app's worker threads share a capped number of glibc arenas (issue 24's RSS growth)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine import malloc

# Eight threads that each allocate (64 KiB blocks: below the mmap threshold, so they come from an arena) and
# keep their block alive until all have allocated: glibc gives each new allocating thread an arena of its own.
PROBE = """
import sys, threading
from engine import malloc
if sys.argv[1] == "cap":
    assert malloc.cap_arenas(2)
barrier = threading.Barrier(8)
def work():
    block = bytearray(64 * 1024)
    barrier.wait()
    del block
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(malloc.arena_count())
"""


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env, timeout=60
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(malloc.arena_count() is None, reason="not glibc")
def test_worker_threads_share_the_capped_arenas():
    """Before the cap each allocating thread got an arena of its own (9 here): the soak's RSS grew by every
    arena's high-water mark. With cap_arenas(2) the 8 threads share two."""
    assert _arenas("default") >= 5
    assert _arenas("cap") <= 2


def test_an_environment_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert malloc.cap_arenas() is False  # glibc already read the variable at start: nothing to do
