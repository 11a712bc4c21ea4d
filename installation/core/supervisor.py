"""Watches the workers' heartbeats and restarts a stage that died or stalled, while the
display goes on holding the last good frame.

A worker beats once per loop turn; a step that never returns (a driver stuck in C, a camera
read that hangs) stops the beat. Python cannot kill a thread, so a stalled stage is replaced:
the old worker is asked to stop and abandoned (it is a daemon thread), and the stage is built
afresh. Restarts are rate-limited so a stage that keeps failing does not thrash.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .worker import Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    stage: str
    worker: str
    kind: str  # "died" or "stalled"
    seconds: float  # since the last heartbeat


class Supervisor:
    """Call `check()` from the main loop (it is cheap and rate-limits itself)."""

    def __init__(self, stage_of: Callable[[Worker], str], restart: Callable[[str], None],
                 on_event: Callable[..., None], stall_s: float = 60.0, interval_s: float = 1.0,
                 max_restarts: int = 3, window_s: float = 600.0) -> None:
        self._stage_of = stage_of
        self._restart = restart
        self._on_event = on_event
        self.stall_s = stall_s
        self.interval_s = interval_s
        self.max_restarts = max_restarts
        self.window_s = window_s
        self._last_check = 0.0
        self._restarts: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._given_up: set[str] = set()
        self.problems: list[Problem] = []

    def find_problems(self, workers: Iterable[Worker]) -> list[Problem]:
        found = []
        for w in workers:
            st = w.status()
            if w.stopping:
                continue
            if w.ident is not None and not st.alive:
                found.append(Problem(self._stage_of(w), w.name, "died", st.seconds_since_beat))
            elif st.seconds_since_beat > self.stall_s and w.ready:
                # A worker still in setup (loading a large model) has no loop turns to beat on.
                found.append(Problem(self._stage_of(w), w.name, "stalled", st.seconds_since_beat))
        return found

    def check(self, workers: Iterable[Worker], now: float | None = None) -> list[Problem]:
        now = time.monotonic() if now is None else now
        if now - self._last_check < self.interval_s:
            return self.problems
        self._last_check = now
        self.problems = self.find_problems(list(workers))
        for stage in sorted({p.stage for p in self.problems}):
            problem = next(p for p in self.problems if p.stage == stage)
            history = self._restarts[stage]
            while history and now - history[0] > self.window_s:
                history.popleft()
            if len(history) >= self.max_restarts:
                if stage not in self._given_up:
                    self._given_up.add(stage)
                    self._on_event("error", stage=stage, reason=f"{problem.worker} {problem.kind} "
                                   f"{len(history)} times in {self.window_s:.0f} s; not restarting it again "
                                   "(check the device and the log)")
                continue
            history.append(now)
            self._on_event("restart", stage=stage, worker=problem.worker, why=problem.kind,
                           seconds_since_beat=round(problem.seconds, 1))
            log.warning("supervisor: %s %s (%.0f s since its heartbeat); restarting %s",
                        problem.worker, problem.kind, problem.seconds, stage)
            try:
                self._restart(stage)
            except Exception as exc:  # a failed restart is reported; the next check tries again
                self._on_event("error", stage=stage, reason=f"restart failed: {type(exc).__name__}: {exc}")
        return self.problems
