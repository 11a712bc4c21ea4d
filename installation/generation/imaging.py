"""Small image helpers shared by every generator (numpy and OpenCV only, no torch)."""

from __future__ import annotations

import cv2
import numpy as np


def check_rgb_uint8(image: object, what: str = "image") -> np.ndarray:
    """Returns `image` if it is an RGB uint8 array (H, W, 3); otherwise raises ValueError saying
    what arrived, so a bad frame is reported instead of surfacing deep inside a model."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what}: expected an RGB uint8 numpy array (H, W, 3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"{what}: expected an RGB uint8 array of shape (H, W, 3), got {image.dtype} {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what}: the image is empty ({image.shape})")
    return image


def fit_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crops to the target aspect ratio, then resizes: a 4:3 camera on a square canvas
    loses its sides rather than squashing faces."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    target = width / height
    if w / h > target:  # too wide: cut the sides
        new_w = max(1, round(h * target))
        x0 = (w - new_w) // 2
        image = image[:, x0 : x0 + new_w]
    elif w / h < target:  # too tall: cut top and bottom
        new_h = max(1, round(w / target))
        y0 = (h - new_h) // 2
        image = image[y0 : y0 + new_h]
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if w > width else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interp)


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] (NaNs, e.g. from an fp16 overflow, become black) → uint8."""
    frame = np.nan_to_num(frame, nan=0.0, posinf=1.0, neginf=0.0)
    return (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
