"""An empty room must never speak: minutes of silence, room tone, white and pink noise,
footsteps (clicks), music and applause, generated here, fed through the whole speech path
(endpointer with its gates → SpeechWorker → the real tiny.en → the guards): zero transcripts.

Run twice: as shipped (energy + Silero VAD, which keeps almost everything from Whisper), and
with the energy gate alone, so Whisper really hears the loud noise and its own confidence,
the phrase lists and the repetition check have to hold the line."""

from __future__ import annotations

import time

import numpy as np
import pytest

from installation.core.channels import DropOldestQueue
from installation.core.messages import AudioChunk, Transcript
from installation.core.worker import stop_all
from installation.show import SpeechConfig
from installation.speech.endpointing import Endpointer
from installation.speech.worker import SpeechWorker

SR = 16000


def _scaled(x: np.ndarray, db: float) -> np.ndarray:
    return (x / (x.std() + 1e-12) * 10 ** (db / 20)).astype(np.float32)


def white(s: float, db: float = -20, seed: int = 0) -> np.ndarray:
    return _scaled(np.random.default_rng(seed).standard_normal(int(s * SR)), db)


def pink(s: float, db: float = -20, seed: int = 1) -> np.ndarray:
    n = int(s * SR)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum /= np.sqrt(np.arange(1, len(spectrum) + 1))  # 1/f power
    return _scaled(np.fft.irfft(spectrum, n), db)


def footsteps(s: float, every: float = 0.55, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n, k = int(s * SR), np.arange(int(0.08 * SR))
    x = white(s, -70, seed)
    for i in range(0, n - len(k), int(every * SR)):
        x[i : i + len(k)] += (0.6 * rng.standard_normal(len(k)) * np.exp(-k / (0.01 * SR))).astype(np.float32)
    return x


def music(s: float, seed: int = 3) -> np.ndarray:
    """Plucked three-note chords on a scale, four a second, over a bass drone."""
    rng = np.random.default_rng(seed)
    n = int(s * SR)
    t = np.arange(n) / SR
    x = 0.05 * np.sin(2 * np.pi * 55 * t)
    beat = int(0.25 * SR)
    for i in range(0, n, beat):
        seg = slice(i, min(n, i + beat))
        tt = t[seg] - t[i]
        for f in rng.choice([220, 247, 262, 294, 330, 349, 392, 440], 3):
            for h in (1, 2, 3):
                x[seg] += 0.08 / h * np.sin(2 * np.pi * f * h * tt) * np.exp(-tt * 4)
    return x.astype(np.float32)


def applause(s: float, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n, k = int(s * SR), np.arange(int(0.02 * SR))
    x = white(s, -60, seed)
    for i in rng.integers(0, n - len(k), int(s * 40)):  # 40 claps a second
        x[i : i + len(k)] += (0.3 * rng.standard_normal(len(k)) * np.exp(-k / (0.003 * SR))).astype(np.float32)
    return x


def the_empty_room() -> list[tuple[str, np.ndarray]]:
    return [
        ("digital silence", np.zeros(30 * SR, np.float32)),
        ("room tone", white(60, -65)),
        ("white noise", white(20, -20)),
        ("loud white noise", white(10, -6, seed=5)),
        ("pink noise", pink(20, -20)),
        ("footsteps", footsteps(30)),
        ("music", music(30)),
        ("applause", applause(20)),
    ]  # 3 min 40 s


def run_path(cfg: SpeechConfig, signal: np.ndarray, tiny_en) -> tuple[list[Transcript], list[tuple[str, dict]]]:
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", len(signal) // 320 + 10)
    out: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", 100)
    events: list[tuple[str, dict]] = []
    worker = SpeechWorker(audio, tiny_en, Endpointer(cfg), out, cfg=cfg,
                          on_event=lambda name, **f: events.append((name, f)))
    t0 = 5000.0
    for i in range(0, len(signal), 320):  # paced=False: stamped as real time, delivered at once
        audio.put(AudioChunk(samples=signal[i : i + 320], sample_rate=SR, t=t0 + i / SR))
    worker.start()
    deadline = time.monotonic() + 240
    while (len(audio) or worker.endpointer.in_speech) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert stop_all([worker], timeout=10.0) == []
    assert len(audio) == 0, "the speech thread did not get through the audio"
    return out.drain(), events


@pytest.mark.slow
@pytest.mark.parametrize("vad", ["silero", "energy"])
def test_an_empty_room_never_speaks(tiny_en, vad):
    cfg = SpeechConfig(vad=vad, language="en")
    gap = np.zeros(SR, np.float32)
    parts = the_empty_room()
    signal = np.concatenate([np.concatenate([x, gap]) for _, x in parts])
    assert len(signal) / SR > 180  # minutes, not seconds
    got, events = run_path(cfg, signal, tiny_en)
    assert got == [], got
    names = [n for n, _ in events]
    assert "heard" not in names
    if vad == "energy":
        # The loud parts did reach Whisper; what it made of them was turned away.
        rejected = [f for n, f in events if n == "rejected"]
        assert len(rejected) >= 5, events
