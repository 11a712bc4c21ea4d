"""The visitor's outline as a mask (uint8, 255 = person, at the frame's size).

Two sources: mediapipe's selfie segmentation (landscape model, ~2.7 ms) draws a clean outline
of someone near the lens, but on figures 50-75 px tall it is patchy and marks bits of the road
(1.6 % of an empty street), so it is used only when someone is near. Otherwise the motion
model's foreground, kept only where it touches a person the tracker confirmed (a moving
shadow or a swinging door is not a person), upscaled to the frame: a rough outline, right for
whole figures across a room. With nobody there the mask is empty (all zeros)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from installation.core.messages import Person
from installation.core.native_stderr import quiet_native_stderr

from .faces import INSTALL_HINT, mediapipe_solutions, warm_up
from .motion import mask_at

SEGMENTATION_MODEL = 1  # landscape (144x256): 2.7 ms; the general model (256x256) is 4.5 ms for no gain here
SEGMENTATION_THRESHOLD = 0.5  # the model's person probability
SEGMENTATION_MAX_WIDTH = 640  # larger frames are shrunk first (the model sees 256x144)
BOX_MARGIN = 0.15  # a foreground patch belongs to a person if it meets their box grown by this share


class Segmenter:
    """mediapipe selfie segmentation, loaded once."""

    def __init__(self, solutions: Any) -> None:
        # The graph starts its calculators (and TFLite prints its delegate line) from the
        # constructor on, on its own threads: built and warmed up inside one quiet window.
        with quiet_native_stderr():
            self._graph = solutions.selfie_segmentation.SelfieSegmentation(model_selection=SEGMENTATION_MODEL)
            warm_up(self._graph)

    def mask(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        scale = min(1.0, SEGMENTATION_MAX_WIDTH / width)
        small = frame if scale == 1.0 else cv2.resize(
            frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        probability = self._graph.process(cv2.cvtColor(small, cv2.COLOR_BGR2RGB)).segmentation_mask
        if probability.shape[:2] != (height, width):
            probability = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.where(probability > SEGMENTATION_THRESHOLD, 255, 0).astype(np.uint8)

    def close(self) -> None:
        self._graph.close()


def load_segmenter(kind: str) -> tuple[Segmenter | None, str]:
    """The segmentation model for `[vision] silhouette` "auto" or "segmentation" (None for
    "background" and "off"), and a note when it was asked for but is not installed."""
    if kind not in ("auto", "segmentation"):
        return None, ""
    solutions = mediapipe_solutions()
    if solutions is not None:
        return Segmenter(solutions), ""
    return None, f"silhouette: mediapipe is not installed, using background subtraction; {INSTALL_HINT}"


def background_mask(foreground: np.ndarray, persons: tuple[Person, ...], width: int, height: int) -> np.ndarray:
    """The motion foreground (work size, 0/255) kept where it touches a person's box, at
    `width` x `height`."""
    if not persons:
        return np.zeros((height, width), np.uint8)
    sx, sy = foreground.shape[1] / width, foreground.shape[0] / height
    count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground)
    keep = np.zeros(count, bool)
    for person in persons:
        x, y, w, h = person.box
        mx, my = w * BOX_MARGIN, h * BOX_MARGIN
        x0, y0 = max(0, int((x - mx) * sx)), max(0, int((y - my) * sy))
        x1, y1 = int((x + w + mx) * sx) + 1, int((y + h + my) * sy) + 1
        keep[np.unique(labels[y0:y1, x0:x1])] = True
    keep[0] = False  # label 0 is the background
    return mask_at(np.where(keep[labels], 255, 0).astype(np.uint8), width, height)
