"""The mask mode: the generator paints only inside (or outside) the visitor's silhouette, and
the rest of the picture is the camera image itself, joined with a soft edge.

The mask is in camera pixels (the vision stage's person mask) or an image file's pixels (a
show's `mask_image`). It goes through the very centre crop the generator applies to the camera
(imaging.fit_image), so it lies on the visitor in the generated frame, and the camera frame the
generator was given is fitted the same way before the two are blended.

The soft edge lies inside the painted area: alpha ramps from 0 on the mask's border to 1 at
`feather_px` inwards (a distance transform), so every pixel outside the painted area is the
camera's own pixel, exactly. Numpy and OpenCV only; the alpha is remade only when the mask
changes (a few times a second for a silhouette, once for an image), and the per-frame cost is
one fit of the camera frame and one blend (see tests/generation/test_mask.py for the numbers).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from installation.core.events import EventHook, emit
from installation.core.messages import CameraFrame, Scene
from installation.show import GeneratorConfig, resolve_path

from .imaging import check_rgb_uint8, fit_image

log = logging.getLogger(__name__)

MaskMode = Literal["off", "inside", "outside"]
MaskSource = Literal["silhouette", "image", "none"]


class MaskImageError(ValueError):
    """A show's mask image that cannot be used; the message names the field and the file."""


def read_mask_image(path: str) -> np.ndarray:
    """A mask (uint8, 255 = inside) from an image file: its alpha channel when it has one
    (opaque = inside), else its brightness (white = inside)."""
    p = resolve_path(path)
    image = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise MaskImageError(f"generator.mask_image {path}: cannot read an image at {p} "
                             "(a PNG or JPEG; relative paths start at the project folder)")
    if image.ndim == 3 and image.shape[2] == 4:
        plane = image[:, :, 3]
    elif image.ndim == 3:
        plane = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY)
    else:
        plane = image
    halves = {np.dtype(np.uint8): 127, np.dtype(np.uint16): 32767}  # 8- and 16-bit PNGs
    if plane.dtype not in halves:
        raise MaskImageError(f"generator.mask_image {path}: expected an 8- or 16-bit image, got {plane.dtype} "
                             "pixels; save it as an 8-bit PNG")
    return np.where(plane > halves[plane.dtype], 255, 0).astype(np.uint8)


def fit_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """The mask (uint8, any size) through the generator's centre crop, at `width`×`height`,
    as a boolean array (True = inside)."""
    if mask.ndim != 2:
        raise ValueError(f"mask: expected a 2-D uint8 array, got shape {mask.shape}")
    return fit_image(mask, width, height) > 127


def feather_alpha(inside: np.ndarray, feather_px: float) -> np.ndarray:
    """Alpha (float32, 0-1) of the painted area `inside` (bool): exactly 0 outside it, ramping
    smoothly to 1 over `feather_px` pixels inwards from its border (0: a hard edge)."""
    region = inside.astype(np.uint8)
    if feather_px <= 0 or not region.any():
        return region.astype(np.float32)
    if region.all():
        return np.ones(region.shape, np.float32)
    # Distance (pixels) from each inside pixel to the nearest outside pixel: 1 on the border.
    distance = cv2.distanceTransform(region, cv2.DIST_L2, 3)
    t = np.clip((distance - 0.5) / float(feather_px), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)  # smoothstep: no visible crease


