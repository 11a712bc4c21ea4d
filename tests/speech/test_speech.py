"""Endpointing on synthetic tone bursts and real espeak-ng speech, and the speech thread on
the whole path: WAV → MicWorker → SpeechWorker (real tiny.en) → Transcript."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from installation.core.channels import DropOldestQueue
from installation.core.messages import AudioChunk, Decoded, Transcript, Utterance
from installation.core.worker import stop_all
from installation.inputs.microphone import MicWorker
from installation.inputs.wav import WavFileSource, load_wav_16k, read_wav
from installation.show import SpeechConfig
from installation.speech.endpointing import Endpointer, EnergyGate, rms_dbfs
from installation.speech.guards import rejection_reason
from installation.speech.worker import SpeechWorker
from media import espeak_wav

SR = 16000
T0 = 1000.0  # capture time of the first sample, as a monotonic stamp would be


def tone(seconds: float, db: float = -12.0, freq: float = 220.0) -> np.ndarray:
    """A sine whose RMS is `db` dBFS."""
    t = np.arange(int(round(seconds * SR))) / SR
    return (10 ** (db / 20) * np.sqrt(2) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def quiet(seconds: float, db: float = -70.0, seed: int = 0) -> np.ndarray:
    """Room noise well under the threshold (a real mic never gives exact zeros)."""
    rng = np.random.default_rng(seed)
    return (10 ** (db / 20) * rng.standard_normal(int(round(seconds * SR)))).astype(np.float32)


def chunks_of(signal: np.ndarray, chunk_samples: int = 320, t0: float = T0) -> list[AudioChunk]:
    return [
        AudioChunk(samples=signal[i : i + chunk_samples], sample_rate=SR, t=t0 + i / SR)
        for i in range(0, len(signal), chunk_samples)
    ]


def run(ep: Endpointer, signal: np.ndarray, chunk_samples: int = 320) -> list[Utterance]:
    out: list[Utterance] = []
    for c in chunks_of(signal, chunk_samples):
        out += ep.feed(c)
    return out


CFG = SpeechConfig(vad="energy", energy_threshold_db=-40, preroll_ms=300, min_speech_ms=300, end_silence_ms=500,
                   max_utterance_s=10.0)


# --- endpointing ---------------------------------------------------------------------------


def test_rms_dbfs_of_known_signals():
    assert rms_dbfs(tone(0.1, db=-20)) == pytest.approx(-20, abs=0.1)
    assert rms_dbfs(np.zeros(320, np.float32)) == -120.0
    assert rms_dbfs(np.ones(320, np.float32)) == pytest.approx(0.0)


def test_three_bursts_make_three_utterances_with_preroll_and_times():
    signal = np.concatenate([quiet(1.0), tone(1.0), quiet(1.0, seed=1), tone(0.8), quiet(1.0, seed=2),
                             tone(1.2), quiet(1.0, seed=3)])
    ep = Endpointer(CFG)
    utts = run(ep, signal)
    assert len(utts) == 3
    starts, ends = [1.0, 3.0, 4.8], [2.0, 3.8, 6.0]
    for u, s, e in zip(utts, starts, ends):
        assert u.sample_rate == SR
        assert u.t_start == pytest.approx(T0 + s, abs=0.021)  # frame precision
        assert u.t_end == pytest.approx(T0 + e, abs=0.021)
        # 300 ms pre-roll of room noise, the burst, then the 500 ms of end silence.
        assert u.duration == pytest.approx(0.3 + (e - s) + 0.5, abs=0.021)
        pre = u.samples[: int(0.28 * SR)]
        body = u.samples[int(0.32 * SR) : int((0.3 + e - s - 0.02) * SR)]
        assert rms_dbfs(pre) < -60 and rms_dbfs(body) == pytest.approx(-12, abs=0.5)
    assert ep.stats.utterances == 3 and ep.stats.blips_dropped == 0


def test_utterance_audio_is_preroll_speech_and_tail_cut_from_the_stream():
    signal = np.concatenate([quiet(1.0), tone(1.0), quiet(1.0)])
    u = run(Endpointer(CFG), signal)[0]
    assert np.array_equal(u.samples, signal[int(0.7 * SR) : int(2.5 * SR)])
    short_tail = run(Endpointer(CFG, tail_ms=100), signal)[0]
    assert np.array_equal(short_tail.samples, signal[int(0.7 * SR) : int(2.1 * SR)])


def test_short_blips_are_dropped():
    signal = np.concatenate([quiet(1.0), tone(0.1), quiet(1.0, seed=1), tone(0.2), quiet(1.0, seed=2),
                             tone(0.6), quiet(1.0, seed=3)])
    ep = Endpointer(CFG)
    utts = run(ep, signal)
    assert len(utts) == 1
    assert utts[0].t_start == pytest.approx(T0 + 3.3, abs=0.021)
    assert ep.stats.blips_dropped == 2


def test_gaps_between_words_do_not_split_an_utterance():
    signal = np.concatenate([quiet(0.5), tone(0.5), quiet(0.3, seed=1), tone(0.5), quiet(0.4, seed=2),
                             tone(0.5), quiet(1.0, seed=3)])
    utts = run(Endpointer(CFG), signal)
    assert len(utts) == 1
    assert utts[0].t_end - utts[0].t_start == pytest.approx(2.2, abs=0.03)


def test_hysteresis_keeps_soft_endings_but_does_not_start_on_them():
    soft = -43.0  # under the -40 dB onset threshold, over the -46 dB hold level
    signal = np.concatenate([quiet(0.5), tone(0.5), tone(0.4, db=soft), tone(0.5), quiet(1.0)])
    utts = run(Endpointer(CFG), signal)
    assert len(utts) == 1 and utts[0].t_end == pytest.approx(T0 + 1.9, abs=0.021)
    assert run(Endpointer(CFG), np.concatenate([quiet(0.5), tone(2.0, db=soft), quiet(1.0)])) == []
    without = Endpointer(CFG, gates=[EnergyGate(-40.0, hysteresis_db=0.0)])
    assert len(run(without, np.concatenate([quiet(0.5), tone(0.5), tone(0.6, db=soft), tone(0.5), quiet(1.0)]))) == 2


class HighPitchOnly:
    """A second gate, as Silero VAD will be: here, voiced only above 1 kHz (zero crossings)."""

    def __init__(self) -> None:
        self.frames = 0

    def load(self) -> None:
        pass

    def is_speech(self, frame: np.ndarray, in_speech: bool) -> bool:
        self.frames += 1
        crossings = np.count_nonzero(np.diff(np.signbit(frame)))
        return crossings / 2 / (len(frame) / SR) > 1000

    def reset(self) -> None:
        self.frames = 0


def test_a_second_gate_must_agree_and_sees_every_frame():
    signal = np.concatenate([quiet(0.5), tone(0.8, freq=220), quiet(0.8, seed=1), tone(0.8, freq=2000),
                             quiet(1.0, seed=2)])
    second = HighPitchOnly()
    ep = Endpointer(CFG, gates=[EnergyGate(CFG.energy_threshold_db), second])
    utts = run(ep, signal)
    assert len(utts) == 1 and utts[0].t_start == pytest.approx(T0 + 2.1, abs=0.021)
    assert second.frames == len(signal) // 320


def test_long_speech_is_cut_at_max_utterance_s():
    cfg = CFG.model_copy(update={"max_utterance_s": 5.0})
    ep = Endpointer(cfg)
    signal = np.concatenate([quiet(1.0), tone(12.0), quiet(1.0, seed=1)])
    utts = run(ep, signal)
    assert len(utts) == 3
    assert all(u.duration <= 5.0 + 1e-9 for u in utts)
    assert [round(u.duration, 2) for u in utts[:2]] == [5.0, 5.0]
    assert ep.stats.cuts == 2
    # Nothing voiced is lost or repeated across the cuts.
    voiced = sum(u.t_end - u.t_start + 1 / SR for u in utts)
    assert voiced == pytest.approx(12.0, abs=0.03)
    assert utts[1].t_start == pytest.approx(utts[0].t_end + 1 / SR, abs=1e-6)


def test_chunk_size_does_not_change_the_result():
    signal = np.concatenate([quiet(0.7), tone(0.9), quiet(0.8, seed=1), tone(0.5), quiet(1.0, seed=2)])
    a = run(Endpointer(CFG), signal, chunk_samples=320)
    b = run(Endpointer(CFG), signal, chunk_samples=113)  # 7 ms: frames straddle chunks
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert np.array_equal(x.samples, y.samples)
        assert x.t_start == pytest.approx(y.t_start) and x.t_end == pytest.approx(y.t_end)


def test_a_jump_in_capture_time_restarts_the_clock():
    ep = Endpointer(CFG)
    signal = np.concatenate([quiet(1.0), tone(1.0), quiet(1.0)])
    chunks = chunks_of(signal, chunk_samples=113)  # partial frames pending between chunks
    # Chunks after the first second arrive 5 s later than the stream would say (a stall upstream).
    moved = [c if c.t < T0 + 0.5 else AudioChunk(c.samples, SR, c.t + 5.0) for c in chunks]
    utts = [u for c in moved for u in ep.feed(c)]
    assert len(utts) == 1 and ep.stats.gaps == 1
    assert utts[0].t_start == pytest.approx(T0 + 6.0, abs=0.03)


def test_flush_ends_an_open_utterance():
    ep = Endpointer(CFG)
    assert run(ep, np.concatenate([quiet(0.5), tone(1.0)])) == []
    assert ep.in_speech
    (u,) = ep.flush()
    assert u.t_start == pytest.approx(T0 + 0.5, abs=0.021) and not ep.in_speech
    assert ep.flush() == []


def test_bad_chunks_are_refused_or_sanitised():
    ep = Endpointer(CFG)
    with pytest.raises(ValueError, match="expects 16000 Hz audio, got a chunk at 44100 Hz"):
        ep.feed(AudioChunk(samples=np.zeros(441, np.float32), sample_rate=44100, t=T0))
    broken = tone(1.0)
    broken[100:200] = np.nan
    utts = run(ep, np.concatenate([quiet(0.5), broken, quiet(1.0)]))
    assert len(utts) == 1 and np.all(np.isfinite(utts[0].samples))


def test_endpointer_finds_real_speech(tmp_path):
    speech = load_wav_16k(espeak_wav("a red fox running through the snowy forest", tmp_path / "s.wav"))
    signal = np.concatenate([quiet(1.0), speech, quiet(1.0, seed=1)])
    utts = run(Endpointer(CFG), signal)
    assert len(utts) == 1
    voiced = np.flatnonzero(np.abs(speech) > 0.01)
    assert utts[0].t_start == pytest.approx(T0 + 1.0 + voiced[0] / SR, abs=0.05)
    assert utts[0].t_end == pytest.approx(T0 + 1.0 + voiced[-1] / SR, abs=0.05)


# --- what counts as heard --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,reason",
    [("", "empty"), ("   ", "empty"), ("...", "no words"), ("♪♪", "no words"), ("[Music]", "annotation"),
     ("(upbeat music)", "annotation"), ("[BLANK_AUDIO]", "annotation"), (" Thank you.", "hallucination"),
     ("you", "hallucination"), ("the the the the the the the the", "repetition"),
     ("A red fox running through the snowy forest.", None), ("(wind) a lighthouse in a storm", None),
     ("눈 덮인 숲을 달리는 붉은 여우", None), ("Thank you for the rain", None)],
)
def test_rejection_reason(text, reason):
    assert rejection_reason(text) == reason


@pytest.mark.parametrize("text", [
    "시청해주셔서 감사합니다.", "시청해 주셔서 감사합니다!", "구독과 좋아요 부탁드립니다", "MBC 뉴스 이덕영입니다.",
    "Thanks for watching!", "Subtitles by the Amara.org community", "ご視聴ありがとうございました",
])
def test_known_inventions_in_several_languages(text):
    assert rejection_reason(text) == "hallucination"
    assert rejection_reason(text.replace(" ", "")) == "hallucination"  # Korean spacing is free


def test_a_show_adds_its_own_phrases():
    assert rejection_reason("Welcome to the gallery.") is None
    assert rejection_reason("Welcome to the gallery.", extra=["welcome to the gallery"]) == "hallucination"
    assert rejection_reason("시청해주셔서 감사합니다 여우 그림") is None  # a real wish that starts like one


def test_guard_reason_layers_whisper_confidence():
    from installation.core.messages import Decoded
    from installation.speech.guards import guard_reason

    cfg = SpeechConfig()
    ok = Decoded(text="a red fox in the snow", no_speech_prob=0.1, avg_logprob=-0.5, compression_ratio=1.1)
    assert guard_reason(ok, cfg) is None
    # Whisper's own rule: likely silence *and* an unsure text.
    assert guard_reason(Decoded(text="a red fox", no_speech_prob=0.8, avg_logprob=-1.2), cfg) == "no speech"
    assert guard_reason(Decoded(text="a red fox", no_speech_prob=0.8, avg_logprob=-0.3), cfg) is None
    assert guard_reason(Decoded(text="a red fox", no_speech_prob=0.1, avg_logprob=-1.8), cfg) == "unsure"
    assert guard_reason(Decoded(text="a red fox", compression_ratio=3.0), cfg) == "repetition"
    assert guard_reason(Decoded(text="a red fox", avg_logprob=float("nan")), cfg) == "no confidence"
    assert guard_reason(Decoded(text="Thank you for watching."), cfg) == "hallucination"
    strict = SpeechConfig(no_speech_threshold=0.3, logprob_threshold=-0.4)
    assert guard_reason(Decoded(text="a red fox", no_speech_prob=0.4, avg_logprob=-0.5), strict) == "no speech"


# --- the speech thread ----------------------------------------------------------------------


class Scripted:
    """A transcriber answering from a list, slowly: isolates the worker's own logic (what is
    rejected, that audio waits in the queue meanwhile) from Whisper's."""

    name = "scripted"

    def __init__(self, answers: list[str], delay_s: float = 0.0) -> None:
        self.answers, self.delay_s, self.loaded, self.calls = list(answers), delay_s, 0, 0
        self.utterances: list[Utterance] = []

    def load(self) -> None:
        self.loaded += 1

    def transcribe(self, utterance: Utterance) -> Transcript | None:
        self.calls += 1
        self.utterances.append(utterance)
        time.sleep(self.delay_s)
        text = self.answers.pop(0)
        return Transcript(text=text, english=text, utterance_end_t=utterance.t_end) if text else None

    def decode(self, utterance: Utterance, final: bool = True) -> Decoded | None:
        t0 = time.monotonic()
        tr = self.transcribe(utterance)
        if tr is None:
            return None
        return Decoded(text=tr.text, language=tr.language, english=tr.english, decode_s=time.monotonic() - t0)


