"""The vision stage's thread: reads the camera's newest frame at the show's rate, analyses it
and publishes the `Scene` into a latest-value slot. Off the render loop: the display never
waits for it, and a slow analysis only lowers the vision rate, never the picture's."""

from __future__ import annotations

import dataclasses
import logging
import time

import cv2
import numpy as np

from installation.core.channels import LatestSlot
from installation.core.events import EventHook, emit
from installation.core.messages import CameraFrame, Scene
from installation.core.native_stderr import quiet_native_stderr
from installation.core.worker import ErrorHandler, Worker
from installation.show import VisionConfig

from .analyzer import SceneAnalyzer
from .captioner import Captioner, load_captioner

log = logging.getLogger(__name__)

QUIET_FIRST_ANALYSES = 3


class VisionWorker(Worker):
    """Camera slot in, scene slot out, at most `cfg.rate_hz` analyses a second. A frame
    already analysed is not analysed again (a paused or lost camera costs nothing)."""

    def __init__(self, camera: LatestSlot[CameraFrame], out: LatestSlot[Scene], cfg: VisionConfig,
                 on_error: ErrorHandler | None = None, on_event: EventHook | None = None,
                 analyzer: SceneAnalyzer | None = None) -> None:
        super().__init__("vision", on_error=on_error)
        self.camera = camera
        self.out = out
        self.cfg = cfg
        self._on_event = on_event
        self._analyzer = analyzer
        self._seen_version = -1
        self._next_t = 0.0
        self._captioner: Captioner | None = None
        self._caption = ""  # the newest caption; every scene carries it until the next
        self._next_caption_t = 0.0

    @property
    def analyzer(self) -> SceneAnalyzer | None:
        return self._analyzer

    def setup(self) -> None:
        # OpenCV's thread pool would spread every analysis over all cores, competing with the
        # display and the generator; one thread keeps the stage's cost small and where it is
        # counted. The pool is process-wide, so the preview generator's OpenCV calls run on one
        # thread too: measured, the display's rate does not change (BENCHMARKS.md).
        cv2.setNumThreads(1)
        if self._analyzer is None:
            self._analyzer = SceneAnalyzer(self.cfg)
        for note in self._analyzer.notes():
            emit(self._on_event, "vision", state="note", reason=note)
        if self.cfg.captioner and self._captioner is None:
            self._captioner, note = load_captioner(self.cfg.captioner)
            emit(self._on_event, "vision", state="captioner" if self._captioner else "no_captioner", reason=note)
            log.info("vision: %s", note)

    def step(self) -> None:
        wait = self._next_t - time.monotonic()
        if wait > 0 and self.sleep(wait):
            return
        frame, version = self.camera.wait_newer(self._seen_version, timeout=0.5)
        if frame is None or version == self._seen_version:
            return  # no new frame (camera lost or paused): the last scene stands
        self._seen_version = version
        started = time.monotonic()
        self._next_t = started + 1.0 / self.cfg.rate_hz
        assert self._analyzer is not None  # setup() made it
        image = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)  # camera frames are RGB; OpenCV reads BGR
        if self.rate_meter.count < QUIET_FIRST_ANALYSES:
            # TensorFlow Lite (mediapipe) prints its set-up lines on the first inferences.
            with quiet_native_stderr():
                scene = self._analyzer.analyze(image, t=started, source_t=frame.t)
        else:
            scene = self._analyzer.analyze(image, t=started, source_t=frame.t)
        self._update_caption(image, started)
        if self._caption:
            scene = dataclasses.replace(scene, caption=self._caption)
        self.out.put(scene)
        self.rate_meter.tick()

    def _update_caption(self, image: np.ndarray, now: float) -> None:
        """A caption every caption_every_s, here on the vision thread: the scene waits for it
        (about a second for GIT-base on a CPU), the display never does."""
        if self._captioner is None or now < self._next_caption_t:
            return
        self._next_caption_t = now + self.cfg.caption_every_s
        try:
            self._caption = self._captioner.caption(image)
        except Exception as exc:  # out of GPU memory, a broken model: the scene words go on without it
            self._captioner = None
            self._caption = ""
            emit(self._on_event, "error", stage="vision", reason=f"the captioner failed and is off: "
                                                                  f"{type(exc).__name__}: {exc}")

    def teardown(self) -> None:
        if self._analyzer is not None:
            self._analyzer.close()
