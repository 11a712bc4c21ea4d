"""The storyboard: the show's cues run by the clock (durations, follow, loop) or by GO, with the
time left in the status. Time is passed in, as the main loop passes it: no sleeping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.test_control import PEER, RecordingHost, send
from installation.control.show_control import ShowControl
from installation.control.storyboard import Due, Storyboard
from installation.core.messages import GenerationParams
from installation.show import Cue, ShowError, parse_show

FRAME = 1 / 60  # the main loop ticks at the display's rate

BOARD = {
    "cues": [
        {"name": "dawn", "prompt": "a quiet dawn", "duration_s": 1.0, "follow": True, "blend_s": 0.5},
        {"name": "noon", "prompt": "a bright noon", "duration_s": 0.5, "follow": True, "caption": "noon"},
        {"name": "dusk", "prompt": "a red dusk", "duration_s": 0.75, "follow": True, "crossfade_s": 1.0},
    ],
    "storyboard": {"autostart": True, "loop": True},
    "osc": {"enabled": False},
}


def board_control(host: RecordingHost, **overrides: Any) -> ShowControl:
    show = parse_show({**BOARD, **overrides}, Path("board.toml"))
    return ShowControl(show, host, GenerationParams(strength=0.5, steps=1, seed=7))


def cue_events(host: RecordingHost) -> list[dict]:
    return [fields for event, fields in host.events if event == "cue"]


def run_frames(ctl: ShowControl, start: float, seconds: float, frame: float = FRAME) -> float:
    """Tick the control as the main loop does, one frame at a time; returns the last time."""
    now = start
    for i in range(round(seconds / frame) + 1):
        now = start + i * frame
        ctl.tick(now)
    return now


# --- the clock alone ----------------------------------------------------------------------

def cues(*spec: tuple[float | None, bool]) -> list[Cue]:
    return [Cue(name=f"c{i}", duration_s=d, follow=f) for i, (d, f) in enumerate(spec)]


def test_a_cue_without_duration_holds_until_go():
    clock = Storyboard(cues((None, False), (2.0, True)))
    assert clock.time_left(0.0) is None and clock.due(100.0) is None  # before the first cue
    clock.start(0, 10.0)
    assert clock.ends_at() is None and clock.time_left(1e6) is None and clock.due(1e6) is None


def test_a_cue_with_duration_counts_down_and_follows_on_at_its_scheduled_end():
    clock = Storyboard(cues((2.0, True), (3.0, False)))
    clock.start(0, 10.0)
    assert clock.time_left(10.5) == 1.5 and clock.due(11.99) is None
    # Noticed a frame late: the next cue still starts when the first was due to end.
    assert clock.due(12.016) == Due(1, 12.0)


def test_a_duration_without_follow_waits_for_go_at_zero():
    clock = Storyboard(cues((2.0, False), (3.0, False)))
    clock.start(0, 0.0)
    assert clock.time_left(5.0) == 0.0 and clock.due(5.0) is None


def test_the_last_cue_ends_the_storyboard_unless_it_loops():
    spec = ((1.0, True), (1.0, True))
    ended = Storyboard(cues(*spec))
    ended.start(1, 0.0)
    assert ended.due(5.0) is None and ended.step(+1) is None
    looped = Storyboard(cues(*spec), loop=True)
    looped.start(1, 0.0)
    assert looped.due(1.01) == Due(0, 1.0) and looped.step(+1) == 0


def test_go_and_back_from_the_ends():
    clock = Storyboard(cues((None, False), (None, False), (None, False)))
    assert clock.step(+1) == 0 and clock.step(-1) == 0  # before the first cue: the first
    clock.start(0, 0.0)
    assert clock.step(-1) == 0 and clock.step(+1) == 1
    clock.loop = True
    assert clock.step(-1) == 2  # back from the first: the last, with loop
    clock.start(2, 0.0)
    assert clock.step(+1) == 0


def test_a_stall_longer_than_the_next_cue_runs_it_in_full_from_now():
    """The main thread held up for 5 s (a model loading): the next cue (1 s) is not fired
    already over, and the clock does not fire cue after cue in one frame to catch up."""
    clock = Storyboard(cues((1.0, True), (1.0, True), (1.0, True)), loop=True)
    clock.start(0, 0.0)
    assert clock.due(6.0) == Due(1, 6.0)
    clock.start(1, 6.0)
    assert clock.due(6.0) is None


def test_starting_a_cue_that_is_not_there_is_refused():
    with pytest.raises(IndexError, match="the show has 1 cues"):
        Storyboard(cues((1.0, True))).start(3, 0.0)


@settings(max_examples=150, deadline=None)
@given(durations=st.lists(st.floats(0.1, 5.0), min_size=1, max_size=6),
       frame=st.floats(0.004, 0.05), loops=st.integers(1, 40))
def test_no_drift_over_many_loops(durations, frame, loops):
    """Each follow is noticed up to a frame late; the schedule still keeps to the durations:
    cue k of loop n starts at n * sum(durations) + sum(durations[:k]), within a float's error."""
    clock = Storyboard([Cue(name=f"c{i}", duration_s=d, follow=True) for i, d in enumerate(durations)], loop=True)
    clock.start(0, 0.0)
    period = sum(durations)
    fired = 0
    while fired < loops * len(durations):
        end = clock.ends_at()
        assert end is not None
        now = end + frame * 0.999  # the first frame after the end (no frame lands exactly on it)
        due = clock.due(now)
        assert due is not None
        fired += 1
        clock.start(due.index, due.at)
        loop, k = divmod(fired, len(durations))
        assert due.index == k
        assert due.at == pytest.approx(loop * period + sum(durations[:k]), abs=1e-9 * (1 + fired))


