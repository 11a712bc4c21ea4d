"""release_free_heap gives the C heap's free pages back: in a fresh process, memory freed in the
middle of glibc's heap (what a released model leaves, with later allocations above it) stays in
the process's RSS until it is called, and leaves it after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# 200 MB in 2 KB pieces (above pymalloc's 512 bytes: each is a C malloc), then all but every
# 64th freed: the survivors pin the heap, so glibc cannot give the holes back by itself.
CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from installation.core.heap import release_free_heap

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6

start = rss_mb()
pieces = [bytes(2048) for _ in range(100_000)]
for i in range(len(pieces)):
    if i % 64:
        pieces[i] = None
held = rss_mb()
took = release_free_heap()
print(json.dumps({"start": start, "held": held, "after": rss_mb(), "took": took}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_memory_leaves_the_process_once_released():
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    m = json.loads(out)
    print(m)  # noqa: T201
    assert m["held"] - m["start"] > 150, m  # glibc kept the freed pieces
    assert m["took"] is not None and m["took"] < 1.0, m
    assert m["held"] - m["after"] > 120, m  # and gave them back when asked


def test_it_never_raises_and_says_when_there_is_nothing_to_call(monkeypatch):
    from installation.core import heap

    monkeypatch.setattr(heap, "_find", lambda: None)
    assert heap.release_free_heap() is None
