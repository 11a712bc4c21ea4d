"""Handing the C heap's free pages back to the system (glibc's `malloc_trim`).

A model's rebuild frees a few hundred MB of small and middle-sized C allocations (tensors'
bookkeeping, tokenizer tables, the loader's buffers) spread over glibc's per-thread arenas.
glibc keeps freed memory in its arenas for reuse and returns only the top of the main heap by
itself, so every rebuild left the process a little larger, though nothing leaked: over 12
rebuilds of the soak's tiny model in one process, the heap's memory in use stayed at 191.5 MB
while the free memory glibc held and the RSS wandered up and down by 30 MB (the 60-minute soak's
drift, about 1.7 MB a rebuild). With `malloc_trim(0)` after each release the RSS held within
2 MB (BENCHMARKS.md).

Elsewhere (musl, macOS, Windows) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


@functools.cache  # looked up once; glibc's malloc_trim takes its arenas' own locks
def _find() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only: musl has no such symbol
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


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


__all__ = ["release_free_heap"]
