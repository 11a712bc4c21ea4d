"""Endpointing: audio chunks in, utterances out; and the speech thread that transcribes them.

The endpointer works on short frames. A frame is voiced when every gate says so; the first
gate is signal energy (RMS in dBFS against the show's threshold, with hysteresis so a word
fading out does not chop the utterance). A later gate (Silero VAD) is one more `FrameGate`.
"""

from __future__ import annotations

import collections
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from .channels import DropOldestQueue
from .interfaces import Transcriber
from .messages import AudioChunk, Transcript, Utterance
from .show import SpeechConfig
from .worker import ErrorHandler, Worker

log = logging.getLogger(__name__)

EventHook = Callable[..., Any]  # on_event(name: str, **fields)


def rms_dbfs(frame: np.ndarray) -> float:
    """Loudness of a frame in dB relative to full scale (a full-scale square wave is 0 dB)."""
    if len(frame) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))
    return 20.0 * float(np.log10(max(rms, 1e-6)))


class FrameGate(Protocol):
    """Decides whether one frame is speech. `in_speech` tells it whether an utterance is
    open, so a gate can hold on more easily than it starts (hysteresis)."""

    def is_speech(self, frame: np.ndarray, in_speech: bool) -> bool: ...

    def reset(self) -> None: ...


@dataclass
class EnergyGate:
    """Voiced when the frame is louder than `threshold_db`; once speech has started, it
    stays voiced down to `threshold_db - hysteresis_db`, so soft word endings count."""

    threshold_db: float
    hysteresis_db: float = 6.0
    last_db: float = -120.0

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

# What Whisper invents from noise and silence: subtitle credits and stock phrases from its
# training data (YouTube captions, broadcast subtitles), per language. Rejected only when they
# are the whole transcript; a visitor saying "thank you for the flowers" is still heard.
HALLUCINATIONS: dict[str, frozenset[str]] = {
    "en": frozenset({
        "you", "thank you", "thanks", "thank you very much", "thank you so much", "thanks for watching",
        "thank you for watching", "thanks for watching and see you next time", "thank you for listening",
        "please subscribe", "subscribe", "please like and subscribe", "like and subscribe",
        "don't forget to like and subscribe", "see you next time", "see you in the next video",
        "i'll see you in the next video", "bye", "bye bye", "goodbye", "okay", "ok", "so", "uh", "um",
        "hmm", "mm", "oh", "ah", "the end", "i'm sorry", "silence", "music", "applause", "laughter",
        "subtitles by the amara org community", "transcribed by", "transcription by castingwords",
        "subtitles by", "captions by", "you you", "thank you thank you",
    }),
    "ko": frozenset({
        "시청해주셔서 감사합니다", "시청해 주셔서 감사합니다", "시청 해주셔서 감사합니다", "시청해주셔서 고맙습니다",
        "감사합니다", "고맙습니다", "감사합니다 감사합니다", "구독과 좋아요 부탁드립니다", "구독 좋아요 부탁드립니다",
        "좋아요와 구독 부탁드립니다", "구독과 좋아요 알림설정 부탁드립니다", "다음 영상에서 만나요",
        "다음 시간에 만나요", "오늘도 시청해주셔서 감사합니다", "mbc 뉴스 이덕영입니다", "mbc 뉴스 김성현입니다",
        "자막 제공 및 자막 편집", "한글자막 by 한효정", "네", "아", "음", "어", "안녕히 계세요", "끝",
    }),
    "ja": frozenset({"ご視聴ありがとうございました", "ありがとうございました", "チャンネル登録お願いします"}),
    "zh": frozenset({"谢谢观看", "请订阅", "字幕由amara org社区提供", "明镜与点点栏目"}),
}
# "[Music]", "(upbeat music)", "*applause*", "♪": sound descriptions, not words said.
_ANNOTATIONS = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫]")
_WORD = re.compile(r"[^\W_]+")


def _phrase_key(text: str) -> str:
    """Lower case, words only, single spaces: how phrases are compared."""
    return " ".join(_WORD.findall(text.lower()))


_ALL_KNOWN = frozenset().union(*HALLUCINATIONS.values())
_ALL_KNOWN_NOSPACE = frozenset(k.replace(" ", "") for k in _ALL_KNOWN)


