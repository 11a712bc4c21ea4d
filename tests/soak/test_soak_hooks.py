"""The faults at their real places: a camera lost mid-read goes through the worker's own
loss-and-reopen path, a microphone error through the mic worker's close-and-reopen, each on the
real demo inputs; `/jadong/fault` is refused unless the app runs with --faults; the harness's
malformed packets are answered by the real OSC server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from installation.control.osc import OscServer
from installation.control.show_control import ShowControl
from installation.core.channels import DropOldestQueue, LatestSlot
from installation.core.faults import FaultInjector
from installation.core.messages import AudioChunk, CameraFrame, Control, GenerationParams
from installation.inputs.camera import CameraWorker, OpenCVSource
from installation.inputs.microphone import MicWorker
from installation.inputs.wav import WavFileSource
from installation.show import ASSETS_DIR, CameraConfig, OscConfig, parse_show
from installation.soak.osc_client import OscClient, is_error_for, is_reply

CLIP = ASSETS_DIR / "demo_loop.mp4"
WISH = ASSETS_DIR / "demo_speech.wav"


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def recovered(faults: FaultInjector, kind: str, seen: list) -> bool:
    seen += faults.take_reports()
    return any(r.kind == kind and r.state == "recovered" for r in seen)


def test_a_lost_camera_is_reopened_and_its_next_frame_is_the_recovery():
    faults = FaultInjector(enabled=True)
    events: list[tuple[str, dict]] = []
    slot: LatestSlot[CameraFrame] = LatestSlot("camera")
    worker = CameraWorker(OpenCVSource(CameraConfig(source=str(CLIP), loop=True)), slot, retry_s=0.05,
                          on_event=lambda e, **f: events.append((e, f)), faults=faults)
    worker.start()
    try:
        assert wait_for(lambda: worker.frames > 3)
        faults.arm("camera_lost")
        seen: list = []
        assert wait_for(lambda: recovered(faults, "camera_lost", seen))
    finally:
        worker.stop()
        worker.join(5)
    states = [f.get("state") for e, f in events if e == "camera"]
    assert states[:3] == ["ok", "lost", "ok"]  # the real path: lost, said once, reopened
    assert "injected fault camera_lost" in events[1][1]["reason"]
    assert worker.losses == 1
    fired, done = (next(r for r in seen if r.state == s) for s in ("fired", "recovered"))
    assert done.recovered_mono > fired.fired_mono
    assert 0.05 <= done.recovered_after_s < 2.0  # at least the retry wait, then a frame


def test_a_microphone_error_reopens_the_source_and_audio_flows_again():
    faults = FaultInjector(enabled=True)
    errors: list[str] = []
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 1000)
    worker = MicWorker(WavFileSource(WISH, loop=True), audio, on_error=lambda stage, exc: errors.append(str(exc)),
                       faults=faults)
    worker.start()
    try:
        assert wait_for(lambda: worker.rate_meter.count > 5)
        faults.arm("mic_error")
        seen: list = []
        assert wait_for(lambda: recovered(faults, "mic_error", seen))
        count = worker.rate_meter.count
        assert wait_for(lambda: worker.rate_meter.count > count + 5)  # and it keeps flowing
    finally:
        worker.stop()
        worker.join(5)
    assert worker.opened == 2
    assert any("injected fault mic_error" in e for e in errors)


SHOW = {"osc": {"enabled": False}}


class Host:
    """What the show control answers through: replies and events, remembered."""

    def __init__(self) -> None:
        self.replies: list[tuple] = []
        self.events: list[tuple] = []

    def reply(self, sender, address, *args):
        self.replies.append((address, *args))

    def on_event(self, event, **fields):
        self.events.append((event, fields))


@pytest.mark.parametrize("enabled", [False, True])
def test_the_fault_address_arms_only_with_faults_on(enabled):
    host = Host()
    faults = FaultInjector(enabled=enabled)
    ctl = ShowControl(parse_show(SHOW, Path("soak.toml")), host, GenerationParams(), faults=faults)
    ctl.handle(Control(address="/jadong/fault", args=("generator_nan",), sender=("127.0.0.1", 9)))
    if enabled:
        assert host.replies == [] and faults.take("generator_nan")
        ctl.handle(Control(address="/jadong/fault", args=("gremlins",), sender=("127.0.0.1", 9)))
        assert host.replies[0][:2] == ("/jadong/error", "/jadong/fault")
        assert "unknown fault 'gremlins'" in host.replies[0][2] and "camera_lost" in host.replies[0][2]
    else:
        assert host.replies == [("/jadong/error", "/jadong/fault",
                                 "fault injection is off (the app was not started with --faults)")]


def test_the_harness_malformed_packets_get_error_replies_from_the_real_server():
    controls: DropOldestQueue[Control] = DropOldestQueue("controls", 100)
    server = OscServer(OscConfig(port=0), controls)
    server.start()
    client = OscClient(server.port)
    try:
        t = client.send_raw(b"\x00\x01\x02 not OSC at all \xff\xfe")
        client.send_raw(b"/jadong/prompt\x00\x00,s\x00\x00")
        client.send_raw(b"/jadong/strength\x00\x00\x00\x00,f\x00\x00\x3f\x00")
        assert client.wait(is_error_for("/jadong/strength"), t, 5) is not None
        assert client.wait(is_error_for("/jadong/prompt"), t, 5) is not None
        assert client.wait(is_reply("/jadong/strength"), t, 0.2) is None  # nothing else came back
        assert controls.drain() == []  # none of it reached the show
    finally:
        client.close()
        server.stop()