def feed_all(q: DropOldestQueue, signal: np.ndarray, t0: float | None = None) -> None:
    """Queue a signal at once, stamped as if it had just been captured in real time (or as
    captured from `t0` on)."""
    for c in chunks_of(signal, t0=time.monotonic() - len(signal) / SR if t0 is None else t0):
        q.put(c)


def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_speech_worker_rejects_garbage_and_passes_words(no_thread_leak):
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 1000)
    out: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", 10)
    events: list[tuple[str, dict]] = []
    transcriber = Scripted(["[Music]", "", "  a paper boat on a river  "], delay_s=0.3)
    worker = SpeechWorker(audio, transcriber, Endpointer(CFG), out,
                          on_event=lambda name, **f: events.append((name, f)))
    worker.start()
    # Three utterances in one go: the second and third arrive while the first is transcribed.
    feed_all(audio, np.concatenate([quiet(0.5), tone(0.6), quiet(0.7, seed=1), tone(0.6), quiet(0.7, seed=2),
                                    tone(0.6), quiet(1.0, seed=3)]))
    wait_for(lambda: transcriber.calls == 3 and len(events) >= 4)
    assert stop_all([worker], timeout=3.0) == []
    got = out.drain()
    assert [t.text for t in got] == ["  a paper boat on a river  "]  # stripping is the transcriber's job
    assert transcriber.loaded == 1
    names = [n for n, _ in events]
    assert names == ["speech_ready", "rejected", "rejected", "heard"]
    assert events[1][1]["reason"] == "annotation" and events[1][1]["text"] == "[Music]"
    assert events[2][1]["reason"] == "empty"
    assert audio.stats().dropped == 0 and worker.status().errors == 0


