"""NDI out on loopback: Jadong's sender (display/ndi_out.py) against a real NDI receiver at
127.0.0.1 (tests/ndi_peer.py, straight on ndi-python): sizes, colours through BGRX, BGRA and UYVY,
the latest-value hand-over, and the presenter's sinks with and without the caption. The runtime
missing is a real loader failure: ndi-python without its libndi."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from installation.core.messages import GeneratedFrame, GenerationParams, Prompt
from installation.display.ndi_out import NdiOutputSettings, NdiSender, fit, frame_rate, rgb_to_uyvy
from installation.display.presenter import Presenter
from installation.show import DisplayConfig
from ndi_peer import ROOT, Receiver, bars, env_without_libndi

BAR_COLOURS = [(200, 30, 40), (20, 180, 60), (30, 60, 220), (240, 200, 20), (128, 128, 128), (20, 20, 20)]
# NDI compresses every frame (SpeedHQ, 4:2:2): flat areas come back within a few levels.
TOLERANCE = 14


def unique(name: str) -> str:
    """Names no other test run on this machine uses at the same time."""
    return f"jadong-test {name} {os.getpid()}-{time.monotonic_ns() % 10**6}"


def frame_after(sender: NdiSender, rx: Receiver, image: np.ndarray, want=None, timeout: float = 10.0) -> np.ndarray:
    """Present `image` (again and again, as a display would) until a received frame passes `want`."""
    image = np.ascontiguousarray(image)
    image.flags.writeable = False
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        sender.send(image, time.monotonic())
        got = rx.frame(timeout=0.5)
        if got is not None:
            last = got
            if want is None or want(got):
                return got
    raise AssertionError(f"no matching frame within {timeout:g} s; last: "
                         f"{None if last is None else (last.shape, last.reshape(-1, 3).mean(0))}")


def close(a: np.ndarray, b, tol: float = TOLERANCE) -> bool:
    return bool(np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= tol)


def check_bars(img: np.ndarray) -> None:
    h, w = img.shape[:2]
    assert close(img[h // 8, w // 2], (250, 250, 250)), img[h // 8, w // 2]
    for i, colour in enumerate(BAR_COLOURS):
        x = int((i + 0.5) * w / 6)
        assert close(img[3 * h // 5, x], colour), (i, img[3 * h // 5, x], colour)


@pytest.mark.parametrize("pixel_format", ["bgrx", "bgra", "uyvy"])
@pytest.mark.parametrize("size", [(0, 0), (320, 180)])
def test_a_sent_picture_arrives_by_name_at_its_size_and_colours(pixel_format, size):
    settings = NdiOutputSettings(unique(pixel_format), width=size[0], height=size[1], fps=30,
                                 pixel_format=pixel_format)
    sender = NdiSender(settings)
    try:
        assert sender.source_name.endswith(f"({settings.name})")
        with Receiver.find(settings.name, timeout=10) as rx:
            got = frame_after(sender, rx, bars(640, 360))
        want = (640, 360) if size == (0, 0) else size
        assert (got.shape[1], got.shape[0]) == want
        check_bars(got)
    finally:
        sender.close()


def test_another_aspect_is_centre_cropped_like_the_screen():
    """640x360 into 256x256: the middle 360 columns (bars 2 to 5 of 6), as `fit` crops."""
    sender = NdiSender(NdiOutputSettings(unique("crop"), width=256, height=256))
    try:
        with Receiver.find(sender.settings.name) as rx:
            got = frame_after(sender, rx, bars(640, 360))
    finally:
        sender.close()
    assert got.shape == (256, 256, 3)
    assert close(got[200, 4], BAR_COLOURS[1]) and close(got[200, 251], BAR_COLOURS[4])
    expected = fit(bars(640, 360), (256, 256))
    assert np.abs(got.astype(int) - expected).mean() < 4


def test_send_keeps_only_the_newest_frame_and_the_stream_goes_on_without_new_ones():
    """The display hands over more frames than the sender takes: the older ones are dropped, the
    newest arrives; with nothing new presented the last frame is sent again at the output's rate."""
    sender = NdiSender(NdiOutputSettings(unique("latest"), fps=30))
    try:
        with Receiver.find(sender.settings.name) as rx:
            frame_after(sender, rx, np.full((90, 160, 3), 10, np.uint8))
            for level in range(20, 250):  # a burst far faster than 30 fps
                sender.send(np.full((90, 160, 3), level, np.uint8), time.monotonic())
            got = rx.frame()
            deadline = time.monotonic() + 5
            while got is not None and not close(got, 249, 6) and time.monotonic() < deadline:
                got = rx.frame()
            assert got is not None and close(got, 249, 6)
            sent_before = sender.stats().sent
            repeats = [rx.frame(timeout=1.0) for _ in range(5)]  # nothing presented meanwhile
            deadline = time.monotonic() + 5  # (some of those may have waited in NDI's queue)
            while sender.stats().sent < sent_before + 5 and time.monotonic() < deadline:
                time.sleep(0.05)
        stats = sender.stats()
        assert all(r is not None and close(r, 249, 6) for r in repeats)
        assert stats.sent >= sent_before + 5  # the held frame, sent again and again
        assert stats.dropped > 100 and stats.offered >= 231
    finally:
        sender.close()


