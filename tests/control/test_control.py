"""The show state without an App: ShowControl driven through a recording host, as the main
thread drives it. No window, socket, camera or generator: what a control changes is what the
host was asked to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from installation.control import show_control
from installation.control.addresses import ADDRESSES, ERROR_ADDRESS, STATUS_ADDRESSES
from installation.control.host import RuntimeStatus, ScreenSettings, ShowHost
from installation.control.show_control import ShowControl, initial_prompt
from installation.core.messages import Control, GeneratedFrame, GenerationParams, Prompt
from installation.show import PromptConfig, parse_show

PEER = ("127.0.0.1", 9001)


@dataclass
class RecordingHost:
    """A ShowHost that remembers every request, so a test can say what a control did."""

    screen: ScreenSettings = field(default_factory=ScreenSettings)
    prompts: list[Prompt] = field(default_factory=list)
    params: list[GenerationParams] = field(default_factory=list)
    listening: list[bool] = field(default_factory=list)
    replies: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[str, dict]] = field(default_factory=list)
    shows: list[Path] = field(default_factory=list)
    quits: list[str] = field(default_factory=list)
    status_sent: int = 0

    def publish_prompt(self, prompt: Prompt) -> None:
        self.prompts.append(prompt)

    def publish_params(self, params: GenerationParams) -> None:
        self.params.append(params)

    def set_listening(self, on: bool) -> None:
        self.listening.append(on)

    def reply(self, sender, address: str, *args: Any) -> None:
        self.replies.append((sender, address, *args))

    def send_status(self, sender) -> None:
        self.status_sent += 1

    def request_show(self, path: Path, sender) -> None:
        self.shows.append(path)

    def request_quit(self, source: str, sender) -> None:
        self.quits.append(source)

    def on_event(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    def runtime_status(self) -> RuntimeStatus:
        return RuntimeStatus(rates={"display": 60.0, "generator": 12.5}, generator="preview", dropped=3)

    def errors(self) -> list[tuple[Any, ...]]:
        return [r for r in self.replies if r[1] == ERROR_ADDRESS]


SHOW = {
    "prompt": {"template": "{speech}, woodcut", "initial": "an empty stage", "negative": "blurry"},
    "styles": {"ink": "{speech}, ink wash", "neon": "{speech}, neon"},
    "cues": [
        {"name": "dawn", "prompt": "a quiet dawn", "strength": 0.3, "caption": "morning"},
        {"name": "night", "style": "neon", "blackout": True, "fade_s": 2.0, "listen": False},
    ],
    "osc": {"enabled": False},
}


def control_for(host: ShowHost, **overrides: Any) -> ShowControl:
    show = parse_show({**SHOW, **overrides}, Path("test.toml"))
    return ShowControl(show, host, GenerationParams(strength=0.5, steps=1, seed=7))


def send(ctl: ShowControl, address: str, *args: Any, query: bool = False) -> None:
    ctl.handle(Control(address=address, args=tuple(args), sender=PEER, query=query))


def test_the_host_interface_is_what_the_app_implements():
    from installation.app import App

    wanted = [n for n in vars(ShowHost) if not n.startswith("_")]
    assert "publish_prompt" in wanted and "screen" in wanted
    for name in wanted:
        assert hasattr(App, name), name
        assert hasattr(RecordingHost, name) or name in RecordingHost.__dataclass_fields__, name


def test_the_show_starts_with_its_initial_prompt():
    start = initial_prompt(PromptConfig(template="{speech}, woodcut", initial="an empty stage", negative="blurry"))
    assert (start.text, start.negative, start.source) == ("an empty stage", "blurry", "show")
    host = RecordingHost()
    ctl = control_for(host)
    assert ctl.state.prompt.text == "an empty stage" and ctl.state.listening


def test_words_are_painted_through_the_template_and_styles():
    host = RecordingHost()
    ctl = control_for(host)
    ctl.from_speech("a red fox", caption="빨간 여우")
    assert host.prompts[-1].text == "a red fox, woodcut" and host.prompts[-1].caption == "빨간 여우"
    assert host.prompts[-1].source == "speech" and host.prompts[-1].negative == "blurry"
    send(ctl, "/jadong/style", "ink")
    assert host.prompts[-1].text == "a red fox, ink wash"
    send(ctl, "/jadong/prompt", "a lighthouse")  # a performer's words are painted as written
    assert host.prompts[-1].text == "a lighthouse" and host.prompts[-1].source == "osc"
    send(ctl, "/jadong/prompt/append", "at night.")
    assert host.prompts[-1].text == "a lighthouse, at night"
    send(ctl, "/jadong/negative", "text")
    assert host.prompts[-1].negative == "text"
    send(ctl, "/jadong/prompt/clear")
    assert (host.prompts[-1].text, host.prompts[-1].negative) == ("an empty stage", "blurry")
    assert host.errors() == []


def test_settings_reach_the_generator_and_answer_queries():
    host = RecordingHost()
    ctl = control_for(host)
    send(ctl, "/jadong/strength", 0.8)
    send(ctl, "/jadong/seed", 99)
    assert (host.params[-1].strength, host.params[-1].seed, host.params[-1].steps) == (0.8, 99, 1)
    send(ctl, "/jadong/strength", query=True)
    assert host.replies[-1] == (PEER, "/jadong/strength", 0.8)


def test_the_screen_is_driven_through_its_interface():
    host = RecordingHost()
    ctl = control_for(host)
    send(ctl, "/jadong/crossfade", 2.5)
    send(ctl, "/jadong/caption", False)
    send(ctl, "/jadong/hud", True)
    send(ctl, "/jadong/caption/text", "hello")
    send(ctl, "/jadong/blackout", True)
    screen = host.screen
    assert (screen.crossfade_s, screen.caption_visible, screen.hud_visible) == (2.5, False, True)
    assert screen.caption == "hello" and screen.blackout
    send(ctl, "/jadong/crossfade", query=True)
    send(ctl, "/jadong/hud", query=True)
    assert host.replies[-2:] == [(PEER, "/jadong/crossfade", 2.5), (PEER, "/jadong/hud", 1)]


def test_cues_change_everything_they_name_and_are_logged():
    host = RecordingHost()
    ctl = control_for(host)
    send(ctl, "/jadong/cue/next")
    assert host.prompts[-1].text == "a quiet dawn" and host.params[-1].strength == 0.3
    assert host.screen.caption == "morning" and ctl.cue_name() == "dawn"
    send(ctl, "/jadong/cue/go", "NIGHT")
    assert host.screen.blackout and ctl.state.blackout_fade_s == 2.0 and host.listening == [False]
    assert host.prompts[-1].text == "a quiet dawn, neon"
    assert [f["name"] for e, f in host.events if e == "cue"] == ["dawn", "night"]
    send(ctl, "/jadong/cue/next")  # past the last cue: refused, nothing changes
    assert host.errors()[-1][2:] == ("/jadong/cue/next", "already at the last cue (night)")
    send(ctl, "/jadong/cue", query=True)
    assert host.replies[-1] == (PEER, "/jadong/cue", 2, "night")


def test_refused_controls_reply_log_and_change_nothing():
    host = RecordingHost()
    ctl = control_for(host)
    before = ctl.state.prompt
    send(ctl, "/jadong/style", "baroque")
    send(ctl, "/jadong/prompt", "   ")
    send(ctl, "/jadong/cue/go", 9)
    send(ctl, "/jadong/show", "../etc/passwd")
    assert [r[2] for r in host.errors()] == ["/jadong/style", "/jadong/prompt", "/jadong/cue/go", "/jadong/show"]
    assert "no style 'baroque'" in host.errors()[0][3] and "cues 1 to 2" in host.errors()[2][3]
    assert ctl.state.prompt == before and host.prompts == [] and host.shows == []
    assert [f["address"] for e, f in host.events if e == "error"] == [r[2] for r in host.errors()]
    assert ctl.state.last_error.startswith("/jadong/show:")


def test_a_bug_in_a_handler_costs_one_control_not_the_show(monkeypatch):
    host = RecordingHost()
    ctl = control_for(host)
    monkeypatch.setitem(ctl.setters, "/jadong/strength", lambda c: 1 / 0)
    send(ctl, "/jadong/strength", 0.2)
    send(ctl, "/jadong/seed", 5)
    assert "ZeroDivisionError" in host.errors()[0][3] and host.params[-1].seed == 5


def test_shows_quit_and_status_are_requests_to_the_host(tmp_path, monkeypatch):
    shows = tmp_path / "shows"
    shows.mkdir()
    (shows / "other.toml").write_text("[show]\nname = 'other'\n", encoding="utf-8")
    monkeypatch.setattr(show_control, "SHOWS_DIR", shows)
    host = RecordingHost()
    ctl = control_for(host)
    send(ctl, "/jadong/show", "other")
    send(ctl, "/jadong/status")
    send(ctl, "/jadong/quit")
    assert host.shows == [shows / "other.toml"] and host.status_sent == 1 and host.quits == ["osc"]


def test_status_values_are_every_status_address_in_order():
    host = RecordingHost()
    ctl = control_for(host)
    ctl.from_speech("a red fox", caption="a red fox")
    values = dict(ctl.status_values())
    assert list(values) == list(STATUS_ADDRESSES)
    assert values["/jadong/status/fps/display"] == (60.0,) and values["/jadong/status/dropped"] == (3,)
    assert values["/jadong/status/prompt"] == ("a red fox, woodcut",)
    assert values["/jadong/status/generator"] == ("preview",)
    # Each value's OSC type is the one the address table documents.
    kinds = {"float": float, "string": str, "int": int}
    for address, (value,) in values.items():
        assert isinstance(value, kinds[STATUS_ADDRESSES[address].split(":")[0]]), address


def test_every_address_has_a_handler_and_every_value_a_getter():
    ctl = control_for(RecordingHost())
    assert set(ctl.setters) | set(ctl.getters) == set(ADDRESSES)
    for path, row in ADDRESSES.items():
        if row.kind == "value":
            assert path in ctl.getters, path
        if row.kind == "action" or row.args:
            assert path in ctl.setters, path


def test_capture_writes_the_frame_and_its_words(tmp_path, monkeypatch):
    monkeypatch.setattr(show_control, "CAPTURES_DIR", tmp_path / "captures")
    host = RecordingHost()
    ctl = control_for(host)
    send(ctl, "/jadong/capture")
    assert host.errors()[-1][3] == "no generated frame on screen yet"
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0] = 255
    host.screen.current_frame = GeneratedFrame(image, Prompt("a red square"), GenerationParams(seed=3), "preview", "")
    send(ctl, "/jadong/capture")
    assert ctl.captures.flush()  # written off the main thread (control/archive.py) ...
    ctl.tick()  # ... and the reply follows the file, on the main thread
    (reply,) = [r for r in host.replies if r[1] == "/jadong/capture"]
    png = Path(reply[2])
    import json

    import cv2

    meta = json.loads(png.with_suffix(".json").read_text(encoding="utf-8"))
    assert meta["prompt"] == "a red square" and meta["params"]["seed"] == 3 and meta["show"]
    assert cv2.imread(str(png))[0, 0].tolist() == [0, 0, 255]  # BGR on disk: red


@pytest.mark.parametrize("listen, expected", [("always", True), ("gated", False)])
def test_listening_at_start_follows_the_show(listen, expected):
    ctl = control_for(RecordingHost(), speech={"listen": listen})
    assert ctl.state.listening is expected


# --- bounded status (issue #15) ----------------------------------------------------------------

class LongStatusHost(RecordingHost):
    def runtime_status(self) -> RuntimeStatus:
        return RuntimeStatus(rates={"display": 60.0}, generator="𝄞" * 5000, dropped=2**31)


def test_status_fits_one_small_datagram_whatever_the_state():
    """A 65,400-character prompt once made the status bundle too big for UDP, and the status
    replies and pushes stopped without a word. Every string is filled to more than any limit,
    with 4-byte UTF-8 characters: the bundle stays under 8 KB (common receive buffers)."""
    from installation.control.osc import build_bundle
    from installation.show import MAX_NAME_CHARS, MAX_PROMPT_CHARS

    host = LongStatusHost()
    long_name = "𝄞" * MAX_NAME_CHARS
    ctl = control_for(host, cues=[{"name": long_name, "prompt": "a dawn"}])
    send(ctl, "/jadong/cue/go", 1)
    huge = "𝄞" * 70_000
    ctl.state.prompt = Prompt(text=huge, negative=huge, caption=huge)
    ctl.state.last_transcript = ctl.state.last_error = ctl.state.caption_text = huge
    ctl.state.words = huge
    values = ctl.status_values()
    assert list(dict(values)) == list(STATUS_ADDRESSES)
    dgram = build_bundle(values)
    assert len(dgram) < 8192, len(dgram)
    prompt = dict(values)["/jadong/status/prompt"][0]
    assert prompt.endswith("…") and prompt.startswith("𝄞")
    assert dict(values)["/jadong/status/cue"] == (long_name,)  # a name at its limit is not cut
    # A prompt at its limit is shown whole.
    send(ctl, "/jadong/prompt", "p" * MAX_PROMPT_CHARS)
    assert dict(ctl.status_values())["/jadong/status/prompt"] == ("p" * MAX_PROMPT_CHARS,)


def test_appending_cannot_grow_the_prompt_past_its_limit():
    from installation.show import MAX_PROMPT_CHARS

    host = RecordingHost()
    ctl = control_for(host)
    send(ctl, "/jadong/prompt", "a" * (MAX_PROMPT_CHARS - 10))
    send(ctl, "/jadong/prompt/append", "b" * 20)
    [error] = host.errors()
    assert error[2] == "/jadong/prompt/append" and f"at most {MAX_PROMPT_CHARS} characters" in error[3]
    assert host.prompts[-1].text == "a" * (MAX_PROMPT_CHARS - 10)
    send(ctl, "/jadong/prompt/append", "b" * 5)
    assert host.prompts[-1].text.endswith(", bbbbb")


def test_long_refusal_reasons_are_cut_for_the_reply():
    host = RecordingHost()
    ctl = control_for(host)
    ctl.refuse(Control(address="/jadong/show", args=("x",), sender=PEER), "r" * 20_000)
    assert len(host.errors()[0][3]) <= 1000 and host.errors()[0][3].endswith("…")
    assert len(ctl.state.last_error) < 1100


def test_style_names_match_like_cue_names_whatever_the_case():
    """Show files refuse style names that differ only by case, so OSC may match them that way."""
    ctl = control_for(RecordingHost())
    send(ctl, "/jadong/style", "  NEON ")
    assert ctl.state.style == "neon"


def test_a_waiting_sender_learns_what_became_of_its_control():
    """The web page waits for the answer its POST gets: done, refused with the reason, or a
    query's values."""
    from concurrent.futures import Future

    ctl = control_for(RecordingHost())
    done: Future = Future()
    ctl.handle(Control(address="/jadong/strength", args=(0.7,), outcome=done))
    assert done.result(0).ok and ctl.state.params.strength == 0.7
    refused: Future = Future()
    ctl.handle(Control(address="/jadong/cue/go", args=("nowhere",), outcome=refused))
    assert not refused.result(0).ok and "nowhere" in refused.result(0).reason
    asked: Future = Future()
    ctl.handle(Control(address="/jadong/strength", query=True, outcome=asked))
    assert asked.result(0).values == (0.7,)
