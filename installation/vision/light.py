"""Light and motion as words a prompt can use: brightness → "dark" | "dim" | "bright", motion
energy → "still" | "calm" | "restless"; and `WordWithHysteresis`, which keeps a word from
flickering while its value sits on a threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .thumbnail import thumbnail

# Mean luma (Rec. 601, as cv2's BGR2GRAY, gamma-encoded 0-1) of a frame. Calibrated on
# scikit-image's photographs: well-exposed ones (astronaut, coffee, chelsea, camera) sit at
# 0.40-0.50 and stay "bright" one stop darker (0.30-0.37); two to three stops under (0.16-0.27),
# or the rocket at dusk (0.24), is "dim"; four stops under (< 0.14) or the Hubble deep field
# (0.07) is "dark".
DARK_BELOW = 0.15
DIM_BELOW = 0.30

# Motion energy 0-1 (motion.py: the share of the picture that changed between two analysed
# frames, 1 = a fifth of it or more). Calibrated at 5 Hz on real footage: a still scene with
# sensor noise is 0.000; one walker 75 px tall crossing a 640x360 street 0.035-0.045; the vtest
# street with 3-10 walkers 0.09-0.28; the demo clip's close visitor 0.1-0.3 while lingering at
# one side and 0.5-1.0 while swaying across. So: "still" is nothing moving but noise, "calm" is people walking or
# a visitor gesturing, "restless" is a large part of the picture on the move.
STILL_BELOW = 0.01
CALM_BELOW = 0.40

# Hysteresis: a word changes only once the value is past the threshold by this fraction of it
# (brightness changes slowly: a small band is enough; motion energy jumps from frame to frame).
LIGHT_MARGIN = 0.10
MOTION_MARGIN = 0.30
# ... and, for motion, only once the new word has won this many analysed frames in a row.
MOTION_CONFIRM = 2


@dataclass(frozen=True)
class WordScale:
    """Words for rising values: `words[i + 1]` from `thresholds[i]` up."""

    words: tuple[str, ...]
    thresholds: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.thresholds) != len(self.words) - 1:
            raise ValueError(f"a scale of {len(self.words)} words needs {len(self.words) - 1} thresholds, "
                             f"got {len(self.thresholds)}")
        if list(self.thresholds) != sorted(self.thresholds):
            raise ValueError(f"thresholds must rise, got {self.thresholds}")

    def index(self, value: float) -> int:
        return sum(value >= t for t in self.thresholds)

    def word(self, value: float) -> str:
        return self.words[self.index(value)]


LIGHT = WordScale(("dark", "dim", "bright"), (DARK_BELOW, DIM_BELOW))
MOTION = WordScale(("still", "calm", "restless"), (STILL_BELOW, CALM_BELOW))


def brightness(image_bgr: np.ndarray) -> float:
    """Mean luminance of a uint8 BGR frame, 0 (black) to 1 (white), read from a thumbnail."""
    grey = cv2.cvtColor(thumbnail(image_bgr), cv2.COLOR_BGR2GRAY)
    return float(grey.mean()) / 255.0


def light_word(value: float) -> str:
    """The word for a brightness 0-1: "dark", "dim" or "bright" (no memory: see `light_words()`)."""
    return LIGHT.word(value)


def motion_word(energy: float) -> str:
    """The word for a motion energy 0-1: "still", "calm" or "restless" (no memory: see `motion_words()`)."""
    return MOTION.word(energy)


class WordWithHysteresis:
    """The word for a value that changes over time, steadied: it moves to a higher word only once
    the value reaches the threshold × (1 + margin), to a lower one only once it falls below
    threshold × (1 - margin), and (with `confirm` > 1) only after the new word has won that many
    updates in a row. A value sitting on a threshold, noise and all, keeps one word."""

    def __init__(self, scale: WordScale, margin: float = 0.1, confirm: int = 1) -> None:
        if not 0 <= margin < 1:
            raise ValueError(f"margin: expected a fraction of the threshold in [0, 1), got {margin}")
        if confirm < 1:
            raise ValueError(f"confirm: expected at least 1 update, got {confirm}")
        self.scale = scale
        self.margin = margin
        self.confirm = confirm
        self._index: int | None = None
        self._candidate = -1
        self._wins = 0

    @property
    def word(self) -> str:
        """The current word ("" before the first update)."""
        return "" if self._index is None else self.scale.words[self._index]

    def _target(self, value: float, current: int) -> int:
        up = [t * (1 + self.margin) for t in self.scale.thresholds]
        down = [t * (1 - self.margin) for t in self.scale.thresholds]
        target = current
        while target < len(up) and value >= up[target]:
            target += 1
        while target > 0 and value < down[target - 1]:
            target -= 1
        return target

    def update(self, value: float) -> str:
        """Feed the newest value; returns the (possibly unchanged) word. NaN keeps the word."""
        if math.isnan(value):
            return self.word
        if self._index is None:
            self._index = self.scale.index(value)
            return self.word
        target = self._target(value, self._index)
        if target == self._index:
            self._candidate, self._wins = -1, 0
            return self.word
        self._wins = self._wins + 1 if target == self._candidate else 1
        self._candidate = target
        if self._wins >= self.confirm:
            self._index, self._candidate, self._wins = target, -1, 0
        return self.word

    def reset(self) -> None:
        self._index, self._candidate, self._wins = None, -1, 0


def light_words() -> WordWithHysteresis:
    """A steadied "dark" | "dim" | "bright" for one camera's brightness over time."""
    return WordWithHysteresis(LIGHT, margin=LIGHT_MARGIN)


def motion_words() -> WordWithHysteresis:
    """A steadied "still" | "calm" | "restless" for one camera's motion energy over time."""
    return WordWithHysteresis(MOTION, margin=MOTION_MARGIN, confirm=MOTION_CONFIRM)
