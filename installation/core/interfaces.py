"""The small interfaces behind which every outside thing sits, with every capability the
rooms use stated here (no probing with hasattr/getattr). One file per real implementation;
the app only ever talks to these."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from .messages import AudioChunk, Decoded, GenerationParams, Prompt, StreamRequest, Transcript, Utterance


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

    def decode(self, utterance: Utterance, final: bool = True) -> Decoded | None:
        """The words with the engine's confidence figures, for the speech guards. `final` is
        False for a speculative decode of an utterance still being spoken: an engine may skip
        work only a final answer needs (Whisper's English translation pass)."""
        ...


class Generator(Protocol):
    """Turns a prompt (and optionally a camera image) into an RGB uint8 frame."""

    name: str  # "stream", "diffusers", "preview"
    model: str  # model id or folder, or "" for none
    label: str  # shown on screen when not empty (e.g. why the preview runs, and the fix)
    reason: str  # why the show runs this generator (set by the choice; the worker's events say it)
    # Set before load() by whoever shows the screen meanwhile; a generator whose load has steps
    # worth showing calls it with each one (the streaming engine does; the others load in one go).
    progress_callback: Callable[[str], None] | None

    @property
    def device(self) -> str:
        """Where it paints once loaded ("cuda" or "cpu"); "" before."""
        ...

    @property
    def animating(self) -> bool:
        """True while generate() would paint a different frame for unchanged inputs (a prompt
        blend, drifting noise, a feedback loop): the worker keeps painting instead of waiting
        for a new prompt, params or camera frame."""
        ...

    def load(self) -> None: ...

    def generate(self, prompt: Prompt, params: GenerationParams, image: np.ndarray | None) -> np.ndarray: ...

    def generate_many(self, requests: Sequence[StreamRequest]) -> list[np.ndarray]:
        """One frame per request (each stream at most once), in the order asked; each stream's
        state is its own (`StreamRequest.stream`), and `generate` is stream 0. The streaming
        engine paints streams with the same steps and mode in one batched call; the others
        paint them in turns."""
        ...

    def set_lora_scale(self, scale: float) -> None:
        """The show's LoRA weight from now on (a cue's); nothing for a generator without one."""

    def release(self) -> None:
        """Lets go of the model and frees its memory (GPU memory above all), after running out
        of it; `load` builds it again. Nothing for a generator without a model (the preview)."""


class FrameSink(Protocol):
    """Somewhere every presented frame also goes besides the screen: an NDI source
    (display/ndi_out.py), another output. The presenter calls `send` on the display thread
    right after each frame it presents, so it must return at once (hand the frame to a thread of
    its own; never block on a network, a disk or a lock another thread holds long)."""

    name: str  # for logs and status, e.g. "NDI Jadong"
    overlays: bool  # True: the frame as the screen shows it, caption, label and HUD burnt in; False: the
    # picture alone (crossfades, the visitor's outline and blackout included, no text)

    def send(self, rgb: np.ndarray, t: float) -> None:
        """`rgb`: (H, W, 3) uint8, the presented frame at the screen's size, read-only, owned by
        the sink from now on (the presenter never writes to it again: keep it, no copy needed);
        `t`: time.monotonic() when it was presented."""
        ...

    def close(self) -> None:
        """Stop (joining its thread); the presenter calls it when it closes. Idempotent."""
        ...
