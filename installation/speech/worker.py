"""The speech thread: audio chunks through the endpointer, each utterance through the
transcriber and the guards, and what survives out as a transcript (or a partial caption, or a
retraction of one)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from installation.core.channels import DropOldestQueue
from installation.core.events import EventHook, emit
from installation.core.interfaces import Transcriber
from installation.core.messages import AudioChunk, CaptionRetraction, Decoded, Transcript, Utterance
from installation.core.worker import ErrorHandler, Worker
from installation.show import SpeechConfig

from .endpointing import Endpointer
from .guards import guard_reason

log = logging.getLogger(__name__)


def decode_with(transcriber: Transcriber, utterance: Utterance, final: bool = True) -> Decoded | None:
    """The transcriber's detailed answer (words and confidence) for the guards; `final` is
    False for a speculative decode while the visitor is still speaking."""
    return transcriber.decode(utterance, final=final)


# --- the thread ----------------------------------------------------------------------------


@dataclass
class _Speculation:
    voiced_frames: int  # the open utterance's voiced count when it was decoded
    decoded: Decoded | None


class SpeechWorker(Worker):
    """Feeds audio chunks to the endpointer and transcribes each utterance. The transcriber
    loads in this thread, so the app starts (and shows its first frame) at once.

    While someone speaks and the thread keeps up with the microphone, it also transcribes
    ahead: every `partial_interval_s` of speech (a partial: `Transcript(final=False)` in the
    out queue, for the caption), and as soon as a short pause begins (`speculate_after_s`). If
    the pause turns out to be the end, no voiced frame has come since, and that decode *is*
    the final transcript: the visitor waits for the end silence or the decode, whichever is
    longer, instead of both. Audio that piles up meanwhile is worked off afterwards; nothing
    is transcribed ahead while the thread is behind (`max_behind_s`).

    Chunks that arrive while a transcription runs wait in the audio queue, which must be
    long enough for the slowest transcription (the app sizes it: seconds of chunks).
    """

    get_timeout_s = 0.2
    max_behind_s = 0.15

    def __init__(
        self,
        audio: DropOldestQueue[AudioChunk],
        transcriber: Transcriber,
        endpointer: Endpointer,
        out: DropOldestQueue[Transcript | CaptionRetraction],
        on_error: ErrorHandler | None = None,
        on_event: EventHook | None = None,
        name: str = "speech",
        cfg: SpeechConfig | None = None,
        speculate_after_s: float | None = None,
    ) -> None:
        super().__init__(name=name, on_error=on_error)
        self.audio = audio
        self.transcriber = transcriber
        self.endpointer = endpointer
        self.cfg = cfg or endpointer.cfg
        self.out = out
        self._on_event = on_event
        # Early enough to save most of the end silence, late enough that the gaps between
        # words (100-200 ms) rarely trigger a wasted decode.
        self.speculate_after_s = (min(0.2, self.cfg.end_silence_ms / 2000) if speculate_after_s is None
                                  else speculate_after_s)
        self.transcribed = 0
        self.rejected = 0
        self.partials = 0
        self.speculative_hits = 0
        self.speculative_misses = 0
        self.ignored_chunks = 0  # audio that arrived while not listening
        self.last_transcribe_s = 0.0
        self.decoded_audio_s = 0.0  # audio seconds decoded, and the time it took: the real-time factor
        self.decode_s = 0.0
        self._gate = threading.Lock()
        self._listening = True
        self._listen_since = float("-inf")  # chunks captured before this are stale
        self._spec: _Speculation | None = None
        self._partial_at_voiced_s = 0.0
        self._partial_shown = False  # a partial of the open utterance reached the caption
        self.chunks_seen = 0
        # The clock that says whether this thread keeps up with the microphone (tests drive it).
        self.clock: Callable[[], float] = time.monotonic

    def set_listening(self, on: bool) -> None:
        """Open or close the speech gate (a performer's cue, an OSC message; any thread).
        Closed, audio is read and thrown away and a half-heard utterance is forgotten; on
        reopening, audio captured before that moment (still queued) is ignored too, so
        nobody's words from before the cue turn into a prompt after it."""
        with self._gate:
            if on and not self._listening:
                self._listen_since = time.monotonic()
            self._listening = bool(on)

    @property
    def listening(self) -> bool:
        with self._gate:
            return self._listening

    @property
    def rtf(self) -> float:
        """Decode time per second of audio decoded (below 1: faster than real time)."""
        return self.decode_s / self.decoded_audio_s if self.decoded_audio_s else 0.0

    def setup(self) -> None:
        t0 = time.monotonic()
        self.transcriber.load()
        for gate in self.endpointer.gates:  # the VAD model too, before the first word
            gate.load()
        emit(self._on_event, "speech_ready", transcriber=self.transcriber.name,
                    load_s=round(time.monotonic() - t0, 3))

    def step(self) -> None:
        chunk = self.audio.get(self.get_timeout_s)
        if chunk is None:
            return
        with self._gate:
            heard = self._listening and chunk.t >= self._listen_since
        if not heard:
            self.ignored_chunks += 1
            self.chunks_seen += 1
            self.endpointer.reset()
            self._spec = None
            if self._partial_shown:  # the half-heard utterance is forgotten: so is its caption
                self._partial_shown = False
                self.out.put(CaptionRetraction(utterance_end_t=chunk.t))
            return
        finished = self.endpointer.feed(chunk)
        for utterance in finished:
            self.beat()  # a long transcription is work, not a stall
            try:
                self.handle(utterance)
            except Exception as exc:  # one bad utterance must not cost the ones queued after it
                self.report(exc)
                emit(self._on_event, "rejected", text="", reason="error", duration_s=round(utterance.duration, 3))
            if self.stopping:
                return
        if not finished and self.endpointer.in_speech:
            caught_up = self.clock() - (chunk.t + chunk.duration) < self.max_behind_s
            if caught_up and len(self.audio) == 0:
                self._ahead()
        elif not self.endpointer.in_speech:
            self._partial_at_voiced_s = 0.0
        self.chunks_seen += 1

    # --- transcribing ahead -----------------------------------------------------------------
    def _ahead(self) -> None:
        ep = self.endpointer
        spec_due = ep.silence_s >= self.speculate_after_s and (
            self._spec is None or self._spec.voiced_frames != ep.voiced_frames)
        partial_due = (self.cfg.partials and ep.silence_s == 0.0
                       and ep.voiced_s - self._partial_at_voiced_s >= self.cfg.partial_interval_s)
        if not (spec_due or partial_due):
            return
        snap = ep.snapshot()
        if snap is None:
            return
        voiced = ep.voiced_frames
        self.beat()
        try:
            decoded = self._decode(snap, final=spec_due)
        except Exception as exc:
            self.report(exc)
            return
        self._partial_at_voiced_s = ep.voiced_s
        if spec_due:
            self._spec = _Speculation(voiced, decoded)
        if self.cfg.partials and decoded is not None and guard_reason(decoded, self.cfg) is None:
            self.partials += 1
            self._partial_shown = True
            self.out.put(Transcript(text=decoded.text, language=decoded.language, english=decoded.english,
                                    final=False, utterance_end_t=snap.t_end))

    def _decode(self, utterance: Utterance, final: bool) -> Decoded | None:
        t0 = time.monotonic()
        decoded = decode_with(self.transcriber, utterance, final=final)
        spent = time.monotonic() - t0
        self.decode_s += spent
        self.decoded_audio_s += utterance.duration
        self.rate_meter.tick()
        return decoded

    # --- finals --------------------------------------------------------------------------------
    def handle(self, utterance: Utterance) -> Transcript | None:
        """Transcribe one utterance (or take the speculative decode of it) and pass on what
        is credible."""
        t0 = time.monotonic()
        spec, self._spec = self._spec, None
        shown, self._partial_shown = self._partial_shown, False
        self._partial_at_voiced_s = 0.0
        if spec is not None and spec.voiced_frames == self.endpointer.last_voiced_frames:
            self.speculative_hits += 1
            decoded = spec.decoded
        else:
            self.speculative_misses += spec is not None
            decoded = self._decode(utterance, final=True)
        self.last_transcribe_s = time.monotonic() - t0
        fields: dict[str, Any] = dict(duration_s=round(utterance.duration, 3),
                                      transcribe_s=round(self.last_transcribe_s, 3))
        if decoded is not None:
            fields.update(decoded.metrics(), language=decoded.language)
        text = decoded.text if decoded is not None else ""
        reason = guard_reason(decoded, self.cfg) if decoded is not None else "empty"
        if decoded is None or reason is not None:
            self.rejected += 1
            emit(self._on_event, "rejected", text=text, reason=reason or "empty", **fields)
            if shown:  # the caption shows a partial of it: take it back
                self.out.put(CaptionRetraction(utterance_end_t=utterance.t_end))
            return None
        transcript = Transcript(text=decoded.text, language=decoded.language, english=decoded.english,
                                final=True, utterance_end_t=utterance.t_end)
        self.transcribed += 1
        emit(self._on_event, "heard", text=transcript.text, english=transcript.english,
                    latency_s=round(transcript.t - utterance.t_end, 3), **fields)
        self.out.put(transcript)
        return transcript

