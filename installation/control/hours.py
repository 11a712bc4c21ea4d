"""Opening hours: whether the show is open at a moment, when that next changes, and the staff's
override over OSC (`/jadong/hours/override open|closed|auto`).

Pure logic on a wall clock that is handed in, so tests step through weekdays, ranges past
midnight and daylight-saving days without waiting. Hours are wall-clock times in the show's
time zone ([hours] timezone, else this machine's): "10:00-18:00" is open from ten to six
whatever the offset to UTC is that day. On the spring-forward night a range that starts in the
skipped hour opens when the clock jumps; on the fall-back night the repeated hour is open (or
closed) both times round.

An override lasts until the schedule itself next changes (it opens or closes by the clock), or
until staff set it back to "auto": an override forgotten on Friday does not keep the gallery
dark all next week.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Literal

from installation.show import HoursConfig

WallClock = Callable[[], datetime]
Override = Literal["auto", "open", "closed"]
OVERRIDES: tuple[Override, ...] = ("auto", "open", "closed")
DAY_MINUTES = 24 * 60


def zone_of(cfg: HoursConfig) -> tzinfo | None:
    """The show's time zone; None for this machine's own (whatever it is set to, DST included)."""
    return zoneinfo.ZoneInfo(cfg.timezone.strip()) if cfg.timezone.strip() else None


def wall_clock(zone: tzinfo | None) -> WallClock:
    """The time now in `zone` (None: this machine's zone, with today's offset)."""
    if zone is None:
        return lambda: datetime.now().astimezone()
    return lambda: datetime.now(zone)


def _localize(day: datetime, minute: int, zone: tzinfo | None) -> datetime:
    """Wall-clock `minute` after midnight of `day`'s date, as an aware moment in `zone`.
    A wall time that does not exist (the hour skipped in spring) resolves PEP 495's way."""
    naive = datetime.combine(day.date(), time()) + timedelta(minutes=minute)
    return naive.astimezone() if zone is None else naive.replace(tzinfo=zone)


class Schedule:
    """A week of opening hours. Without any hours set ([hours] absent) it is always open."""

    def __init__(self, cfg: HoursConfig) -> None:
        self.always = not cfg.scheduled
        self.days = tuple(cfg.day(weekday) for weekday in range(7))
        self.zone = zone_of(cfg)

    def is_open(self, when: datetime) -> bool:
        """Whether the show is open at `when` (read as wall-clock time in the show's zone)."""
        if self.always:
            return True
        when = self.local(when)
        minute = when.hour * 60 + when.minute
        weekday = when.weekday()
        for start, end in self.days[weekday]:
            if start <= minute < (end if end > start else DAY_MINUTES):
                return True
        # Yesterday's ranges that run past midnight ("18:00-02:00") are open until their end today.
        return any(end <= start and minute < end for start, end in self.days[(weekday - 1) % 7])

    def local(self, when: datetime) -> datetime:
        """`when` as wall-clock time in the show's zone."""
        if when.tzinfo is None:  # already wall-clock time in the show's zone
            return when.astimezone() if self.zone is None else when.replace(tzinfo=self.zone)
        return when.astimezone() if self.zone is None else when.astimezone(self.zone)

    def next_change(self, when: datetime) -> datetime | None:
        """The next moment after `when` at which the schedule opens or closes (within the next
        eight days), or None if it never changes (always open, or never open)."""
        if self.always or not any(self.days):
            return None
        when = self.local(when)
        now_open = self.is_open(when)
        edges = []
        for offset in range(-1, 9):
            day = when + timedelta(days=offset)
            for start, end in self.days[day.weekday()]:
                edges.append(_localize(day, start, self.zone))
                edges.append(_localize(day, end if end > start else end + DAY_MINUTES, self.zone))
        for edge in sorted(e for e in edges if e > when):
            if self.is_open(edge) != now_open:
                return self.local(edge)
        return None


@dataclass(frozen=True)
class HoursChange:
    """What `OpeningHours` reports: whether the show is open, why (the schedule, an override,
    an override that ended, the start), whether that changed, the override now, and when the
    schedule next changes."""

    open: bool
    changed: bool
    why: str
    override: Override
    until: datetime | None

    def fields(self) -> dict[str, object]:
        """For the event log: `hours` with state, why, override and until (ISO, local time)."""
        return {"state": "open" if self.open else "closed", "why": self.why, "override": self.override,
                "until": self.until.isoformat(timespec="minutes") if self.until is not None else None}


class OpeningHours:
    """The schedule and the staff's override, on one wall clock. `update` is called often (each
    frame); it answers a change only when there is one."""

    def __init__(self, cfg: HoursConfig, clock: WallClock | None = None) -> None:
        self.schedule = Schedule(cfg)
        self.clock = clock or wall_clock(self.schedule.zone)
        self.override: Override = "auto"
        self._override_from: bool | None = None  # the schedule's state when the override was set
        self.open: bool | None = None  # unknown before the first update

    def _state(self, scheduled: bool) -> bool:
        return scheduled if self.override == "auto" else self.override == "open"

    def update(self, when: datetime | None = None) -> HoursChange | None:
        """The state at `when` (default: the clock's now); a change, or None when nothing changed."""
        when = self.clock() if when is None else when
        scheduled = self.schedule.is_open(when)
        why = "schedule"
        ended = False
        if self.override != "auto" and scheduled != self._override_from:
            self.override, self._override_from = "auto", None
            why, ended = "override ended: the schedule changed", True
        state = self._state(scheduled)
        if state == self.open and not ended:
            return None
        first = self.open is None
        changed = state != self.open
        self.open = state
        return HoursChange(state, changed, "start" if first else why, self.override, self.schedule.next_change(when))

    def set_override(self, value: str, when: datetime | None = None) -> HoursChange:
        """Staff's override: "open" or "closed" until the schedule next changes, "auto" to follow
        the schedule again. Always answers (the event log records every override)."""
        if value not in OVERRIDES:
            raise ValueError(f"expected one of {', '.join(OVERRIDES)}, got {value!r}")
        when = self.clock() if when is None else when
        scheduled = self.schedule.is_open(when)
        self.override = value
        self._override_from = None if value == "auto" else scheduled
        state = self._state(scheduled)
        changed = state != self.open
        self.open = state
        return HoursChange(state, changed, f"override {value}", self.override, self.schedule.next_change(when))
