"""Silero voice activity detection as an endpointer gate, streaming frame by frame.

faster-whisper ships the Silero VAD (v6) as an ONNX file and runs it over whole files; here the
same model runs on the live stream: 512-sample windows (32 ms at 16 kHz) with the 64 samples
before each as context, the recurrent state (h, c) carried from one window to the next. It
tells speech from what only *sounds* loud (footsteps, music, applause, a door) far better than
loudness, so it sits after the energy gate: quiet frames never reach the model.

onnxruntime and the model load lazily (first use, in the speech thread), so importing this
module costs nothing.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

WINDOW = 512  # samples per Silero call at 16 kHz (the model's fixed input)
CONTEXT = 64  # samples of the previous window the model sees before each window
STATE = (1, 1, 128)


class VadUnavailable(RuntimeError):
    """The Silero model or onnxruntime is missing; the message says how to fix it."""


def silero_model_path() -> Path:
    """The Silero ONNX file inside the installed faster-whisper package."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise VadUnavailable("speech.vad = \"silero\" needs faster-whisper (it ships the model); "
                             "`pip install faster-whisper`, or set vad = \"energy\"")
    for root in spec.submodule_search_locations:
        for name in ("silero_vad_v6.onnx", "silero_vad_v5.onnx", "silero_vad.onnx"):
            path = Path(root) / "assets" / name
            if path.is_file():
                return path
    raise VadUnavailable("the installed faster-whisper has no Silero VAD model in its assets; "
                         "upgrade it (`pip install -U faster-whisper`) or set speech.vad = \"energy\"")


class SileroModel:
    """One ONNX session with its own recurrent state: one per stream, never shared between
    threads (the state is the stream's memory)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or silero_model_path()
        try:
            import onnxruntime  # noqa: PLC0415 - heavy, and only the speech thread needs it
        except ImportError as exc:
            raise VadUnavailable(f"speech.vad = \"silero\" needs onnxruntime ({exc}); "
                                 "`pip install onnxruntime`, or set vad = \"energy\"") from None
        opts = onnxruntime.SessionOptions()
        # One thread: a 32 ms window takes well under a millisecond, and Whisper wants the cores.
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"],
                                                        sess_options=opts)
        except Exception as exc:
            raise VadUnavailable(f"{self.path}: the Silero VAD model does not load ({exc})") from None
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros(STATE, np.float32)
        self._c = np.zeros(STATE, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    def window(self, samples: np.ndarray) -> float:
        """Speech probability of one 512-sample window (16 kHz), continuing the stream."""
        x = np.concatenate([self._context, samples.astype(np.float32, copy=False)])[None, :]
        out, self._h, self._c = self.session.run(None, {"input": x, "h": self._h, "c": self._c})
        self._context = samples[-CONTEXT:].astype(np.float32, copy=True)
        return float(np.asarray(out).reshape(-1)[0])


@dataclass
class SileroGate:
    """A FrameGate: voiced while Silero's speech probability is at least `threshold`, or,
    once speech has started, at least `threshold - hysteresis` (Silero's own `neg_threshold`
    rule: a word fading out keeps the utterance open).

    Frames of any length are buffered into 512-sample windows; a frame's verdict is the
    probability of the newest complete window (at most 32 ms old). Pass `model` to share a
    loaded model between gates of one stream (tests); by default it loads on first use."""

    threshold: float = 0.5
    hysteresis: float = 0.15
    model: Any = None
    last_prob: float = 0.0
    windows: int = 0
    _buffer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def load(self) -> None:
        if self.model is None:
            self.model = SileroModel()

    def is_speech(self, frame: np.ndarray, in_speech: bool) -> bool:
        self.load()
        buf = np.concatenate([self._buffer, np.asarray(frame, np.float32).reshape(-1)])
        n = len(buf) // WINDOW
        for i in range(n):
            self.last_prob = self.model.window(buf[i * WINDOW : (i + 1) * WINDOW])
            self.windows += 1
        self._buffer = buf[n * WINDOW :]
        limit = self.threshold - (self.hysteresis if in_speech else 0.0)
        return self.last_prob >= limit

    def reset(self) -> None:
        self._buffer = np.zeros(0, np.float32)
        self.last_prob = 0.0
        if self.model is not None:
            self.model.reset()


def speech_probabilities(samples: np.ndarray, model: SileroModel | None = None) -> np.ndarray:
    """Silero's probability for each 512-sample window of a 16 kHz clip (for tools and tests)."""
    model = model or SileroModel()
    model.reset()
    x = np.asarray(samples, np.float32).reshape(-1)
    n = len(x) // WINDOW
    return np.array([model.window(x[i * WINDOW : (i + 1) * WINDOW]) for i in range(n)], np.float32)
