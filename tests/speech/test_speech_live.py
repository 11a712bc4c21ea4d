"""Transcribing ahead while the visitor speaks: partial transcripts for the caption, and the
speculative decode that becomes the final one when the pause turns out to be the end. The
worker's clock is driven by the test, chunk by chunk, so "keeping up with the microphone" is
exact rather than a matter of this machine's load. What the app does with them is in
test_words.py."""

from __future__ import annotations

import time

import numpy as np
import pytest

from installation.app import App, RunOptions
from installation.core.channels import DropOldestQueue
from installation.core.messages import AudioChunk, Decoded, Transcript, Utterance
from installation.core.worker import stop_all
from installation.show import SpeechConfig, parse_show
from installation.speech.endpointing import Endpointer
from installation.speech.worker import SpeechWorker

SR = 16000
CFG = SpeechConfig(vad="energy", end_silence_ms=400, min_speech_ms=200, preroll_ms=200, partial_interval_s=1.0)


def tone(seconds: float, db: float = -12.0) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return (10 ** (db / 20) * np.sqrt(2) * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def quiet(seconds: float) -> np.ndarray:
    return (10 ** (-70 / 20) * np.random.default_rng(0).standard_normal(int(round(seconds * SR)))).astype(np.float32)


class Decoder:
    """A transcriber with `decode`: answers in turn, remembering what it was given."""

    name = "scripted"

    def __init__(self, answers: list[Decoded | None]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[float, bool]] = []  # (utterance seconds, final)

    def load(self) -> None:
        pass

    def decode(self, utterance: Utterance, final: bool = True) -> Decoded | None:
        self.calls.append((utterance.duration, final))
        return self.answers.pop(0) if self.answers else Decoded(text="more words")

    def transcribe(self, utterance: Utterance) -> Transcript | None:  # pragma: no cover - decode is used
        raise AssertionError("decode() is the path")


def live(signal: np.ndarray, decoder: Decoder, cfg: SpeechConfig = CFG) -> tuple[SpeechWorker, list[Transcript], list]:
    """Feeds `signal` one 20 ms chunk at a time, each when the thread has finished the last,
    with the worker's clock at the chunk's capture end: a thread that keeps up."""
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 100)
    out: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", 100)
    events: list = []
    worker = SpeechWorker(audio, decoder, Endpointer(cfg), out, cfg=cfg,
                          on_event=lambda name, **f: events.append((name, f)))
    now = {"t": 0.0}
    worker.clock = lambda: now["t"]
    worker.start()
    try:
        for n, i in enumerate(range(0, len(signal), 320), 1):
            now["t"] = 50.0 + (i + 320) / SR
            audio.put(AudioChunk(samples=signal[i : i + 320], sample_rate=SR, t=50.0 + i / SR))
            deadline = time.monotonic() + 5
            while worker.chunks_seen < n and time.monotonic() < deadline:
                time.sleep(0.0005)
            assert worker.chunks_seen == n
    finally:
        assert stop_all([worker], timeout=5.0) == []
    return worker, out.drain(), events


def test_partials_while_speaking_and_the_final_from_the_pause(no_thread_leak):
    decoder = Decoder([Decoded(text="a red"), Decoded(text="a red fox in"),
                       Decoded(text="a red fox in the snow", no_speech_prob=0.01, avg_logprob=-0.3)])
    worker, out, events = live(np.concatenate([quiet(0.5), tone(2.5), quiet(1.0)]), decoder)
    partials = [t for t in out if isinstance(t, Transcript) and not t.final]
    finals = [t for t in out if isinstance(t, Transcript) and t.final]
    # One partial per second of speech, then the speculative decode at the pause (also shown).
    assert [t.text for t in partials] == ["a red", "a red fox in", "a red fox in the snow"]
    assert [t.text for t in finals] == ["a red fox in the snow"]
    assert [final for _, final in decoder.calls] == [False, False, True]  # no fourth decode
    assert worker.speculative_hits == 1 and worker.speculative_misses == 0
    # The speculative decode saw all the speech: pre-roll 0.2 + 2.5 s (+ the pause so far).
    assert decoder.calls[-1][0] >= 2.7
    heard = [f for n, f in events if n == "heard"]
    assert len(heard) == 1 and heard[0]["no_speech_prob"] == 0.01 and heard[0]["avg_logprob"] == -0.3


def test_speech_resuming_after_a_pause_is_decoded_again(no_thread_leak):
    decoder = Decoder([Decoded(text="a red fox"), Decoded(text="a red fox in the snow")])
    cfg = CFG.model_copy(update={"partials": False})
    signal = np.concatenate([quiet(0.5), tone(0.8), quiet(0.3), tone(0.8), quiet(1.0)])
    worker, out, _ = live(signal, decoder, cfg)
    # 0.3 s pause: long enough to speculate (0.2 s), too short to end the utterance (0.4 s).
    assert [t.text for t in out] == ["a red fox in the snow"] and out[0].final
    assert len(decoder.calls) == 2 and decoder.calls[1][0] > decoder.calls[0][0] + 0.8
    assert worker.speculative_hits == 1


def test_a_rejected_final_takes_its_partial_back(no_thread_leak):
    decoder = Decoder([Decoded(text="a red"), Decoded(text="Thank you for watching.")])
    worker, out, events = live(np.concatenate([quiet(0.5), tone(1.5), quiet(1.0)]), decoder)
    assert [type(m).__name__ for m in out] == ["Transcript", "CaptionRetraction"]
    assert (out[0].text, out[0].final) == ("a red", False)
    assert [f["reason"] for n, f in events if n == "rejected"] == ["hallucination"]


def test_nothing_is_decoded_ahead_while_the_thread_is_behind(no_thread_leak):
    decoder = Decoder([Decoded(text="a red fox in the snow")])
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 1000)
    out: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", 100)
    signal = np.concatenate([quiet(0.5), tone(2.5), quiet(1.0)])
    for i in range(0, len(signal), 320):  # all queued at once, captured long ago
        audio.put(AudioChunk(samples=signal[i : i + 320], sample_rate=SR, t=50.0 + i / SR))
    worker = SpeechWorker(audio, decoder, Endpointer(CFG), out, cfg=CFG)
    worker.start()
    got = out.get(timeout=5.0)
    assert stop_all([worker], timeout=5.0) == []
    assert got is not None and got.final and decoder.calls == [(pytest.approx(0.2 + 2.5 + 0.4, abs=0.03), True)]


# --- the app's side ----------------------------------------------------------------------------


def test_gated_listening_starts_deaf_until_the_performer_opens_it(tmp_path):
    show = parse_show({"microphone": {"source": "none"}, "speech": {"listen": "gated"},
                       "osc": {"enabled": False}}, tmp_path / "gated.toml")
    app = App(show, RunOptions(log_path=tmp_path / "events.jsonl"))
    assert app.state.listening is False
    app.control.set_listening(True)  # what /jadong/listen 1 calls
    assert app.state.listening is True
    assert App(parse_show({"microphone": {"source": "none"}}), RunOptions()).state.listening is True
