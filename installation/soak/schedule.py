"""When each fault is injected in a soak of N minutes.

The app first starts and loads its model (WARMUP_S). Then the one SIGTERM restart comes, early,
so that the memory measured "from minute 1 on" is one process's through every other fault: a
leak per fault (a rebuilt engine that keeps its old one) shows as growth instead of being
reset by a restart. The other kinds follow in cycles, `spacing_s` apart, until TAIL_S before the
end; the first cycle in a fixed order, the later ones shuffled by the seed (the same seed, the
same soak).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from installation.core.faults import FAULT_KINDS

WARMUP_S = 20.0  # the app is up and its model has loaded
FIRST_S = 45.0  # the first fault after the restart: the new process is up and painting again
TAIL_S = 10.0  # the last fault has this long to recover before the end
SPACING_S = 15.0  # between two faults: each recovers (or is given up on) before the next
RESTART = "sigterm_restart"
# The first cycle: the stages in turn, the generator's faults apart so that each meets a
# primary that is painting again.
FIRST_CYCLE = ("camera_lost", "mic_error", "generator_raise", "osc_malformed", "generator_nan", "bad_show",
               "generator_oom", "osc_flood", "disk_full")


@dataclass(frozen=True)
class PlannedFault:
    at_s: float  # seconds after the soak started
    kind: str


def plan(minutes: float, kinds: tuple[str, ...] = FAULT_KINDS, seed: int = 0,
         spacing_s: float = SPACING_S) -> list[PlannedFault]:
    """The faults of a soak of `minutes`, in time order. `kinds` may leave some out."""
    if spacing_s <= 0:
        raise ValueError(f"spacing_s must be above 0, got {spacing_s}")
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    end = minutes * 60.0 - TAIL_S
    out: list[PlannedFault] = []
    if RESTART in kinds and WARMUP_S <= end:
        out.append(PlannedFault(WARMUP_S, RESTART))
    others = [k for k in FIRST_CYCLE if k in kinds] + [k for k in kinds if k not in FIRST_CYCLE and k != RESTART]
    if not others:
        return out
    rng = random.Random(seed)
    cycle = list(others)
    t = FIRST_S
    while t <= end:
        for kind in cycle:
            if t > end:
                break
            out.append(PlannedFault(round(t, 3), kind))
            t += spacing_s
        cycle = list(others)
        rng.shuffle(cycle)
    return out


def left_out(planned: list[PlannedFault], kinds: tuple[str, ...] = FAULT_KINDS) -> list[str]:
    """The kinds a soak this short has no room for."""
    present = {p.kind for p in planned}
    return [k for k in kinds if k not in present]


__all__ = ["FIRST_CYCLE", "FIRST_S", "PlannedFault", "SPACING_S", "TAIL_S", "WARMUP_S", "left_out", "plan"]
