"""A show nobody attends: opening hours ([hours], hours.py) and attract mode ([attract],
attract.py) together, as the running show sees them.

The show control owns one (`ShowControl.unattended`) and ticks it every frame; the app reads
what it decides and applies it (app.py `_apply_unattended`): whether the generator rests,
whether the microphone's words are transcribed, the prompt attract paints, and the `Look` the
screen takes instead of (or over) the generated frames (display/still.py). Nothing here touches
the show state: the attract prompt goes to the generator beside it, never into it, so the
show's prompt, cue and style (and what is saved of them) are exactly as they were when attract
ends. Every change is an `attract` or `hours` event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from installation.core.events import EventHook, emit
from installation.core.messages import Prompt
from installation.show import Show, ShowError

from .attract import PASSIVE_ADDRESSES, Attract, AttractChange
from .hours import HoursChange, OpeningHours, WallClock

LookKind = Literal["live", "caption", "still", "clip", "dim", "black"]


@dataclass(frozen=True)
class Look:
    """What the screen shows: the generated frames ("live"), the frames with a caption over
    them, a still image, a clip, the last picture dimmed to `level`, or black, each with an
    optional caption. `fade_s` is how long the screen takes to fade into this look."""

    kind: LookKind = "live"
    caption: str = ""
    path: str = ""
    level: float = 1.0
    fade_s: float = 0.0


class Unattended:
    """Opening hours and attract mode for one show, on the main thread."""

    def __init__(self, show: Show, on_event: EventHook | None, clock: WallClock | None = None,
                 now: float | None = None) -> None:
        self.show = show
        self.cfg = show.attract
        self._on_event = on_event
        self.hours = OpeningHours(show.hours, clock)
        self.attract = Attract(show.attract, time.monotonic() if now is None else now)
        self._prompt: Prompt | None = None
        self._prompt_index: int | None = None
        self._look = Look()
        self._fade_back_s = 0.0  # how long the way back to the live picture fades

    # --- what the app applies -----------------------------------------------------------
    @property
    def open(self) -> bool:
        if self.hours.open is None:  # before the first tick (the stages being built): the schedule now
            return self.hours.schedule.is_open(self.hours.clock())
        return self.hours.open

    @property
    def override(self) -> str:
        return self.hours.override

    @property
    def attracting(self) -> bool:
        return self.attract.active

    @property
    def generator_paused(self) -> bool:
        """Closed, or attract showing a clip or a still: the generator rests (the GPU idles)."""
        return not self.open or (self.attracting and self.cfg.behaviour != "prompts")

    @property
    def attract_prompt(self) -> Prompt | None:
        """The prompt attract paints now (the same object until it changes), or None."""
        return self._prompt

    @property
    def look(self) -> Look:
        """The screen's look now (the same object until it changes)."""
        return self._look

    # --- what changes it ------------------------------------------------------------------
    def tick(self, now: float | None = None, present: bool = False) -> None:
        """Every frame: the clock's opening hours, presence, attract's timer and prompt cycle."""
        now = time.monotonic() if now is None else now
        hours = self.hours.update()
        if hours is not None:
            self._hours_event(hours, by="")
        self._attract_event(self.attract.tick(now, present, self.open), now)
        self._refresh(now)

    def heard(self, now: float | None = None) -> None:
        """A transcript arrived: a visitor speaks."""
        now = time.monotonic() if now is None else now
        self._attract_event(self.attract.activity(now, "speech"), now)
        self._refresh(now)

    def operator(self, address: str, now: float | None = None) -> None:
        """A control (OSC, the page, the keyboard): somebody is at the controls."""
        if address.lower() in PASSIVE_ADDRESSES:
            return
        now = time.monotonic() if now is None else now
        self._attract_event(self.attract.activity(now, f"operator {address}"), now)
        self._refresh(now)

    def set_override(self, value: str, by: str) -> None:
        """/jadong/hours/override: "open" or "closed" until the schedule next changes, or "auto"."""
        self._hours_event(self.hours.set_override(value.strip().lower()), by=by)
        now = time.monotonic()
        self._attract_event(self.attract.tick(now, self.attract.present, self.open), now)
        self._refresh(now)

    def force_attract(self, on: bool, by: str) -> None:
        """/jadong/attract: staff start attract now (to check it) or end it."""
        if on and not self.cfg.enabled:
            raise ShowError("this show has no attract behaviour: set [attract] enabled = true in its show file")
        if on and not self.open:
            raise ShowError("the show is closed ([hours]); open it first with /jadong/hours/override open")
        now = time.monotonic()
        self._attract_event(self.attract.force(bool(on), now, by), now)
        self._refresh(now)

    # --- internals --------------------------------------------------------------------------
    def _hours_event(self, change: HoursChange, by: str) -> None:
        if change.why == "start" and not self.show.hours.scheduled:
            return  # a show without hours is simply open: nothing to say
        fields = change.fields()
        if by:
            fields["by"] = by
        fields["changed"] = change.changed
        emit(self._on_event, "hours", **fields)
        if change.open and change.changed:
            self._fade_back_s = self.show.hours.fade_s  # back from the closed look

    def _attract_event(self, change: AttractChange | None, now: float) -> None:
        if change is None:
            return
        fields: dict[str, object] = {"state": "on" if change.on else "off", "why": change.why,
                                     "behaviour": self.cfg.behaviour}
        if change.lasted_s is not None:
            fields["lasted_s"] = change.lasted_s
        emit(self._on_event, "attract", **fields)
        if not change.on and self.open:
            self._fade_back_s = self.cfg.fade_s  # back from the attract look

    def _refresh(self, now: float) -> None:
        index = self.attract.prompt_index(now)
        if index != self._prompt_index:
            self._prompt_index = index
            self._prompt = None if index is None else Prompt(
                text=self.cfg.prompts[index], negative=self.show.prompt.negative, source="attract")
        look = self._wanted_look()
        if look != self._look:
            self._look = look

    def _wanted_look(self) -> Look:
        hours, cfg = self.show.hours, self.cfg
        if not self.open:
            if hours.closed == "still":
                return Look("still", hours.caption, hours.image, fade_s=hours.fade_s)
            return Look(hours.closed, hours.caption, level=hours.dim if hours.closed == "dim" else 0.0,
                        fade_s=hours.fade_s)
        if self.attracting:
            if cfg.behaviour == "prompts":
                return Look("caption", cfg.caption) if cfg.caption.strip() else Look(fade_s=cfg.fade_s)
            return Look(cfg.behaviour, cfg.caption, cfg.clip if cfg.behaviour == "clip" else cfg.image,
                        fade_s=cfg.fade_s)
        return Look(fade_s=self._fade_back_s)
