"""The presenter: shows generated frames on a pygame window (or an offscreen surface) at the
display's own rate, whatever the generator's rate. It holds the last frame, crossfades to new
ones, draws the visitor's words, a label and a HUD on top, records what was shown, and turns
keys into actions for the app. It runs on the main thread, as pygame wants.

    presenter = Presenter(show.display, record_path=None, title="Ink garden")
    presenter.open()                      # falls back to headless if no window can open
    while running:
        for action in presenter.poll_events(): ...   # "quit", "toggle_hud", "toggle_caption", "go", "back", "capture"
        presenter.show_frame(frame_slot.get())
        presenter.set_caption(text); presenter.set_label(text); presenter.set_hud(lines)
        presenter.render()                # draw, flip, record, pace to cfg.fps
    presenter.close()
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pygame  # noqa: E402

from installation.core.interfaces import FrameSink  # noqa: E402
from installation.core.messages import GeneratedFrame  # noqa: E402
from installation.core.worker import RateMeter  # noqa: E402
from installation.display.captions import (  # noqa: E402
    CaptionTiming,
    FontBook,
    render_caption_band,
    render_text_box,
    screen_scale,
)
from installation.display.silhouette import outline_surface  # noqa: E402
from installation.display.windows import OutputWindow, WindowError  # noqa: E402
from installation.show import DisplayConfig  # noqa: E402

log = logging.getLogger(__name__)

# SDL drivers that draw into memory only: nothing ever reaches a screen.
NO_WINDOW_DRIVERS = ("dummy", "offscreen")
# Recording above this size costs more CPU than a 2-core box can spare at 60 fps.
MAX_RECORD_SIZE = (1920, 1080)
HUD_REFRESH_S = 0.5

Size = tuple[int, int]


class FramePacer:
    """Holds a loop to `fps` by sleeping until each frame's deadline. pygame's Clock.tick
    sleeps whole milliseconds (60 fps becomes 62.5); deadlines keep the true rate and do not
    drift. After a stall longer than a frame the schedule restarts instead of racing to catch
    up."""

    def __init__(self, fps: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.period = 1.0 / fps
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        now = time.monotonic()
        if self._next is None or now - self._next > self.period:
            self._next = now
        self._next += self.period
        delay = self._next - now
        if delay > self.period:  # a sleep that returned early must not push frames back
            self._next = now + self.period
            delay = self.period
        if delay > 0:
            self._sleep(delay)


class DisplayUnavailable(RuntimeError):
    """No way to present: pygame cannot start, or a window was required and none opened."""


# --- monitors -------------------------------------------------------------------------------

def list_monitors() -> list[dict]:
    """The monitors SDL sees, as {"index", "width", "height"} (desktop sizes); an empty list
    when there is no display (headless machine, dummy/offscreen driver)."""
    if os.environ.get("SDL_VIDEODRIVER", "").lower() in NO_WINDOW_DRIVERS:
        return []
    started_here = not pygame.display.get_init()
    try:
        if started_here:
            pygame.display.init()
        if pygame.display.get_driver() in NO_WINDOW_DRIVERS:
            return []
        return [{"index": i, "width": w, "height": h}
                for i, (w, h) in enumerate(pygame.display.get_desktop_sizes())]
    except pygame.error:
        return []
    finally:
        if started_here:
            pygame.display.quit()


# --- images ---------------------------------------------------------------------------------

class BadFrame(ValueError):
    """A generated image the presenter cannot show; the message says what was wrong."""


def as_rgb(image: object) -> np.ndarray:
    """A generated image as (H, W, 3) uint8 RGB: RGBA/RGBX drops its alpha (frames are
    opaque), grey (H, W) is spread to three channels. Anything else is a BadFrame."""
    if not isinstance(image, np.ndarray):
        raise BadFrame(f"expected a numpy image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise BadFrame(f"expected uint8 pixels, got {image.dtype} (scale floats to 0-255 first)")
    if image.ndim == 2:
        image = np.repeat(image[:, :, np.newaxis], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] < 1 or image.shape[1] < 1:
        raise BadFrame(f"expected an image of shape (H, W, 3), got {image.shape}")
    return image[:, :, :3]


def cover_crop(src: Size, dst: Size) -> pygame.Rect:
    """The centred part of a `src`-sized image that, scaled up or down, fills `dst` exactly
    while keeping its aspect (CSS `object-fit: cover`)."""
    sw, sh = src
    dw, dh = dst
    scale = max(dw / sw, dh / sh)
    cw = min(sw, max(1, round(dw / scale)))
    ch = min(sh, max(1, round(dh / scale)))
    return pygame.Rect((sw - cw) // 2, (sh - ch) // 2, cw, ch)


def fit_cover(image: np.ndarray, size: Size) -> np.ndarray:
    """An RGB array cropped and scaled to fill `size` (width, height), centred, keeping its
    aspect. OpenCV scales 2-3x faster than pygame's smoothscale (1.3 vs 3.2 ms to 720p)."""
    h, w = image.shape[:2]
    r = cover_crop((w, h), size)
    crop = image[r.y: r.y + r.h, r.x: r.x + r.w]
    if (r.w, r.h) == tuple(size):
        return np.ascontiguousarray(crop)
    shrink = r.w > size[0]
    return cv2.resize(crop, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def starting_card(size: Size, title: str, fonts: FontBook) -> pygame.Surface:
    """What shows before the first generated frame: a dark gradient with the show's title,
    so visitors never face a black (apparently broken) screen."""
    w, h = size
    top, bottom = np.array([12, 14, 28], np.float32), np.array([42, 30, 62], np.float32)
    ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, np.newaxis]
    column = (top + (bottom - top) * ramp).astype(np.uint8)  # (h, 3)
    card = pygame.transform.scale(pygame.surfarray.make_surface(column[np.newaxis, :, :]), (w, h))
    scale = screen_scale(size)
    title_font = fonts.get(54 * scale)
    sub_font = fonts.get(20 * scale)
    title_s = title_font.render(title or "Jadong", True, (226, 224, 238))
    if title_s.get_width() > w * 0.9:
        title_s = pygame.transform.smoothscale_by(title_s, w * 0.9 / title_s.get_width())
    sub_s = sub_font.render("starting…", True, (150, 146, 176))
    y = h // 2 - (title_s.get_height() + sub_s.get_height()) // 2
    card.blit(title_s, ((w - title_s.get_width()) // 2, y))
    card.blit(sub_s, ((w - sub_s.get_width()) // 2, y + title_s.get_height() + int(8 * scale)))
    return card


def _record_size(size: Size) -> Size:
    w, h = size
    f = min(1.0, MAX_RECORD_SIZE[0] / w, MAX_RECORD_SIZE[1] / h)
    # Codecs want even sizes.
    return max(2, int(w * f) // 2 * 2), max(2, int(h * f) // 2 * 2)


def _buffer_layout(surface: pygame.Surface) -> str | None:
    """The byte order of a 32-bit surface's pixels in memory ("BGRX" for the usual XRGB8888
    on little-endian machines), or None if its raw buffer cannot be read that way."""
    if surface.get_bytesize() != 4 or sys.byteorder != "little":
        return None
    at = {shift // 8: name for name, shift, mask in zip("RGB", surface.get_shifts()[:3],
                                                        surface.get_masks()[:3]) if mask}
    layout = "".join(at.get(i, "X") for i in range(4))
    return layout if sorted(layout) == sorted("BGRX") else None


# --- the presenter --------------------------------------------------------------------------

def quit_pygame_display(driver_env_set: bool) -> None:
    """pygame's display and fonts shut down, and the SDL_VIDEODRIVER this process set for a
    headless run taken back (`driver_env_set`), even when the shutdown raises."""
    try:
        pygame.font.quit()
        pygame.display.quit()
    finally:
        if driver_env_set:
            os.environ.pop("SDL_VIDEODRIVER", None)


class Presenter:
    """Presents generated frames; see the module docstring for the loop that drives it.

    Attributes the app reads: `mode` (after fallbacks), `mode_note` (why it fell back),
    `size`, `fps` (display loop rate), `presented_frames`, `first_frame_t`,
    `last_latency_s`, `hud_visible`, `caption_visible`, `recorder`, `recording_error`."""

    def __init__(self, cfg: DisplayConfig, record_path: Path | None = None, title: str = "Jadong", *,
                 record_fps: float | None = None, fallback_to_headless: bool = True,
                 clock: Callable[[], float] = time.monotonic, font_path: Path | None = None,
                 window: OutputWindow | None = None, shared_pygame: bool = False) -> None:
        self.cfg = cfg
        # One of several outputs (display/outputs.py): a window of its own instead of
        # pygame.display's, and pygame is started and stopped by the outputs, not here.
        self._target = window
        self._shared_pygame = shared_pygame
        self.record_path = Path(record_path) if record_path is not None else None
        self.record_fps = float(record_fps) if record_fps else float(cfg.fps)
        self.title = title
        self.fallback_to_headless = fallback_to_headless
        self._clock = clock  # a stand-in clock lets tests step through fades exactly
        self._font_path = font_path

        self.mode: str = cfg.mode
        self.mode_note = ""
        self.size: Size = (cfg.width, cfg.height)
        self.presented_frames = 0
        self.first_frame_t: float | None = None
        self.last_latency_s: float | None = None
        self.rejected_frames = 0
        self.hud_visible = cfg.hud
        self.caption_visible = cfg.caption
        self.recorder = None  # a VideoRecorder while recording
        self.recording_error = ""

        self._opened = False
        self._window = False
        self._events = False
        self._driver_env_set = False
        self._screen: pygame.Surface | None = None
        self._fonts: FontBook | None = None
        self._card: pygame.Surface | None = None
        self._rate = RateMeter()
        self._pace = FramePacer(cfg.fps)
        self._warned: set[str] = set()

        # Frames: the fade runs from `_from` (what was on screen) to `_to` (the newest frame).
        self._last_frame_obj: object | None = None
        self._source: np.ndarray | None = None  # the newest image, kept to rescale on resize
        self._from: pygame.Surface | None = None
        self._to: pygame.Surface | None = None
        self._fade_start = 0.0
        self._fade_s = cfg.crossfade_s  # this fade's length: crossfade_s, or less for fast frames
        self._last_arrival: float | None = None
        self._arrival_gap: float | None = None  # smoothed seconds between new frames
        self._pending_source_t: float | None = None

        # Overlays, rendered once per change and cached.
        self._caption_text = ""
        self._caption_t = 0.0
        self._caption_surface: pygame.Surface | None = None
        self._caption_timing = CaptionTiming(hold_s=cfg.caption_seconds)
        self._label_text = ""
        self._black_from = self._black_to = 0.0  # blackout level, faded between the two
        self._black_t0 = 0.0
        self._black_fade_s = 0.0
        self._label_surface: pygame.Surface | None = None
        self._hud_lines: list[str] = []
        self._hud_surface: pygame.Surface | None = None
        self._hud_key: tuple | None = None
        self._hud_t = -1e9
        self._outline_surface: pygame.Surface | None = None
        self._next_record_t: float | None = None
        self._record_layout: str | None = None
        self._sinks: list[FrameSink] = []  # where presented frames also go (NDI outputs)

    # --- opening and closing ---------------------------------------------------------------
    def open(self) -> Presenter:
        if self._opened:
            return self
        reason = None
        if self.cfg.mode != "headless":
            reason = self._open_window()
            if reason:
                if not self.fallback_to_headless:
                    if not self._shared_pygame:
                        self._quit_pygame()
                    raise DisplayUnavailable(f"display.mode={self.cfg.mode!r}: {reason}")
                log.warning("display: %s; running headless (no window) instead", reason)
                self.mode_note = f"{self.cfg.mode} unavailable: {reason}"
        if self.cfg.mode == "headless" or reason:
            self._open_headless()
        try:
            if not pygame.font.get_init():
                pygame.font.init()
        except pygame.error as exc:
            self._quit_pygame()
            raise DisplayUnavailable(f"pygame cannot render text ({exc})") from None
        self._fonts = FontBook(self._font_path)
        self._opened = True
        self._relayout()
        self._open_recorder()
        log.info("display: %s %dx%d", self.mode, *self.size)  # a fallback's reason was warned above, once
        return self

    def _open_window(self) -> str | None:
        """Open the window the show asks for; returns why it could not, or None."""
        env = os.environ.get("SDL_VIDEODRIVER", "").lower()
        if env in NO_WINDOW_DRIVERS:
            return f"SDL_VIDEODRIVER={env} shows no window"
        try:
            pygame.display.init()
        except pygame.error as exc:
            return f"no display could be opened ({exc})"
        self._events = True
        driver = pygame.display.get_driver()
        if driver in NO_WINDOW_DRIVERS:
            hint = ""
            if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                         or os.environ.get("WAYLAND_DISPLAY")):
                hint = "no DISPLAY or WAYLAND_DISPLAY is set; "
            return f"{hint}SDL found no screen (video driver '{driver}')"
        if self._target is not None:
            return self._open_target()
        monitors = pygame.display.get_num_displays()
        monitor = self.cfg.monitor
        if monitor >= monitors:
            log.warning("display.monitor=%d but only %d monitor(s) found; using monitor 0", monitor, monitors)
            monitor = 0
        try:
            if self.cfg.mode == "fullscreen":
                size = tuple(pygame.display.get_desktop_sizes()[monitor])
                screen = pygame.display.set_mode(size, pygame.FULLSCREEN, display=monitor)
                pygame.mouse.set_visible(False)  # no pointer over the artwork
            else:
                screen = pygame.display.set_mode((self.cfg.width, self.cfg.height), pygame.RESIZABLE,
                                                 display=monitor)
        except (pygame.error, IndexError) as exc:
            return f"cannot open a {self.cfg.mode} window on monitor {monitor} ({exc})"
        pygame.display.set_caption(self.title)
        self._screen = screen
        self._window = True
        self.mode = self.cfg.mode
        self.size = screen.get_size()
        return None

    def _open_target(self) -> str | None:
        """One of several windows: its own SDL window (display/windows.py), drawn into like a
        headless surface and presented by the window."""
        assert self._target is not None
        try:
            self._target.open()
        except WindowError as exc:
            return str(exc)
        self._screen = self._target.surface
        self._window = True
        self.mode = self.cfg.mode
        self.size = self._screen.get_size()
        return None

    def _open_headless(self) -> None:
        if not pygame.display.get_init():
            if "SDL_VIDEODRIVER" not in os.environ:
                # SDL would try X11 or Wayland first; offscreen never needs a screen.
                os.environ["SDL_VIDEODRIVER"] = "offscreen"
                self._driver_env_set = True
            try:
                pygame.display.init()
                self._events = True
            except pygame.error as exc:  # still drawable: surfaces need no video driver
                log.warning("display: SDL video could not start (%s); no keyboard or window events", exc)
                self._events = False
        self._window = False
        self.mode = "headless"
        self.size = (self.cfg.width, self.cfg.height)
        self._screen = pygame.Surface(self.size, 0, 32)

    def _open_recorder(self) -> None:
        if self.record_path is None:
            return
        from installation.display.recorder import RecorderError, VideoRecorder  # starts no thread until used

        try:
            self.recorder = VideoRecorder(self.record_path, self.record_fps, _record_size(self.size))
        except RecorderError as exc:
            # The show goes on without a recording; the app can read recording_error.
            self.recording_error = str(exc)
            log.error("display: not recording: %s", exc)

    def close(self) -> None:
        for sink in self._sinks:
            try:
                sink.close()
            except Exception as exc:  # one sink failing to stop must not keep the others running
                log.warning("display: %s did not close cleanly: %s", sink.name, exc)
        self._sinks.clear()
        if self.recorder is not None:
            self.recorder.close()
        if self._target is not None:
            self._target.close()
        if self._shared_pygame:
            pass  # the outputs stop pygame once every output is closed
        elif self._opened or pygame.display.get_init():
            self._quit_pygame()
        self._opened = False
        self._window = False
        self._events = False

    def _quit_pygame(self) -> None:
        try:
            quit_pygame_display(self._driver_env_set)
        finally:
            self._driver_env_set = False

    def __enter__(self) -> Presenter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- input --------------------------------------------------------------------------
    def poll_events(self) -> list[str]:
        """Window and keyboard events as actions for the app. The presenter applies the HUD
        and caption toggles itself; "quit" is the app's to act on."""
        if not self._events:
            return []
        try:
            events = pygame.event.get()
        except pygame.error:
            return []
        actions = [self.handle_event(ev) for ev in events]
        return [action for action in actions if action]

    def handle_event(self, ev: pygame.event.Event) -> str | None:
        """One window or keyboard event as an action for the app (None for most). With several
        windows (display/outputs.py) each event is handed to the presenter of its window."""
        if ev.type == pygame.QUIT:
            # Also what SIGINT/SIGTERM become inside SDL: always honoured, lock or not.
            return "quit"
        if ev.type == pygame.KEYDOWN:
            return self._key_action(ev.key)
        if ev.type in (pygame.VIDEORESIZE, pygame.WINDOWSIZECHANGED) and self._window:
            if self._target is None or self._target.sync_size():
                self._relayout()
        elif ev.type == pygame.WINDOWCLOSE and self._target is not None and self._window:
            # One of several windows closed: that output goes on headless, like a lost window
            # (SDL sends QUIT, which ends the show, when the last window closes).
            self._lose_window(WindowError("the window was closed"))
        return None

    def _key_action(self, key: int) -> str | None:
        if self.cfg.lock_keyboard:
            if key == pygame.K_ESCAPE:
                self._warn_once("esc-locked", "display: Esc ignored: the keyboard is locked "
                                "(display.lock_keyboard = true); stop the show with a signal or OSC")
            return None
        if key == pygame.K_ESCAPE:
            return "quit"
        if key == pygame.K_h:
            self.hud_visible = not self.hud_visible
            return "toggle_hud"
        if key == pygame.K_c:
            self.caption_visible = not self.caption_visible
            return "toggle_caption"
        if key in (pygame.K_SPACE, pygame.K_RIGHT):
            return "go"  # the next cue, as /jadong/cue/next
        if key == pygame.K_LEFT:
            return "back"  # the previous cue, as /jadong/cue/prev
        if key == pygame.K_p:
            return "capture"  # the picture on screen, as /jadong/capture (c is the caption)
        return None

    # --- content ------------------------------------------------------------------------
    def show_frame(self, frame: GeneratedFrame | None) -> None:
        """Start presenting `frame`. None, or the same object as last time, changes nothing
        (the last frame is held). A frame that cannot be shown is skipped with a warning."""
        if frame is None or frame is self._last_frame_obj:
            return
        self._require_open()
        self._last_frame_obj = frame
        image = getattr(frame, "image", None)
        try:
            scaled = self._scale(image)
        except BadFrame as exc:
            self.rejected_frames += 1
            self._warn_once(f"bad:{exc}", f"display: skipped a frame from "
                            f"{getattr(frame, 'generator', '?')}: {exc}")
            return
        self._source = image
        now = self._clock()
        if self._to is None:
            self._from = self._card
        elif self._fade_progress(now) < 1.0:
            # Mid-fade: start the next fade from exactly what is on screen now.
            self._from = self._compose_base(now, self._to.copy())
        else:
            self._from = self._to
        self._to = scaled
        self._fade_start = now
        # Frames arriving faster than the crossfade would be shown forever half-faded (a live
        # camera ghosts): the fade shortens to the usual gap between arrivals.
        if self._last_arrival is not None:
            gap = now - self._last_arrival
            self._arrival_gap = gap if self._arrival_gap is None else 0.7 * self._arrival_gap + 0.3 * gap
        self._last_arrival = now
        self._fade_s = min(self.cfg.crossfade_s, self._arrival_gap) if self._arrival_gap else self.cfg.crossfade_s
        source_t = getattr(frame, "source_t", None)
        self._pending_source_t = source_t if source_t is not None else getattr(frame, "t", None)
        if self._pending_source_t is None:
            self._pending_source_t = now

    def set_caption(self, text: str) -> None:
        """The visitor's words; "" hides them. Setting the same text again does not restart
        the caption's timer."""
        text = text or ""
        if text == self._caption_text and self._caption_surface is not None:
            return  # still on screen: its timer runs on (a faded-out caption shows again)
        self._caption_text = text
        self._caption_t = self._clock()
        self._caption_surface = None
        if text and self._opened:
            self._caption_surface = self._render_caption()

    def set_silhouette(self, mask: np.ndarray | None, generated: tuple[int, int]) -> None:
        """The visitor's person mask (uint8, 255 = person, camera pixels) from the vision stage,
        drawn as an outline over the picture when `display.silhouette = "outline"`; `generated`
        is the generator's frame size, whose crop of the camera the picture shows. None clears."""
        if self.cfg.silhouette == "off" or not self._opened:
            return
        self._outline_surface = outline_surface(mask, generated, self.size)

    def set_label(self, text: str) -> None:
        """Small text top-left (e.g. why the preview generator runs); "" hides it."""
        text = text or ""
        if text == self._label_text:
            return
        self._label_text = text
        self._label_surface = self._render_label() if self._opened else None

    def set_blackout(self, on: bool, fade_s: float = 0.0) -> None:
        """Fade to black (on) or back to the picture (off) over `fade_s` seconds, starting from
        whatever level is on screen now. A performer's choice: the show never blacks out alone."""
        now = self._clock()
        self._black_from = self.blackout_level(now)
        self._black_to = 1.0 if on else 0.0
        self._black_t0 = now
        self._black_fade_s = max(0.0, float(fade_s))

    def blackout_level(self, now: float | None = None) -> float:
        """0 = the picture, 1 = black."""
        now = self._clock() if now is None else now
        frm, to, fade = self._black_from, self._black_to, self._black_fade_s
        if fade <= 0 or frm == to:
            return to
        p = min(1.0, max(0.0, (now - self._black_t0) / fade))
        return frm + (to - frm) * p

    def _draw_blackout(self, now: float, screen: pygame.Surface) -> None:
        level = self.blackout_level(now)
        if level <= 0.0:
            return
        if level >= 1.0:
            screen.fill((0, 0, 0))
            return
        veil = pygame.Surface(screen.get_size())
        veil.fill((0, 0, 0))
        veil.set_alpha(int(round(level * 255)))
        screen.blit(veil, (0, 0))

    def set_idle(self, idle: Callable[[float], None]) -> None:
        """What the loop does while it waits for the next frame's deadline (default: sleep).
        The app serves controls there, so a cue takes effect at once, not at the next frame."""
        self._pace._sleep = idle

    def set_crossfade(self, seconds: float) -> None:
        self.cfg.crossfade_s = max(0.0, float(seconds))

    @property
    def crossfade_s(self) -> float:
        return self.cfg.crossfade_s

    def set_caption_visible(self, on: bool) -> None:
        self.caption_visible = bool(on)

    def set_hud_visible(self, on: bool) -> None:
        self.hud_visible = bool(on)

    @property
    def current_frame(self) -> GeneratedFrame | None:
        """The generated frame on screen (the newest one shown), for captures."""
        return self._last_frame_obj

    def set_hud(self, lines: list[str]) -> None:
        """Lines for the HUD; shown only while the HUD is on."""
        self._hud_lines = [str(x) for x in lines]

    # --- the loop -----------------------------------------------------------------------
    def render(self, wait: bool = True) -> None:
        """Draw the frame and overlays, flip, record, then wait to keep to `cfg.fps` (wait=False:
        the caller paces, as the outputs do for several presenters)."""
        self._require_open()
        if self._window and self._target is None:
            surface = pygame.display.get_surface()
            if surface is not None and surface.get_size() != self.size:
                self._screen = surface
                self._relayout()
        now = self._clock()
        screen = self._screen
        if self._to is None:
            screen.blit(self._card, (0, 0))
        else:
            self._compose_base(now, screen)
        self._draw_outline(screen)
        # The picture before any text, for sinks that want it without (grabbed only then).
        clean = self._screen_rgb() if any(not s.overlays for s in self._sinks) else None
        self._draw_overlays(now, screen)
        self._draw_blackout(now, screen)
        if self._window:
            try:
                if self._target is not None:
                    self._target.present()
                else:
                    pygame.display.flip()
            except (pygame.error, WindowError) as exc:
                self._lose_window(exc)
        photon = self._clock()
        if self._pending_source_t is not None:
            self.presented_frames += 1
            if self.first_frame_t is None:
                self.first_frame_t = photon
            self.last_latency_s = max(0.0, photon - self._pending_source_t)
            self._pending_source_t = None
        self._record(photon)
        self._feed_sinks(photon, clean, self.blackout_level(now))
        self._rate.tick()
        if wait:
            self._pace.wait()

    @property
    def fps(self) -> float:
        return self._rate.rate()

    @property
    def screen(self) -> pygame.Surface:
        """The composed surface (the window's, or the offscreen one when headless)."""
        self._require_open()
        return self._screen

    def add_sink(self, sink: FrameSink) -> None:
        """Also hand every presented frame to `sink` (see FrameSink in core/interfaces.py); the
        presenter closes it when it closes."""
        self._sinks.append(sink)

    @property
    def sinks(self) -> tuple[FrameSink, ...]:
        return tuple(self._sinks)

    def _screen_rgb(self) -> np.ndarray:
        """The screen as a new, read-only (H, W, 3) RGB array. From the raw 32-bit buffer it is
        one OpenCV pass that reorders and copies at once (~0.1 ms at 720p, against ~1.3 ms for
        pygame's tobytes)."""
        code = {"BGRX": cv2.COLOR_BGRA2RGB, "RGBX": cv2.COLOR_RGBA2RGB}.get(self._record_layout or "")
        if code is None:
            rgb = self.screenshot()
        else:
            w, h = self._screen.get_size()
            buf = self._screen.get_buffer()  # locks the surface until released
            px = np.frombuffer(buf, np.uint8).reshape(h, self._screen.get_pitch())[:, : w * 4].reshape(h, w, 4)
            rgb = cv2.cvtColor(px, code)
            del px, buf
        rgb.flags.writeable = False  # handed to sinks on other threads: nobody writes to it again
        return rgb

    def _feed_sinks(self, t: float, clean: np.ndarray | None, blackout: float) -> None:
        if not self._sinks:
            return
        full = self._screen_rgb() if any(s.overlays for s in self._sinks) else None
        if clean is not None and blackout > 0:  # grabbed before the blackout was drawn
            clean = cv2.convertScaleAbs(clean, alpha=1.0 - blackout)
            clean.flags.writeable = False
        for sink in self._sinks:
            try:
                sink.send(full if sink.overlays else clean, t)
            except Exception as exc:  # a sink's failure must never stop the screen
                self._warn_once(f"sink:{sink.name}:{exc}", f"display: {sink.name} refused a frame: {exc}")

    def screenshot(self) -> np.ndarray:
        """The last composed screen as an (H, W, 3) RGB array."""
        w, h = self._screen.get_size()
        return np.frombuffer(pygame.image.tobytes(self._screen, "RGB"), np.uint8).reshape(h, w, 3).copy()

    # --- internals ----------------------------------------------------------------------
    def _require_open(self) -> None:
        if not self._opened:
            raise RuntimeError("Presenter: call open() first")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    def _scale(self, image: object) -> pygame.Surface:
        rgb = fit_cover(as_rgb(image), self.size)
        surface = pygame.image.frombuffer(rgb, self.size, "RGB")  # shares rgb's memory
        try:
            # Same pixel format as the screen: blits are then plain copies. Also a copy, so
            # the generator's array is never referenced after this.
            return surface.convert(self._screen)
        except pygame.error:  # no video driver at all: convert needs one
            return surface.copy()

    def _fade_progress(self, now: float) -> float:
        if self._fade_s <= 0 or self._from is None:
            return 1.0
        return min(1.0, max(0.0, (now - self._fade_start) / self._fade_s))

    def _compose_base(self, now: float, target: pygame.Surface) -> pygame.Surface:
        p = self._fade_progress(now)
        if p >= 1.0:
            target.blit(self._to, (0, 0))
        else:
            target.blit(self._from, (0, 0))
            self._to.set_alpha(int(round(p * 255)))
            target.blit(self._to, (0, 0))
            self._to.set_alpha(None)
        return target

    def _draw_outline(self, screen: pygame.Surface) -> None:
        if self._outline_surface is not None and self._to is not None:
            screen.blit(self._outline_surface, (0, 0))  # under the caption, which must stay readable

    def _draw_overlays(self, now: float, screen: pygame.Surface) -> None:
        w, h = self.size
        if self.caption_visible and self._caption_surface is not None:
            since = now - self._caption_t
            self._caption_timing.hold_s = self.cfg.caption_seconds  # a cue may change it mid-show
            alpha = self._caption_timing.alpha(since)
            if alpha > 0:
                self._caption_surface.set_alpha(alpha)
                screen.blit(self._caption_surface, (0, h - self._caption_surface.get_height()))
            elif self._caption_timing.done(since):
                self._caption_surface = None  # faded out: nothing left to draw
        margin = int(12 * screen_scale(self.size))
        if self._label_surface is not None:
            screen.blit(self._label_surface, (margin, margin))
        if self.hud_visible:
            hud = self._hud(now)
            if hud is not None:
                screen.blit(hud, (w - margin - hud.get_width(), margin))

    def _hud(self, now: float) -> pygame.Surface | None:
        own = f"display {self.fps:.1f} fps · {self.mode} {self.size[0]}×{self.size[1]}"
        if self.recorder is not None:
            st = self.recorder.stats()
            own += (f" · rec {st.written} frames, {st.dropped} dropped" if st.stopped is None
                    else f" · rec stopped at {st.written} frames (see log)")
        elif self.recording_error:
            own += " · not recording (see log)"
        key = tuple(self._hud_lines)
        if key != self._hud_key or now - self._hud_t >= HUD_REFRESH_S:
            font = self._fonts.get(16 * screen_scale(self.size))
            self._hud_surface = render_text_box([*self._hud_lines, own], font, int(self.size[0] * 0.45),
                                                color=(210, 240, 210), align="right")
            self._hud_key = key
            self._hud_t = now
        return self._hud_surface

    def _render_caption(self) -> pygame.Surface | None:
        return render_caption_band(self._caption_text, self._fonts, self.size, self.cfg.caption_size)

    def _render_label(self) -> pygame.Surface | None:
        if not self._label_text:
            return None
        font = self._fonts.get(18 * screen_scale(self.size))
        return render_text_box(self._label_text.splitlines(), font, int(self.size[0] * 0.6))

    def _relayout(self) -> None:
        """Re-render everything sized to the screen (at open and after a window resize)."""
        if self._window:
            self._screen = self._target.surface if self._target is not None else pygame.display.get_surface()
            self.size = self._screen.get_size()
        self._card = starting_card(self.size, self.title, self._fonts)
        if self._source is not None:
            try:
                self._to = self._scale(self._source)
            except BadFrame:
                self._to = None
        self._from = None  # a fade across a resize would mix two sizes
        self._caption_surface = self._render_caption() if self._caption_text else None
        self._label_surface = self._render_label()
        self._hud_key = None
        self._record_layout = _buffer_layout(self._screen)

    def _lose_window(self, exc: BaseException) -> None:
        """The window went away mid-show (display server gone): keep going headless, so the
        recording and the rest of the show carry on."""
        log.warning("display: the window was lost (%s); continuing headless", exc)
        self.mode_note = f"window lost: {exc}"
        if self._target is not None:
            self._target.close()
        self._window = False
        self._events = False
        self.mode = "headless"
        self._screen = pygame.Surface(self.size, 0, 32)
        self._record_layout = _buffer_layout(self._screen)

    def _record(self, now: float) -> None:
        rec = self.recorder
        if rec is None:
            return
        period = 1.0 / self.record_fps
        if self._next_record_t is None or now - self._next_record_t > period:
            self._next_record_t = now  # first frame, or the loop stalled: restart the schedule
        if now + 1e-4 < self._next_record_t:
            return
        self._next_record_t += period
        try:
            if self._record_layout is not None:
                # The raw pixel buffer: one memcpy here, channel reordering in the writer thread.
                w, h = self._screen.get_size()
                buf = self._screen.get_buffer()  # locks the surface until released
                px = np.frombuffer(buf, np.uint8).reshape(h, self._screen.get_pitch())[:, : w * 4]
                rec.write(px.reshape(h, w, 4), self._record_layout, t=now)
                del px, buf
            else:
                rec.write(self.screenshot(), "RGB", t=now)
        except (ValueError, pygame.error) as exc:
            self._warn_once(f"rec:{exc}", f"display: a frame could not be recorded: {exc}")
