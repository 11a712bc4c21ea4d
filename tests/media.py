"""Real media for tests: speech made by espeak-ng, recordings read back through OpenCV.
Imported by name (`from media import espeak_wav`); tests/ is on pytest's pythonpath."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def espeak_wav(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> Path:
    """Speech made by espeak-ng, resampled to 16 kHz mono 16-bit by ffmpeg."""
    if shutil.which("espeak-ng") is None or shutil.which("ffmpeg") is None:
        pytest.skip("espeak-ng and ffmpeg are installed by `make setup`")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(raw), "-ar", "16000", "-ac", "1",
                    "-sample_fmt", "s16", str(path)], check=True)
    raw.unlink()
    return path


def read_video(path) -> tuple[tuple[int, int], list, float]:
    """Every frame of a recording read back through cv2.VideoCapture: (size, frames, fps)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} cannot be read back"
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return size, frames, fps
