"""Attract mode's state machine on a stepped clock (control/attract.py), and attract with opening
hours as the show control runs them (control/unattended.py, through ShowControl with a recording
host): presence, speech and operators end it, `after_s` starts it, the show's own prompt and
cue are never touched, and every change is an event and a status value."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from control.test_control import RecordingHost
from installation.control.attract import Attract
from installation.control.show_control import ShowControl
from installation.control.unattended import Look, Unattended
from installation.core.messages import Control, Scene
from installation.generation.choice import params_from_config
from installation.show import AttractConfig, ShowError, parse_show

PROMPTS = ["a lantern in the fog", "a door left ajar", "footprints in snow"]


def config(**changes) -> AttractConfig:
    return AttractConfig(**{"enabled": True, "after_s": 30.0, "prompts": PROMPTS, "prompt_s": 10.0, **changes})


def test_attract_starts_after_after_s_with_nobody_there():
    a = Attract(config(), now=0.0)
    assert a.tick(29.9, present=False) is None and not a.active
    change = a.tick(30.0, present=False)
    assert change is not None and change.on and change.why == "nobody for 30 s" and a.active
    assert a.tick(31.0, present=False) is None  # once


def test_presence_holds_it_off_and_ends_it_the_moment_someone_comes():
    a = Attract(config(), now=0.0)
    for t in range(0, 100, 5):
        assert a.tick(float(t), present=True) is None  # somebody is there: the timer never runs out
    assert a.tick(124.9, present=False) is None  # last seen at 95: not 30 s yet
    assert a.tick(125.0, present=False).on  # 30 s after the last sighting
    end = a.tick(135.0, present=True)
    assert end is not None and not end.on and end.why == "presence" and end.lasted_s == 10.0


def test_speech_and_operators_end_it_and_restart_the_wait():
    a = Attract(config(), now=0.0)
    a.tick(30.0, present=False)
    end = a.activity(31.0, "speech")
    assert end is not None and not end.on and end.why == "speech"
    assert a.activity(32.0, "operator /jadong/prompt") is None  # already off: nothing to report
    assert a.tick(61.9, present=False) is None  # the wait counts from the last word
    assert a.tick(62.0, present=False).on


def test_without_vision_only_silence_counts():
    a = Attract(config(after_s=5.0), now=0.0)
    assert a.tick(5.0, present=False).on  # nobody present is all a show without [vision] knows


def test_a_disabled_show_never_attracts_and_closed_ends_it():
    assert Attract(config(enabled=False), now=0.0).tick(1e6, present=False) is None
    a = Attract(config(), now=0.0)
    a.tick(30.0, present=False)
    end = a.tick(31.0, present=False, open_=False)
    assert end is not None and end.why == "closed"
    assert a.tick(100.0, present=False, open_=False) is None  # never while closed
    assert a.tick(129.0, present=False) is None  # opened at 100: the wait starts again
    assert a.tick(130.0, present=False).on


def test_the_prompt_cycle_turns_every_prompt_s():
    a = Attract(config(), now=0.0)
    assert a.prompt_index(0.0) is None
    a.tick(30.0, present=False)
    assert [a.prompt_index(30.0 + t) for t in (0, 9.9, 10, 20, 30, 45)] == [0, 0, 1, 2, 0, 1]
    b = Attract(config(behaviour="still", image="assets/stills/coffee.jpg"), now=0.0)
    b.tick(30.0, present=False)
    assert b.active and b.prompt_index(31.0) is None


def test_forced_on_by_staff_survives_a_visitor_who_stays_until_they_speak():
    a = Attract(config(), now=0.0)
    a.tick(1.0, present=True)
    assert a.force(True, 2.0, "osc 127.0.0.1:9").on
    assert a.tick(3.0, present=True) is None and a.active  # no one *came*: they were there
    assert not a.activity(4.0, "speech").on


# --- with the show control -------------------------------------------------------------------

class Clock:
    def __init__(self, when: datetime) -> None:
        self.when = when

    def __call__(self) -> datetime:
        return self.when


BERLIN = ZoneInfo("Europe/Berlin")
SHOW = {
    "show": {"name": "attract-test"},
    "prompt": {"initial": "a quiet garden at dawn"},
    "attract": {"enabled": True, "after_s": 30, "prompts": PROMPTS, "prompt_s": 10, "caption": "Say a wish"},
    "hours": {"timezone": "Europe/Berlin", "default": "10:00-18:00", "closed": "dim", "dim": 0.3,
              "caption": "Open 10-18", "fade_s": 2},
    "cues": [{"name": "dawn", "prompt": "the sun rises over the sea", "style": "ink"}],
    "styles": {"ink": "{speech}, ink wash"},
}


class Control_(ShowControl):
    """The show control on a wall clock the test sets, ticked `at` seconds after its start
    (operators' controls are stamped with the real monotonic clock, so the ticks are too)."""

    def at(self, seconds: float) -> None:
        self.tick(self.t0 + seconds)


def control_at(when: datetime, show: dict = SHOW) -> tuple[Control_, RecordingHost, Clock]:
    parsed = parse_show(show, "attract-test.toml")
    host = RecordingHost()
    ctl = Control_(parsed, host, params_from_config(parsed.generator))
    clock = Clock(when)
    ctl.t0 = time.monotonic()
    ctl.unattended = Unattended(parsed, host.on_event, clock=clock, now=ctl.t0)
    return ctl, host, clock


def events(host: RecordingHost, name: str) -> list[dict]:
    return [fields for event, fields in host.events if event == name]


def status(ctl: ShowControl) -> dict[str, tuple]:
    return dict(ctl.status_values())


def test_attract_never_touches_the_show_state_and_gives_it_back_exactly():
    ctl, host, _ = control_at(datetime(2024, 6, 3, 12, tzinfo=BERLIN))
    ctl.handle(Control(address="/jadong/cue/go", args=("dawn",)))
    before = (ctl.state.prompt, ctl.state.cue_index, ctl.state.style, ctl.state.words, ctl.state.templated)
    published = len(host.prompts)
    ctl.at(0.0)
    ctl.at(31.0)  # the operator's cue was at ~0: 31 s of nobody
    u = ctl.unattended
    assert u.attracting and u.attract_prompt is not None and u.attract_prompt.text == PROMPTS[0]
    assert u.attract_prompt.source == "attract" and u.look == Look("caption", "Say a wish")
    assert status(ctl)["/jadong/status/attract"] == (1,) and status(ctl)["/jadong/status/open"] == (1,)
    first = u.attract_prompt
    ctl.at(35.0)
    assert u.attract_prompt is first  # the same object until the cycle turns
    ctl.at(41.0)
    assert u.attract_prompt.text == PROMPTS[1]
    # The attract prompts go to the generator beside the show state (the app puts them in the
    # slot): nothing was published through the show control, and its state is as it was.
    assert len(host.prompts) == published
    assert (ctl.state.prompt, ctl.state.cue_index, ctl.state.style, ctl.state.words, ctl.state.templated) == before
    ctl.state.seen = Scene(presence=True, people=1)
    ctl.at(42.0)
    assert not u.attracting and u.attract_prompt is None and u.look.kind == "live" and u.look.fade_s == 1.5
    assert [(e["state"], e["why"]) for e in events(host, "attract")] == [("on", "nobody for 30 s"),
                                                                      ("off", "presence")]
    assert events(host, "attract")[-1]["lasted_s"] == 11.0


def test_an_operators_control_ends_attract_but_a_status_poll_does_not():
    ctl, host, _ = control_at(datetime(2024, 6, 3, 12, tzinfo=BERLIN))
    ctl.at(0.0)
    ctl.unattended.attract.force(True, ctl.t0, "test")  # on now, without waiting
    for passive in ("/jadong/status", "/jadong/queue"):
        ctl.handle(Control(address=passive, sender=("127.0.0.1", 9)))
    ctl.handle(Control(address="/jadong/strength", query=True, sender=("127.0.0.1", 9)))  # a query
    assert ctl.unattended.attracting
    ctl.handle(Control(address="/jadong/strength", args=(0.7,)))
    assert not ctl.unattended.attracting
    assert events(host, "attract")[-1]["why"] == "operator /jadong/strength"


def test_attract_by_hand_over_osc_and_its_refusals():
    ctl, host, _ = control_at(datetime(2024, 6, 3, 12, tzinfo=BERLIN))
    ctl.at(0.0)
    ctl.handle(Control(address="/jadong/attract", args=(True,), sender=("127.0.0.1", 9)))
    assert ctl.unattended.attracting and events(host, "attract")[-1]["why"] == "osc 127.0.0.1:9"
    ctl.handle(Control(address="/jadong/attract", query=True, sender=("127.0.0.1", 9)))
    assert host.replies[-1] == (("127.0.0.1", 9), "/jadong/attract", 1)
    ctl.handle(Control(address="/jadong/attract", args=(False,), sender=("127.0.0.1", 9)))
    assert not ctl.unattended.attracting
    plain, plain_host, _ = control_at(datetime(2024, 6, 3, 12, tzinfo=BERLIN), {"show": {"name": "plain"}})
    plain.handle(Control(address="/jadong/attract", args=(True,), sender=("127.0.0.1", 9)))
    assert plain_host.replies[-1][1] == "/jadong/error" and "[attract] enabled = true" in plain_host.replies[-1][3]


def test_closing_pauses_the_generator_ends_attract_and_dims_the_screen():
    ctl, host, clock = control_at(datetime(2024, 6, 3, 17, 59, tzinfo=BERLIN))
    u = ctl.unattended
    ctl.at(0.0)
    assert u.open and not u.generator_paused and events(host, "hours")[0]["why"] == "start"
    ctl.at(30.0)
    assert u.attracting
    clock.when = datetime(2024, 6, 3, 18, 0, tzinfo=BERLIN)
    ctl.at(31.0)
    assert not u.open and u.generator_paused and not u.attracting
    assert u.look == Look("dim", "Open 10-18", level=0.3, fade_s=2.0)
    closed = events(host, "hours")[-1]
    assert closed == {"state": "closed", "why": "schedule", "override": "auto", "until": "2024-06-04T10:00+02:00",
                      "changed": True}
    assert events(host, "attract")[-1]["why"] == "closed"
    assert status(ctl)["/jadong/status/open"] == (0,)
    ctl.at(1000.0)
    assert not u.attracting  # never attracts while closed
    clock.when = datetime(2024, 6, 4, 10, 0, tzinfo=BERLIN)
    ctl.at(1001.0)
    assert u.open and not u.generator_paused and u.look == Look("live", fade_s=2.0)  # fades back as it faded out
    ctl.at(1029.9)
    assert not u.attracting  # the wait began at opening (the last closed frame), not at closing
    ctl.at(1031.0)
    assert u.attracting


def test_the_hours_override_over_the_address_table():
    ctl, host, clock = control_at(datetime(2024, 6, 3, 12, tzinfo=BERLIN))
    ctl.at(0.0)
    ctl.handle(Control(address="/jadong/hours/override", args=("closed",), sender=("127.0.0.1", 9)))
    assert not ctl.unattended.open and ctl.unattended.generator_paused
    said = events(host, "hours")[-1]
    assert said["state"] == "closed" and said["override"] == "closed" and said["by"] == "osc 127.0.0.1:9"
    ctl.handle(Control(address="/jadong/hours/override", query=True, sender=("127.0.0.1", 9)))
    assert host.replies[-1] == (("127.0.0.1", 9), "/jadong/hours/override", "closed")
    ctl.handle(Control(address="/jadong/hours/override", args=("auto",), sender=("127.0.0.1", 9)))
    assert ctl.unattended.open and ctl.unattended.override == "auto"


def test_a_clip_or_still_rests_the_generator_and_prompts_do_not():
    show = {**SHOW, "attract": {"enabled": True, "after_s": 30, "behaviour": "still",
                                "image": "assets/stills/coffee.jpg", "caption": "Say a wish", "fade_s": 1}}
    ctl, _, _ = control_at(datetime(2024, 6, 3, 12, tzinfo=BERLIN), show)
    ctl.at(30.0)
    u = ctl.unattended
    assert u.attracting and u.generator_paused and u.attract_prompt is None
    assert u.look == Look("still", "Say a wish", "assets/stills/coffee.jpg", fade_s=1.0)


@pytest.mark.parametrize("changes, why", [
    ({"behaviour": "prompts", "prompts": []}, 'behaviour "prompts" needs prompts'),
    ({"behaviour": "clip"}, 'behaviour "clip" needs clip'),
    ({"behaviour": "still", "image": "no/such.png"}, "attract.image: no file"),
])
def test_an_attract_section_without_what_it_shows_is_refused(changes, why):
    with pytest.raises(ShowError, match=why):
        parse_show({"attract": {"enabled": True, **changes}}, "x.toml")