# --- the show control: cues fired by the clock, GO at any time ----------------------------

def test_autostart_fires_the_first_cue_on_the_first_frame_and_the_clock_runs_the_rest():
    host = RecordingHost()
    ctl = board_control(host)
    assert ctl.state.cue_index == -1 and cue_events(host) == []
    run_frames(ctl, 100.0, 4.6)  # 2.25 s a loop: two loops and the first cue of the third
    events = cue_events(host)
    assert [e["name"] for e in events] == ["dawn", "noon", "dusk"] * 2 + ["dawn"]
    assert [e["by"] for e in events] == ["show start"] + ["clock"] * 6
    expected = [100.0, 101.0, 101.5, 102.25, 103.25, 103.75, 104.5]
    assert [e["scheduled"] for e in events] == pytest.approx(expected, abs=1e-4)
    assert all(0 <= e["late_s"] < FRAME + 1e-9 for e in events[1:])
    # What each cue changes is applied, as a GO would.
    assert host.prompts[-1].text == "a quiet dawn" and host.params[-1].prompt_blend_s == 0.5
    assert host.screen.caption == "noon" and host.screen.crossfade_s == 1.0
    assert [e["duration_s"] for e in events[:3]] == [1.0, 0.5, 0.75]


def test_without_autostart_the_clock_waits_for_the_first_go():
    host = RecordingHost()
    ctl = board_control(host, storyboard={"loop": True})
    run_frames(ctl, 0.0, 3.0)
    assert cue_events(host) == [] and ctl.time_left(3.0) is None


def test_a_go_at_any_time_restarts_the_clock_from_that_cue():
    host = RecordingHost()
    ctl = board_control(host)
    ctl.tick(0.0)  # autostart: dawn
    ctl.tick(0.4)
    send(ctl, "/jadong/cue/go", "dusk")  # at the real clock's now
    go = cue_events(host)[-1]
    assert go["name"] == "dusk" and go["by"] == "osc 127.0.0.1:9001" and "late_s" not in go
    t = go["scheduled"]
    assert ctl.time_left(t) == 0.75
    ctl.tick(t + 0.7)
    assert cue_events(host)[-1]["name"] == "dusk"  # dawn's old end (1.0) passed long ago: ignored
    ctl.tick(t + 0.76)
    follow = cue_events(host)[-1]
    assert follow["name"] == "dawn" and follow["by"] == "clock" and follow["scheduled"] == pytest.approx(t + 0.75)


def test_next_and_prev_restart_the_clock_and_round_the_ends_with_loop():
    host = RecordingHost()
    ctl = board_control(host, storyboard={"loop": True})
    send(ctl, "/jadong/cue/prev")  # before the first: the first
    assert ctl.cue_name() == "dawn"
    send(ctl, "/jadong/cue/prev")  # back from the first: the last, with loop
    assert ctl.cue_name() == "dusk"
    send(ctl, "/jadong/cue/next")  # GO from the last: the first, with loop
    assert ctl.cue_name() == "dawn" and host.errors() == []
    assert [e["name"] for e in cue_events(host)] == ["dawn", "dusk", "dawn"]
    left = ctl.time_left()
    assert left is not None and 0.99 < left <= 1.0  # the clock restarted at the GO


def test_without_loop_go_from_the_last_cue_is_refused_and_its_clock_runs_out():
    host = RecordingHost()
    ctl = board_control(host, storyboard={"autostart": True})
    ctl.tick(0.0)
    run_frames(ctl, 0.0, 5.0)
    assert [e["name"] for e in cue_events(host)] == ["dawn", "noon", "dusk"]
    assert ctl.time_left(5.0) == 0.0
    send(ctl, "/jadong/cue/next")
    assert host.errors()[-1][2:] == ("/jadong/cue/next", "already at the last cue (dusk)")


def test_blackout_and_other_controls_leave_the_clock_alone():
    host = RecordingHost()
    ctl = board_control(host)
    ctl.tick(0.0)
    send(ctl, "/jadong/blackout", 1)
    send(ctl, "/jadong/prompt", "a performer's words")
    ctl.tick(0.5)
    assert ctl.time_left(0.5) == 0.5 and host.screen.blackout
    ctl.tick(1.01)
    assert cue_events(host)[-1]["name"] == "noon" and host.screen.blackout  # the cue sets no blackout


