"""Attract mode's state machine: when nobody has been there for a while, the show invites people
in, and it stops the moment someone comes.

Pure logic on the monotonic clock, which is handed in (tests step it). "Somebody is there" is
the vision stage's presence ([vision]); a show without it knows only that nobody spoke.
Attract starts after [attract] `after_s` with nobody present, no word heard and no operator's
control; it ends when presence turns on (someone came: its rising edge, so a visitor who stays
while staff start attract by hand does not end it at once), a transcript arrives (a visitor
speaks, even before the words are final), an operator sends a control, or the show closes
([hours]). While closed, the timer waits: it starts afresh when the show opens.
"""

from __future__ import annotations

from dataclasses import dataclass

from installation.show import AttractConfig

# Controls that ask or steer the unattended machinery itself: an operator sending them is not
# "somebody there" (a status poll, the queue's length, the override, attract by hand).
PASSIVE_ADDRESSES = frozenset({"/jadong/status", "/jadong/queue", "/jadong/attract", "/jadong/hours/override"})


@dataclass(frozen=True)
class AttractChange:
    """Attract turned on or off, and why ("nobody for 60 s", "presence", "speech", "operator
    /jadong/prompt", "closed", "osc 10.0.0.5:53000"); `lasted_s` when it ends."""

    on: bool
    why: str
    lasted_s: float | None = None


class Attract:
    """When to show the attract behaviour; `tick` every frame, `activity` when somebody acts."""

    def __init__(self, cfg: AttractConfig, now: float) -> None:
        self.cfg = cfg
        self.active = False
        self.since = now  # when the current state began
        self._last_activity = now  # the last sign of anybody: presence, a word, a control
        self._present = False

    @property
    def present(self) -> bool:
        """Presence as last ticked."""
        return self._present

    def idle_s(self, now: float) -> float:
        """Seconds since the last sign of anybody."""
        return max(0.0, now - self._last_activity)

    def _set(self, on: bool, now: float, why: str) -> AttractChange:
        lasted = round(now - self.since, 3) if not on else None
        self.active, self.since = on, now
        return AttractChange(on, why, lasted)

    def activity(self, now: float, why: str) -> AttractChange | None:
        """Somebody acted (spoke, sent a control): the timer restarts, and attract ends."""
        self._last_activity = now
        return self._set(False, now, why) if self.active else None

    def tick(self, now: float, present: bool, open_: bool = True) -> AttractChange | None:
        """Presence now and whether the show is open: attract starts or ends when it should."""
        came = present and not self._present
        self._present = present
        if not open_:
            self._last_activity = now  # closed: nobody is expected; the wait starts at opening
            return self._set(False, now, "closed") if self.active else None
        if present:
            self._last_activity = now
            return self._set(False, now, "presence") if self.active and came else None
        if not self.active and self.cfg.enabled and now - self._last_activity >= self.cfg.after_s:
            return self._set(True, now, f"nobody for {self.cfg.after_s:g} s")
        return None

    def force(self, on: bool, now: float, why: str) -> AttractChange | None:
        """Staff start (or end) attract by hand; None when it already was so."""
        if on == self.active:
            return None
        if not on:
            self._last_activity = now
        return self._set(on, now, why)

    def prompt_index(self, now: float) -> int | None:
        """Which of [attract] prompts is painted now (each `prompt_s`, in turn), or None when
        attract is off or shows a clip or a still."""
        prompts = self.cfg.prompts
        if not self.active or self.cfg.behaviour != "prompts" or not prompts:
            return None
        return int((now - self.since) // self.cfg.prompt_s) % len(prompts)
