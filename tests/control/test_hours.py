"""Opening hours on an injected wall clock (control/hours.py): weekdays, several ranges a day,
ranges past midnight, a `default`, the show's time zone on the days daylight saving time starts
and ends (Europe/Berlin), and staff's override over OSC, which lasts until the schedule next
changes or until it is set back to auto."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from installation.control.hours import OpeningHours, Schedule
from installation.show import ShowError, parse_show

BERLIN = ZoneInfo("Europe/Berlin")


def hours(**days: str):
    return parse_show({"hours": {"timezone": "Europe/Berlin", **days}}, "hours-test.toml").hours


def at(y: int, mo: int, d: int, h: int, mi: int = 0, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BERLIN, fold=fold)


# 2024-06-03 is a Monday.
MON, TUE, WED, SAT, SUN = 3, 4, 5, 8, 9


def test_without_hours_the_show_is_always_open():
    schedule = Schedule(parse_show({}, "x.toml").hours)
    assert schedule.always
    assert all(schedule.is_open(at(2024, 6, MON, h)) for h in range(24))
    assert schedule.next_change(at(2024, 6, MON, 3)) is None


def test_weekday_ranges_and_a_missing_day_is_closed():
    s = Schedule(hours(mon="10:00-18:00", tue="10:00-13:00, 14:00-20:00"))
    assert not s.is_open(at(2024, 6, MON, 9, 59))
    assert s.is_open(at(2024, 6, MON, 10, 0))
    assert s.is_open(at(2024, 6, MON, 17, 59))
    assert not s.is_open(at(2024, 6, MON, 18, 0))  # the end is the closing minute
    assert s.is_open(at(2024, 6, TUE, 12, 59)) and not s.is_open(at(2024, 6, TUE, 13, 30))  # lunch
    assert s.is_open(at(2024, 6, TUE, 19, 0))
    assert not any(s.is_open(at(2024, 6, WED, h)) for h in range(24))  # not listed, no default: closed
    assert s.next_change(at(2024, 6, MON, 8)) == at(2024, 6, MON, 10)
    assert s.next_change(at(2024, 6, TUE, 12)) == at(2024, 6, TUE, 13)
    assert s.next_change(at(2024, 6, TUE, 21)) == at(2024, 6, MON + 7, 10)  # next Monday


def test_default_covers_the_days_not_set_and_closed_overrides_it():
    s = Schedule(hours(default="10:00-18:00", sun="closed", sat="12:00-24:00"))
    assert s.is_open(at(2024, 6, WED, 11))
    assert not s.is_open(at(2024, 6, SUN, 11))
    assert s.is_open(at(2024, 6, SAT, 23, 59)) and not s.is_open(at(2024, 6, SUN, 0, 0))


def test_a_range_past_midnight_runs_into_the_next_day_even_a_closed_one():
    s = Schedule(hours(fri="18:00-02:00"))  # 2024-06-07 is a Friday, the Saturday is not listed
    assert not s.is_open(at(2024, 6, 7, 17, 59))
    assert s.is_open(at(2024, 6, 7, 23, 0))
    assert s.is_open(at(2024, 6, SAT, 1, 59))
    assert not s.is_open(at(2024, 6, SAT, 2, 0))
    assert not s.is_open(at(2024, 6, 6, 1, 0))  # Thursday night: Wednesday has no late range
    assert s.next_change(at(2024, 6, 7, 20)) == at(2024, 6, SAT, 2)


def test_all_day_is_open_around_the_clock():
    s = Schedule(hours(default="00:00-24:00", sun="closed"))
    assert all(s.is_open(at(2024, 6, SAT, h, 30)) for h in range(24))
    assert s.next_change(at(2024, 6, SAT, 12)) == at(2024, 6, SUN, 0)


def test_the_spring_forward_night_in_berlin():
    """2024-03-31: at 02:00 CET the clocks jump to 03:00 CEST. A Saturday range 22:00-04:00
    lasts 5 real hours that night, and is open on both sides of the jump."""
    s = Schedule(hours(sat="22:00-04:00"))
    opens, closes = s.next_change(at(2024, 3, 30, 21)), s.next_change(at(2024, 3, 30, 23))
    assert opens == at(2024, 3, 30, 22) and closes == at(2024, 3, 31, 4)
    assert closes.timestamp() - opens.timestamp() == 5 * 3600  # real seconds (same-zone subtraction is wall time)
    assert s.is_open(at(2024, 3, 31, 1, 59)) and s.is_open(at(2024, 3, 31, 3, 0))
    assert not s.is_open(at(2024, 3, 31, 4, 0))
    # The moment of the jump, walked in UTC minutes: open without a gap until 04:00 CEST.
    t = opens.astimezone(ZoneInfo("UTC"))
    states = []
    while t < closes + timedelta(minutes=2):
        states.append(s.is_open(t))
        t += timedelta(minutes=1)
    assert states == [True] * 300 + [False] * 2


def test_a_range_in_the_skipped_hour_opens_when_the_clock_jumps():
    s = Schedule(hours(sun="02:30-05:00"))  # 02:30 does not exist on 2024-03-31
    assert not s.is_open(at(2024, 3, 31, 1, 59))
    assert s.is_open(datetime(2024, 3, 31, 1, 0, tzinfo=ZoneInfo("UTC")))  # 03:00 CEST, right after the jump


def test_the_fall_back_night_in_berlin():
    """2024-10-27: at 03:00 CEST the clocks go back to 02:00 CET; 02:00-03:00 happens twice,
    open both times, and the closing at 03:00 comes once, after both."""
    s = Schedule(hours(sun="01:00-03:00"))
    assert s.is_open(at(2024, 10, 27, 2, 30, fold=0)) and s.is_open(at(2024, 10, 27, 2, 30, fold=1))
    closes = s.next_change(at(2024, 10, 27, 1, 30))
    assert closes == at(2024, 10, 27, 3) and closes.utcoffset() == timedelta(hours=1)
    assert closes.timestamp() - at(2024, 10, 27, 1).timestamp() == 3 * 3600  # 01:00 CEST to 03:00 CET


def test_the_machines_zone_when_none_is_named():
    s = Schedule(parse_show({"hours": {"default": "00:00-24:00"}}, "x.toml").hours)
    assert s.zone is None and s.is_open(datetime.now().astimezone())


@pytest.mark.parametrize("text, why", [
    ("10-18", "is not a time range"),
    ("10:00 to 18:00", "is not a time range"),
    ("25:00-26:00", "is not a time of day"),
    ("10:00-24:30", "is not a time of day"),
    ("10:00-10:00", "opens and closes at the same minute"),
    ("10:00-12:00,", "is not a time range"),
])
def test_bad_hours_are_refused_naming_the_day(text, why):
    with pytest.raises(ShowError) as err:
        hours(tue=text)
    assert "hours-test.toml: hours.tue:" in str(err.value) and why in str(err.value)


def test_a_bad_time_zone_or_a_missing_closed_still_is_refused():
    with pytest.raises(ShowError, match=r"hours\.timezone: no time zone \"Mars/Olympus\""):
        parse_show({"hours": {"timezone": "Mars/Olympus"}}, "x.toml")
    with pytest.raises(ShowError, match=r"hours: closed = \"still\" needs image"):
        parse_show({"hours": {"closed": "still"}}, "x.toml")
    with pytest.raises(ShowError, match=r"hours\.image: no file .*nowhere\.png"):
        parse_show({"hours": {"closed": "still", "image": "nowhere.png"}}, "x.toml")


class Clock:
    def __init__(self, when: datetime) -> None:
        self.when = when

    def __call__(self) -> datetime:
        return self.when


def test_state_changes_are_reported_once_with_the_next_change():
    clock = Clock(at(2024, 6, MON, 9))
    oh = OpeningHours(hours(default="10:00-18:00"), clock)
    first = oh.update()
    assert first is not None and not first.open and first.why == "start" and first.until == at(2024, 6, MON, 10)
    assert oh.update() is None  # nothing changed
    clock.when = at(2024, 6, MON, 10, 0)
    opened = oh.update()
    assert opened is not None and opened.open and opened.changed and opened.why == "schedule"
    assert opened.fields() == {"state": "open", "why": "schedule", "override": "auto",
                               "until": "2024-06-03T18:00+02:00"}


def test_an_override_lasts_until_the_schedule_next_changes():
    clock = Clock(at(2024, 6, MON, 14))
    oh = OpeningHours(hours(default="10:00-18:00"), clock)
    oh.update()
    assert oh.open
    closed = oh.set_override("closed")  # a private event this afternoon
    assert not closed.open and closed.changed and closed.override == "closed"
    clock.when = at(2024, 6, MON, 17, 59)
    assert oh.update() is None and not oh.open
    clock.when = at(2024, 6, MON, 18, 0)  # the schedule closes: the override has done its job
    ended = oh.update()
    assert ended is not None and not ended.open and not ended.changed and ended.override == "auto"
    assert ended.why.startswith("override ended")
    clock.when = at(2024, 6, TUE, 10, 0)  # and the next morning opens as usual
    assert oh.update().open


def test_an_early_open_override_and_auto():
    clock = Clock(at(2024, 6, MON, 8))
    oh = OpeningHours(hours(default="10:00-18:00"), clock)
    oh.update()
    assert oh.set_override("open").open
    clock.when = at(2024, 6, MON, 9)
    assert oh.update() is None and oh.open
    back = oh.set_override("auto")
    assert not back.open and back.changed and back.why == "override auto"
    with pytest.raises(ValueError, match="expected one of auto, open, closed"):
        oh.set_override("maybe")


def test_an_override_on_a_show_without_hours_lasts_until_auto():
    clock = Clock(at(2024, 6, MON, 8))
    oh = OpeningHours(parse_show({}, "x.toml").hours, clock)
    assert oh.update().open
    oh.set_override("closed")
    for day in range(3):
        clock.when = at(2024, 6, MON + day, 12)
        assert oh.update() is None and not oh.open
    assert oh.set_override("auto").open