def test_speech_worker_survives_a_failing_event_hook(no_thread_leak):
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 1000)
    out: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", 10)

    def broken_hook(name, **fields):
        raise RuntimeError("disk full")

    worker = SpeechWorker(audio, Scripted(["a kite"]), Endpointer(CFG), out, on_event=broken_hook)
    worker.start()
    feed_all(audio, np.concatenate([quiet(0.3), tone(0.6), quiet(1.0)]))
    got = out.get(timeout=5.0)
    assert stop_all([worker], timeout=3.0) == []
    assert got is not None and got.text == "a kite"


def test_a_closed_gate_ignores_speech(no_thread_leak):
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 1000)
    out: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", 10)
    transcriber = Scripted(["never", "heard once open"])
    worker = SpeechWorker(audio, transcriber, Endpointer(CFG), out)
    worker.set_listening(False)
    worker.start()
    burst = np.concatenate([quiet(0.3), tone(0.6), quiet(1.0)])
    feed_all(audio, burst)
    wait_for(lambda: worker.ignored_chunks == len(chunks_of(burst)), 5.0)
    assert transcriber.calls == 0 and not worker.listening
    worker.set_listening(True)
    feed_all(audio, burst, t0=time.monotonic() + 0.01)  # captured after the gate opened
    got = out.get(timeout=5.0)
    assert stop_all([worker], timeout=3.0) == []
    assert got is not None and got.text == "never"  # the first answer goes to the first utterance heard
    assert transcriber.calls == 1


