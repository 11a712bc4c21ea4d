"""The thread base every stage runs on: a loop with a stop event, captured exceptions,
a heartbeat the supervisor can watch, and a rate meter for the HUD and status."""

from __future__ import annotations

import collections
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

ErrorHandler = Callable[[str, BaseException], None]


class RateMeter:
    """Events per second over a sliding window, safe to read from another thread."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._stamps: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self.count = 0

    def tick(self, t: float | None = None) -> None:
        t = time.monotonic() if t is None else t
        with self._lock:
            self._stamps.append(t)
            self.count += 1
            self._trim(t)

    def _trim(self, t: float) -> None:
        while self._stamps and t - self._stamps[0] > self.window_s:
            self._stamps.popleft()

    def rate(self) -> float:
        t = time.monotonic()
        with self._lock:
            self._trim(t)
            n = len(self._stamps)
            if n < 2:
                return 0.0
            span = max(t - self._stamps[0], 1e-6)
            return (n - 1) / span if span < self.window_s else n / self.window_s


@dataclass(frozen=True)
class WorkerStatus:
    name: str
    alive: bool
    rate: float
    seconds_since_beat: float
    errors: int
    last_error: str


class Worker(threading.Thread):
    """Subclasses implement `step()` (one unit of work, returning soon) and optionally
    `setup()` / `teardown()`. An exception in `step` or `setup` is reported, counted and
    retried after a backoff, so one bad frame or a lost device never ends the thread."""

    backoff_s = (0.5, 1.0, 2.0, 5.0)

    def __init__(self, name: str, on_error: ErrorHandler | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self.stop_event = threading.Event()
        self.rate_meter = RateMeter()
        self._on_error = on_error
        self._last_beat = time.monotonic()
        self._errors = 0
        self._consecutive_errors = 0
        self._last_error = ""
        self._last_report_t = -1e9
        self._ready = False

    # --- to override -------------------------------------------------------------------
    def setup(self) -> None:
        """Open devices, load models. Runs in the thread; retried on failure."""

    def step(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        """Release what setup opened. Runs in the thread when it stops."""

    # --- machinery ---------------------------------------------------------------------
    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def stop(self) -> None:
        self.stop_event.set()

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True if a stop came."""
        return self.stop_event.wait(seconds)

    @property
    def ready(self) -> bool:
        """setup() has finished (and not been undone by a failure)."""
        return self._ready

    repeat_report_s = 300.0  # the same error again within this is counted, not reported again

    def report(self, exc: BaseException) -> None:
        self._errors += 1
        message = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        repeated = message == self._last_error and now - self._last_report_t < self.repeat_report_s
        self._last_error = message
        if repeated:  # an unplugged device retried every few seconds must not fill the log
            log.debug("%s: %s (again)", self.name, message)
            return
        self._last_report_t = now
        log.warning("%s: %s", self.name, message)
        log.debug("%s traceback:\n%s", self.name, "".join(traceback.format_exception(exc)))
        if self._on_error is not None:
            try:
                self._on_error(self.name, exc)
            except Exception:  # an error handler must never take the worker down
                log.exception("%s: error handler failed", self.name)

    def _backoff(self) -> float:
        i = min(self._consecutive_errors - 1, len(self.backoff_s) - 1)
        return self.backoff_s[max(i, 0)]

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.beat()
                try:
                    if not self._ready:
                        self.setup()
                        self._ready = True
                    self.step()
                    self._consecutive_errors = 0
                except Exception as exc:
                    self._consecutive_errors += 1
                    self.report(exc)
                    if self.on_failure(exc):
                        self._ready = False
                    self.sleep(self._backoff())
        finally:
            try:
                self.teardown()
            except Exception as exc:
                self.report(exc)

    def on_failure(self, exc: BaseException) -> bool:
        """Return True if the failure means `setup` must run again (e.g. a lost device)."""
        return not self._ready

    def status(self) -> WorkerStatus:
        return WorkerStatus(
            name=self.name,
            alive=self.is_alive(),
            rate=self.rate_meter.rate(),
            seconds_since_beat=time.monotonic() - self._last_beat,
            errors=self._errors,
            last_error=self._last_error,
        )


def stop_all(workers: list[Worker], timeout: float = 5.0) -> list[str]:
    """Ask every worker to stop, then join them; returns the names of any that hung."""
    for w in workers:
        w.stop()
    deadline = time.monotonic() + timeout
    hung = []
    for w in workers:
        if w.is_alive() or w.ident is not None:
            w.join(max(0.0, deadline - time.monotonic()))
        if w.is_alive():
            hung.append(w.name)
    return hung