def test_uyvy_is_bt709_video_range():
    grey = rgb_to_uyvy(np.full((2, 4, 3), (255, 255, 255), np.uint8))
    assert grey[..., 1].tolist() == [[235] * 4] * 2  # Y
    assert grey[..., 0].tolist() == [[128] * 4] * 2  # U and V alternate
    black = rgb_to_uyvy(np.zeros((2, 4, 3), np.uint8))
    assert black[..., 1].max() == 16 and black[..., 0].min() == 128
    red = rgb_to_uyvy(np.full((2, 2, 3), (255, 0, 0), np.uint8))
    assert red[0, 0].tolist() == [102, 63] and red[0, 1].tolist() == [240, 63]  # BT.709: Y 63, Cb 102, Cr 240


def test_frame_rates_as_ndi_wants_them():
    assert frame_rate(30) == (30, 1) and frame_rate(60.0) == (60, 1)
    assert frame_rate(29.97) == (2997, 100) and frame_rate(59.94) == (2997, 50)


@pytest.mark.parametrize("kw, words", [
    (dict(name=" "), "needs a name"),
    (dict(name="a\nb"), "unprintable"),
    (dict(name="x" * 101), "at most 100"),
    (dict(name="n", width=640), "both 0"),
    (dict(name="n", fps=0), "fps"),
    (dict(name="n", pixel_format="rgb"), "bgrx, bgra, uyvy"),
])
def test_settings_refuse_what_cannot_work(kw, words):
    with pytest.raises(ValueError, match=words):
        NdiOutputSettings(**kw)


# --- the presenter's sinks ------------------------------------------------------------------

class Collector:
    """A FrameSink that keeps what it is handed (the presenter side of the contract)."""

    def __init__(self, overlays: bool) -> None:
        self.name = f"collector overlays={overlays}"
        self.overlays = overlays
        self.frames: list[tuple[np.ndarray, float]] = []
        self.closed = False

    def send(self, rgb: np.ndarray, t: float) -> None:
        self.frames.append((rgb, t))

    def close(self) -> None:
        self.closed = True


