"""Endpointing: audio chunks in, utterances out.

The endpointer works on short frames. A frame is voiced when every gate says so; the first
gate is signal energy (RMS in dBFS against the show's threshold, with hysteresis so a word
fading out does not chop the utterance). A later gate (Silero VAD) is one more `FrameGate`.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from installation.core.messages import AudioChunk, Utterance
from installation.show import SpeechConfig


def rms_dbfs(frame: np.ndarray) -> float:
    """Loudness of a frame in dB relative to full scale (a full-scale square wave is 0 dB)."""
    if len(frame) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))
    return 20.0 * float(np.log10(max(rms, 1e-6)))


class FrameGate(Protocol):
    """Decides whether one frame is speech. `in_speech` tells it whether an utterance is
    open, so a gate can hold on more easily than it starts (hysteresis)."""

    def load(self) -> None:
        """Load what the gate needs (a model) before the first frame; called on the speech
        thread, so the show starts at once."""
        ...

    def is_speech(self, frame: np.ndarray, in_speech: bool) -> bool: ...

    def reset(self) -> None: ...


@dataclass
class EnergyGate:
    """Voiced when the frame is louder than `threshold_db`; once speech has started, it
    stays voiced down to `threshold_db - hysteresis_db`, so soft word endings count."""

    threshold_db: float
    hysteresis_db: float = 6.0
    last_db: float = -120.0

    def load(self) -> None:
        pass  # loudness needs no model

    def is_speech(self, frame: np.ndarray, in_speech: bool) -> bool:
        self.last_db = rms_dbfs(frame)
        limit = self.threshold_db - (self.hysteresis_db if in_speech else 0.0)
        return self.last_db >= limit

    def reset(self) -> None:
        self.last_db = -120.0


@dataclass
class EndpointerStats:
    utterances: int = 0
    blips_dropped: int = 0  # voiced stretches shorter than min_speech_ms
    cuts: int = 0  # utterances ended by max_utterance_s rather than by silence
    gaps: int = 0  # jumps in the chunks' capture times (audio lost upstream)


def make_gates(cfg: SpeechConfig) -> list[FrameGate]:
    """The gates a show's [speech] asks for: loudness always (cheap, and it keeps a whisper
    across the room from counting), then Silero when `vad = "silero"` (footsteps, music and
    applause are loud but are not speech). The Silero model loads on first use."""
    gates: list[FrameGate] = [EnergyGate(cfg.energy_threshold_db)]
    if cfg.vad == "silero":
        from .vad import SileroGate  # noqa: PLC0415 - onnxruntime only when asked for

        gates.append(SileroGate(threshold=cfg.vad_threshold))
    return gates


class Endpointer:
    """Cuts a stream of chunks into utterances.

    - onset: the first voiced frame; `preroll_ms` of audio before it is kept, so soft
      beginnings ("f" in "fox") reach the recogniser;
    - end: `end_silence_ms` of unvoiced frames after the last voiced one;
    - an utterance whose voiced frames add up to less than `min_speech_ms` is a blip (a
      cough, a door) and is dropped;
    - an utterance reaching `max_utterance_s` (pre-roll included) is cut and a new one may
      start at once;
    - the audio handed on runs from the pre-roll to `tail_ms` after the last voiced frame
      (default: all of the end silence; Whisper tiny misreads clipped endings more often,
      and the silence is already buffered, so keeping it costs no latency).

    `Utterance.t_start` / `t_end` are the monotonic times of the first / last voiced
    sample (to frame precision), taken from the chunks' capture stamps. Not thread-safe:
    one thread feeds it.
    """

    def __init__(
        self,
        cfg: SpeechConfig,
        sample_rate: int = 16000,
        frame_ms: float = 20.0,
        tail_ms: int | None = None,
        gates: Sequence[FrameGate] | None = None,
    ) -> None:
        self.cfg = cfg
        self.sample_rate = sample_rate
        self.frame_samples = max(1, round(sample_rate * frame_ms / 1000))
        self.frame_s = self.frame_samples / sample_rate
        self.gates: list[FrameGate] = list(gates) if gates is not None else make_gates(cfg)
        self._preroll_frames = int(round(cfg.preroll_ms / 1000 / self.frame_s))
        self._end_frames = max(1, int(np.ceil(cfg.end_silence_ms / 1000 / self.frame_s)))
        self._min_voiced = max(1, int(np.ceil(cfg.min_speech_ms / 1000 / self.frame_s)))
        self._max_frames = max(1, int(cfg.max_utterance_s / self.frame_s))
        tail = cfg.end_silence_ms if tail_ms is None else tail_ms
        self._tail_frames = min(self._end_frames, int(round(tail / 1000 / self.frame_s)))
        self.stats = EndpointerStats()
        self.last_voiced_frames = 0  # voiced frames of the utterance finished last
        self._pending = np.zeros(0, np.float32)  # samples not yet making a whole frame
        self._pending_t = 0.0  # capture time of _pending[0]
        self._preroll: collections.deque[np.ndarray] = collections.deque(maxlen=max(self._preroll_frames, 1))
        self._reset_utterance()

    # --- state -------------------------------------------------------------------------
    def _reset_utterance(self) -> None:
        self._in_speech = False
        self._frames: list[np.ndarray] = []
        self._last_voiced = -1  # index in _frames of the last voiced frame
        self._voiced = 0
        self._t_start = 0.0
        self._t_last_voiced_end = 0.0

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def voiced_frames(self) -> int:
        """Voiced frames in the open utterance: a snapshot taken at the same count holds
        every voiced frame the finished utterance will hold."""
        return self._voiced

    @property
    def silence_s(self) -> float:
        """Seconds of unvoiced audio since the open utterance's last voiced frame."""
        if not self._in_speech:
            return 0.0
        return (len(self._frames) - 1 - self._last_voiced) * self.frame_s

    @property
    def voiced_s(self) -> float:
        return self._voiced * self.frame_s

    def snapshot(self) -> Utterance | None:
        """The open utterance as it stands (pre-roll, speech so far, the silence after it),
        for a partial or speculative transcription; None when nobody is speaking or the
        speech so far is shorter than `min_speech_ms`."""
        if not self._in_speech or self._voiced < self._min_voiced:
            return None
        end = min(len(self._frames), self._last_voiced + 1 + self._tail_frames)
        return Utterance(samples=np.concatenate(self._frames[:end]), sample_rate=self.sample_rate,
                         t_start=self._t_start, t_end=self._t_last_voiced_end - 1.0 / self.sample_rate)

    def reset(self) -> None:
        """Forget everything (e.g. after the stream was interrupted)."""
        self._pending = np.zeros(0, np.float32)
        self._preroll.clear()
        for g in self.gates:
            g.reset()
        self._reset_utterance()

    # --- feeding -----------------------------------------------------------------------
    def feed(self, chunk: AudioChunk) -> list[Utterance]:
        if chunk.sample_rate != self.sample_rate:
            raise ValueError(
                f"endpointer expects {self.sample_rate} Hz audio, got a chunk at {chunk.sample_rate} Hz"
            )
        samples = np.asarray(chunk.samples, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(samples)):  # one bad driver block must not poison Whisper
            samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
        if len(self._pending) and abs(chunk.t - (self._pending_t + len(self._pending) / self.sample_rate)) > 0.1:
            # A jump in capture time (chunks dropped upstream, a reopened device): the partial
            # frame belongs to audio that no longer continues, so time restarts at this chunk.
            self.stats.gaps += 1
            self._pending = np.zeros(0, np.float32)
        if len(self._pending) == 0:
            self._pending_t = chunk.t
        self._pending = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        out: list[Utterance] = []
        n = self.frame_samples
        whole = len(self._pending) // n
        for i in range(whole):
            frame = self._pending[i * n : (i + 1) * n]
            u = self._frame(frame, self._pending_t + i * self.frame_s)
            if u is not None:
                out.append(u)
        self._pending = self._pending[whole * n :].copy()
        self._pending_t += whole * self.frame_s
        return out

    def flush(self) -> list[Utterance]:
        """Ends the open utterance, if any (stream ended, show paused)."""
        out = []
        if self._in_speech:
            u = self._finish(cut=False)
            if u is not None:
                out.append(u)
        self._preroll.clear()
        return out

    def _frame(self, frame: np.ndarray, t: float) -> Utterance | None:
        # Every gate sees every frame (no short-circuit): a model gate keeps state across frames.
        voiced = all([g.is_speech(frame, self._in_speech) for g in self.gates])
        if not self._in_speech:
            if not voiced:
                if self._preroll_frames:
                    self._preroll.append(frame)
                return None
            self._in_speech = True
            self._frames = list(self._preroll)
            self._preroll.clear()
            self._t_start = t
        self._frames.append(frame)
        if voiced:
            self._voiced += 1
            self._last_voiced = len(self._frames) - 1
            self._t_last_voiced_end = t + self.frame_s
        elif len(self._frames) - 1 - self._last_voiced >= self._end_frames:
            return self._finish(cut=False)
        if len(self._frames) >= self._max_frames:
            return self._finish(cut=True)
        return None

    def _finish(self, cut: bool) -> Utterance | None:
        frames, last, voiced = self._frames, self._last_voiced, self._voiced
        t_start, t_end = self._t_start, self._t_last_voiced_end - 1.0 / self.sample_rate
        self._reset_utterance()
        self.last_voiced_frames = voiced
        if voiced < self._min_voiced:
            self.stats.blips_dropped += 1
            if self._preroll_frames:
                self._preroll.extend(frames[-self._preroll_frames :])
            return None
        end = len(frames) if cut else min(len(frames), last + 1 + self._tail_frames)
        if self._preroll_frames:
            self._preroll.extend(frames[end:])  # silence after the tail: pre-roll for the next
        samples = np.concatenate(frames[:end])
        self.stats.utterances += 1
        self.stats.cuts += int(cut)
        return Utterance(samples=samples, sample_rate=self.sample_rate, t_start=t_start, t_end=t_end)


# --- what counts as heard ----------------------------------------------------------------
