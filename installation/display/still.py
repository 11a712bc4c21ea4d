"""What the screen shows while the show is unattended: a still image, a looped clip, the last
picture dimmed or black, or the generated frames with a caption over them, with a fade into
each (control/unattended.py decides which `Look`; the app hands the presenter what
`LookLayer.frame` returns instead of the generated frame).

The display must never wait here. Stills are read and captions rendered once, when a show
starts (`preload`); a clip is decoded, scaled and captioned on its own thread (`ClipPlayer`, at
the clip's own frame rate) into a latest-value slot; and a call of `frame` does at most one
blend of two screen-sized images (about a millisecond at 720p), only while a fade runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pygame

from installation.core.channels import LatestSlot
from installation.core.messages import GeneratedFrame, GenerationParams, Prompt
from installation.core.worker import Worker
from installation.display.captions import FontBook, render_caption_band
from installation.display.presenter import BadFrame, as_rgb, fit_cover
from installation.show import resolve_path

log = logging.getLogger(__name__)

Size = tuple[int, int]
ErrorReport = Callable[[str], None]
CLIP_FPS_RANGE = (1.0, 120.0)  # a file that reports no (or a silly) rate plays at 25 fps
LOOKS = ("live", "caption", "still", "clip", "dim", "black")


class CaptionBand:
    """A caption rendered once and blended over screen-sized RGB images. Only numpy and OpenCV
    touch it after it is made, so the clip thread may use it too."""

    def __init__(self, surface: pygame.Surface) -> None:
        self.rgb = np.ascontiguousarray(pygame.surfarray.array3d(surface).transpose(1, 0, 2))
        alpha = pygame.surfarray.array_alpha(surface).T.astype(np.float32) / 255.0
        self.alpha = np.ascontiguousarray(alpha)
        self.rest = np.ascontiguousarray(1.0 - alpha)

    def over(self, image: np.ndarray) -> np.ndarray:
        """A copy of `image` (as wide as the band) with the caption over its bottom."""
        out = image.copy()
        h = min(self.rgb.shape[0], out.shape[0])
        out[-h:] = cv2.blendLinear(np.ascontiguousarray(out[-h:]), self.rgb[-h:], self.rest[-h:], self.alpha[-h:])
        return out


def read_still(path: str | Path) -> np.ndarray:
    """An image file as RGB; OSError with the reason when it cannot be read."""
    p = resolve_path(str(path))
    image = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read an image at {p} (a missing file, or not a PNG/JPEG/... OpenCV reads)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ClipPlayer(Worker):
    """Plays a video file, looped, at its own frame rate, into `slot` as screen-sized RGB images
    (captioned when a band is given). A file that cannot be opened is reported and retried with
    the worker's backoff; the screen keeps what it shows meanwhile."""

    def __init__(self, path: str, size: Size, band: CaptionBand | None, on_error: ErrorReport | None = None) -> None:
        super().__init__(f"clip:{Path(path).name}", (lambda _name, exc: on_error(str(exc))) if on_error else None)
        self.path = resolve_path(path)
        self.size = size
        self.band = band
        self.slot: LatestSlot[np.ndarray] = LatestSlot("clip")
        self._capture: cv2.VideoCapture | None = None
        self._period = 1.0 / 25.0
        self._next = 0.0
        self._read_since_start = 0

    def setup(self) -> None:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise OSError(f"cannot open the clip {self.path} (a missing file, or a format OpenCV cannot read)")
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        lo, hi = CLIP_FPS_RANGE
        self._period = 1.0 / (fps if lo <= fps <= hi else 25.0)
        self._capture, self._next, self._read_since_start = capture, time.monotonic(), 0

    def step(self) -> None:
        assert self._capture is not None
        ok, bgr = self._capture.read()
        if not ok:
            if self._read_since_start == 0:
                self.teardown()
                self._ready = False  # setup again: reopen
                raise OSError(f"the clip {self.path} has no frame OpenCV can decode")
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)  # the end: round again
            self._read_since_start = 0
            return
        self._read_since_start += 1
        image = fit_cover(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.size)
        self.slot.put(self.band.over(image) if self.band is not None else image)
        self.rate_meter.tick()
        self._next += self._period
        now = time.monotonic()
        if self._next < now - self._period:
            self._next = now  # fell behind (a loaded machine): carry on from now, no catching up
        self.sleep(max(0.0, self._next - now))

    def teardown(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None




class LookLayer:
    """Between the frame slot and the presenter (main thread): `set_look` when the look changes,
    `frame(live)` every loop, which returns what to present: the live frame itself while the
    look is "live" and no fade runs, else a frame of the look (the same object while it does not
    change, so the presenter is not handed it again)."""

    def __init__(self, size: Size, caption_size: int, on_error: ErrorReport | None = None,
                 font_path: Path | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.caption_size = caption_size
        self._on_error = on_error or (lambda reason: log.warning("%s", reason))
        self._fonts = FontBook(font_path)
        self._clock = clock
        self._stills: dict[str, np.ndarray | None] = {}  # as read
        self._fitted_stills: dict[str, np.ndarray] = {}  # at the screen's size (a 4K photograph: once)
        self._bands: dict[str, CaptionBand | None] = {}
        self.kind = "live"
        self._caption = ""
        self._path = ""
        self._level = 1.0
        self._band: CaptionBand | None = None
        self._static: GeneratedFrame | None = None  # still, dim and black: one frame
        self._player: ClipPlayer | None = None
        self._retired: list[ClipPlayer] = []  # stopped players, joined at close()
        self._base: np.ndarray | None = None  # the screen when the look was set (what "dim" dims)
        self._clip: tuple[int, GeneratedFrame] | None = None  # (slot version, frame)
        self._captioned: tuple[GeneratedFrame, GeneratedFrame] | None = None  # (live, live with caption)
        self._fitted: tuple[object, np.ndarray] | None = None  # (frame, its image at screen size)
        self._from: np.ndarray | None = None  # the screen when the fade began
        self._fade_t0 = 0.0
        self._fade_s = 0.0
        self._last_out: GeneratedFrame | None = None
        # The words and settings under a look's frames: the last generated frame's, so that what
        # counts prompts on screen (captures' every_n_prompts) sees no new prompt in a fade or a still.
        self._under: GeneratedFrame | None = None
        self._no_prompt = Prompt(text="", source="look")

    @property
    def shows_generated(self) -> bool:
        """Whether the generated frames are on screen (alone, or under a caption)."""
        return self.kind in ("live", "caption")

    # --- preparing ----------------------------------------------------------------------------
    def preload(self, stills: list[str], captions: list[str]) -> dict[str, str]:
        """Read the stills and render the captions a show may need, now (start-up), so that no
        look change reads a file or loads a font while the picture runs. Returns why each still
        that cannot be read failed, by path (it shows as a dark card)."""
        failed = {}
        for path in stills:
            if path.strip() and path not in self._stills:
                try:
                    self._stills[path] = read_still(path)
                    self._fitted_stills[path] = fit_cover(self._stills[path], self.size)
                except OSError as exc:
                    self._stills[path] = None
                    failed[path] = str(exc)
        for caption in captions:
            self._band_for(caption)
        return failed

    def _band_for(self, caption: str) -> CaptionBand | None:
        if not caption.strip():
            return None
        if caption not in self._bands:
            surface = render_caption_band(caption, self._fonts, self.size, self.caption_size)
            self._bands[caption] = CaptionBand(surface) if surface is not None else None
        return self._bands[caption]

    # --- the look -----------------------------------------------------------------------------
    def set_look(self, kind: str, caption: str = "", path: str = "", level: float = 1.0, fade_s: float = 0.0,
                 now: float | None = None) -> None:
        """Fade from what is on screen now to `kind` over `fade_s` seconds."""
        if kind not in LOOKS:
            raise ValueError(f"unknown look {kind!r} (one of {', '.join(LOOKS)})")
        now = self._clock() if now is None else now
        self._from = self._image_of(self._last_out) if fade_s > 0 else None
        self._fade_t0, self._fade_s = now, float(fade_s)
        self.kind, self._caption, self._path, self._level = kind, caption, path, float(level)
        self._band = self._band_for(caption)
        self._captioned = None
        self._stop_player()
        if kind == "clip":
            self._player = ClipPlayer(path, self.size, self._band, self._on_error)
            self._player.start()
        self._base = self._from if self._from is not None else self._image_of(self._last_out)
        self._static = self._make_static()

    def _make_static(self) -> GeneratedFrame | None:
        w, h = self.size
        if self.kind == "still":
            still = self._stills.get(self._path)
            if self._path not in self._stills:  # not preloaded (a look set by hand): read it now, once
                for reason in self.preload([self._path], []).values():
                    self._on_error(reason)
                still = self._stills.get(self._path)
            if still is not None and self._path not in self._fitted_stills:
                self._fitted_stills[self._path] = fit_cover(still, self.size)
            image = self._fitted_stills[self._path] if still is not None else np.zeros((h, w, 3), np.uint8)
        elif self.kind == "dim":
            base = self._base if self._base is not None else np.zeros((h, w, 3), np.uint8)
            if base.shape[:2] != (h, w):
                base = fit_cover(base, self.size)
            image = cv2.convertScaleAbs(base, alpha=self._level)
        elif self.kind == "black":
            image = np.zeros((h, w, 3), np.uint8)
        else:
            return None
        if self._band is not None:
            image = self._band.over(image)
        return self._frame(image, self.kind)

    def _stop_player(self) -> None:
        if self._player is not None:
            self._player.stop()  # not joined here: it ends within one clip frame; close() joins
            self._retired = [p for p in self._retired if p.is_alive()] + [self._player]
            self._player = None
            self._clip = None

    def close(self, timeout: float = 2.0) -> None:
        """Stop the clip thread, if one plays (and any stopped just before)."""
        self._stop_player()
        deadline = time.monotonic() + timeout
        for player in self._retired:
            if player.ident is not None:
                player.join(max(0.0, deadline - time.monotonic()))
        self._retired = []

    # --- every frame ------------------------------------------------------------------------------
    def frame(self, live: GeneratedFrame | None, now: float | None = None,
              size: Size | None = None) -> GeneratedFrame | None:
        """What to present now, given the newest generated frame (None: nothing new to show)."""
        now = self._clock() if now is None else now
        if live is not None:
            self._under = live
        if size is not None and tuple(size) != self.size:
            self._resize(tuple(size))  # type: ignore[arg-type]
        target = self._target(live)
        out = target
        if self._from is not None:
            p = (now - self._fade_t0) / self._fade_s if self._fade_s > 0 else 1.0
            if p >= 1.0:
                self._from = None
            else:
                to = self._image_of(target)
                to = to if to is not None else self._from
                out = self._frame(cv2.addWeighted(self._from, 1.0 - p, to, p, 0.0), "fade")
        if out is not None:
            self._last_out = out
        return out

    def _target(self, live: GeneratedFrame | None) -> GeneratedFrame | None:
        if self.kind == "live":
            return live
        if self.kind == "caption":
            if live is None or self._band is None:
                return live
            if self._captioned is None or self._captioned[0] is not live:
                image = self._image_of(live)
                if image is None:
                    return live
                self._captioned = (live, replace(live, image=self._band.over(image)))  # its words and settings
            return self._captioned[1]
        if self.kind == "clip":
            player = self._player
            if player is not None:
                image, version = player.slot.get_with_version()
                if image is not None and (self._clip is None or self._clip[0] != version):
                    self._clip = (version, self._frame(image, "clip"))
            return self._clip[1] if self._clip is not None else None
        return self._static

    def _frame(self, image: np.ndarray, kind: str) -> GeneratedFrame:
        """A frame of the look: `generator` says which look, the prompt and settings are those
        of the last generated frame (nothing new was painted)."""
        under = self._under
        return GeneratedFrame(image=image, prompt=under.prompt if under is not None else self._no_prompt,
                              params=under.params if under is not None else GenerationParams(),
                              generator=kind, model="", source_t=None)

    def _image_of(self, frame: GeneratedFrame | None) -> np.ndarray | None:
        """`frame`'s picture at the screen's size (fitted once per frame)."""
        if frame is None:
            return None
        if self._fitted is not None and self._fitted[0] is frame:
            return self._fitted[1]
        try:
            image = as_rgb(frame.image)
        except BadFrame:
            return None  # the presenter skips it too, and says why
        if image.shape[:2] != (self.size[1], self.size[0]):
            image = fit_cover(image, self.size)
        self._fitted = (frame, np.ascontiguousarray(image))
        return image

    def _resize(self, size: Size) -> None:
        """The window changed size: captions and the look's picture are made again at the new
        size (a fade in progress ends: it would mix two sizes)."""
        self.size = size
        self._bands.clear()
        self._fitted_stills.clear()
        self._from, self._fitted, self._captioned = None, None, None
        self._band = self._band_for(self._caption)
        self._static = self._make_static()
        if self._player is not None:
            self._stop_player()
            self._player = ClipPlayer(self._path, self.size, self._band, self._on_error)
            self._player.start()
