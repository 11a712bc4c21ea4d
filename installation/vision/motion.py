"""What moves in the picture: background subtraction (MOG2) on a small copy of the frame gives
a foreground mask and its blobs, where people are looked for; frame differences give the motion
energy. Everything runs at `WORK_WIDTH` pixels wide (about 1 ms a frame): a person 50 px tall
at 640x360 is still 25 px tall there, enough for a blob, and the detectors look at the full
picture only inside the blobs.

A visitor who stands still would melt into MOG2's background after a few seconds (a new
colour at a pixel becomes background once it has been seen for about a tenth of `HISTORY`
frames). `pause_learning(True)` stops the model learning while someone is there, so the still
visitor stays foreground; `MAX_PAUSE_S` bounds it, so that a mistaken pause cannot freeze the
background forever, and a lighting change (most of the picture foreground at once) starts the
model afresh."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_WIDTH = 320  # the motion model's width in pixels; the height keeps the frame's aspect
HISTORY = 300  # frames MOG2 remembers (60 s at 5 Hz)
VAR_THRESHOLD = 25  # MOG2's squared Mahalanobis distance for "foreground"; 16 marks sensor noise
SHADOW_CUT = 200  # MOG2 marks shadows 127 and foreground 255: shadows are not people
MIN_BLOB_AREA = 40  # work pixels (160 at 640 wide): smaller specks are noise or leaves
MIN_BLOB_HEIGHT = 15  # work pixels (30 at 640 wide): a person 50 px tall is 25 here
LIGHTING_CHANGE_FRACTION = 0.5  # this much foreground at once is the light changing, not people
MAX_PAUSE_S = 300.0  # learning resumes after this long paused, whoever asked
DIFF_THRESHOLD = 12  # grey levels: a change between two analysed frames beyond sensor noise
ENERGY_FULL_FRACTION = 0.2  # a fifth of the picture changing between two analysed frames = energy 1


@dataclass(frozen=True)
class Blob:
    """One connected patch of foreground, in the analysed frame's pixels."""

    box: tuple[int, int, int, int]  # x, y, width, height
    area: int  # foreground pixels (in the analysed frame's pixels)


@dataclass(frozen=True)
class MotionResult:
    """One frame's motion: the cleaned foreground mask at the work size, its blobs scaled to the
    analysed frame, the foreground fraction and the motion energy."""

    mask: np.ndarray  # uint8 0/255 at the work size (WORK_WIDTH wide)
    blobs: tuple[Blob, ...]
    foreground: float  # fraction of the picture that is foreground, 0-1
    energy: float  # 0-1: fraction of the picture that changed since the last frame / ENERGY_FULL_FRACTION
    relearned: bool = False  # the model started afresh on this frame (first frame, new size, light change)


class MotionDetector:
    """MOG2 at `WORK_WIDTH` pixels wide, plus frame differences for the energy. One per camera;
    not thread-safe (the vision thread owns it)."""

    def __init__(self, history: int = HISTORY, var_threshold: float = VAR_THRESHOLD) -> None:
        self._history = history
        self._var_threshold = var_threshold
        self._model: cv2.BackgroundSubtractorMOG2 | None = None
        self._shape: tuple[int, int] | None = None  # the analysed frame's (height, width)
        self._previous: np.ndarray | None = None  # last blurred grey work frame, for the energy
        self._paused_since: float | None = None
        self._kernel = np.ones((3, 3), np.uint8)

    @property
    def learning_paused(self) -> bool:
        return self._paused_since is not None

    def pause_learning(self, on: bool, t: float) -> None:
        """Stops (on) or resumes (off) the background model learning. Called every frame by the
        analyser with whether someone is there; the pause's start is kept, for `MAX_PAUSE_S`."""
        if not on:
            self._paused_since = None
        elif self._paused_since is None:
            self._paused_since = t

    def reset(self) -> None:
        """Forgets the background: the next frame becomes the new one."""
        self._model = None
        self._previous = None

    def update(self, frame: np.ndarray, t: float) -> MotionResult:
        """Feeds one BGR frame (any size; blobs come back in its pixels)."""
        height, width = frame.shape[:2]
        work_h = max(1, round(WORK_WIDTH * height / width))
        small = cv2.resize(frame, (WORK_WIDTH, work_h), interpolation=cv2.INTER_AREA)
        relearned = False
        if self._model is None or self._shape != (height, width):
            self._start(height, width)
            relearned = True
        assert self._model is not None
        energy = self._energy(small)
        raw = self._model.apply(small, learningRate=self._learning_rate(t))
        mask = self._clean(raw)
        foreground = float(np.count_nonzero(mask)) / mask.size
        if foreground > LIGHTING_CHANGE_FRACTION:
            # The light changed (or the camera moved): every pixel differs from the old background
            # and no blob means anything. Start afresh; a still visitor is kept by the person
            # detector's re-checks, not by this model.
            self.reset()
            self._shape = None
            return MotionResult(np.zeros_like(mask), (), foreground, energy, relearned=True)
        if relearned:  # MOG2's first frame is all foreground by definition
            return MotionResult(np.zeros_like(mask), (), 0.0, energy, relearned=True)
        return MotionResult(mask, self._blobs(mask, width / WORK_WIDTH, height / work_h), foreground, energy)

    def _start(self, height: int, width: int) -> None:
        self._model = cv2.createBackgroundSubtractorMOG2(
            history=self._history, varThreshold=self._var_threshold, detectShadows=True)
        self._shape = (height, width)
        self._previous = None

    def _learning_rate(self, t: float) -> float:
        if self._paused_since is not None and t - self._paused_since > MAX_PAUSE_S:
            self._paused_since = None  # bounded: a mistaken pause must not freeze the background
        return 0.0 if self._paused_since is not None else -1.0  # -1: MOG2's own rate (1/history)

    def _clean(self, raw: np.ndarray) -> np.ndarray:
        mask = cv2.threshold(raw, SHADOW_CUT, 255, cv2.THRESH_BINARY)[1]
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)  # drops single-pixel noise
        return cv2.dilate(mask, self._kernel, iterations=2)  # rejoins a figure's limbs into one blob

    def _energy(self, small: np.ndarray) -> float:
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)  # blur: sensor noise
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return 0.0
        changed = np.count_nonzero(cv2.absdiff(grey, previous) > DIFF_THRESHOLD) / grey.size
        return float(min(1.0, changed / ENERGY_FULL_FRACTION))

    @staticmethod
    def _blobs(mask: np.ndarray, sx: float, sy: float) -> tuple[Blob, ...]:
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        blobs = []
        for i in range(1, count):  # 0 is the background
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < MIN_BLOB_AREA or h < MIN_BLOB_HEIGHT:
                continue
            box = (round(x * sx), round(y * sy), round(w * sx), round(h * sy))
            blobs.append(Blob(box, round(area * sx * sy)))
        blobs.sort(key=lambda b: -b.area)  # largest first: the detectors' budget goes to them
        return tuple(blobs)


def mask_at(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """A work-size 0/255 mask scaled to a frame's size, smooth-edged and still 0/255."""
    big = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.threshold(big, 127, 255, cv2.THRESH_BINARY)[1]
