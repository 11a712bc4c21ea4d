"""The mask mode end to end (issue #12, "What must show"): a headless run of a show with a mask,
recorded with --record, leaves every pixel outside the mask equal to the camera image, within the
encoding error of the camera file and the recording. The camera is a real street frame with a
walker (OpenCV's vtest footage) played from a video file; the mask is a disc image; the
display is the generated frame's size, so the screen shows the frame pixel for pixel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from installation.generation.imaging import fit_image
from installation.generation.mask import feather_alpha, fit_mask
from media import read_video
from vision.vision_footage import empty_street, paste_walker

ROOT = Path(__file__).resolve().parents[2]
SIZE = 256
FEATHER = 6


def _camera_clip(path: Path, frames: int = 60) -> np.ndarray:
    """A 640×360 clip of one street frame with a walker; returns the frame as the camera
    reads it back (BGR), which is what the show sees."""
    bgr, _, _ = paste_walker(empty_street(), height=280, cx=320, feet=350)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 360))
    for _ in range(frames):
        writer.write(bgr)
    writer.release()
    _, decoded, _ = read_video(path)
    assert decoded, f"{path} cannot be read back"
    return decoded[0]


def _show(tmp_path: Path, camera: Path, mask: Path) -> Path:
    show = tmp_path / "masked.toml"
    show.write_text(f"""
[show]
name = "masked"
[camera]
source = {json.dumps(str(camera))}
loop = true
[microphone]
source = "none"
[speech]
enabled = false
[prompt]
initial = "a figure of glowing embers"
[generator]
kind = "preview"
width = {SIZE}
height = {SIZE}
strength = 1.0
mask = "inside"
mask_feather_px = {FEATHER}
mask_image = {json.dumps(str(mask))}
[display]
mode = "headless"
width = {SIZE}
height = {SIZE}
crossfade_s = 0.0
caption = false
[osc]
enabled = false
""", encoding="utf-8")
    return show


def test_pixels_outside_the_mask_are_the_camera_image_in_a_recording(tmp_path):
    camera_bgr = _camera_clip(tmp_path / "camera.avi")
    disc = np.zeros((360, 640), np.uint8)
    cv2.ellipse(disc, (330, 230), (70, 110), 0, 0, 360, 255, -1)  # over the walker's body
    cv2.imwrite(str(tmp_path / "mask.png"), disc)
    video, log = tmp_path / "run.avi", tmp_path / "events.jsonl"
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), str(_show(tmp_path, tmp_path / "camera.avi",
                                                                              tmp_path / "mask.png")),
                           "--headless", "--seconds", "3", "--record", str(video), "--log", str(log)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["source"] for e in events if e["event"] == "mask"] == ["image"]

    size, frames, _ = read_video(video)
    assert size == (SIZE, SIZE) and len(frames) > 30
    expected = fit_image(camera_bgr, SIZE, SIZE)
    inside = fit_mask(disc, SIZE, SIZE)
    # Codecs smear across a sharp edge: judge the outside from 3 px away from the mask.
    outside = ~cv2.dilate(inside.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    core = feather_alpha(inside, FEATHER) == 1.0
    codec = _encoding_error(expected, tmp_path / "codec.avi")[outside]
    # The recording starts on the starting card (a dark gradient); from the first generated
    # frame on (a cut: crossfade_s = 0), every frame is judged, the very first one included.
    first = next(i for i, f in enumerate(frames) if not _starting_card(f))
    assert len(frames) - first > 30 and not any(_starting_card(f) for f in frames[first:])
    for frame in frames[first:]:
        error = _error(frame, expected)
        assert error[core].mean() > 20  # the mask is painted...
        outside_error = error[outside]  # ...and around it, the camera image, to the codec's own error
        assert outside_error.mean() <= codec.mean() + 0.5, (outside_error.mean(), codec.mean())
        assert np.percentile(outside_error, 99) <= np.percentile(codec, 99) + 4


def _starting_card(frame: np.ndarray) -> bool:
    """The presenter's starting card is dark (levels up to ~62 besides its title); the street
    and any painting of it are not."""
    return float(np.percentile(frame, 90)) < 80


def _error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int))


def _encoding_error(image: np.ndarray, path: Path) -> np.ndarray:
    """The recording codec's own error on `image` (the recorder writes .avi as MJPG)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (SIZE, SIZE))
    writer.write(image)
    writer.release()
    _, frames, _ = read_video(path)
    return _error(frames[0], image)
