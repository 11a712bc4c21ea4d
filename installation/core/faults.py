"""Fault injection for the soak harness (`python -m installation.soak --faults`).

A gallery's failures (a camera pulled out, a GPU out of memory, a full disk) cannot be waited
for in a test, so the soak harness arms them on purpose, one at a time, at the real place in
each stage: the camera worker's read, the microphone's read, the generator's paint, the event
log's write. Each stage asks `take(kind)` once per unit of work; an armed fault fires exactly
once and then behaves like the real failure, through the same recovery code.

Off unless the app runs with `--faults` (which only the soak harness passes): in a show, `take`
is a single attribute read that returns False. The injector is owned by the app and handed to
the stages; nothing is global.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Every kind the soak harness injects. The first group is armed inside the app (through
# `/jadong/fault KIND`, accepted only with --faults); the second is done to the app from the
# outside (a broken show file, bad or too many OSC packets, SIGTERM and a restart).
INTERNAL_FAULTS: dict[str, str] = {
    "camera_lost": "camera",        # the camera's next read fails as an unplugged device does
    "mic_error": "microphone",      # the microphone's next read raises
    "generator_raise": "generator",  # the generator's next paint raises
    "generator_nan": "generator",   # the generator's next frame is NaN
    "generator_oom": "generator",   # the generator's next paint runs out of GPU memory
    "disk_full": "events",          # writes fail with ENOSPC for a while (event log, state, captures)
}
EXTERNAL_FAULTS = ("bad_show", "osc_malformed", "osc_flood", "sigterm_restart")
FAULT_KINDS = tuple(INTERNAL_FAULTS) + EXTERNAL_FAULTS

DISK_FULL_S = 1.0  # how long an injected full disk lasts


@dataclass(frozen=True)
class ArmedFault:
    kind: str
    armed_mono: float


class FaultInjector:
    """Thread-safe one-shot faults. `arm` from the main thread (the OSC control), `take` from
    the stage that fails."""

    def __init__(self, enabled: bool = False, on_armed: Callable[[str], None] | None = None) -> None:
        self.enabled = enabled
        self._on_armed = on_armed
        self._lock = threading.Lock()
        self._armed: dict[str, ArmedFault] = {}
        self._disk_full_until = 0.0

    def arm(self, kind: str) -> None:
        """Arm one fault; ValueError for a kind that is not injected inside the app."""
        if not self.enabled:
            raise ValueError("fault injection is off (the app was not started with --faults)")
        if kind not in INTERNAL_FAULTS:
            raise ValueError(f"unknown fault {kind!r}; armed inside the app: {', '.join(INTERNAL_FAULTS)}")
        now = time.monotonic()
        with self._lock:
            self._armed[kind] = ArmedFault(kind, now)
            if kind == "disk_full":
                self._disk_full_until = now + DISK_FULL_S
        if self._on_armed is not None:
            self._on_armed(kind)

    def take(self, kind: str) -> bool:
        """True once after `arm(kind)`: the caller fails now, the way the real fault would."""
        if not self.enabled:
            return False
        with self._lock:
            return self._armed.pop(kind, None) is not None

    def disk_full(self) -> bool:
        """While an injected full disk lasts, writers fail as with ENOSPC."""
        return self.enabled and time.monotonic() < self._disk_full_until


NO_FAULTS = FaultInjector(enabled=False)  # immutable in effect: disabled injectors never change


__all__ = ["ArmedFault", "DISK_FULL_S", "EXTERNAL_FAULTS", "FAULT_KINDS", "FaultInjector", "INTERNAL_FAULTS",
           "NO_FAULTS"]
