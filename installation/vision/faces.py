"""Face detectors behind one small protocol: mediapipe's full-range face detector when it is
installed (5 ms a frame at 640x360, faces from about 24 px), OpenCV's Haar cascade otherwise
(about 14 ms at 320 px wide, faces from about 24 px at 640; run every other frame), or none.
Faces are counted and placed, never identified: only boxes leave this module.

mediapipe is optional (scripts/setup.sh installs it without its declared dependencies, see
requirements-dev.txt): it is imported only here and in silhouette.py, inside functions, and
quietly (its native logging goes to descriptor 2)."""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

import cv2
import numpy as np

from installation.core.native_stderr import quiet_native_stderr

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, width, height in the frame's pixels

MEDIAPIPE_MODEL = 1  # full range (faces up to ~5 m); 0 (short range) misses faces under ~48 px
MEDIAPIPE_MIN_SCORE = 0.5
MEDIAPIPE_MAX_WIDTH = 640  # larger frames are shrunk first: the model sees 192x192 anyway
HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"  # at 320 px wide it finds the astronaut; "default" does not
HAAR_WIDTH = 320  # the cascade's cost grows with the pixel count: 14 ms here, 52 ms at 640
HAAR_SCALE_FACTOR = 1.2
HAAR_MIN_NEIGHBOURS = 3
HAAR_MIN_SIZE = 12  # pixels at HAAR_WIDTH: 24 px faces at 640 wide
HAAR_EVERY = 2  # frames: the cascade runs on every other frame (people tracks bridge the gap)

INSTALL_HINT = "scripts/setup.sh installs it (pip install --no-deps mediapipe==0.10.21 and the pins in " \
               "requirements-dev.txt)"


class FaceDetector(Protocol):
    """Finds faces in a BGR frame; boxes in the frame's pixels. `None` means "not looked this
    frame" (a detector that skips frames to save time), `[]` means "looked, found none"."""

    name: str

    def detect(self, frame: np.ndarray) -> list[Box] | None: ...

    def close(self) -> None: ...


def mediapipe_solutions() -> Any | None:
    """mediapipe's legacy solutions module, imported quietly, or None when not installed (or
    when it cannot load here: a broken install must not stop the installation)."""
    # absl/glog lines from the native side; the env must be set before the first import.
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        with quiet_native_stderr():
            import mediapipe as mp  # optional dependency: only ever imported here
            from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)
        return mp.solutions
    except Exception as e:  # ImportError, or a native library that does not load
        if not isinstance(e, ImportError):
            log.warning("mediapipe is installed but does not load (%s: %s)", type(e).__name__, e)
        return None


def warm_up(graph: Any, size: tuple[int, int] = (640, 360)) -> None:
    """Runs a mediapipe graph once on a blank picture: its native threads print their start-up
    lines (TFLite delegate, absl warnings) on the first frame, so that frame is spent here, with
    descriptor 2 captured, rather than in the running installation."""
    with quiet_native_stderr():
        graph.process(np.zeros((size[1], size[0], 3), np.uint8))


class MediapipeFaces:
    name = "mediapipe"

    def __init__(self, solutions: Any) -> None:
        with quiet_native_stderr():  # the graph's threads print from the constructor on (see warm_up)
            self._graph = solutions.face_detection.FaceDetection(
                model_selection=MEDIAPIPE_MODEL, min_detection_confidence=MEDIAPIPE_MIN_SCORE)
            warm_up(self._graph)

    def detect(self, frame: np.ndarray) -> list[Box]:
        height, width = frame.shape[:2]
        scale = min(1.0, MEDIAPIPE_MAX_WIDTH / width)
        small = frame if scale == 1.0 else cv2.resize(
            frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        result = self._graph.process(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))  # the model wants RGB
        boxes = []
        for detection in result.detections or ():
            rel = detection.location_data.relative_bounding_box
            x, y = max(0.0, rel.xmin), max(0.0, rel.ymin)
            w, h = min(rel.width, 1.0 - x), min(rel.height, 1.0 - y)
            if w > 0 and h > 0:
                boxes.append((round(x * width), round(y * height), round(w * width), round(h * height)))
        return boxes

    def close(self) -> None:
        self._graph.close()


class HaarFaces:
    name = "haar"

    def __init__(self, every: int = HAAR_EVERY) -> None:
        path = os.path.join(cv2.data.haarcascades, HAAR_CASCADE)  # type: ignore[attr-defined]  # (not in the stubs)
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV's face cascade {path} is missing: reinstall opencv-python-headless (<5)")
        self._every = max(1, every)
        self._frame = -1

    def detect(self, frame: np.ndarray) -> list[Box] | None:
        self._frame += 1
        if self._frame % self._every:
            return None
        height, width = frame.shape[:2]
        scale = min(1.0, HAAR_WIDTH / width)
        small = cv2.resize(frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))  # the cascade was trained on equalised faces
        found = self._cascade.detectMultiScale(grey, scaleFactor=HAAR_SCALE_FACTOR, minNeighbors=HAAR_MIN_NEIGHBOURS,
                                               minSize=(HAAR_MIN_SIZE, HAAR_MIN_SIZE))
        return [(round(x / scale), round(y / scale), round(w / scale), round(h / scale)) for x, y, w, h in found]

    def close(self) -> None:
        pass


def load_face_detector(kind: str) -> tuple[FaceDetector | None, str]:
    """The detector a show's `[vision] faces` asks for, and a note ("" when it is exactly what was
    asked) saying what stands in and why: "auto" is mediapipe when installed, else Haar; an
    explicit "mediapipe" that is not installed falls back to Haar with a note; "off" is none."""
    if kind == "off":
        return None, ""
    if kind in ("auto", "mediapipe"):
        solutions = mediapipe_solutions()
        if solutions is not None:
            return MediapipeFaces(solutions), ""
        note = f"faces: mediapipe is not installed, using OpenCV's Haar cascade (slower, fewer faces); {INSTALL_HINT}"
        return HaarFaces(), note
    if kind == "haar":
        return HaarFaces(), ""
    raise ValueError(f"[vision] faces = {kind!r} is not one of auto, mediapipe, haar, off")
