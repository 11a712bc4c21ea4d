"""Presence hysteresis and the stable people count, on sighting sequences (the analyser's
tests run the same logic on real footage)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from installation.vision.presence import COUNT_HOLD_S, COUNT_WINDOW_S, RUN_GAP_S, Presence, StableCount

RATE = 5.0  # Hz, the vision stage's default
DT = 1.0 / RATE


def run(presence: Presence, sightings: list[bool], t0: float = 0.0) -> list[bool]:
    return [presence.update(seen, t0 + i * DT) for i, seen in enumerate(sightings)]


def test_presence_turns_on_after_on_s_of_sightings_and_off_after_hold_s():
    states = run(Presence(on_s=0.5, hold_s=5.0), [False] * 10 + [True] * 20 + [False] * 40)
    assert not any(states[:10])
    first_on = states.index(True)
    assert (first_on - 10) * DT >= 0.5 and (first_on - 10) * DT <= 0.5 + DT
    last_on = len(states) - 1 - states[::-1].index(True)
    assert (last_on - 29) * DT <= 5.0 + DT and (last_on - 29) * DT >= 5.0 - DT
    assert all(states[first_on:last_on + 1])


def test_a_blip_shorter_than_on_s_is_not_presence():
    assert not any(run(Presence(on_s=1.0, hold_s=5.0), [False] * 5 + [True] * 3 + [False] * 20))


def test_a_missed_frame_does_not_restart_the_sightings():
    # seen, seen, missed, seen, seen ...: on_s counts from the first sighting
    states = run(Presence(on_s=1.0, hold_s=5.0), [True, True, False, True, True, True, False, True])
    assert states[5] and not states[4]


def test_on_s_zero_is_on_at_the_first_sighting():
    assert run(Presence(on_s=0.0, hold_s=1.0), [False, True]) == [False, True]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=200), st.floats(0.0, 3.0), st.floats(0.0, 10.0))
def test_presence_never_contradicts_its_sightings(sightings, on_s, hold_s):
    """On only after a run of sightings at least on_s long (gaps under RUN_GAP_S allowed);
    off only after hold_s without a sighting; and never on with no sighting for longer than hold_s."""
    presence = Presence(on_s, hold_s)
    last_seen = None
    was_on = False
    for i, seen in enumerate(sightings):
        t = i * DT
        on = presence.update(seen, t)
        if seen:
            last_seen = t
        if on and not was_on:
            assert seen
            run_start = t
            j = i
            while j > 0 and any(sightings[k] for k in range(max(0, j - round(RUN_GAP_S / DT)), j)):
                j -= 1
                if sightings[j]:
                    run_start = j * DT
            assert t - run_start >= on_s - 1e-9
        if was_on and not on:
            assert last_seen is not None and t - last_seen > hold_s
        if on:
            assert last_seen is not None and t - last_seen <= hold_s + 1e-9
        was_on = on


def feed(count: StableCount, raws: list[int], t0: float = 0.0) -> list[int]:
    return [count.update(raw, t0 + i * DT) for i, raw in enumerate(raws)]


def test_stable_count_does_not_flicker_between_1_and_2():
    count = StableCount()
    feed(count, [1] * 20)
    assert count.value == 1
    assert set(feed(count, [2, 1] * 50, t0=20 * DT)) == {1}
    assert set(feed(count, [1, 2, 2] * 30, t0=120 * DT)) <= {1, 2}


def test_stable_count_follows_a_lasting_change_within_window_and_hold():
    count = StableCount()
    values = feed(count, [0] * 10 + [2] * 30)
    changed = values.index(2)
    assert values[changed:] == [2] * (len(values) - changed)
    assert (changed - 10) * DT <= COUNT_WINDOW_S / 2 + COUNT_HOLD_S + 2 * DT


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=150))
def test_stable_count_changes_at_most_once_per_hold(raws):
    """However the raw count jumps, the stable count never changes twice within COUNT_HOLD_S,
    and it is always a count that was seen in its window."""
    count = StableCount()
    last_change = None
    previous = 0
    for i, raw in enumerate(raws):
        t = i * DT
        value = count.update(raw, t)
        if value != previous:
            assert last_change is None or t - last_change >= COUNT_HOLD_S - 1e-9
            assert value in raws[max(0, i - round(COUNT_WINDOW_S / DT)):i + 1]
            last_change, previous = t, value
