"""The presenter under SDL_VIDEODRIVER=dummy (set by conftest): what it draws is read back
from its surface, recordings are read back through cv2.VideoCapture."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pygame
import pytest

from installation.core.messages import GeneratedFrame, GenerationParams, Prompt
from installation.display.captions import (
    CaptionTiming,
    FontBook,
    missing_glyphs,
    render_caption_band,
    wrap_text,
)
from installation.display.presenter import (
    DisplayUnavailable,
    FramePacer,
    Presenter,
    cover_crop,
    list_monitors,
)
from installation.display.recorder import RecorderError, VideoRecorder
from installation.show import DisplayConfig
from media import read_video

W, H = 320, 180
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


class FakeClock:
    """Time that moves only when the test says, so fades are checked at exact moments."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def cfg(**kw) -> DisplayConfig:
    base = dict(mode="headless", width=W, height=H, fps=240.0, crossfade_s=0.0, hud=False)
    base.update(kw)
    return DisplayConfig(**base)


def solid(color, w=64, h=36) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :] = color
    return img


def quadrants(w=64, h=36) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = RED
    img[: h // 2, w // 2:] = GREEN
    img[h // 2:, : w // 2] = BLUE
    img[h // 2:, w // 2:] = YELLOW
    return img


def gen(image: np.ndarray, source_t: float | None = None) -> GeneratedFrame:
    return GeneratedFrame(image, Prompt("test"), GenerationParams(), "test", "none", source_t=source_t)


@pytest.fixture
def presenter(request):
    opened: list[Presenter] = []

    def make(**kw) -> Presenter:
        clock = kw.pop("clock", None)
        record_path = kw.pop("record_path", None)
        extra = {"clock": clock} if clock is not None else {}
        p = Presenter(cfg(**kw), record_path=record_path, title="Ink garden", **extra).open()
        opened.append(p)
        return p

    yield make
    for p in opened:
        p.close()


def key(k: int) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=k, mod=0, unicode="", scancode=0))


# --- frames -----------------------------------------------------------------------------

def test_starting_card_is_not_black_and_shows_the_title(presenter):
    p = presenter()
    p.render()
    shot = p.screenshot()
    assert shot.shape == (H, W, 3)
    assert not (shot.sum(axis=2) == 0).any(), "the starting card has black pixels"
    assert shot.mean() > 15
    # The title: bright glyph pixels around the middle, none of that brightness at the top.
    middle = shot[H // 3: 2 * H // 3].max(axis=2)
    assert (middle > 150).sum() > 50
    assert shot[:10].max() < 80


def test_a_presented_frame_shows_its_pixels(presenter):
    p = presenter()
    p.show_frame(gen(quadrants()))
    p.render()
    shot = p.screenshot()
    for (y, x), color in {(H // 4, W // 4): RED, (H // 4, 3 * W // 4): GREEN,
                          (3 * H // 4, W // 4): BLUE, (3 * H // 4, 3 * W // 4): YELLOW}.items():
        assert tuple(shot[y, x]) == color
    assert p.presented_frames == 1


def test_cover_scaling_keeps_aspect_and_centres():
    assert cover_crop((512, 512), (1280, 720)) == pygame.Rect(0, 112, 512, 288)
    assert cover_crop((640, 360), (1280, 720)) == pygame.Rect(0, 0, 640, 360)
    assert cover_crop((400, 100), (200, 100)) == pygame.Rect(100, 0, 200, 100)


def test_square_frame_fills_the_screen_cropped_top_and_bottom(presenter):
    p = presenter()
    img = solid(RED, 100, 100)
    img[:20] = GREEN  # the top fifth is cut off by a 16:9 cover crop of a square
    img[:, 50:, 2] = 255
    p.show_frame(gen(img))
    p.render()
    shot = p.screenshot()
    assert not (shot[:, :, 1] > 200).any()
    assert tuple(shot[H // 2, W // 4]) == RED
    assert tuple(shot[H // 2, 3 * W // 4]) == (255, 0, 255)
    assert tuple(shot[0, 0]) == RED and tuple(shot[H - 1, W - 1]) == (255, 0, 255)


def test_crossfade_midway_is_a_blend_then_the_new_frame(presenter):
    clock = FakeClock()
    p = presenter(crossfade_s=1.0, clock=clock)
    p.show_frame(gen(solid(RED)))
    clock.t += 2.0
    p.render()
    assert tuple(p.screenshot()[H // 2, W // 2]) == RED
    p.show_frame(gen(solid(BLUE)))
    clock.t += 0.5
    p.render()
    mid = p.screenshot()[H // 2, W // 2].astype(int)
    assert abs(mid[0] - 127) <= 3 and mid[1] == 0 and abs(mid[2] - 128) <= 3
    clock.t += 0.6
    p.render()
    assert tuple(p.screenshot()[H // 2, W // 2]) == BLUE


def test_a_new_frame_mid_fade_starts_from_what_is_on_screen(presenter):
    clock = FakeClock()
    p = presenter(crossfade_s=1.0, clock=clock)
    p.show_frame(gen(solid(RED)))
    clock.t += 2.0
    p.render()
    p.show_frame(gen(solid(BLUE)))
    clock.t += 0.5
    p.render()
    before = p.screenshot()[H // 2, W // 2].astype(int)
    p.show_frame(gen(solid(GREEN)))  # arrives while red→blue is half done
    p.render()
    after = p.screenshot()[H // 2, W // 2].astype(int)
    assert np.abs(before - after).max() <= 2, "the screen jumped when a frame arrived mid-fade"


def test_fast_frames_shorten_the_crossfade_so_a_live_picture_never_ghosts(presenter):
    clock = FakeClock()
    p = presenter(crossfade_s=1.0, clock=clock)
    colours = [RED, BLUE, GREEN, RED, BLUE, GREEN, RED, BLUE]
    for colour in colours:  # 10 new frames a second, a 1 s crossfade asked for
        p.show_frame(gen(solid(colour)))
        clock.t += 0.1
        p.render()
    assert tuple(p.screenshot()[H // 2, W // 2]) == colours[-1], "still blending after a whole frame interval"


def test_the_last_frame_is_held_when_none_is_new(presenter):
    p = presenter()
    frame = gen(solid(GREEN))
    p.show_frame(frame)
    p.render()
    for _ in range(5):
        p.show_frame(None)
        p.show_frame(frame)  # the same object again is not a new frame
        p.render()
    assert p.presented_frames == 1
    assert tuple(p.screenshot()[H // 2, W // 2]) == GREEN


def test_first_frame_time_and_latency_are_measured(presenter):
    import time

    p = presenter()
    p.render()
    assert p.first_frame_t is None and p.last_latency_s is None
    source_t = time.monotonic() - 0.25
    p.show_frame(gen(solid(RED), source_t=source_t))
    p.render()
    assert p.first_frame_t is not None and p.first_frame_t >= source_t + 0.25
    assert 0.25 <= p.last_latency_s < 10
    assert p.fps >= 0


@pytest.mark.parametrize("bad, why", [
    (np.zeros((36, 64, 3), np.float32), "uint8"),
    (np.zeros((36, 64, 2), np.uint8), "shape"),
    ("not an image", "numpy"),
])
def test_a_bad_frame_is_skipped_with_a_warning(presenter, caplog, bad, why):
    p = presenter()
    p.show_frame(gen(solid(RED)))
    p.render()
    with caplog.at_level(logging.WARNING, logger="installation.display.presenter"):
        p.show_frame(gen(bad))
        p.render()
    assert p.rejected_frames == 1
    assert tuple(p.screenshot()[H // 2, W // 2]) == RED
    assert why in caplog.text


def test_grey_and_rgba_frames_are_shown(presenter):
    p = presenter()
    p.show_frame(gen(np.full((36, 64), 200, np.uint8)))
    p.render()
    assert tuple(p.screenshot()[H // 2, W // 2]) == (200, 200, 200)
    rgba = np.zeros((36, 64, 4), np.uint8)
    rgba[:, :] = (10, 20, 30, 0)  # alpha is ignored: generated frames are opaque
    p.show_frame(gen(rgba))
    p.render()
    assert tuple(p.screenshot()[H // 2, W // 2]) == (10, 20, 30)


def test_frames_show_even_without_a_video_driver(presenter):
    p = presenter()
    pygame.display.quit()  # as when SDL video cannot start at all: surfaces still work
    p.show_frame(gen(solid(BLUE)))
    p.render()
    assert tuple(p.screenshot()[H // 2, W // 2]) == BLUE
    assert p.poll_events() == []  # no event queue, and no exception either


# --- captions, label, HUD ---------------------------------------------------------------

def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 8


def test_caption_is_drawn_in_the_bottom_band_and_fades_out(presenter):
    clock = FakeClock()
    p = presenter(caption_seconds=2.0, clock=clock)
    p.show_frame(gen(solid((128, 128, 128))))
    p.render()
    plain = p.screenshot()
    p.set_caption("hello quiet garden")
    clock.t += 1.0
    p.render()
    changed = _changed(p.screenshot(), plain)
    assert changed[H // 2:].sum() > 300, "no caption in the bottom half"
    assert changed[: H // 3].sum() == 0, "the caption spilled into the top of the screen"
    clock.t += 0.9 + 0.5  # 2.4 s after it was set: half-way through the 1 s fade-out
    p.render()
    fading = _changed(p.screenshot(), plain).sum()
    assert 0 < fading
    clock.t += 1.0
    p.render()
    assert _changed(p.screenshot(), plain).sum() == 0, "the caption did not fade out"


def test_setting_the_same_caption_again_does_not_restart_it(presenter):
    clock = FakeClock()
    p = presenter(caption_seconds=1.0, clock=clock)
    p.show_frame(gen(solid((90, 90, 90))))
    p.render()
    plain = p.screenshot()
    p.set_caption("again")
    for _ in range(4):  # set again while it shows: the 1 s hold + 1 s fade are not extended
        p.set_caption("again")
        clock.t += 0.5
        p.render()
    assert _changed(p.screenshot(), plain).sum() == 0
    p.set_caption("again")  # the same words after it faded out (a visitor repeating a wish) show again
    clock.t += 0.5
    p.render()
    assert _changed(p.screenshot(), plain).sum() > 0
    p.set_caption("")
    p.set_caption("again")  # a new utterance after a clear shows again
    clock.t += 0.5
    p.render()
    assert _changed(p.screenshot(), plain).sum() > 0


def test_hangul_caption_is_drawn(presenter):
    clock = FakeClock()
    p = presenter(clock=clock)
    p.show_frame(gen(solid((128, 128, 128))))
    p.render()
    plain = p.screenshot()
    p.set_caption("안녕하세요 정원")
    clock.t += 1.0
    p.render()
    hangul = p.screenshot()
    assert _changed(hangul, plain)[H // 2:].sum() > 300
    # Same number of characters the font lacks: its .notdef boxes must look different.
    p.set_caption("\U0001F600\U0001F601\U0001F602\U0001F603\U0001F604 \U0001F605\U0001F606")
    clock.t += 1.0
    p.render()
    assert _changed(hangul, p.screenshot())[H // 2:].sum() > 100


def test_hangul_glyphs_are_real_not_tofu():
    pygame.font.init()
    font = FontBook().get(40)
    assert missing_glyphs(font, "안녕하세요, 정원은 조용하네요. Hello!") == ""
    notdef_char = "\U0001F600"  # no emoji in NanumGothic: renders the .notdef glyph
    assert missing_glyphs(font, notdef_char) == notdef_char
    notdef = pygame.surfarray.array_alpha(font.render(notdef_char, True, (255, 255, 255)))
    for ch in "안녕하세요가힣":
        glyph = pygame.surfarray.array_alpha(font.render(ch, True, (255, 255, 255)))
        assert glyph.max() > 200, f"{ch!r} rendered no ink"
        if glyph.shape == notdef.shape:
            assert np.abs(glyph.astype(int) - notdef.astype(int)).sum() > 1000, f"{ch!r} is a tofu box"


def test_missing_glyphs_are_logged_once_each(caplog):
    pygame.font.init()
    fonts = FontBook()
    with caplog.at_level(logging.WARNING, logger="installation.display.captions"):
        for _ in range(3):
            render_caption_band("hello \U0001F600", fonts, (W, H), 20)
        render_caption_band("안녕", fonts, (W, H), 20)
    assert len([r for r in caplog.records if "no glyphs" in r.getMessage()]) == 1


def test_a_missing_font_file_falls_back_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="installation.display.captions"):
        clock = FakeClock()
        p = Presenter(cfg(), font_path=tmp_path / "gone.ttf", clock=clock).open()
    try:
        assert "gone.ttf" in caplog.text and "no Hangul" in caplog.text
        p.show_frame(gen(solid((90, 90, 90))))
        p.set_caption("still shown")
        clock.t += 1.0
        p.render()
        assert p.screenshot()[H * 3 // 4:].max() > 200  # the caption's white text is there
    finally:
        p.close()


def test_wrap_text_fits_width_and_breaks_long_words():
    pygame.font.init()
    font = FontBook().get(20)
    text = "the quick brown fox jumps over the lazy dog " * 4
    lines = wrap_text(text, font, 200)
    assert len(lines) > 3
    assert all(font.size(line)[0] <= 200 for line in lines)
    assert " ".join(lines).split() == text.split()
    long_word = "https://huggingface.co/stabilityai/sd-turbo/resolve/main/unet"
    parts = wrap_text(long_word, font, 120)
    assert len(parts) > 1 and "".join(parts) == long_word
    assert all(font.size(part)[0] <= 120 for part in parts)
    assert wrap_text("   ", font, 100) == []


def test_long_captions_keep_the_newest_lines():
    pygame.font.init()
    band_short = render_caption_band("one two", FontBook(), (W, H), 20)
    band_long = render_caption_band("word " * 200, FontBook(), (W, H), 20, max_lines=3)
    assert band_long.get_height() < H
    assert band_long.get_height() > band_short.get_height()
    assert render_caption_band("  ", FontBook(), (W, H), 20) is None


def test_caption_timing():
    t = CaptionTiming(hold_s=3.0, fade_in_s=0.5, fade_out_s=1.0)
    assert t.alpha(-1) == 0 and t.alpha(0.25) == 127 and t.alpha(1.0) == 255
    assert t.alpha(3.5) == 127 and t.alpha(4.0) == 0
    assert not t.done(3.9) and t.done(4.0)


def test_label_top_left(presenter):
    p = presenter()
    p.show_frame(gen(solid((128, 128, 128))))
    p.render()
    plain = p.screenshot()
    p.set_label("preview: model not found; run python run.py fetch-models")
    p.render()
    changed = _changed(p.screenshot(), plain)
    assert changed[: H // 4, : W // 2].sum() > 100
    assert changed[H // 2:].sum() == 0
    p.set_label("")
    p.render()
    assert _changed(p.screenshot(), plain).sum() == 0


def test_keys_toggle_hud_and_caption_and_escape_quits(presenter):
    p = presenter(hud=False)
    p.show_frame(gen(solid((128, 128, 128))))
    p.set_hud(["generator preview 12 fps"])
    p.render()
    plain = p.screenshot()
    key(pygame.K_h)
    assert p.poll_events() == ["toggle_hud"] and p.hud_visible
    p.render()
    changed = _changed(p.screenshot(), plain)
    assert changed[: H // 3, W // 2:].sum() > 100, "no HUD at the top right"
    key(pygame.K_c)
    assert p.poll_events() == ["toggle_caption"] and not p.caption_visible
    key(pygame.K_ESCAPE)
    assert p.poll_events() == ["quit"]


def test_locked_keyboard_ignores_keys_and_logs_esc_once(presenter, caplog):
    p = presenter(lock_keyboard=True)
    with caplog.at_level(logging.WARNING, logger="installation.display.presenter"):
        for k in (pygame.K_ESCAPE, pygame.K_h, pygame.K_ESCAPE, pygame.K_c):
            key(k)
        assert p.poll_events() == []
    assert not p.hud_visible and p.caption_visible
    assert sum("keyboard is locked" in r.getMessage() for r in caplog.records) == 1
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    assert p.poll_events() == ["quit"]  # a window close or signal still ends the show


# --- modes --------------------------------------------------------------------------------

def test_a_window_under_the_dummy_driver_falls_back_to_headless(presenter, caplog):
    with caplog.at_level(logging.WARNING, logger="installation.display.presenter"):
        p = presenter(mode="windowed")
    assert p.mode == "headless" and p.size == (W, H)
    assert "dummy" in p.mode_note and "headless" in caplog.text
    p.render()


def test_a_required_window_raises_display_unavailable():
    p = Presenter(cfg(mode="fullscreen"), fallback_to_headless=False)
    with pytest.raises(DisplayUnavailable, match="fullscreen"):
        p.open()
    p.close()


def test_no_display_at_all_falls_back_to_headless(tmp_path):
    """A fresh process with no DISPLAY and no SDL_VIDEODRIVER, as on a gallery box whose X
    session did not come up."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    code = (
        "import json, os\n"
        "from installation.display.presenter import Presenter, list_monitors\n"
        "from installation.show import DisplayConfig\n"
        "monitors = list_monitors()\n"
        "p = Presenter(DisplayConfig(mode='fullscreen', monitor=3, width=320, height=180)).open()\n"
        "p.render(); mode, note, size = p.mode, p.mode_note, p.size\n"
        "during = os.environ.get('SDL_VIDEODRIVER')\n"
        "p.close()\n"
        "print(json.dumps(dict(mode=mode, note=note, size=size, monitors=monitors, during=during,\n"
        "                      after=os.environ.get('SDL_VIDEODRIVER'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, cwd=os.path.abspath(os.path.join(__file__, "..", "..", "..")))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["mode"] == "headless" and result["size"] == [320, 180]
    assert "DISPLAY" in result["note"]
    assert result["monitors"] == []
    assert result["after"] is None  # the driver choice made for headless is undone on close
    assert "headless" in out.stderr


def test_list_monitors_is_empty_under_the_dummy_driver():
    assert list_monitors() == []


def test_frame_pacer_sleeps_at_most_one_period():
    slept: list[float] = []
    pacer = FramePacer(50.0, sleep=slept.append)
    for _ in range(5):
        pacer.wait()
    assert len(slept) == 5 and all(0 < s <= 0.02 + 1e-6 for s in slept)


# --- recording ----------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_recorder_writes_a_readable_file(tmp_path, no_thread_leak, suffix):
    path = tmp_path / f"out{suffix}"
    rec = VideoRecorder(path, 30.0, (160, 96))
    for _ in range(12):
        rec.write(solid((200, 40, 10), 160, 96))
    rec.write(solid((200, 40, 10), 320, 192))  # another size is scaled to the file's
    rec.close()
    rec.close()  # twice is fine
    size, frames, _ = read_video(path)
    assert size == (160, 96)
    assert len(frames) == rec.stats().written > 0
    assert rec.stats().resized == 1
    b, g, r = frames[len(frames) // 2][48, 80].astype(int)  # OpenCV reads BGR
    assert abs(r - 200) < 20 and abs(g - 40) < 20 and abs(b - 10) < 20
    rec.write(solid((0, 0, 0), 160, 96))  # after close: ignored, no crash


def test_recorder_channel_layouts(tmp_path, no_thread_leak):
    path = tmp_path / "bgrx.avi"
    with VideoRecorder(path, 10.0, (64, 64)) as rec:
        px = np.zeros((64, 64, 4), np.uint8)
        px[:, :] = (10, 40, 200, 0)  # B, G, R, X in memory
        for _ in range(3):
            rec.write(px, "BGRX")
    _, frames, _ = read_video(path)
    b, g, r = frames[0][32, 32].astype(int)
    assert abs(r - 200) < 20 and abs(g - 40) < 20 and abs(b - 10) < 20


def test_recorder_keeps_the_show_timeline(tmp_path, no_thread_leak):
    path = tmp_path / "timeline.avi"
    with VideoRecorder(path, 10.0, (64, 64), queue_size=16) as rec:
        rec.write(solid(RED, 64, 64), t=100.0)
        rec.write(solid(GREEN, 64, 64), t=100.02)  # before the next 0.1 s slot: skipped
        rec.write(solid(BLUE, 64, 64), t=100.3)  # a stall: red held through 0.1 and 0.2
        rec.write(solid(YELLOW, 64, 64), t=100.4)
    st = rec.stats()
    assert (st.received, st.written, st.repeated, st.skipped) == (4, 5, 2, 1)
    _, frames, _ = read_video(path)
    reds = [f[32, 32, 2] > 150 and f[32, 32, 1] < 100 and f[32, 32, 0] < 100 for f in frames]  # BGR
    assert len(frames) == 5 and reds[:3] == [True, True, True] and not any(reds[3:])


def test_recorder_rejects_what_it_cannot_do(tmp_path, no_thread_leak):
    with pytest.raises(RecorderError, match=r"\.mkv"):
        VideoRecorder(tmp_path / "x.mkv", 30, (64, 64))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(RecorderError, match="a_file"):
        VideoRecorder(blocker / "x.mp4", 30, (64, 64))
    with pytest.raises(RecorderError, match="fps"):
        VideoRecorder(tmp_path / "x.mp4", 0, (64, 64))
    with VideoRecorder(tmp_path / "ok.avi", 10, (64, 64)) as rec:
        with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
            rec.write(np.zeros((64, 64), np.uint8))
        with pytest.raises(ValueError, match="channel layout"):
            rec.write(np.zeros((64, 64, 3), np.uint8), "YUV")


def test_recorder_stops_before_the_disk_fills_and_the_file_stays_playable(tmp_path, no_thread_leak, monkeypatch):
    """The real free space of tmp_path, against a threshold above it (a nearly full disk)."""
    import shutil

    import installation.display.recorder as recorder

    free_mb = shutil.disk_usage(tmp_path).free / 1024 / 1024
    with pytest.raises(RecorderError, match="nearly full"):
        VideoRecorder(tmp_path / "never.avi", 10.0, (64, 64), min_free_mb=free_mb + 1024)
    assert not (tmp_path / "never.avi").exists()

    monkeypatch.setattr(recorder, "DISK_CHECK_S", 0.01)
    path = tmp_path / "cut.avi"
    rec = VideoRecorder(path, 10.0, (64, 64), queue_size=32, min_free_mb=1)
    for _ in range(5):
        rec.write(solid(RED, 64, 64))
    deadline = time.monotonic() + 5
    while rec.stats().written < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    rec.min_free_mb = free_mb + 1024  # the disk "fills up" mid-recording
    while rec.stopped is None and time.monotonic() < deadline:
        rec.write(solid(BLUE, 64, 64))
        time.sleep(0.02)
    assert rec.stopped is not None and "nearly full" in rec.stopped and str(tmp_path) in rec.stopped
    written = rec.stats().written
    for _ in range(5):
        rec.write(solid(GREEN, 64, 64))  # ignored from now on
    rec.close()
    assert rec.stats().written == written and rec.stats().stopped == rec.stopped
    _, frames, _ = read_video(path)  # finished when it stopped: readable up to there
    assert len(frames) == written >= 5


def test_recorder_records_on_when_free_space_cannot_be_read(tmp_path, no_thread_leak, monkeypatch, caplog):
    import installation.display.recorder as recorder

    def unreadable(path):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(recorder.shutil, "disk_usage", unreadable)
    monkeypatch.setattr(recorder, "DISK_CHECK_S", 0.0)
    with caplog.at_level(logging.WARNING, logger="installation.display.recorder"):
        with VideoRecorder(tmp_path / "share.avi", 10.0, (64, 64)) as rec:
            for _ in range(3):
                rec.write(solid(RED, 64, 64))
    assert rec.stopped is None and rec.stats().written == 3
    assert caplog.text.count("cannot read the free space") == 1


def test_presenter_records_the_composed_screen(presenter, tmp_path, no_thread_leak):
    path = tmp_path / "show.mp4"
    clock = FakeClock()
    p = presenter(record_path=path, fps=240.0, clock=clock)
    assert p.recorder is not None and p.recording_error == ""
    p.show_frame(gen(solid((200, 200, 200))))
    p.set_caption("recorded words")
    clock.t += 0.5  # past the caption's fade-in
    for _ in range(8):
        clock.t += 1 / 240 + 1e-3
        p.render()
    shown = p.screenshot()
    p.close()
    size, frames, _ = read_video(path)
    assert size == (W, H) and len(frames) > 0
    last = cv2.cvtColor(frames[-1], cv2.COLOR_BGR2RGB).astype(int)
    # The caption band (darker, with white text) is in the recording, like on screen.
    assert abs(last[H // 4].mean() - 200) < 15
    assert last[H - 5].mean() < 170
    assert np.abs(last - shown.astype(int)).mean() < 12


def test_presenter_records_at_the_record_rate(tmp_path, no_thread_leak):
    clock = FakeClock()
    p = Presenter(cfg(fps=240.0), record_path=tmp_path / "half.avi", record_fps=30.0, clock=clock).open()
    try:
        for _ in range(16):  # 16 display frames of 1/60 s = 0.27 s: 8 record periods
            clock.t += 1 / 60
            p.render()
    finally:
        p.close()
    assert p.recorder.stats().received == 8


def test_a_recording_that_cannot_open_does_not_stop_the_show(presenter, tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with caplog.at_level(logging.ERROR, logger="installation.display.presenter"):
        p = presenter(record_path=blocker / "show.mp4")
    assert p.recorder is None and "a_file" in p.recording_error
    assert "not recording" in caplog.text
    p.render()
