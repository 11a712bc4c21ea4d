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


def wishes_wav(wishes: list[str], folder: Path, pause_s: float = 2.5, sample_rate: int = 16000) -> Path:
    """The wishes spoken by espeak-ng, with quiet room tone (-65 dBFS) before and between them,
    as one 16-bit mono WAV: a visitor who speaks several wishes into the microphone."""
    import wave

    import numpy as np

    from installation.inputs.wav import load_wav_16k

    rng = np.random.default_rng(0)

    def room(seconds: float) -> np.ndarray:
        return (10 ** (-65 / 20) * rng.standard_normal(int(seconds * sample_rate))).astype(np.float32)

    pieces = [room(0.5)]
    for i, text in enumerate(wishes):
        pieces += [load_wav_16k(espeak_wav(text, folder / f"wish{i}.wav", speed=130)), room(pause_s)]
    samples = np.clip(np.concatenate(pieces), -1.0, 1.0)
    path = folder / "visitor.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    return path
