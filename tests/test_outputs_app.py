"""A show with three outputs through the real App, headless: two screens showing two streams and
an NDI source received by a real NDI receiver on loopback (tests/ndi_peer.py), its frames
checked against what its output presented; each stream's OSC controls and status over real UDP.
The generator worker paints both streams (one generate_many call), each with its own settings."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from installation.app import RunOptions
from installation.display.presenter import fit_cover
from installation.harness import start_show_thread, stop_show_thread
from installation.show import parse_show
from peers import Peer

pytestmark = pytest.mark.slow

NDI_SIZE = (320, 240)


def _show(ndi_name: str):
    return parse_show({
        "show": {"name": "outputs-e2e", "title": "Outputs"},
        "camera": {"source": "assets/demo_loop.mp4"},
        "microphone": {"source": "none"},
        "speech": {"enabled": False},
        "prompt": {"initial": "a quiet garden at dawn"},
        "generator": {"kind": "preview", "width": 256, "height": 256, "max_fps": 15},
        "display": {"mode": "headless", "fps": 30, "crossfade_s": 0.0, "width": 480, "height": 270},
        "osc": {"port": 0, "allow": ["127.0.0.1"]},
        "streams": [{"name": "left", "crop": "left", "seed": 3}, {"name": "right", "crop": "right", "strength": 0.8}],
        "outputs": [{"stream": "left"}, {"stream": "right", "width": 320, "height": 180},
                    {"kind": "ndi", "stream": 1, "name": ndi_name, "width": NDI_SIZE[0], "height": NDI_SIZE[1],
                     "fps": 15, "caption": False}],
    })


def test_three_outputs_two_screens_and_an_ndi_source(tmp_path):
    from ndi_peer import Receiver

    name = f"jadong-outputs {os.getpid()}-{time.monotonic_ns() % 10**6}"
    app, thread = start_show_thread(_show(name), RunOptions(log_path=tmp_path / "events.jsonl"), timeout=60)
    peer = Peer(app.osc.port)
    try:
        outs = app.outputs.outputs
        assert [(o.plan.kind, o.plan.stream, o.presenter.mode, o.presenter.size) for o in outs] == [
            ("screen", 1, "headless", (480, 270)), ("screen", 2, "headless", (320, 180)),
            ("ndi", 1, "headless", NDI_SIZE)]
        assert not outs[2].off and outs[2].presenter.sinks, "the NDI output sends"

        # Each output presents its own stream, as the generator worker painted it: stream 2's
        # settings (strength 0.8) on output 2, stream 1's (seed 3) on output 1.
        def presented(out):
            frame = out.presenter.current_frame
            return None if frame is None else (frame.params.seed, frame.params.strength)

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (presented(outs[0]) is None or presented(outs[1]) is None):
            time.sleep(0.05)
        assert presented(outs[0])[0] == 3 and presented(outs[0])[1] != 0.8
        assert presented(outs[1])[1] == 0.8 and presented(outs[1])[0] != 3
        assert outs[1].presenter.current_frame.generator == "preview"

        # The NDI source, found by name at 127.0.0.1: its size, and what its output presented.
        peer.send("/jadong/freeze", 1)  # hold the picture, so what was presented can be compared
        peer.send("/jadong/freeze")
        assert peer.replies("/jadong/freeze")["/jadong/freeze"] == [1]
        time.sleep(0.5)
        held = outs[2].presenter.current_frame
        with Receiver.find(name, timeout=15) as rx:
            got = rx.frame(timeout=10)
            assert got is not None, "no NDI frame received"
            for _ in range(10):  # the newest: after any the receiver queued before the freeze
                newer = rx.frame(timeout=0.3)
                if newer is None:
                    break
                got = newer
        assert (got.shape[1], got.shape[0]) == NDI_SIZE
        assert outs[2].presenter.current_frame is held
        want = fit_cover(held.image, NDI_SIZE).astype(int)
        assert np.abs(got.astype(int) - want).mean() < 6, "the NDI frame is the picture its output presented"

        # Each stream's controls: a value set, queried back, in the stream's status bundle.
        peer.send("/jadong/stream/2/strength", 0.25)
        peer.send("/jadong/stream/2/strength")
        assert peer.replies("/jadong/stream/2/strength")["/jadong/stream/2/strength"] == [0.25]
        assert app.streams.slots[1].params.get().strength == 0.25
        peer.send("/jadong/stream/3/seed", 5)
        error = peer.replies("/jadong/error")["/jadong/error"]
        assert error[0] == "/jadong/stream/3/seed" and error[1].startswith("no stream 3 in this show")
        peer.send("/jadong/status")
        status = peer.replies("/jadong/status/stream/2/frames")
        assert status["/jadong/status/stream/1/name"] == ["left"] and status["/jadong/status/stream/1/seed"] == [3]
        assert status["/jadong/status/stream/2/strength"] == [0.25]
        assert status["/jadong/status/stream/2/frames"][0] >= 1  # painted by the worker
        assert "/jadong/status/prompt" in status  # the show's own bundle came too
    finally:
        peer.close()
        assert stop_show_thread(app, thread)


THIRDS = [(200, 30, 40), (20, 180, 60), (30, 60, 220)]  # the camera's left, centre and right, in RGB


def _thirds_clip(path) -> None:
    """A still camera: three flat colours side by side, 960x360, 2 s of MJPG."""
    import cv2

    img = np.zeros((360, 960, 3), np.uint8)
    for i, colour in enumerate(THIRDS):
        img[:, i * 320:(i + 1) * 320] = colour
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (960, 360))
    assert writer.isOpened()
    for _ in range(20):
        writer.write(np.ascontiguousarray(img[:, :, ::-1]))
    writer.release()


def test_a_triptych_presents_three_different_thirds(tmp_path):
    clip = tmp_path / "thirds.avi"
    _thirds_clip(clip)
    show = parse_show({
        "show": {"name": "triptych-e2e"},
        "camera": {"source": str(clip)},
        "microphone": {"source": "none"},
        "speech": {"enabled": False},
        # strength 0: the preview paints the camera picture itself, so each panel's colour is its third's.
        "generator": {"kind": "preview", "width": 128, "height": 128, "max_fps": 10, "strength": 0.0},
        "display": {"mode": "headless", "fps": 20, "crossfade_s": 0.0, "width": 320, "height": 180},
        "osc": {"enabled": False},
        "streams": [{"crop": "left"}, {"crop": "centre"}, {"crop": "right"}],
        "outputs": [{"stream": 1}, {"stream": 2}, {"stream": 3}],
    })
    app, thread = start_show_thread(show, RunOptions(log_path=tmp_path / "events.jsonl"), timeout=60)
    try:
        def colours() -> list[tuple[int, ...] | None]:
            frames = [o.presenter.current_frame for o in app.outputs.outputs]
            return [None if f is None else tuple(int(v) for v in f.image.reshape(-1, 3).mean(0)) for f in frames]

        def right(seen: list[tuple[int, ...] | None]) -> bool:
            return all(c is not None and max(abs(a - b) for a, b in zip(c, want)) < 30 for c, want in zip(seen, THIRDS))

        deadline = time.monotonic() + 10
        while not right(colours()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert right(colours()), f"presented {colours()}, the camera's thirds are {THIRDS}"
    finally:
        assert stop_show_thread(app, thread)
