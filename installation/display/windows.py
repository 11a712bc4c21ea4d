"""Windows on several monitors from one process: each screen of a show with [[outputs]] is its
own SDL window (pygame 2.6's `pygame._sdl2.video`), fullscreen on its monitor or a window there.

The presenter composes each frame into an ordinary 32-bit surface, as it does headless; the
window copies that surface into a streaming texture and presents it. Presenting never waits
for vsync: the main thread presents every window in turn, and a vsync wait on one window would
hold back the others (two monitors at 60 Hz out of phase would halve both), the controls and
the event queue. The outputs' loop paces itself to the fastest output's rate instead
(display/outputs.py). Tearing is the price where a monitor's refresh and that rate disagree.

Placement: SDL puts a window on the display that contains the window's centre, and knows
displays by their desktop bounds. On an ordinary desktop (one X screen spanning the monitors,
or Wayland, Windows, macOS) each monitor has bounds of its own and a window lands where it is
asked. Separate X screens (an X server started with several `-screen` options) all start at
0,0, so a window lands on the first screen that contains its centre: with screens of equal
size always the first. `open` says when SDL placed a window elsewhere than asked.
"""

from __future__ import annotations

import logging
from typing import Any

import pygame
from pygame._sdl2.video import Renderer, Texture, Window

log = logging.getLogger(__name__)

Size = tuple[int, int]
# SDL_WINDOWPOS_CENTERED_DISPLAY(n): centred on display n (SDL_video.h).
_CENTERED_ON = 0x2FFF0000
_BLENDMODE_NONE = 0  # the composed picture is opaque: copied, never blended


class WindowError(RuntimeError):
    """A window could not be opened or presented; the message says why."""


def monitor_count() -> int:
    """Monitors SDL sees (pygame.display must be initialised)."""
    try:
        return pygame.display.get_num_displays()
    except pygame.error:
        return 0


class OutputWindow:
    """One window on one monitor, presenting what a presenter composed into `surface`.
    Main thread only, like all of pygame."""

    def __init__(self, title: str, monitor: int, fullscreen: bool, size: Size) -> None:
        self.title = title
        self.monitor = monitor
        self.fullscreen = fullscreen
        self.size: Size = size
        self.placed_on: int | None = None  # the display SDL put the window on
        self._window: Window | None = None
        self._renderer: Renderer | None = None
        self._texture: Texture | None = None
        self._surface: pygame.Surface | None = None

    @property
    def surface(self) -> pygame.Surface:
        """What the presenter draws into: the window's size, presented by `present`."""
        if self._surface is None:
            raise WindowError("the window is not open")
        return self._surface

    @property
    def is_open(self) -> bool:
        return self._window is not None

    def open(self) -> None:
        """Open the window; WindowError with the reason if it cannot."""
        count = monitor_count()
        if count < 1:
            raise WindowError("SDL sees no monitor")
        if self.monitor >= count and self.fullscreen:
            # Not over another output's picture on monitor 0: this output goes on headless.
            raise WindowError(f"there is no monitor {self.monitor} ({count} found: 0 to {count - 1}); connect it "
                              "and start again, or give the output another monitor")
        if self.monitor >= count:
            log.warning("display: monitor %d asked for but only %d monitor(s) found; the window opens on monitor 0",
                        self.monitor, count)
            self.monitor = 0
        where = _CENTERED_ON | self.monitor
        try:
            if self.fullscreen:
                self.size = tuple(pygame.display.get_desktop_sizes()[self.monitor])  # type: ignore[assignment]
                self._window = Window(self.title, size=self.size, position=(where, where), fullscreen_desktop=True)
                pygame.mouse.set_visible(False)  # no pointer over the artwork
            else:
                self._window = Window(self.title, size=self.size, position=(where, where), resizable=True)
            self._renderer = self._make_renderer(self._window)
            self._make_surface(tuple(self._window.size))  # type: ignore[arg-type]
        except (pygame.error, IndexError) as exc:
            self.close()
            mode = "fullscreen" if self.fullscreen else "windowed"
            raise WindowError(f"cannot open a {mode} window on monitor {self.monitor} ({exc})") from None
        self.placed_on = self._window.display_index
        if self.placed_on != self.monitor:
            log.warning("display: the window for monitor %d was placed on monitor %d by SDL (separate X screens "
                        "of equal size cannot be told apart; see display/windows.py)", self.monitor, self.placed_on)

    @staticmethod
    def _make_renderer(window: Window) -> Renderer:
        try:
            return Renderer(window, vsync=False)
        except pygame.error:  # no GPU renderer (no OpenGL): SDL's software renderer always works
            return Renderer(window, accelerated=0, vsync=False)

    def _make_surface(self, size: Size) -> None:
        assert self._renderer is not None
        self.size = size
        self._surface = pygame.Surface(size, 0, 32)
        self._texture = Texture(self._renderer, size, streaming=True)
        self._texture.blend_mode = _BLENDMODE_NONE

    def owns(self, event: Any) -> bool:
        """Whether `event` (keyboard, window) happened in this window."""
        return self._window is not None and getattr(event, "window", None) is self._window

    def sync_size(self) -> bool:
        """After the window was resized: a surface of the new size (True), or nothing changed."""
        if self._window is None:
            return False
        size = tuple(self._window.size)
        if size == self.size or size[0] < 1 or size[1] < 1:
            return False
        self._make_surface(size)  # type: ignore[arg-type]
        return True

    def present(self) -> None:
        """Show what was drawn into `surface`; WindowError if the window is gone."""
        if self._window is None or self._renderer is None or self._texture is None or self._surface is None:
            raise WindowError("the window is closed")
        try:
            self._texture.update(self._surface)
            self._texture.draw()
            self._renderer.present()
        except pygame.error as exc:
            raise WindowError(str(exc)) from None

    def close(self) -> None:
        """Destroy the window (idempotent); pygame itself stays up for the other windows."""
        window, self._window = self._window, None
        self._texture = None
        self._renderer = None
        if window is not None:
            try:
                window.destroy()
            except pygame.error as exc:
                log.debug("display: destroying a window failed: %s", exc)