def composite(generated: np.ndarray, camera: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`generated` over `camera` (both RGB uint8 of alpha's size) by alpha: where alpha is 0
    the camera's pixel, where it is 1 the generated one."""
    # cv2.blendLinear in uint8: ~3x faster than the same sum in numpy floats at 512×512.
    return cv2.blendLinear(generated, camera, alpha, 1.0 - alpha)


@dataclass(frozen=True)
class MaskSettings:
    """What a show (later: a cue) asks of the mask."""

    mode: MaskMode = "off"
    feather_px: int = 0
    image: str = ""

    @classmethod
    def from_config(cls, cfg: GeneratorConfig) -> MaskSettings:
        return cls(mode=cfg.mask, feather_px=cfg.mask_feather_px, image=cfg.mask_image)


class Masker:
    """Composites each generated frame over the camera frame it was made from, through the
    newest silhouette (or the show's mask image). One thread calls `apply` (the generator's)."""

    def __init__(self, settings: MaskSettings, on_event: EventHook | None = None) -> None:
        self.settings = settings
        self._on_event = on_event
        self._image_mask: np.ndarray | None = None
        self._image_error = ""
        if settings.image:
            try:
                self._image_mask = read_mask_image(settings.image)
            except MaskImageError as exc:
                self._image_error = str(exc)
        self._alpha_key: tuple | None = None
        self._alpha: np.ndarray | None = None
        self._said: set[str] = set()
        self.source: MaskSource = "none"  # what the last frame was masked by

    def _say_once(self, key: str, **fields: object) -> None:
        if key in self._said:
            return
        self._said.add(key)
        emit(self._on_event, "mask", **fields)

    def _choose(self, scene: Scene | None) -> tuple[MaskSource, np.ndarray | None]:
        """The silhouette when someone is seen, else the mask image, else an empty silhouette
        (inside: only the camera; outside: all painted), else nothing."""
        silhouette = scene.silhouette if scene is not None else None
        if silhouette is not None and silhouette.any():
            return "silhouette", silhouette
        if self._image_mask is not None:
            return "image", self._image_mask
        if silhouette is not None:
            return "silhouette", silhouette
        return "none", None

    def _alpha_for(self, mask: np.ndarray, width: int, height: int, mode: MaskMode) -> np.ndarray:
        # The mask arrays are never written after they are published, so their identity is
        # their version: a new silhouette is a new array.
        key = (id(mask), mask.shape, width, height, mode, self.settings.feather_px)
        if key != self._alpha_key or self._alpha is None:
            inside = fit_mask(mask, width, height)
            if mode == "outside":
                inside = ~inside
            self._alpha = feather_alpha(inside, self.settings.feather_px)
            self._alpha_key = key
        return self._alpha

    def no_camera(self) -> None:
        """The show has no camera: nothing to show outside the mask (said once)."""
        self._say_once("no_camera", source="none", reason="generator.mask needs a camera image to show outside "
                       "the mask, and the show has none (camera.source = \"none\"); painting the full frame")

    def apply(self, frame: np.ndarray, camera: np.ndarray | None, scene: Scene | None,
              mode: MaskMode | None = None) -> np.ndarray:
        """The frame to show: `frame` inside the mask, the camera image outside. Without a
        camera image or any mask, `frame` unchanged (and an event says why, once)."""
        mode = mode or self.settings.mode  # a cue's mode, else the show's
        if mode == "off":
            self.source = "none"
            return frame
        if self._image_error:
            self._say_once("image_error", source="none", reason=self._image_error)
        if camera is None:  # no camera frame (none at all: the worker says so at start)
            self.source = "none"
            if "no_camera" not in self._said:
                self._say_once("no_frame", source="none", reason="generator.mask: no camera image has come "
                               "yet; painting the full frame until one does")
            return frame
        source, mask = self._choose(scene)
        self.source = source
        if mask is None:
            self._say_once("none", source="none", reason="generator.mask: no silhouette (is [vision] enabled, "
                           "with silhouette on?) and no generator.mask_image; painting the full frame")
            return frame
        self._say_once(source, source=source, mode=mode, feather_px=self.settings.feather_px)
        height, width = frame.shape[:2]
        alpha = self._alpha_for(mask, width, height, mode)
        background = fit_image(check_rgb_uint8(camera, "camera image"), width, height)
        return composite(frame, background, alpha)


class CameraHistory:
    """The last camera frames the generator saw, so a frame can be painted together with the
    silhouette read from it: the vision stage reads a frame a little after it was taken, and a
    moving visitor would otherwise slip out of their own mask. ~1 s at 30 fps, references only."""

    max_gap_s = 0.05  # a frame this close to the silhouette's is close enough

    def __init__(self, size: int = 32) -> None:
        self._frames: deque[CameraFrame] = deque(maxlen=size)

    def add(self, frame: CameraFrame) -> None:
        if not self._frames or self._frames[-1] is not frame:
            self._frames.append(frame)

    def matching(self, scene: Scene | None, newest: CameraFrame) -> CameraFrame:
        """The frame `scene`'s silhouette was read from (or the one nearest to it), else `newest`."""
        if scene is None or scene.silhouette is None or not scene.source_t or not self._frames:
            return newest
        best = min(self._frames, key=lambda f: abs(f.t - scene.source_t))
        return best if abs(best.t - scene.source_t) <= self.max_gap_s else newest