class Clock:
    """Time that moves only when the test says (the caption fades in over its first moments)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _presenter(clock=time.monotonic) -> Presenter:
    cfg = DisplayConfig(mode="headless", width=320, height=180, fps=240.0, crossfade_s=0.0, hud=False)
    return Presenter(cfg, title="Ink garden", clock=clock).open()


def _frame(colour) -> GeneratedFrame:
    return GeneratedFrame(np.full((90, 160, 3), colour, np.uint8), Prompt("test"), GenerationParams(), "test", "none")


def test_sinks_get_the_screen_with_the_caption_or_the_picture_alone():
    clock = Clock()
    p = _presenter(clock)
    full, clean = Collector(overlays=True), Collector(overlays=False)
    p.add_sink(full)
    p.add_sink(clean)
    try:
        p.show_frame(_frame((20, 60, 200)))
        p.set_caption("a quiet garden at dawn")
        clock.t += 2.0  # faded in
        p.render()
        shot = p.screenshot()
        (with_text, t1), (picture, t2) = full.frames[-1], clean.frames[-1]
        assert t1 == t2 and with_text.shape == picture.shape == (180, 320, 3)
        assert np.array_equal(with_text, shot)  # exactly what the screen shows
        band = slice(150, 180)
        assert not np.array_equal(with_text[band], picture[band])  # the caption is burnt in one only
        assert close(picture, (20, 60, 200), 0)  # the picture alone, every pixel
        assert not with_text.flags.writeable and not picture.flags.writeable
        p.set_blackout(True)
        p.render()
        assert full.frames[-1][0].max() == 0 and clean.frames[-1][0].max() == 0
        assert full.frames[-1][0] is not with_text  # a new array per frame: sinks keep theirs
    finally:
        p.close()
    assert full.closed and clean.closed and p.sinks == ()


def test_a_presenter_with_no_sink_that_wants_the_bare_picture_grabs_it_not():
    p = _presenter()
    full = Collector(overlays=True)
    p.add_sink(full)
    try:
        p.show_frame(_frame((200, 30, 40)))
        for _ in range(3):
            p.render()
        assert len(full.frames) == 3 and len({id(f) for f, _ in full.frames}) == 3
    finally:
        p.close()


def test_the_screen_reaches_an_ndi_receiver_as_presented():
    p = _presenter()
    sender = NdiSender(NdiOutputSettings(unique("screen"), fps=30))
    p.add_sink(sender)
    try:
        with Receiver.find(sender.settings.name) as rx:
            p.show_frame(GeneratedFrame(bars(320, 180), Prompt("test"), GenerationParams(), "test", "none"))
            p.set_caption("words on the screen")
            deadline = time.monotonic() + 10
            got = None
            while time.monotonic() < deadline:
                p.render()
                got = rx.frame(timeout=0.1)
                if got is not None and got.shape == (180, 320, 3) and close(got[100, 27], BAR_COLOURS[0]):
                    break
            shot = p.screenshot()
        assert got is not None and got.shape == shot.shape
        assert np.abs(got.astype(int) - shot).mean() < 4  # the caption band included
        assert sender.stats().sent > 0
    finally:
        p.close()  # closes the sender too
    assert sender.connections() == 0


def test_without_the_runtime_an_output_is_off_with_the_reason_and_the_fix(tmp_path):
    """ndi-python without libndi: a real loader failure. open_ndi_output says why (an `error`
    event, stage ndi, and a console line) and returns None; nothing raises."""
    code = (
        "import json\n"
        "from installation.display.ndi_out import NdiOutputSettings, open_ndi_output\n"
        "events = []\n"
        "sink = open_ndi_output(NdiOutputSettings('x'), on_event=lambda e, **f: events.append({'event': e, **f}))\n"
        "print(json.dumps({'sink': sink is None, 'events': events}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env_without_libndi(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["sink"] is True
    [event] = out["events"]
    assert event["event"] == "error" and event["stage"] == "ndi"
    assert "libndi.so" in event["reason"] and "NDI output 'x' is off" in event["reason"]
    assert "ndi-python" in event["remedy"]
    assert "NDI output 'x' is off" in proc.stderr and "Traceback" not in proc.stderr


def test_the_ndi_licence_files_ship_unchanged_and_the_readme_names_the_trademark():
    """NDI's terms: its licence file goes with the runtime, and the trademark is named."""
    import importlib.metadata

    import NDIlib

    folder = ROOT / "LICENSES" / "NDI"
    installed = Path(NDIlib.__file__).parent / "libndi_licenses.txt"
    assert (folder / "libndi_licenses.txt").read_bytes() == installed.read_bytes()
    wrapper = [f for f in importlib.metadata.files("ndi-python") if f.name == "LICENSE"]
    assert wrapper and (folder / "ndi-python-LICENSE.txt").read_bytes() == wrapper[0].locate().read_bytes()
    notice = "NDI® is a registered trademark of Vizrt NDI AB"
    assert notice in (folder / "README.md").read_text(encoding="utf-8")
    assert notice in (ROOT / "README.md").read_text(encoding="utf-8")
