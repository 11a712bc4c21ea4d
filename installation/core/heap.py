"""Handing the C heap's free pages back to the system (glibc's `malloc_trim`).

A model's rebuild frees a few hundred MB of small and middle-sized C allocations (tensors'
bookkeeping, tokenizer tables, the loader's buffers) spread over glibc's per-thread arenas.
glibc keeps freed memory in its arenas for reuse and returns only the top of the main heap by
itself, so every rebuild left the process a little larger, though nothing leaked: over 12
rebuilds of the soak's tiny model in one process, the heap's memory in use stayed at 191.5 MB
while the free memory glibc held and the RSS wandered up and down by 30 MB (the 60-minute soak's
drift, about 1.7 MB a rebuild). With `malloc_trim(0)` after each release the RSS held within
2 MB (BENCHMARKS.md).

The faults that do not rebuild the model drift the same way: 60 injected generator errors in
4 minutes, in one process with the whole app, left Python's own allocations (tracemalloc) at
about 2 MB and glibc's heap in use at 289 MB, flat, while the RSS floor rose 875 -> 897 MB. So
the command also limits glibc to two malloc arenas (`limit_malloc_arenas`, as
MALLOC_ARENA_MAX=2 would; by default glibc makes up to eight per core, and each thread's frees
stay in its own): a 10-minute soak of generator errors every 10 s went from +2.9 % to +1.8 %.

Elsewhere (musl, macOS, Windows) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
ARENAS = 2


@functools.cache  # looked up once
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@functools.cache  # looked up once; glibc's malloc_trim takes its arenas' own locks
def _find() -> Callable[[int], int] | None:
    trim = _symbol("malloc_trim")  # glibc only: musl has no such symbol
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def _symbol(name: str) -> Any:
    """A function of the C library, or None where there is no such library or function."""
    libc = _libc()
    return getattr(libc, name, None) if libc is not None else None


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """At most `arenas` glibc malloc arenas for this process, unless MALLOC_ARENA_MAX is set
    (the operator's choice stands). Call it first thing, before threads start. True when set."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _symbol("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


def release_free_heap() -> float | None:
    """Returns the C heap's free pages to the system. The seconds it took (some milliseconds:
    it walks every arena), or None where the C library has no `malloc_trim`. Never raises."""
    malloc_trim = _find()
    if malloc_trim is None:
        return None
    t0 = time.monotonic()
    try:
        malloc_trim(0)
    except Exception as exc:  # freeing must never fail the recovery it is part of
        log.warning("the C heap could not be trimmed: %s", exc)
        return None
    return time.monotonic() - t0


__all__ = ["limit_malloc_arenas", "release_free_heap"]