def test_the_keyboard_fires_go_and_back_and_a_refusal_is_logged():
    host = RecordingHost()
    ctl = board_control(host, storyboard={})
    ctl.keyboard("go")
    ctl.keyboard("go")
    ctl.keyboard("back")
    assert [(e["name"], e["by"]) for e in cue_events(host)] == [("dawn", "keyboard"), ("noon", "keyboard"),
                                                                  ("dawn", "keyboard")]
    ctl.keyboard("go")
    ctl.keyboard("go")
    ctl.keyboard("go")  # past the last, no loop: refused, logged; no reply (nobody to send it to)
    assert host.errors() == []
    errors = [f for e, f in host.events if e == "error"]
    assert errors[-1]["address"] == "/jadong/cue/next" and "already at the last cue" in errors[-1]["reason"]
    assert ctl.state.last_error.startswith("/jadong/cue/next:")


def test_a_cue_that_fails_on_the_clock_costs_that_cue_not_the_main_loop(monkeypatch):
    host = RecordingHost()
    ctl = board_control(host)
    ctl.tick(0.0)
    broken = ctl.apply_cue

    def apply(cue: Cue) -> None:
        if cue.name == "noon":
            raise RuntimeError("a bug")
        broken(cue)

    monkeypatch.setattr(ctl, "apply_cue", apply)
    for now in (1.01, 1.02, 1.03):  # not retried every frame
        ctl.tick(now)
    errors = [f for e, f in host.events if e == "error"]
    assert len(errors) == 1 and "RuntimeError: a bug" in errors[0]["reason"]
    ctl.tick(1.51)
    assert cue_events(host)[-1]["name"] == "dusk"  # the storyboard goes on


# --- status ---------------------------------------------------------------------------------

def test_status_says_the_cue_and_its_time_left(monkeypatch):
    from installation.control import show_control

    host = RecordingHost()
    ctl = board_control(host)
    now = [50.0]
    monkeypatch.setattr(show_control.time, "monotonic", lambda: now[0])
    values = dict(ctl.status_values())
    assert values["/jadong/status/time_left"] == (-1.0,) and values["/jadong/status/cue"] == ("",)
    ctl.tick(50.0)
    now[0] = 50.25
    values = dict(ctl.status_values())
    assert values["/jadong/status/cue"] == ("dawn",) and values["/jadong/status/time_left"] == (0.75,)
    send(ctl, "/jadong/cue/go", 1)  # GO resets: the whole second again
    assert dict(ctl.status_values())["/jadong/status/time_left"] == (1.0,)


def test_a_cue_that_holds_reports_minus_one():
    host = RecordingHost()
    ctl = board_control(host, cues=[{"name": "hold", "prompt": "stillness"}], storyboard={})
    send(ctl, "/jadong/cue/go", "hold")
    assert dict(ctl.status_values())["/jadong/status/time_left"] == (-1.0,) and ctl.time_left() is None
    send(ctl, "/jadong/cue", query=True)
    assert host.replies[-1] == (PEER, "/jadong/cue", 1, "hold")


def test_the_web_status_carries_the_time_left():
    from installation import web_bridge
    from installation.core.counters import EventCounters

    host = RecordingHost()
    ctl = board_control(host)
    ctl.tick(10.0)

    class FakeApp:
        control = ctl
        show = ctl.show
        state = ctl.state
        counters = EventCounters()
        workers: list = []
        generator_worker = None
        presenter = None
        started_t = 0.0

        @staticmethod
        def stage_rates() -> dict[str, float]:
            return {}

        @staticmethod
        def drop_counts() -> dict[str, int]:
            return {}

    snapshot = web_bridge.status(FakeApp(), 10.4, web_bridge.ShowsList())
    assert snapshot["cue"] == {"index": 0, "number": 1, "name": "dawn", "time_left_s": 0.6}


# --- the show file ----------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "message"), [
    ({"cues": [{"name": "a", "follow": True}]},
     'board.toml: cues[0] (cue 1, "a"): follow = true needs duration_s'),
    ({"cues": [{"name": "a", "duration_s": 0.01}]},
     'board.toml: cues[0] (cue 1, "a").duration_s: expected a number from 0.1 to 86400, got 0.01'),
    ({"storyboard": {"autostart": True}},
     "board.toml: storyboard.autostart: the show has no cues to run"),
    ({"storyboard": {"loop": "yes"}}, "board.toml: storyboard.loop: expected true or false, got 'yes'"),
])
def test_storyboard_mistakes_in_a_show_file_are_named(data, message):
    with pytest.raises(ShowError) as caught:
        parse_show(data, Path("board.toml"))
    assert message in str(caught.value)


def test_the_example_storyboard_show_runs_by_the_clock():
    from installation.generation.choice import params_from_config
    from installation.show import load_show

    show = load_show("storyboard")
    assert show.storyboard.autostart and show.storyboard.loop
    assert all(c.duration_s and c.follow for c in show.cues) and len(show.cues) >= 3
    host = RecordingHost()
    ctl = ShowControl(show, host, params_from_config(show.generator))
    period = sum(c.duration_s or 0 for c in show.cues)
    run_frames(ctl, 0.0, period + 0.01, frame=0.05)
    assert [e["name"] for e in cue_events(host)] == [c.name for c in show.cues] + [show.cues[0].name]