def test_reopening_the_gate_skips_audio_captured_before(no_thread_leak):
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 1000)
    out: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", 10)
    transcriber = Scripted(["after the cue"])
    worker = SpeechWorker(audio, transcriber, Endpointer(CFG), out)
    worker.set_listening(False)
    burst = np.concatenate([quiet(0.3), tone(0.6), quiet(1.0)])
    feed_all(audio, burst)  # spoken before the cue, still waiting in the queue...
    feed_all(audio, burst[: int(0.6 * SR)])
    worker.set_listening(True)  # ...when the gate opens
    reopened = time.monotonic()
    feed_all(audio, burst, t0=reopened + 0.01)
    worker.start()
    got = out.get(timeout=5.0)
    assert stop_all([worker], timeout=3.0) == []
    assert got is not None and got.text == "after the cue"
    assert transcriber.calls == 1 and transcriber.utterances[0].t_start > reopened


class FailsOnce(Scripted):
    def transcribe(self, utterance: Utterance) -> Transcript | None:
        if self.calls == 0:
            self.calls += 1
            raise RuntimeError("CTranslate2 hiccup")
        return super().transcribe(utterance)


def test_a_failed_transcription_costs_only_its_utterance(no_thread_leak):
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 1000)
    out: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", 10)
    errors, events = [], []
    worker = SpeechWorker(audio, FailsOnce(["a kite over the sea"]), Endpointer(CFG), out,
                          on_error=lambda name, exc: errors.append(str(exc)),
                          on_event=lambda name, **f: events.append((name, f.get("reason"))))
    worker.start()
    # Fed back to back: the second utterance waits in the queue while the first one fails.
    feed_all(audio, np.concatenate([quiet(0.3), tone(0.6), quiet(0.6, seed=1), tone(0.6), quiet(1.0, seed=2)]))
    got = out.get(timeout=5.0)
    assert stop_all([worker], timeout=3.0) == []
    assert got is not None and got.text == "a kite over the sea"
    assert errors == ["CTranslate2 hiccup"]
    assert events == [("speech_ready", None), ("rejected", "error"), ("heard", None)]
    assert worker.is_alive() is False and worker.status().errors == 1


