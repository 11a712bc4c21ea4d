"""Counts of what happened, for monitoring (the web server's /metrics) and the operator's page:
transcripts, rejections, errors and restarts by stage, the model's load time, and the last
errors in plain words. Fed by the app's event hook from any thread; never holds visitors' words.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .events import STAGES

RECENT_ERRORS = 10


@dataclass(frozen=True)
class RecentError:
    stage: str
    reason: str
    advice: str  # what to do (core/events.STAGES)
    t: float  # time.time() of the error


@dataclass(frozen=True)
class CounterSnapshot:
    transcripts: int = 0
    rejections: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # by stage
    restarts: dict[str, int] = field(default_factory=dict)  # by stage
    model_load_s: float | None = None
    recent_errors: tuple[RecentError, ...] = ()


class EventCounters:
    """Thread-safe tallies of events; `snapshot()` copies them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._transcripts = 0
        self._rejections = 0
        self._errors: collections.Counter[str] = collections.Counter()
        self._restarts: collections.Counter[str] = collections.Counter()
        self._model_load_s: float | None = None
        self._recent: collections.deque[RecentError] = collections.deque(maxlen=RECENT_ERRORS)

    def count(self, event: str, fields: dict[str, Any]) -> None:
        with self._lock:
            if event == "transcript":
                self._transcripts += 1
            elif event == "rejected":
                self._rejections += 1
            elif event == "error":
                stage = str(fields.get("stage") or fields.get("source") or "unknown")
                self._errors[stage] += 1
                reason = str(fields.get("reason", ""))[:300]
                self._recent.append(RecentError(stage, reason, STAGES.get(stage, ""), time.time()))
            elif event == "error_flood":  # errors summarised after a burst (OSC floods) still count
                self._errors["osc"] += int(fields.get("suppressed", 0) or 0)
            elif event == "restart":
                self._restarts[str(fields.get("stage", "unknown"))] += 1
            elif event == "generator" and fields.get("state") == "loaded" and fields.get("seconds") is not None:
                self._model_load_s = float(fields["seconds"])

    def snapshot(self) -> CounterSnapshot:
        with self._lock:
            return CounterSnapshot(self._transcripts, self._rejections, dict(self._errors), dict(self._restarts),
                                   self._model_load_s, tuple(self._recent))
