"""The whole OSC control surface against a running show, over real UDP on loopback:
every address set and queried, error replies, refused sources, bundles, cues, show loading,
capture, status feedback and a flood."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from installation.app import App, RunOptions
from installation.control import show_control as control_module
from installation.control.addresses import ADDRESSES
from installation.harness import start_show_thread
from installation.show import parse_show

WAIT = 5.0

SHOW = {
    "show": {"name": "surface", "title": "Surface"},
    "camera": {"source": "assets/demo_loop.mp4"},
    "microphone": {"source": "none"},
    "prompt": {"template": "{speech}, woodcut", "initial": "an empty stage"},
    "generator": {"kind": "preview", "width": 128, "height": 128, "max_fps": 30},
    "display": {"mode": "headless", "width": 320, "height": 180, "fps": 60},
    "osc": {"port": 0},
    "styles": {"ink": "{speech}, ink wash painting", "neon": "{speech}, neon noir"},
    "cues": [
        {"name": "dawn", "prompt": "a field at dawn", "strength": 0.3, "seed": 11},
        {"name": "storm", "prompt": "a lighthouse in a storm", "style": "ink", "steps": 2, "blend_s": 2.0},
        {"name": "dark", "blackout": True, "fade_s": 0.0},
    ],
}

# One sample value per value address: the test fails when an address is added without one.
SAMPLES = {
    "/jadong/prompt": "a red fox in the snow",
    "/jadong/prompt/blend": 1.5,
    "/jadong/negative": "blurry",
    "/jadong/style": "neon",
    "/jadong/strength": 0.75,
    "/jadong/steps": 3,
    "/jadong/seed": 1234,
    "/jadong/seed/drift": 0.25,
    "/jadong/mode": "txt2img",
    "/jadong/listen": 0,
    "/jadong/freeze": 1,
    "/jadong/blackout": 1,
    "/jadong/blackout/fade": 2.5,
    "/jadong/crossfade": 0.8,
    "/jadong/caption": 0,
    "/jadong/caption/text": "안녕하세요",
    "/jadong/hud": 1,
    "/jadong/hours/override": "auto",  # closing would rest the generator the later checks read
    "/jadong/attract": 0,  # this show has no [attract]: on would be refused
}


class Peer:
    """An OSC peer on its own UDP socket, so replies come back to it."""

    def __init__(self, port: int, bind: str = "127.0.0.1") -> None:
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.sock.settimeout(WAIT)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def send(self, address: str, *args) -> None:
        b = OscMessageBuilder(address=address)
        for a in args:
            b.add_arg(a)
        self.sock.sendto(b.build().dgram, self.target)

    def send_bundle(self, when: float, messages: list[tuple[str, tuple]]) -> None:
        bundle = OscBundleBuilder(when)
        for address, args in messages:
            b = OscMessageBuilder(address=address)
            for a in args:
                b.add_arg(a)
            bundle.add_content(b.build())
        self.sock.sendto(bundle.build().dgram, self.target)

    def receive(self, address: str | None = None) -> OscMessage:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            data, _ = self.sock.recvfrom(65536)
            for timed in OscPacket(data).messages:
                if address is None or timed.message.address == address.lower():
                    return timed.message
        raise AssertionError(f"no reply on {address}")

    def query(self, address: str) -> list:
        self.send(address)
        return list(self.receive(address).params)

    def close(self) -> None:
        self.sock.close()


def start_app(tmp_path: Path, changes: dict | None = None) -> tuple[App, threading.Thread]:
    data = json.loads(json.dumps(SHOW))
    for section, values in (changes or {}).items():
        data.setdefault(section, {}).update(values) if isinstance(values, dict) else data.__setitem__(section, values)
    return start_show_thread(parse_show(data, tmp_path / "surface.toml"),
                             RunOptions(log_path=tmp_path / "events.jsonl"))


@pytest.fixture
def running(tmp_path, monkeypatch):
    monkeypatch.setattr(control_module, "CAPTURES_DIR", tmp_path / "captures")
    app, thread = start_app(tmp_path)
    peer = Peer(app.osc.port)
    yield app, peer
    peer.close()
    app.stop_event.set()
    thread.join(15)
    assert not thread.is_alive()


def events(app: App) -> list[dict]:
    return [json.loads(x) for x in app.events.path.read_text(encoding="utf-8").splitlines()]


def test_every_value_address_has_a_sample(running):
    # That every address has its handlers is tests/control/test_control.py's, without an App.
    assert set(SAMPLES) | {"/jadong/cue"} == {p for p, r in ADDRESSES.items() if r.kind == "value"}


def test_every_value_address_set_then_queried(running):
    app, peer = running
    for address, value in SAMPLES.items():
        peer.send(address, value)
        reply = peer.query(address)
        expected = value
        if address == "/jadong/style":
            expected = "neon"
        if isinstance(value, float):
            assert reply[0] == pytest.approx(value, abs=1e-6), address
        else:
            assert reply[0] == expected, address
    # The effects, not only the stored values:
    assert app.params_slot.get().strength == pytest.approx(0.75)
    assert app.params_slot.get().mode == "txt2img" and app.params_slot.get().steps == 3
    assert app.presenter.hud_visible and not app.presenter.caption_visible
    assert app.presenter.crossfade_s == pytest.approx(0.8)
    assert app.presenter.blackout_level() > 0.0
    # The style repaints the performer's words through the style's template.
    assert app.prompt_slot.get().text == "a red fox in the snow, neon noir"


def test_prompt_append_clear_and_query_case_insensitive(running):
    app, peer = running
    peer.send("/Jadong/Prompt", "a boat")
    peer.send("/jadong/prompt/append", "at night")
    assert peer.query("/JADONG/PROMPT") == ["a boat, at night"]
    peer.send("/jadong/prompt/clear")
    assert peer.query("/jadong/prompt") == ["an empty stage"]
    assert app.prompt_slot.get().text == "an empty stage"


@pytest.mark.parametrize("address, args, reason", [
    ("/jadong/strength", ("loud",), "expected a number"),
    ("/jadong/strength", (1.5,), "expected a value from 0 to 1"),
    ("/jadong/steps", (1, 2), "expected 1 argument"),
    ("/jadong/mode", ("sideways",), "expected one of img2img, txt2img, feedback"),
    ("/jadong/style", ("baroque",), "no style 'baroque'"),
    ("/jadong/cue/go", ("finale",), "no cue 'finale'"),
    ("/jadong/cue/go", (9,), "no cue number 9"),
    ("/jadong/show", ("../../etc/passwd",), "expected a show name"),
    ("/jadong/show", ("nonexistent",), "no show 'nonexistent'"),
    ("/jadong/prompt", ("   ",), "expected some words"),
    ("/jadong/nothing", (), "unknown address"),
])
def test_errors_are_replied_with_address_and_reason(running, address, args, reason):
    app, peer = running
    before = app.state.prompt
    peer.send(address, *args)
    reply = peer.receive("/jadong/error")
    assert reply.params[0].lower() == address.lower()
    assert reason in reply.params[1]
    assert app.state.prompt == before
    assert app.stop_event.is_set() is False


def test_cues_by_name_number_next_and_prev(running):
    app, peer = running
    peer.send("/jadong/cue/next")
    assert peer.query("/jadong/cue") == [1, "dawn"]
    assert app.prompt_slot.get().text == "a field at dawn"
    assert app.params_slot.get().strength == pytest.approx(0.3) and app.params_slot.get().seed == 11
    peer.send("/jadong/cue/go", "STORM")
    assert peer.query("/jadong/cue") == [2, "storm"]
    assert app.prompt_slot.get().text == "a lighthouse in a storm, ink wash painting"
    assert app.params_slot.get().prompt_blend_s == pytest.approx(2.0)
    peer.send("/jadong/cue/prev")
    assert peer.query("/jadong/cue") == [1, "dawn"]
    peer.send("/jadong/cue/go", 3)
    assert peer.query("/jadong/blackout") == [1]
    peer.send("/jadong/cue/next")
    assert "already at the last cue" in peer.receive("/jadong/error").params[1]
    assert [e["name"] for e in events(app) if e["event"] == "cue"] == ["dawn", "storm", "dawn", "dark"]


def test_timed_bundle_waits_without_blocking_the_server(running):
    app, peer = running
    peer.send("/jadong/strength", 0.1)
    assert peer.query("/jadong/strength") == [pytest.approx(0.1)]
    due = time.time() + 1.0
    peer.send_bundle(due, [("/jadong/strength", (0.9,)), ("/jadong/seed", (77,))])
    # Messages sent after the bundle are not held up behind it.
    peer.send("/jadong/steps", 4)
    assert peer.query("/jadong/steps") == [4]
    assert peer.query("/jadong/strength") == [pytest.approx(0.1)]
    assert time.time() < due, "the server was blocked by the bundle"
    time.sleep(max(0.0, due - time.time()) + 0.3)
    assert peer.query("/jadong/strength") == [pytest.approx(0.9)]
    assert peer.query("/jadong/seed") == [77]
    # An immediate bundle applies at once.
    peer.send_bundle(0, [("/jadong/seed", (5,))])  # 0 is "immediately" in python-osc's builder
    assert peer.query("/jadong/seed") == [5]


def test_capture_saves_frame_and_its_words(running, tmp_path):
    app, peer = running
    peer.send("/jadong/prompt", "a paper crane")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frame = app.current_frame()
        if frame is not None and frame.prompt.text == "a paper crane":
            break
        time.sleep(0.05)
    peer.send("/jadong/capture")
    path = Path(peer.receive("/jadong/capture").params[0])
    assert path.exists() and path.parent == tmp_path / "captures"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["prompt"] == "a paper crane" and meta["generator"] == "preview"
    assert set(meta["params"]) >= {"strength", "steps", "seed", "mode"}
    import cv2

    image = cv2.imread(str(path))
    assert image.shape == (128, 128, 3)


def test_status_on_request(running):
    app, peer = running
    peer.send("/jadong/prompt", "a quiet pond")
    peer.send("/jadong/status")
    data, _ = peer.sock.recvfrom(65536)
    assert OscBundle.dgram_is_bundle(data)
    values = {t.message.address: t.message.params for t in OscPacket(data).messages}
    assert values["/jadong/status/prompt"] == ["a quiet pond"]
    assert values["/jadong/status/fps/display"][0] > 0
    assert values["/jadong/status/generator"][0].startswith("preview")


def test_show_loaded_by_name(running, tmp_path, monkeypatch):
    app, peer = running
    shows = tmp_path / "shows"
    shows.mkdir()
    (shows / "second.toml").write_text(
        '[show]\nname = "second"\n[prompt]\ninitial = "a second room"\n'
        '[generator]\nkind = "preview"\nwidth = 64\nheight = 64\n[microphone]\nsource = "none"\n')
    (shows / "broken.toml").write_text('[generator]\nsteps = "many"\n')
    monkeypatch.setattr(control_module, "SHOWS_DIR", shows)
    peer.send("/jadong/show", "broken")
    reply = peer.receive("/jadong/error")
    assert "generator.steps" in reply.params[1]
    peer.send("/jadong/show", "second")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and app.show.show.name != "second":
        time.sleep(0.05)
    assert app.show.show.name == "second"
    assert peer.query("/jadong/prompt") == ["a second room"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        frame = app.current_frame()
        if frame is not None and frame.prompt.text == "a second room":
            break
        time.sleep(0.05)
    assert app.current_frame().image.shape == (64, 64, 3)


def test_refused_source_changes_nothing(tmp_path):
    app, thread = start_app(tmp_path, {"osc": {"port": 0, "allow": ["10.99.0.0/16"]}})
    peer = Peer(app.osc.port)
    try:
        peer.send("/jadong/prompt", "an intruder's words")
        reply = peer.receive("/jadong/error")
        assert "not allowed" in reply.params[1]
        time.sleep(0.2)
        assert app.state.prompt.text == "an empty stage"
        assert app.osc.stats().refused >= 1
    finally:
        peer.close()
        app.stop_event.set()
        thread.join(15)


def test_status_pushed_to_targets_and_fixed_reply_port(tmp_path):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    replies = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    replies.bind(("127.0.0.1", 0))
    replies.settimeout(WAIT)
    app, thread = start_app(tmp_path, {"osc": {
        "port": 0, "status_targets": [f"127.0.0.1:{listener.getsockname()[1]}"], "status_hz": 20,
        "reply_port": replies.getsockname()[1]}})
    peer = Peer(app.osc.port)
    try:
        pushes = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(pushes) < 5:
            data, _ = listener.recvfrom(65536)
            pushes.append({t.message.address: t.message.params for t in OscPacket(data).messages})
        assert len(pushes) == 5
        assert pushes[-1]["/jadong/status/prompt"] == ["an empty stage"]
        assert pushes[-1]["/jadong/status/listening"] == [1]
        # QLab-style: the reply goes to the fixed port, not the sender's.
        peer.send("/jadong/seed")
        data, _ = replies.recvfrom(65536)
        assert OscMessage(data).address == "/jadong/seed"
    finally:
        peer.close()
        listener.close()
        replies.close()
        app.stop_event.set()
        thread.join(15)


def test_flood_keeps_the_latest_value_and_the_display_running(running):
    """A bounded flood (2 s at 10,000 messages a second): the last value sent wins and the
    display goes on presenting. The full 10 s, from another process, is `python -m installation.bench osc`."""
    app, peer = running
    frames_before = app.presenter.presented_frames
    rendered_before = app.presenter._rate.count
    sent = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < 2.0:
        while sent < elapsed * 10_000:  # paced at the 10,000 messages a second
            peer.send("/jadong/strength", (sent % 1000) / 1000.0)
            sent += 1
        time.sleep(0.001)
    last = 0.4242
    peer.send("/jadong/strength", last)
    time.sleep(0.5)
    assert peer.query("/jadong/strength") == [pytest.approx(last, abs=1e-6)]
    assert sent > 2000
    assert app.presenter._rate.count - rendered_before > 30, "the display stopped presenting"
    assert app.presenter.presented_frames > frames_before
    app._osc_log.flush()  # the 10 s summary window may still be open
    floods = [e for e in events(app) if e["event"] == "osc_flood"]
    assert floods, "a flood is summarised in the event log, not written line by line"
    assert sum(1 for e in events(app) if e["event"] == "osc") < sent / 10


def test_a_show_that_fails_to_start_gives_the_old_one_back(running, tmp_path, monkeypatch):
    app, peer = running
    shows = tmp_path / "shows"
    shows.mkdir()
    (shows / "fragile.toml").write_text('[show]\nname = "fragile"\n[microphone]\nsource = "none"\n'
                                        '[generator]\nkind = "preview"\nwidth = 64\nheight = 64\n')
    monkeypatch.setattr(control_module, "SHOWS_DIR", shows)
    real_build = app._build_generator
    calls = []

    def fails_once():
        calls.append(app.show.show.name)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        real_build()

    monkeypatch.setattr(app, "_build_generator", fails_once)
    peer.send("/jadong/show", "fragile")
    reply = peer.receive("/jadong/error")
    assert reply.params[0] == "/jadong/show" and "could not start" in reply.params[1]
    # The error is replied before the old show is rebuilt: wait for that to happen.
    deadline = time.monotonic() + 10
    while (len(calls) < 2 or app.show.show.name != "surface") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls == ["fragile", "surface"]
    assert app.show.show.name == "surface" and not app.stop_event.is_set()
    version = app.frame_slot.version
    deadline = time.monotonic() + 10
    while app.frame_slot.version < version + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.frame_slot.version >= version + 3, "no frames after going back to the old show"


def test_a_recording_stopped_by_a_full_disk_is_reported_to_staff(tmp_path, monkeypatch):
    """The show goes on; the event log and /jadong/status/error say why the video stopped."""
    import shutil

    import installation.display.recorder as recorder

    monkeypatch.setattr(recorder, "DISK_CHECK_S", 0.05)
    data = json.loads(json.dumps(SHOW))
    app, thread = start_show_thread(parse_show(data, tmp_path / "surface.toml"),
                                    RunOptions(log_path=tmp_path / "events.jsonl", record=tmp_path / "show.avi"))
    peer = Peer(app.osc.port)
    try:
        rec = app.presenter.recorder
        assert rec is not None and rec.stopped is None
        rec.min_free_mb = shutil.disk_usage(tmp_path).free / 1024 / 1024 + 1024  # the disk is now "full"
        deadline = time.monotonic() + 10
        while not any(e.get("stage") == "recording" for e in events(app)) and time.monotonic() < deadline:
            time.sleep(0.05)
        [stop] = [e for e in events(app) if e.get("stage") == "recording"]
        assert stop["event"] == "error" and "nearly full" in stop["reason"]
        peer.send("/jadong/status")
        data, _ = peer.sock.recvfrom(65536)
        values = {t.message.address: t.message.params for t in OscPacket(data).messages}
        assert "nearly full" in values["/jadong/status/error"][0]
        version = app.frame_slot.version
        while app.frame_slot.version < version + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.frame_slot.version >= version + 3  # the show went on
    finally:
        peer.close()
        app.stop_event.set()
        thread.join(15)
    assert not thread.is_alive()