def _two_wishes_wav(tmp_path: Path) -> Path:
    """Two wishes with 0.8 s between them, 0.3 s lead-in: ~5 s of real-time audio."""
    a = load_wav_16k(espeak_wav("a red fox in the snow", tmp_path / "a.wav"))
    b = load_wav_16k(espeak_wav("a golden castle on a green hill", tmp_path / "b.wav"))
    signal = np.concatenate([quiet(0.3), a, quiet(0.8, seed=1), b, quiet(0.8, seed=2)])
    path = tmp_path / "two.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "f32le", "-ar", "16000", "-ac", "1",
                    "-i", "-", "-c:a", "pcm_s16le", str(path)], input=signal.tobytes(), check=True)
    return path


@pytest.fixture
def no_worker_leak():
    """no_thread_leak, except for tqdm's monitor: faster-whisper creates a (disabled) tqdm
    bar per call, and tqdm starts a daemon thread that ends by itself ~10 s later."""
    before = set(threading.enumerate())
    yield
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive() and t.name != "tqdm_monitor"]
    assert not left, f"threads left running: {left}"


@pytest.mark.slow
def test_whole_path_wav_to_transcripts(tmp_path, tiny_en, no_worker_leak):
    wav = _two_wishes_wav(tmp_path)
    assert read_wav(wav).channels == 1
    errors: list = []
    events: list = []
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 1500)  # 30 s of 20 ms chunks
    out: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", 10)
    on_error = lambda name, exc: errors.append((name, exc))  # noqa: E731
    mic = MicWorker(WavFileSource(wav, chunk_ms=20, paced=True), audio, on_error=on_error)
    speech = SpeechWorker(audio, tiny_en, Endpointer(CFG), out, on_error=on_error,
                          on_event=lambda name, **f: events.append((name, f)))
    speech.start()
    mic.start()
    finals: list[Transcript] = []
    partials: list[Transcript] = []
    try:
        deadline = time.monotonic() + 30.0
        while len(finals) < 2 and time.monotonic() < deadline:
            got = out.get(timeout=1.0)
            if isinstance(got, Transcript):  # a CaptionRetraction takes back a partial
                (finals if got.final else partials).append(got)
        first, second = (finals + [None, None])[:2]
    finally:
        hung = stop_all([mic, speech], timeout=5.0)
    assert hung == [] and errors == []
    assert first is not None and second is not None, events
    one, two = first.text.lower(), second.text.lower()
    assert all(w in one for w in ("red", "fox", "snow")), one
    assert all(w in two for w in ("golden", "castle", "hill")), two
    # Stamps tell the latency story: the text is born after the speech it came from ended.
    assert first.utterance_end_t < first.t and first.utterance_end_t < second.utterance_end_t
    assert second.t - second.utterance_end_t < 10.0
    assert audio.stats().dropped == 0
    assert [n for n, _ in events] == ["speech_ready", "heard", "heard"]
    assert all(p.text and not p.final for p in partials)  # partials (if the thread kept up) are words
    assert not mic.is_alive() and not speech.is_alive()