def rejection_reason(text: str, language: str | None = None, extra: Sequence[str] = ()) -> str | None:
    """Why a transcript should not become a prompt ("empty", "no words", "annotation",
    "hallucination", "repetition"), or None if it is credible. Every language's list is
    consulted (Whisper's detected language is itself unreliable on noise); Korean spacing is
    free, so phrases also match with the spaces removed."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    if not _WORD.search(stripped):
        return "no words"
    words = _WORD.findall(_ANNOTATIONS.sub(" ", stripped).lower())
    if not words:
        return "annotation"
    key = " ".join(words)
    extras = {_phrase_key(p) for p in extra}
    if key in _ALL_KNOWN or key in extras or key.replace(" ", "") in _ALL_KNOWN_NOSPACE:
        return "hallucination"
    if len(words) >= 6 and len(set(words)) <= max(1, len(words) // 4):
        return "repetition"  # "the the the the the the": Whisper looping on noise
    return None


@dataclass(frozen=True)
class Decoded:
    """A transcriber's detailed answer: the words, and how sure Whisper was of them."""

    text: str
    language: str = "en"
    english: str = ""
    no_speech_prob: float = 0.0  # Whisper's estimate that the audio held no speech (max over segments)
    avg_logprob: float = 0.0  # mean token log-probability (duration-weighted over segments)
    compression_ratio: float = 1.0  # gzip ratio of the text; high = repetitive
    decode_s: float = 0.0

    def metrics(self) -> dict[str, float]:
        return {"no_speech_prob": round(self.no_speech_prob, 3), "avg_logprob": round(self.avg_logprob, 3),
                "compression_ratio": round(self.compression_ratio, 3)}


def guard_reason(decoded: Decoded, cfg: SpeechConfig) -> str | None:
    """The layered guards after endpointing: Whisper's own confidence (its rule for "this
    was silence": no-speech probability high *and* the text unsure), text it produced with
    very low confidence, text that repeats itself, then the phrase lists."""
    if not all(math.isfinite(v) for v in (decoded.no_speech_prob, decoded.avg_logprob, decoded.compression_ratio)):
        return "no confidence"  # a broken model (NaN scores) must not slip through every comparison
    if decoded.no_speech_prob > cfg.no_speech_threshold and decoded.avg_logprob < cfg.logprob_threshold:
        return "no speech"
    if decoded.avg_logprob < cfg.logprob_threshold - 0.5:
        return "unsure"
    if decoded.compression_ratio > cfg.compression_ratio_threshold:
        return "repetition"
    return rejection_reason(decoded.text, decoded.language, cfg.hallucination_phrases)


def decode_with(transcriber: Transcriber, utterance: Utterance, final: bool = True) -> Decoded | None:
    """Detailed decoding when the transcriber offers it (`decode`), else its plain answer."""
    decode = getattr(transcriber, "decode", None)
    if decode is not None:
        return decode(utterance, final=final)
    t0 = time.monotonic()
    tr = transcriber.transcribe(utterance)
    if tr is None:
        return None
    return Decoded(text=tr.text, language=tr.language, english=tr.english, decode_s=time.monotonic() - t0)


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
        out: DropOldestQueue[Transcript],
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
            load = getattr(gate, "load", None)
            if load is not None:
                load()
        self._event("speech_ready", transcriber=getattr(self.transcriber, "name", "?"),
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
                self.out.put(Transcript(text="", final=False, utterance_end_t=chunk.t))
            return
        finished = self.endpointer.feed(chunk)
        for utterance in finished:
            self.beat()  # a long transcription is work, not a stall
            try:
                self.handle(utterance)
            except Exception as exc:  # one bad utterance must not cost the ones queued after it
                self.report(exc)
                self._event("rejected", text="", reason="error", duration_s=round(utterance.duration, 3))
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
            self._event("rejected", text=text, reason=reason or "empty", **fields)
            if shown:  # the caption shows a partial of it: take it back
                self.out.put(Transcript(text="", final=False, utterance_end_t=utterance.t_end))
            return None
        transcript = Transcript(text=decoded.text, language=decoded.language, english=decoded.english,
                                final=True, utterance_end_t=utterance.t_end)
        self.transcribed += 1
        self._event("heard", text=transcript.text, english=transcript.english,
                    latency_s=round(transcript.t - utterance.t_end, 3), **fields)
        self.out.put(transcript)
        return transcript

    def _event(self, name: str, **fields: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, **fields)
        except Exception:  # the app's logging must never stop speech
            log.exception("%s: on_event(%r) failed", self.name, name)
