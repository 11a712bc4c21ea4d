"""The vision stage's thread: camera slot in, scene slot out, RGB frames read correctly, and
the optional captioner's words carried on every scene."""

from __future__ import annotations

import time

import numpy as np

from installation.core.channels import LatestSlot
from installation.core.messages import CameraFrame, Scene
from installation.core.worker import stop_all
from installation.show import VisionConfig
from installation.vision.worker import VisionWorker


def _run_until(worker: VisionWorker, out: LatestSlot[Scene], camera: LatestSlot[CameraFrame], frames,
               timeout: float = 20.0) -> Scene:
    worker.start()
    deadline = time.monotonic() + timeout
    try:
        for i, image in enumerate(frames):
            camera.put(CameraFrame(image=image, index=i, source="test"))
            while out.version <= i and time.monotonic() < deadline:
                time.sleep(0.01)
        scene = out.get()
        assert scene is not None, "the vision stage published nothing"
        return scene
    finally:
        assert stop_all([worker], timeout=5.0) == []


def test_a_red_camera_frame_is_named_red():
    """Camera frames are RGB; OpenCV and the analyzer read BGR: the worker converts."""
    red = np.zeros((360, 640, 3), np.uint8)
    red[..., 0] = 220  # R in RGB
    camera: LatestSlot[CameraFrame] = LatestSlot("camera")
    out: LatestSlot[Scene] = LatestSlot("scene")
    worker = VisionWorker(camera, out, VisionConfig(enabled=True, rate_hz=30, faces="haar", silhouette="background"))
    scene = _run_until(worker, out, camera, [red, red.copy()])
    assert scene.colours[0] == "red" and scene.presence is False and scene.people == 0


def test_the_captioners_words_ride_on_every_scene(tmp_path):
    from installation.vision.tiny_captioner import write_tiny_captioner

    model = write_tiny_captioner(tmp_path / "git", family="git")
    camera: LatestSlot[CameraFrame] = LatestSlot("camera")
    out: LatestSlot[Scene] = LatestSlot("scene")
    events: list[tuple[str, dict]] = []
    cfg = VisionConfig(enabled=True, rate_hz=30, faces="off", silhouette="off", captioner=str(model),
                       caption_every_s=1.0)
    worker = VisionWorker(camera, out, cfg, on_event=lambda e, **f: events.append((e, f)))
    frame = np.full((360, 640, 3), 128, np.uint8)
    scene = _run_until(worker, out, camera, [frame, frame.copy(), frame.copy()])
    assert scene.caption and len(scene.caption) <= 120
    assert any(e == "vision" and f["state"] == "captioner" for e, f in events), events
