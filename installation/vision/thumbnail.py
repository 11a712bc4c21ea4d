"""The small picture the scene's colour and light words are read from: 64×36 is enough to
say "mostly blue, bright" and costs ~0.1 ms to make from a 640×360 frame, so the analyzer can
make it once and hand it to both colours.py and light.py."""

from __future__ import annotations

import cv2
import numpy as np

# 16:9 like the camera frames; 2304 pixels, few enough that per-pixel numpy work stays < 0.1 ms.
THUMB_SIZE = (64, 36)  # width, height


def thumbnail(image: np.ndarray) -> np.ndarray:
    """`image` (H, W, 3) uint8 shrunk to fit THUMB_SIZE; returned as is when already that small.
    INTER_AREA averages blocks, so sensor noise and fine texture melt into their mean colour
    (which is what a viewer would name)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a colour image of shape (H, W, 3), got shape {image.shape}")
    h, w = image.shape[:2]
    tw, th = THUMB_SIZE
    if w <= tw and h <= th:
        return image
    return cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
