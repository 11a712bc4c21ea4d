"""The unattended looks (display/still.py) on a stepped clock: a fade that blends from what was on
screen, the dimmed last picture, black, a still with its caption, a clip played on its own
thread at its own frame rate and looped, generated frames with a caption over them, and a still
that cannot be read (a dark card, and the reason)."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pygame
import pytest

from installation.core.messages import GeneratedFrame, GenerationParams, Prompt
from installation.display.presenter import fit_cover
from installation.display.still import ClipPlayer, LookLayer
from installation.show import PROJECT_ROOT

SIZE = (320, 180)
STILL = "assets/stills/coffee.jpg"
CLIP = "assets/demo_loop.mp4"  # real footage, 640x360


@pytest.fixture(autouse=True)
def fonts():
    pygame.font.init()
    yield


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def live(value: int) -> GeneratedFrame:
    """A generated frame (at the generator's size, not the screen's) of one grey level."""
    return GeneratedFrame(image=np.full((128, 128, 3), value, np.uint8), prompt=Prompt(text="x"),
                          params=GenerationParams(), generator="preview", model="")


def still_on_screen() -> np.ndarray:
    return fit_cover(cv2.cvtColor(cv2.imread(str(PROJECT_ROOT / STILL)), cv2.COLOR_BGR2RGB), SIZE)


def test_live_frames_pass_through_untouched():
    layer = LookLayer(SIZE, 40, clock=Clock())
    frame = live(90)
    assert layer.frame(frame) is frame and layer.frame(None) is None


def test_a_fade_to_dim_blends_from_what_was_on_screen_then_holds_one_frame():
    clock = Clock()
    layer = LookLayer(SIZE, 40, clock=clock)
    layer.frame(live(200))
    layer.set_look("dim", level=0.25, fade_s=2.0)
    levels = []
    for _ in range(5):  # 0, 0.5, 1.0, 1.5, 2.0 s into the fade
        levels.append(float(layer.frame(live(10)).image.mean()))  # the generator rests; its frames do not count
        clock.t += 0.5
    assert levels == pytest.approx([200, 162.5, 125, 87.5, 50], abs=1.0)  # 200 → 200 × 0.25, evenly
    held = layer.frame(None)
    assert held is layer.frame(live(30)) and held.image.mean() == pytest.approx(50, abs=1)  # one frame, no re-scaling


def test_black_with_a_caption_and_back_to_live():
    clock = Clock()
    layer = LookLayer(SIZE, 40, clock=clock)
    layer.frame(live(120))
    layer.set_look("black", caption="Open daily 10-18", fade_s=0.0)
    closed = layer.frame(None).image
    top, band = closed[: SIZE[1] // 2], closed[int(SIZE[1] * 0.75):]
    assert top.max() == 0 and band.max() > 150  # black, with the caption's letters at the bottom
    layer.set_look("live", fade_s=1.0)
    clock.t += 0.5
    halfway = layer.frame(live(200))
    assert halfway.generator == "fade" and halfway.image[: SIZE[1] // 2].mean() == pytest.approx(100, abs=2)
    assert halfway.prompt.text == "x"  # the last generated frame's words: no new prompt was painted
    clock.t += 0.6
    frame = live(200)
    assert layer.frame(frame) is frame  # the fade is over: the generated frames themselves again


def test_a_still_fills_the_screen_with_its_caption():
    layer = LookLayer(SIZE, 40, clock=Clock())
    assert layer.preload([STILL], ["Say a wish"]) == {}
    layer.set_look("still", caption="Say a wish", path=STILL)
    shown = layer.frame(live(0)).image
    expected = still_on_screen()
    top = slice(0, int(SIZE[1] * 0.55))
    assert np.abs(shown[top].astype(int) - expected[top].astype(int)).max() == 0
    bottom = slice(int(SIZE[1] * 0.8), SIZE[1])
    assert np.abs(shown[bottom].astype(int) - expected[bottom].astype(int)).mean() > 5


def test_a_still_that_cannot_be_read_is_a_dark_card_with_the_reason(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a picture")
    reasons = []
    layer = LookLayer(SIZE, 40, on_error=reasons.append, clock=Clock())
    failed = layer.preload([str(bad)], [])
    assert str(bad) in failed and "cannot read an image" in failed[str(bad)]
    layer.set_look("still", caption="Say a wish", path=str(bad))
    assert layer.frame(None).image[: SIZE[1] // 2].max() == 0


def test_captions_go_over_each_new_generated_frame_once():
    layer = LookLayer(SIZE, 40, clock=Clock())
    layer.set_look("caption", caption="Say a wish")
    frame = live(100)
    first = layer.frame(frame)
    assert first is not frame and first.image.shape == (SIZE[1], SIZE[0], 3)
    assert (first.prompt, first.params, first.generator) == (frame.prompt, frame.params, "preview")  # its provenance
    assert layer.frame(frame) is first  # the same generated frame: the same captioned frame
    assert first.image[: SIZE[1] // 2].mean() == pytest.approx(100, abs=1)
    assert layer.frame(live(100)) is not first


def short_clip(path, frames: int = 15, fps: float = 15.0):
    """The demo clip's first frames (real footage) as a short file at its own frame rate."""
    capture = cv2.VideoCapture(str(PROJECT_ROOT / CLIP))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 360))
    for _ in range(frames):
        ok, frame = capture.read()
        assert ok
        writer.write(frame)
    writer.release()
    capture.release()
    return path


def test_a_clip_plays_at_its_own_rate_looped_on_its_own_thread(tmp_path, no_thread_leak):
    clip = short_clip(tmp_path / "clip.mp4")  # 15 frames at 15 fps: one second a round
    layer = LookLayer(SIZE, 40)
    try:
        layer.set_look("clip", caption="Say a wish", path=str(clip))
        player = layer._player
        assert isinstance(player, ClipPlayer) and player.is_alive()
        seen = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5.0 and player.rate_meter.count < 25:  # 15 frames, then round again
            frame = layer.frame(None)
            if frame is not None and (not seen or frame is not seen[-1]):
                seen.append(frame)
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        assert player.rate_meter.count >= 25, "the clip did not loop"
        assert elapsed >= 24 / 15 * 0.9  # paced at 15 fps, not as fast as it decodes
        assert len(seen) > 15 and seen[-1].image.shape == (SIZE[1], SIZE[0], 3)
        start = time.monotonic()
        for _ in range(100):
            layer.frame(None)
        assert (time.monotonic() - start) / 100 < 0.005  # the display never waits for the decoder
    finally:
        layer.close()
    assert not player.is_alive()


def test_a_clip_that_cannot_open_is_reported(tmp_path, no_thread_leak):
    reasons = []
    layer = LookLayer(SIZE, 40, on_error=reasons.append)
    try:
        layer.set_look("clip", path=str(tmp_path / "missing.mp4"))
        deadline = time.monotonic() + 5
        while not reasons and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reasons and "cannot open the clip" in reasons[0]
        assert layer.frame(None) is None  # nothing new: the screen holds what it shows
    finally:
        layer.close()
