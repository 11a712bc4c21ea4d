"""Silero VAD (the ONNX model faster-whisper ships) as a streaming endpointer gate: speech
from espeak-ng is voiced; loud noise, music and clicks are not."""

from __future__ import annotations

import numpy as np
import pytest

from installation.core.messages import AudioChunk
from installation.inputs.wav import load_wav_16k
from installation.show import SpeechConfig
from installation.speech.endpointing import Endpointer, EnergyGate, make_gates
from installation.speech.vad import WINDOW, SileroGate, SileroModel, silero_model_path, speech_probabilities
from media import espeak_wav

SR = 16000


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


@pytest.fixture(scope="module")
def fox(tmp_path_factory) -> np.ndarray:
    return load_wav_16k(espeak_wav("a red fox in the snow", tmp_path_factory.mktemp("vad") / "fox.wav"))


def white(seconds: float, db: float, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(int(seconds * SR))
    return (x / x.std() * 10 ** (db / 20)).astype(np.float32)


def test_the_model_ships_with_faster_whisper():
    path = silero_model_path()
    assert path.suffix == ".onnx" and "faster_whisper" in str(path)


def test_speech_is_voiced_and_noise_is_not(model, fox):
    p_speech = speech_probabilities(fox, model)
    p_noise = speech_probabilities(white(3.0, -12), model)
    assert np.mean(p_speech > 0.5) > 0.6  # most of the spoken clip
    assert p_noise.max() < 0.5  # loud white noise never


def test_streaming_in_frames_equals_whole_windows(model, fox):
    """Fed in 20 ms frames (not a multiple of 512 samples), the gate sees the same windows
    with the same carried state as a whole-clip pass."""
    whole = speech_probabilities(fox, model)
    gate = SileroGate(model=SileroModel())
    for i in range(0, len(fox), 320):
        gate.is_speech(fox[i : i + 320], in_speech=False)
    assert gate.windows == len(fox) // WINDOW
    assert gate.last_prob == pytest.approx(float(whole[-1]), abs=1e-5)


def test_hysteresis_and_reset(model):
    gate = SileroGate(threshold=0.5, hysteresis=0.15, model=model)
    gate.last_prob = 0.4
    gate._buffer = np.zeros(0, np.float32)
    assert gate.is_speech(np.zeros(10, np.float32), in_speech=True)  # 0.4 ≥ 0.35: holds on
    assert not gate.is_speech(np.zeros(10, np.float32), in_speech=False)  # but does not start
    gate.reset()
    assert gate.last_prob == 0.0 and len(gate._buffer) == 0


def test_show_config_picks_the_gates():
    gates = make_gates(SpeechConfig(vad="silero", vad_threshold=0.6, energy_threshold_db=-45))
    assert isinstance(gates[0], EnergyGate) and gates[0].threshold_db == -45
    assert isinstance(gates[1], SileroGate) and gates[1].threshold == 0.6
    assert [type(g) for g in make_gates(SpeechConfig(vad="energy"))] == [EnergyGate]


def test_endpointer_with_silero_keeps_speech_and_ignores_a_loud_hum(fox):
    """A 220 Hz hum at -12 dBFS passes the energy gate; only speech passes both."""
    t = np.arange(int(2.0 * SR)) / SR
    hum = (0.35 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    signal = np.concatenate([white(0.5, -70), hum, white(0.5, -70, 1), fox, white(1.0, -70, 2)])
    for vad, expected in (("energy", 2), ("silero", 1)):
        ep = Endpointer(SpeechConfig(vad=vad))
        utts = []
        for i in range(0, len(signal), 320):
            utts += ep.feed(AudioChunk(samples=signal[i : i + 320], sample_rate=SR, t=100.0 + i / SR))
        assert len(utts) == expected, vad
    speech_start = (0.5 + 2.0 + 0.5)
    assert utts[0].t_start == pytest.approx(100.0 + speech_start, abs=0.25)
