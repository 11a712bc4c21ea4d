"""One camera frame in, one `Scene` out: motion, people, faces, presence, silhouette, colours,
light. The vision worker calls `analyze` a few times a second on its own thread; nothing here
touches the render loop, and nothing is stored.

    analyzer = SceneAnalyzer(show.vision, max_colours=show.scene.max_colours)
    for note in analyzer.notes(): ...            # e.g. "faces: mediapipe is not installed, ..."
    scene = analyzer.analyze(frame_bgr, t=time.monotonic(), source_t=frame.t)
    analyzer.timings()                           # {"motion": [ms, ...], "people": [...], ...}
    analyzer.close()

Frames wider than `ANALYSIS_WIDTH` are shrunk first (the detectors are tuned for 640x360, and a
1080p camera would cost 9x); boxes and the silhouette come back in the frame's own pixels.

Cost at 640x360, one core (taskset), 5 Hz, CPU per analysed frame (all threads):
  one visitor or nobody, mediapipe faces:   ~11 ms (5.5 % of a core)  [faces 5.3, motion 1.4,
                                            colours 0.6; +3 ms segmentation when someone is near]
  the same without mediapipe (Haar faces):  ~15 ms (7.7 %)  [Haar ~20 ms on every other frame]
  faces = "off":                            ~4.5 ms (2.3 %)
  a crowded street (3-10 walkers):          +8 ms p50 for people (HOG on crops), p95 ~40 ms
  nobody tracked: the full-frame sweep, 180 ms once every 20 s (~1.8 ms a frame on average).
The heavy calls (OpenCV, mediapipe) release the GIL: a Python loop on another thread kept its
speed with the stage on (measured 1.00-1.02x)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import cv2
import numpy as np

from installation.core.messages import Person, Scene
from installation.show import VisionConfig

from .colours import dominant_colours
from .faces import FaceDetector, load_face_detector
from .light import brightness, light_words, motion_words
from .motion import MotionDetector
from .people import PeopleTracker
from .presence import Presence, StableCount
from .silhouette import Segmenter, background_mask, load_segmenter
from .thumbnail import thumbnail

ANALYSIS_WIDTH = 640  # frames wider than this are analysed shrunk to it
DEFAULT_COLOURS = 5  # the most `[scene] max_colours` allows; the prompt side keeps its own number
TIMING_KEEP = 1000  # per part: the last this many frames (a few minutes at 5 Hz)
PARTS = ("motion", "people", "faces", "silhouette", "colours", "light", "total")


class SceneAnalyzer:
    """Reads scenes from camera frames; one per camera, used from one thread.

    `timings()` returns, per part ("motion", "people", "faces", "silhouette", "colours",
    "light" and "total"), the wall-clock milliseconds of the last `TIMING_KEEP` analyses, oldest
    first ("faces" is 0 on frames the detector skips; "people" includes the occasional sweep).

    `sweep` turns the slow full-frame figure search off (tests of the crop path; a camera that
    only ever sees people walk in)."""

    def __init__(self, cfg: VisionConfig, *, max_colours: int = DEFAULT_COLOURS, sweep: bool = True) -> None:
        self.cfg = cfg
        self.max_colours = max_colours
        self._notes: list[str] = []
        self._faces: FaceDetector | None
        self._segmenter: Segmenter | None
        self._faces, note = load_face_detector(cfg.faces)
        self._note(note)
        self._segmenter, note = load_segmenter(cfg.silhouette)
        self._note(note if cfg.silhouette == "segmentation" else "")  # "auto" without it is the plan, not news
        self._motion = MotionDetector()
        self._people = PeopleTracker(sweep=sweep)
        self._presence = Presence(cfg.presence_on_s, cfg.presence_hold_s)
        self._count = StableCount()
        self._light = light_words()
        self._moving = motion_words()
        self._timings: dict[str, deque[float]] = {part: deque(maxlen=TIMING_KEEP) for part in PARTS}

    @property
    def faces_kind(self) -> str:
        """The face detector in use: "mediapipe", "haar" or "off"."""
        return self._faces.name if self._faces is not None else "off"

    @property
    def silhouette_kind(self) -> str:
        """The silhouette source: "segmentation" (near visitors; background otherwise),
        "background" or "off"."""
        if self.cfg.silhouette == "off":
            return "off"
        return "segmentation" if self._segmenter is not None else "background"

    def notes(self) -> list[str]:
        """What stands in for what the show asked (a missing optional model), one sentence each."""
        return list(self._notes)

    def timings(self) -> dict[str, list[float]]:
        return {part: list(values) for part, values in self._timings.items()}

    def analyze(self, image: np.ndarray, t: float, source_t: float = 0.0) -> Scene:
        """One BGR uint8 frame (any size) at time `t` (seconds, monotonic) → its `Scene`."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"vision: expected a BGR uint8 frame (H, W, 3), got {image.dtype} {image.shape}")
        started = time.perf_counter()
        height, width = image.shape[:2]
        with self._timed("motion"):
            frame = _shrink(image)
            motion = self._motion.update(frame, t)
        with self._timed("faces"):
            faces = self._faces.detect(frame) if self._faces is not None else []
        with self._timed("people"):
            found = self._people.update(frame, t, motion.blobs, faces)
            present = self._presence.update(found.seen, t)
            count = self._count.update(found.raw_count, t)
            # A still visitor must stay foreground: the background stops learning while anyone is tracked.
            self._motion.pause_learning(bool(found.persons), t)
        # One truth: before presence turns on (and after it turns off) nobody is reported, not
        # even in the silhouette.
        persons = found.persons if present else ()
        scale = width / frame.shape[1]
        if scale != 1.0:
            persons = tuple(_scaled(p, scale) for p in persons)
        with self._timed("silhouette"):
            silhouette = self._silhouette(frame, motion.mask, persons, width, height)
        with self._timed("colours"):
            small = thumbnail(image)
            colours = dominant_colours(small, self.max_colours)
        with self._timed("light"):
            level = brightness(small)
            light = self._light.update(level)
            moving = self._moving.update(motion.energy)
        self._timings["total"].append((time.perf_counter() - started) * 1000.0)
        return Scene(
            presence=present,
            people=max(1, count) if present else 0,  # one truth: present means at least one person
            persons=persons,
            colours=colours, light=light, motion=moving, brightness=level, motion_energy=float(motion.energy),
            silhouette=silhouette, source_t=source_t, t=t)

    def close(self) -> None:
        for model in (self._faces, self._segmenter):
            if model is not None:
                model.close()
        self._faces = self._segmenter = None

    def _silhouette(self, frame: np.ndarray, foreground: np.ndarray, persons: tuple[Person, ...],
                    width: int, height: int) -> np.ndarray | None:
        """The person mask at the camera frame's size; `persons` in the frame's pixels."""
        if self.cfg.silhouette == "off":
            return None
        if not persons:
            return np.zeros((height, width), np.uint8)
        near = any(p.distance == "near" for p in persons)
        if self._segmenter is None or not (near or self.cfg.silhouette == "segmentation"):
            return background_mask(foreground, persons, width, height)
        mask = self._segmenter.mask(frame)
        if mask.shape[:2] != (height, width):
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        return mask

    def _note(self, note: str) -> None:
        if note:
            self._notes.append(note)

    @contextmanager
    def _timed(self, part: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._timings[part].append((time.perf_counter() - started) * 1000.0)


def _shrink(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    if width <= ANALYSIS_WIDTH:
        return image
    size = (ANALYSIS_WIDTH, max(1, round(height * ANALYSIS_WIDTH / width)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _scaled(person: Person, scale: float) -> Person:
    x, y, w, h = person.box
    return replace(person, box=(round(x * scale), round(y * scale), round(w * scale), round(h * scale)))
