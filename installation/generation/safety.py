"""Image safety on the generator thread ([safety] in a show): which generated frames may reach
the screen once the checker (engine/safety_checker.py) has judged them.

The streak rule: a frame is held back only once `streak` flagged frames have come in a row. One
false positive (the checker is a CLIP similarity, and a stream of frames makes many guesses)
then never stutters the picture, while a run of flagged frames, which is what a visitor would
actually see, stops at the `streak`-th: that frame and every flagged frame after it are held,
and the display keeps the last frame that was shown. The first safe frame is shown again and
starts the count afresh. `streak = 1` holds every flagged frame.

The event log hears `safety` events: `held` when a run reaches the streak, `released` when a
safe frame ends it (with how many frames were held and for how long), with running counts.
Never the image, never the prompt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from installation.core.events import EventHook, emit


@dataclass(frozen=True)
class SafetyCounts:
    checked: int = 0
    flagged: int = 0
    held: int = 0


class SafetyGate:
    """The streak rule over a checker's verdicts. One thread (the generator's) calls `admit`."""

    def __init__(self, streak: int, on_event: EventHook | None = None, model: str = "") -> None:
        if streak < 1:
            raise ValueError(f"safety.streak: expected at least 1, got {streak}")
        self.streak = streak
        self.model = model
        self._on_event = on_event
        self._run = 0  # flagged frames in a row
        self._holding_since: float | None = None
        self._held_in_run = 0
        self._checked = self._flagged = self._held = 0

    @property
    def holding(self) -> bool:
        return self._holding_since is not None

    @property
    def counts(self) -> SafetyCounts:
        return SafetyCounts(self._checked, self._flagged, self._held)

    def _counts(self) -> dict[str, int]:
        return {"checked": self._checked, "flagged": self._flagged, "held_total": self._held}

    def admit(self, flagged: bool, score: float = 0.0) -> bool:
        """True when the judged frame may be shown, False when it is held back."""
        self._checked += 1
        if not flagged:
            if self._holding_since is not None:
                emit(self._on_event, "safety", state="released", model=self.model, held_frames=self._held_in_run,
                     seconds=round(time.monotonic() - self._holding_since, 2), **self._counts())
            self._run = 0
            self._holding_since = None
            self._held_in_run = 0
            return True
        self._flagged += 1
        self._run += 1
        if self._run < self.streak:
            return True  # a lone flag (or a run still shorter than the streak): shown
        self._held += 1
        self._held_in_run += 1
        if self._holding_since is None:
            self._holding_since = time.monotonic()
            emit(self._on_event, "safety", state="held", model=self.model, streak=self.streak,
                 score=round(score, 3), **self._counts())
        return False


__all__ = ["SafetyCounts", "SafetyGate"]
