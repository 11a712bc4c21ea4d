"""The small interfaces behind which every outside thing sits. One file per real
implementation; the app only ever talks to these."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .messages import AudioChunk, GenerationParams, Prompt, Transcript, Utterance


class DeviceLost(RuntimeError):
    """A camera or microphone stopped delivering; the worker reopens it with backoff."""


class FrameSource(Protocol):
    """A camera: yields RGB uint8 frames (H, W, 3) at its own pace."""

    description: str

    def open(self) -> None: ...

    def read(self) -> np.ndarray:
        """The next frame; blocks until it is due. Raises DeviceLost when the source fails."""
        ...

    def close(self) -> None: ...


class AudioSource(Protocol):
    """A microphone: yields mono float32 chunks at 16 kHz in real time."""

    description: str

    def open(self) -> None: ...

    def read(self, timeout: float) -> AudioChunk | None:
        """The next chunk, or None if none came within `timeout`. Raises DeviceLost."""
        ...

    def close(self) -> None: ...


class Transcriber(Protocol):
    """Turns one utterance into text (None when nothing credible was heard)."""

    name: str

    def load(self) -> None: ...

    def transcribe(self, utterance: Utterance) -> Transcript | None: ...


class Generator(Protocol):
    """Turns a prompt (and optionally a camera image) into an RGB uint8 frame."""

    name: str  # "diffusers", "preview"
    model: str  # model id or folder, or "" for none
    label: str  # shown on screen when not empty (e.g. why the preview runs, and the fix)

    def load(self) -> None: ...

    def generate(self, prompt: Prompt, params: GenerationParams, image: np.ndarray | None) -> np.ndarray: ...
