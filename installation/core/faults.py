"""Fault injection for the soak harness (`python -m installation.soak --faults`).

A gallery's failures (a camera pulled out, a GPU out of memory, a full disk) cannot be waited
for in a test, so the soak harness arms them on purpose, one at a time, at the real place in
each stage: the camera worker's read, the microphone's read, the generator's paint, the event
log's write. Each stage asks `take(kind)` once per unit of work; an armed fault fires exactly
once and then behaves like the real failure, through the same recovery code.

Recovery is measured here too, so that it is exact: a stage that has done a unit of real work
(a camera frame into its slot, an audio chunk into the queue, a good frame from the primary
generator) says `worked(stage, t)`, and the first such moment after a fault fired is that
fault's recovery. Each fault's life (armed, fired, recovered, all `time.monotonic()`, which is
one clock for every process on the machine) is handed out by `take_reports()` for the event
log, written from the main thread, never from inside a stage or a failing writer.

Off unless the app runs with `--faults` (which only the soak harness passes): in a show, `take`
and `worked` are a single attribute read. The injector is owned by the app and handed to the
stages; nothing is global.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

# Every kind the soak harness injects. The first group is armed inside the app (through
# `/jadong/fault KIND`, accepted only with --faults), each with the stage that must recover; the
# second is done to the app from the outside (a broken show file, bad or too many OSC packets,
# SIGTERM and a restart).
INTERNAL_FAULTS: dict[str, str] = {
    "camera_lost": "camera",        # the camera's next read fails as an unplugged device does
    "mic_error": "microphone",      # the microphone's next read raises
    "generator_raise": "generator",  # the generator's next paint raises
    "generator_nan": "generator",   # the generator's next frame is NaN
    "generator_oom": "generator",   # the generator's next paint runs out of GPU memory
    "disk_full": "events",          # writes fail with ENOSPC for a while (the event log and the saved state)
    # The display loop stops for DISPLAY_HANG_S, as a hung GPU driver would: no frame, no systemd
    # watchdog ping (tests/test_watchdog_app.py). Not a soak fault: under systemd its recovery is a
    # kill and restart by WatchdogSec, not something the running app does.
    "display_hang": "display",
}
EXTERNAL_FAULTS = ("bad_show", "osc_malformed", "osc_flood", "sigterm_restart")
# Armed like the others, but never part of a soak: the app does not recover from a hung display
# loop by itself (systemd's watchdog kills and restarts it), and the soak counts frame gaps.
NOT_SOAKED = ("display_hang",)
FAULT_KINDS = tuple(k for k in INTERNAL_FAULTS if k not in NOT_SOAKED) + EXTERNAL_FAULTS

DISK_FULL_S = 1.0  # how long an injected full disk lasts
DISPLAY_HANG_S = 3.0  # how long an injected display hang holds the main loop


@dataclass(frozen=True)
class ArmedFault:
    kind: str
    armed_mono: float


@dataclass(frozen=True)
class FaultReport:
    """One step in a fault's life, for the event log (`fault` events). `state` is "armed",
    "fired" (the stage failed because of it) or "recovered" (the stage did real work again);
    the times are time.monotonic(), None until that step happened."""

    kind: str
    stage: str
    state: str
    armed_mono: float
    fired_mono: float | None = None
    recovered_mono: float | None = None

    @property
    def recovered_after_s(self) -> float | None:
        """From the moment the fault was armed (injected) to the first real work after it."""
        return None if self.recovered_mono is None else self.recovered_mono - self.armed_mono


class FaultInjector:
    """Thread-safe one-shot faults. `arm` from the main thread (the OSC control), `take`,
    `disk_full` and `worked` from the stages, `take_reports` from the main thread."""

    def __init__(self, enabled: bool = False, on_armed: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self._on_armed = on_armed
        self._clock = clock
        self._lock = threading.Lock()
        self._armed: dict[str, FaultReport] = {}  # waiting for their stage to take them
        self._outstanding: dict[str, FaultReport] = {}  # fired, their stage not yet working again
        self._reports: list[FaultReport] = []
        self._disk_full_until = 0.0

    def arm(self, kind: str) -> None:
        """Arm one fault; ValueError for a kind that is not injected inside the app."""
        if not self.enabled:
            raise ValueError("fault injection is off (the app was not started with --faults)")
        if kind not in INTERNAL_FAULTS:
            raise ValueError(f"unknown fault {kind!r}; armed inside the app: {', '.join(INTERNAL_FAULTS)}")
        now = self._clock()
        record = FaultReport(kind, INTERNAL_FAULTS[kind], "armed", now)
        with self._lock:
            self._armed[kind] = record
            self._reports.append(record)
            if kind == "disk_full":
                self._disk_full_until = now + DISK_FULL_S
        if self._on_armed is not None:
            self._on_armed(kind)

    def take(self, kind: str) -> bool:
        """True once after `arm(kind)`: the caller fails now, the way the real fault would."""
        if not self.enabled:
            return False
        with self._lock:
            record = self._armed.pop(kind, None)
            if record is None:
                return False
            self._fire(record, self._clock())
        return True

    def disk_full(self) -> bool:
        """While an injected full disk lasts, writers fail as with ENOSPC. The first call
        inside that second is when the fault fired; the first call after it, when a writer
        writes again (its recovery)."""
        if not self.enabled:
            return False
        now = self._clock()
        with self._lock:
            if now < self._disk_full_until:
                record = self._armed.pop("disk_full", None)
                if record is not None:
                    self._fire(record, now)
                return True
            if "disk_full" in self._outstanding:
                self._recover("disk_full", now)
        return False

    def expecting(self, stage: str) -> bool:
        """Whether a fault of `stage` has fired and its recovery is still to be seen."""
        return bool(self._outstanding) and any(r.stage == stage for r in list(self._outstanding.values()))

    def worked(self, stage: str, t: float | None = None) -> None:
        """`stage` did a unit of real work at `t` (default now): the recovery of any fault of
        that stage that fired before `t`."""
        if not self._outstanding:  # the common case, and always without --faults: one read
            return
        t = self._clock() if t is None else t
        with self._lock:
            for kind, record in list(self._outstanding.items()):
                if record.stage == stage and record.fired_mono is not None and t > record.fired_mono:
                    self._recover(kind, t)

    def take_reports(self) -> list[FaultReport]:
        """The steps of every fault's life since the last call, oldest first."""
        if not self._reports:
            return []
        with self._lock:
            reports, self._reports = self._reports, []
        return reports

    # --- with the lock held -------------------------------------------------------------
    def _fire(self, record: FaultReport, now: float) -> None:
        fired = replace(record, state="fired", fired_mono=now)
        self._outstanding[record.kind] = fired
        self._reports.append(fired)

    def _recover(self, kind: str, t: float) -> None:
        record = self._outstanding.pop(kind)
        self._reports.append(replace(record, state="recovered", recovered_mono=t))


NO_FAULTS = FaultInjector(enabled=False)  # immutable in effect: disabled injectors never change


__all__ = ["ArmedFault", "DISK_FULL_S", "DISPLAY_HANG_S", "EXTERNAL_FAULTS", "FAULT_KINDS", "FaultInjector",
           "FaultReport", "INTERNAL_FAULTS", "NOT_SOAKED", "NO_FAULTS"]
