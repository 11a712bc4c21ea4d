"""The visitor's outline over the picture: the vision stage's person mask, drawn where the
visitor stands in the generated image.

The mask is in camera pixels. The generator crops the camera to its own aspect (centred) and
img2img keeps the layout; the display then crops the generated frame to the screen (centred,
"cover"). Mapping the mask's outline through the same two crops puts it on the visitor."""

from __future__ import annotations

import cv2
import numpy as np
import pygame

from .captions import screen_scale

Size = tuple[int, int]

MIN_AREA_SHARE = 0.002  # outlines of specks smaller than this share of the mask are noise
OUTLINE_RGBA = (255, 255, 255, 200)
OUTLINE_WIDTH_PX = 3  # on a 720-line screen (scaled to the screen)


def _centre_crop(size: Size, aspect: float) -> tuple[int, int, int, int]:
    """x, y, w, h of the centred part of a `size` image with the given width/height aspect."""
    w, h = size
    if w / h > aspect:
        cw = max(1, round(h * aspect))
        return (w - cw) // 2, 0, cw, h
    ch = max(1, round(w / aspect))
    return 0, (h - ch) // 2, w, ch


def outline_points(mask: np.ndarray, generated: Size, screen: Size) -> list[np.ndarray]:
    """The outlines of the person mask (uint8, 255 = person, camera pixels) as point arrays in
    screen pixels, through the generator's crop (`generated` size) and the screen's."""
    # The camera's part the generator painted, then the generated frame's part the screen shows.
    gx, gy, gw, gh = _centre_crop((mask.shape[1], mask.shape[0]), generated[0] / generated[1])
    sx, sy, sw, sh = _centre_crop((gw, gh), screen[0] / screen[1])
    region = np.ascontiguousarray(mask[gy + sy: gy + sy + sh, gx + sx: gx + sx + sw])
    contours, _ = cv2.findContours((region > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_area = MIN_AREA_SHARE * region.shape[0] * region.shape[1]
    scale = np.array([screen[0] / sw, screen[1] / sh])
    return [(c[:, 0, :] * scale).astype(np.int32) for c in contours
            if len(c) >= 3 and cv2.contourArea(c) >= min_area]


def outline_surface(mask: np.ndarray | None, generated: Size, screen: Size) -> pygame.Surface | None:
    """A transparent screen-sized surface with the visitor's outline, or None with nobody."""
    if mask is None or not mask.any():
        return None
    outlines = outline_points(mask, generated, screen)
    if not outlines:
        return None
    surface = pygame.Surface(screen, pygame.SRCALPHA)
    width = max(1, round(OUTLINE_WIDTH_PX * screen_scale(screen)))
    for points in outlines:
        pygame.draw.lines(surface, OUTLINE_RGBA, True, points.tolist(), width)
    return surface
