"""NDI in: a real NDI sender in the test (tests/ndi_peer.py, straight on ndi-python) feeds
Jadong's NDI camera (inputs/ndi.py) over loopback, found by name at 127.0.0.1 (no mDNS daemon
here: discovery by address), by ndi://HOST/NAME, or by the sender's own address; the camera
worker's slot follows the sender's picture, and the camera is lost when the sender stops and
found again when it comes back. The show file's NDI source forms are checked by the schema."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from installation.core.channels import LatestSlot
from installation.core.interfaces import DeviceLost
from installation.inputs.camera import CameraWorker, open_frame_source
from installation.inputs.ndi import NdiFrameSource, name_matches, stream_part
from installation.show import CameraConfig, ShowError, load_show, parse_ndi_source
from ndi_peer import PatternSender


def unique(name: str) -> str:
    return f"jadong-test {name} {os.getpid()}-{time.monotonic_ns() % 10**6}"


def camera(source: str, **kw) -> NdiFrameSource:
    cfg = CameraConfig(source=source, **kw)
    src = open_frame_source(cfg)
    assert isinstance(src, NdiFrameSource)
    return src


def near(image: np.ndarray, colour, tol: int = 12) -> bool:
    return bool(np.abs(image.reshape(-1, 3).mean(0) - np.array(colour)).max() <= tol)


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Events:
    def __init__(self) -> None:
        self.items: list[dict] = []
        self._lock = threading.Lock()

    def __call__(self, kind: str, **fields) -> None:
        with self._lock:
            self.items.append({"kind": kind, **fields})

    def states(self) -> list[str]:
        with self._lock:
            return [e["state"] for e in self.items if e["kind"] == "camera"]


# --- the source's name in a show ------------------------------------------------------------

def test_the_forms_of_an_ndi_source():
    assert parse_ndi_source("ndi:Stage").name == "Stage"
    assert parse_ndi_source("NDI: MEDIA-PC (Stage) ").name == "MEDIA-PC (Stage)"
    by_host = parse_ndi_source("ndi://192.168.1.20/Stage left")
    assert (by_host.host, by_host.name, by_host.address) == ("192.168.1.20", "Stage left", "")
    direct = parse_ndi_source("ndi://media.local:5961")
    assert (direct.address, direct.name) == ("media.local:5961", "")
    assert parse_ndi_source("ndi://[fe80::1]:5961/cam").address == "[fe80::1]:5961"
    assert parse_ndi_source("assets/demo_loop.mp4") is None and parse_ndi_source("rtsp://cam/live") is None
    assert name_matches("MEDIA-PC (Stage)", "stage") and name_matches("MEDIA-PC (Stage)", "media-pc (stage)")
    assert not name_matches("MEDIA-PC (Stage 2)", "Stage") and stream_part("Stage") == "Stage"


@pytest.mark.parametrize("source, words", [
    ("ndi:", "expected an NDI source name"),
    ("ndi://10.0.0.5", "give the source's name"),
    ("ndi://10.0.0.5:99999", "a port from 1 to 65535"),
    ("ndi://bad host/x", "not an IP address or host name"),
])
def test_a_malformed_ndi_source_stops_the_show_file_naming_the_field(tmp_path, source, words):
    show = tmp_path / "x.toml"
    show.write_text(f'[camera]\nsource = "{source}"\n')
    with pytest.raises(ShowError) as err:
        load_show(show)
    assert "camera.source" in str(err.value) and words in str(err.value)


def test_ndi_ips_are_addresses_or_host_names(tmp_path):
    show = tmp_path / "x.toml"
    show.write_text('[camera]\nsource = "ndi:Stage"\nndi_ips = ["192.168.1.20", "media.local"]\n')
    assert load_show(show).camera.ndi_ips == ["192.168.1.20", "media.local"]
    show.write_text('[camera]\nsource = "ndi:Stage"\nndi_ips = ["192.168.1.20, 10.0.0.1"]\n')
    with pytest.raises(ShowError, match="camera.ndi_ips"):
        load_show(show)


# --- receiving ---------------------------------------------------------------------------------

def test_found_by_name_at_an_extra_address_it_reads_rgb_frames():
    name = unique("cam")
    with PatternSender(name, colour=(200, 40, 30), size=(320, 240)) as sender:
        src = camera(f"ndi:{name}", ndi_ips=["127.0.0.1"])
        try:
            src.open()
            image = src.read()
        finally:
            src.close()
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    assert near(image, (200, 40, 30))  # RGB, not BGR
    assert src.size == (320, 240) and src.connected_to == sender.full_name


@pytest.mark.parametrize("form", ["host", "address"])
def test_by_host_or_straight_to_the_senders_address(form):
    name = unique(form)
    with PatternSender(name, colour=(30, 200, 90)) as sender:
        source = f"ndi://127.0.0.1/{name}" if form == "host" else f"ndi://{sender.url_address()}"
        src = camera(source)  # no ndi_ips: the source names where to look
        try:
            src.open()
            assert near(src.read(), (30, 200, 90))
        finally:
            src.close()


def test_a_missing_source_is_lost_naming_where_it_looked_and_what_it_saw():
    with PatternSender(unique("other")) as other:
        src = camera(f"ndi:{unique('nobody')}", ndi_ips=["127.0.0.1"])
        src.find_timeout_s = 1.0
        with pytest.raises(DeviceLost) as err:
            src.open()
    message = str(err.value)
    assert "no NDI source by that name" in message and "127.0.0.1" in message
    assert other.full_name in message  # what was there instead


def test_the_camera_slot_follows_the_sender_and_survives_it_going_away(no_thread_leak):
    """The worker's slot gets the sender's picture, a new colour arrives, the sender stopping is
    a `lost` camera (the last frame stays in the slot), and the sender coming back (as a new
    process would, maybe on another port) is found again and its frames flow."""
    name = unique("worker")
    slot: LatestSlot = LatestSlot("camera")
    events = Events()
    sender = PatternSender(name, colour=(220, 30, 30))
    worker = CameraWorker(camera(f"ndi:{name}", ndi_ips=["127.0.0.1"], retry_s=0.3), slot, retry_s=0.3,
                          on_event=events)
    worker.start()
    try:
        wait_until(lambda: slot.get() is not None and near(slot.get().image, (220, 30, 30)), 15, "red frames")
        sender.set_colour((30, 30, 220))
        wait_until(lambda: near(slot.get().image, (30, 30, 220)), 5, "the new colour")
        assert events.states()[0] == "ok" and worker.state == "ok"

        sender.close()
        wait_until(lambda: "lost" in events.states(), 10, "the camera lost")
        lost = [e for e in events.items if e.get("state") == "lost"][0]
        assert "no frame for" in lost["reason"] or "connection was lost" in lost["reason"]
        frames_when_lost = worker.frames
        assert near(slot.get().image, (30, 30, 220))  # the last frame stays

        sender = PatternSender(name, colour=(40, 200, 40))
        wait_until(lambda: near(slot.get().image, (40, 200, 40)), 20, "frames from the sender again")
        assert worker.frames > frames_when_lost and worker.state == "ok"
        recovered = [e for e in events.items if e.get("state") == "ok" and e.get("recovered")]
        assert recovered and worker.losses == 1
    finally:
        worker.stop()
        worker.join(10)
        sender.close()
    assert not worker.is_alive()
