"""The page's live preview: the newest presented frame as a small JPEG, made at most a few
times a second however many phones ask (one encode is shared by all of them)."""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np

MAX_SIDE = 320  # pixels: enough to see what is on screen, a few kilobytes per frame
QUALITY = 70
MIN_INTERVAL_S = 0.2  # at most 5 encodes a second, whoever asks


class PreviewEncoder:
    """Encodes the bridge's newest frame; returns the cached JPEG while the frame is the same
    array or the last encode is younger than `min_interval_s`."""

    def __init__(self, frame: Callable[[], np.ndarray | None], max_side: int = MAX_SIDE, quality: int = QUALITY,
                 min_interval_s: float = MIN_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._frame = frame
        self.max_side = max_side
        self.quality = quality
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._source: np.ndarray | None = None
        self._jpeg: bytes | None = None
        self._t = float("-inf")
        self.encodes = 0

    def jpeg(self) -> bytes | None:
        """The newest frame as JPEG bytes; None before the first frame (or for one that is not an image)."""
        now = self._clock()
        if self._jpeg is not None and now - self._t < self.min_interval_s:
            return self._jpeg
        frame = self._frame()
        if frame is None:
            return self._jpeg
        if frame is self._source and self._jpeg is not None:
            return self._jpeg
        jpeg = encode(frame, self.max_side, self.quality)
        self._source, self._t = frame, now
        if jpeg is not None:
            self._jpeg = jpeg
            self.encodes += 1
        return self._jpeg


def encode(frame: np.ndarray, max_side: int = MAX_SIDE, quality: int = QUALITY) -> bytes | None:
    """An RGB (or grey) uint8 image as a JPEG no wider or taller than `max_side`; None if it is not one."""
    if frame.ndim not in (2, 3) or frame.size == 0 or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        return None
    image = frame if frame.dtype == np.uint8 else np.clip(frame, 0, 255).astype(np.uint8)
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes() if ok else None
