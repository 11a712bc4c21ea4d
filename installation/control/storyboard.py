"""The storyboard's clock: which cue runs, since when, until when, and which comes next.

A storyboard is the show's cues run by the clock: a cue with `duration_s` holds that long, and
one with `follow` then fires the next by itself ([storyboard] `loop`: after the last, the
first). A performer's GO (OSC, the keyboard, the operator's page) restarts the clock at the cue
it fires, at any time. This module only keeps time; what a cue changes is the show control's
(show_control.py), which asks `due(now)` every frame and starts the clock at each cue it fires.

Times are `time.monotonic()` seconds, as in the event log's `mono`. A cue that follows another
starts at that one's scheduled end, not when the main loop got round to it (up to a frame
later): the lateness of each change does not add up, and after a thousand loops cue 1 still
starts on its beat. A change so late that the next cue would already be over (the main thread
held up for longer than that cue lasts) starts that cue now instead, so no cue is skipped
unseen and the clock never fires several cues in one frame to catch up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from installation.show import Cue


@dataclass(frozen=True)
class Due:
    """A cue the clock fires now: its index in the show's cues and its scheduled start."""

    index: int
    at: float


class Storyboard:
    """The clock of a show's cues. `index` is the cue running (-1 before the first), `started`
    when it started on the clock."""

    def __init__(self, cues: Sequence[Cue], loop: bool = False) -> None:
        self.cues = list(cues)
        self.loop = loop
        self.index = -1
        self.started: float | None = None

    def start(self, index: int, at: float) -> None:
        """Cue `index` runs from `at` (a GO: now; a follow: the previous cue's scheduled end)."""
        if not 0 <= index < len(self.cues):
            raise IndexError(f"no cue at index {index}: the show has {len(self.cues)} cues")
        self.index, self.started = index, at

    def ends_at(self) -> float | None:
        """When the running cue's duration ends; None before the first cue or for a cue that
        holds until GO."""
        if self.started is None or self.index < 0:
            return None
        duration = self.cues[self.index].duration_s
        return None if duration is None else self.started + duration

    def time_left(self, now: float) -> float | None:
        """Seconds until the running cue's duration ends (0 once it has: a cue without `follow`
        then waits for GO), or None for a cue that does not end by itself."""
        end = self.ends_at()
        return None if end is None else max(0.0, end - now)

    def step(self, step: int) -> int | None:
        """The index GO (+1) or back (-1) fires from the running cue, or None past the last cue
        without `loop`. Before the first cue both fire the first; back from the first fires it
        again, or the last with `loop`."""
        n = len(self.cues)
        if n == 0:
            return None
        if self.index < 0:
            return 0
        target = self.index + step
        if self.loop:
            return target % n
        if target >= n:
            return None
        return max(target, 0)

    def due(self, now: float) -> Due | None:
        """The cue to fire now because the running one's duration ended and it follows on, or None."""
        end = self.ends_at()
        if end is None or now < end or not self.cues[self.index].follow:
            return None
        following = self.step(+1)
        if following is None:
            return None  # the last cue, and no loop: the storyboard ends here
        start = end
        duration = self.cues[following].duration_s
        if duration is not None and start + duration <= now:
            start = now  # held up past the whole next cue: it runs in full from now
        return Due(following, start)
