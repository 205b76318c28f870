"""glibc's allocator under many worker threads: cap its arenas, read how many it has (issue 24, RSS growth).

glibc gives each new thread that allocates its own malloc arena, up to 8 per core. A Gradio app runs every
request on a pool of ~40 worker threads, and a generation allocates and frees hundreds of MB (activations,
KV caches of changing shapes) in whichever thread runs it; each arena keeps its freed pages, so the process
grew by the sum of every arena's high-water mark: the 30-minute soak read +20 % and +25 % RSS, and
bench/bench_arenas.py reproduces it in a few minutes (+9 % over 36 generations from 16 threads, flat with
two arenas). Two arenas trade a little allocator contention (threads mostly wait on the GIL or the
model's turn anyway) for a bounded heap. Within an arena, the pages a generation freed stay as fragments
between live chunks: the app's Studio also calls `trim` after every model call (StudioConfig.trim_after_call),
which hands every whole free page back (glibc's malloc_trim walks the heap, not only its top).
torch-free: the UI process calls it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import re
import tempfile

#: mallopt's parameter number for the arena cap (glibc malloc.h).
M_ARENA_MAX = -8
#: The app's cap: one arena for the main thread, one shared by the workers.
APP_ARENAS = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or None (musl, macOS, Windows: none of this applies). Found once: find_library runs ldconfig in a
    subprocess, and `trim` runs after every model call."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_info") else None


def cap_arenas(arenas: int = APP_ARENAS) -> bool:
    """Cap glibc's arenas for the threads created from now on; True when applied. MALLOC_ARENA_MAX set in the
    environment wins (glibc read it at start). Call it before the worker threads exist."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, int(arenas)) == 1)


def trim() -> bool:
    """Hand every whole free page of every arena back to the system (malloc_trim(0): the top of each heap, and
    free chunks inside it since glibc 2.8); True when it released any."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)


def arena_count() -> int | None:
    """How many arenas the process has now (malloc_info's <heap> entries), or None without glibc."""
    libc = _libc()
    if libc is None:
        return None
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    fd, path = tempfile.mkstemp(prefix="malloc-info-", suffix=".xml")
    os.close(fd)
    try:
        stream = libc.fopen(path.encode(), b"w")
        if not stream:
            return None
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        with open(path, encoding="utf-8") as f:
            return len(re.findall(r"<heap nr=", f.read()))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
