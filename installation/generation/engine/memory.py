"""Giving memory back after a generator lets go of its model (`release()`, after running out of
GPU memory): the GeneratorWorker then loads the model again, and a show that does this every
night for weeks must not grow by a model each time.

Two things keep memory after a model is dropped: reference cycles (bound methods and closures
kept by the object they refer to), which wait for the cycle collector, and PyTorch's CUDA
caching allocator, which keeps freed blocks reserved for the process until asked to return them.
The generators drop their models so that reference counting frees them (a test holds a weak
reference to the old model and finds it gone); this returns the cached GPU blocks, and the C
heap's free pages (core/heap.py: glibc keeps what a model freed in its arenas, and the process
grew by a few MB a rebuild without it).
"""

from __future__ import annotations

import gc
import logging

import torch

from installation.core.heap import release_free_heap

log = logging.getLogger(__name__)


def free_memory(compiled: bool = False) -> None:
    """Collects what the caller just dropped and returns cached GPU memory to the driver.
    `compiled`: the dropped model ran through torch.compile, whose caches keep the compiled
    code (and what its guards refer to) for the process's life: they are cleared too, so the
    next load compiles afresh rather than piling a new entry on the old ones."""
    if compiled:
        try:
            torch._dynamo.reset()
        except Exception as exc:  # freeing must never fail the recovery it is part of
            log.warning("torch.compile caches could not be cleared: %s", exc)
    # The young generations only: what was just dropped is freed by reference counting (the
    # streaming engine empties its own cycles); a full collection would stall every thread,
    # the display's too, for most of a second on a busy machine.
    gc.collect(1)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        try:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        except Exception as exc:  # a broken CUDA context: the reload that follows says so
            log.warning("CUDA memory could not be returned: %s", exc)
    release_free_heap()


__all__ = ["free_memory"]
