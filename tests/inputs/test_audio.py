"""Audio sources on real files: espeak-ng speech, ffmpeg-made WAVs in several formats, the
real PortAudio library (which sees no devices on a dev box), and the mic thread."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from installation.core.channels import DropOldestQueue
from installation.core.interfaces import DeviceLost
from installation.core.messages import AudioChunk
from installation.core.worker import stop_all
from installation.inputs.microphone import MicWorker, SoundDeviceSource, list_microphones, open_audio_source
from installation.inputs.wav import AudioUnavailable, WavFileSource, load_wav_16k, read_wav, resample
from installation.show import MicrophoneConfig
from media import espeak_wav

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is installed by `make setup`")


def write_wav16(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    import wave

    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def ffmpeg_sine(path: Path, rate: int, channels: int, codec: str, freq: int = 440, seconds: float = 1.0) -> Path:
    """A sine made by ffmpeg, the same signal in every channel (pan, not ffmpeg's upmix,
    which lowers the level)."""
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    pan = f"pan={layout}|" + "|".join(f"c{i}=c0" for i in range(channels))
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"sine=frequency={freq}:sample_rate={rate}:duration={seconds}",
         "-af", pan, "-c:a", codec, str(path)],
        check=True,
    )
    return path


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# --- reading and resampling ----------------------------------------------------------------


def test_resampling_espeak_22k_matches_ffmpeg(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is installed by `make setup`")
    text = "a lighthouse in a storm"
    raw = tmp_path / "raw.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
    wav = read_wav(raw)
    assert wav.sample_rate == 22050 and wav.channels == 1  # espeak-ng's own output format
    ours = load_wav_16k(raw)
    reference = read_wav(espeak_wav(text, tmp_path / "ref.wav")).samples  # ffmpeg's resampler
    assert abs(len(ours) - len(reference)) <= 2
    n = min(len(ours), len(reference))
    assert abs(len(ours) / 16000 - wav.duration) < 0.001
    corr = np.corrcoef(ours[:n], reference[:n])[0, 1]
    assert corr > 0.99, corr
    assert abs(rms(ours) / rms(reference[:n]) - 1) < 0.05


@needs_ffmpeg
@pytest.mark.parametrize(
    "rate,channels,codec",
    [(44100, 2, "pcm_s24le"), (48000, 1, "pcm_f32le"), (8000, 1, "pcm_u8"), (22050, 2, "pcm_s32le"),
     (16000, 6, "pcm_s16le")],
)
def test_any_pcm_or_float_wav_becomes_16k_mono(tmp_path, rate, channels, codec):
    path = ffmpeg_sine(tmp_path / f"sine_{codec}.wav", rate, channels, codec)
    wav = read_wav(path)
    assert (wav.sample_rate, wav.channels) == (rate, channels)
    x = load_wav_16k(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 16000) <= 1
    assert abs(peak_hz(x, 16000) - 440) < 2
    # ffmpeg's sine source has amplitude 1/8: RMS 0.0884 whatever the format.
    assert abs(rms(x[200:-200]) - 0.125 / np.sqrt(2)) < 0.005


def test_downsampling_filters_what_would_alias(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    tone_10k = (0.5 * np.sin(2 * np.pi * 10_000 * t)).astype(np.float32)  # above 8 kHz Nyquist
    tone_3k = (0.5 * np.sin(2 * np.pi * 3_000 * t)).astype(np.float32)
    assert rms(resample(tone_10k, rate, 16000)[100:-100]) < 0.005  # would fold to 6 kHz
    kept = resample(tone_3k, rate, 16000)[100:-100]
    assert abs(rms(kept) - 0.5 / np.sqrt(2)) < 0.01
    assert abs(peak_hz(kept, 16000) - 3000) < 3


def test_unreadable_files_say_which_and_why(tmp_path):
    with pytest.raises(AudioUnavailable, match="missing.wav: no such audio file"):
        read_wav(tmp_path / "missing.wav")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    with pytest.raises(AudioUnavailable, match=r"notes\.wav: not a RIFF/WAVE file.*ffmpeg"):
        read_wav(text)
    empty = write_wav16(tmp_path / "empty.wav", np.zeros(0, np.float32))
    with pytest.raises(AudioUnavailable, match="empty.wav: contains no audio"):
        read_wav(empty)
    one_sample = write_wav16(tmp_path / "click.wav", np.ones(1, np.float32), rate=44100)
    with pytest.raises(AudioUnavailable, match="click.wav: too short"):
        WavFileSource(one_sample).open()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00")
    with pytest.raises(AudioUnavailable, match="fmt chunk is truncated"):
        read_wav(truncated)


# --- the WAV file source --------------------------------------------------------------------


@pytest.fixture
def tone_wav(tmp_path) -> Path:
    t = np.arange(8000) / 16000  # 0.5 s
    return write_wav16(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 300 * t))


def test_wav_source_plays_in_real_time(tone_wav):
    src = WavFileSource(tone_wav, chunk_ms=20, paced=True)
    src.open()
    start = time.monotonic()
    chunks = []
    while time.monotonic() - start < 0.6:
        c = src.read(timeout=0.2)
        if c is not None:
            # A chunk is never handed out before its last sample "was captured".
            assert time.monotonic() >= c.t + c.duration - 1e-3
            chunks.append(c)
    elapsed = time.monotonic() - start
    src.close()
    assert all(len(c.samples) == 320 and c.sample_rate == 16000 for c in chunks)
    # Never ahead of real time, and not far behind it (generous: the box is shared).
    assert len(chunks) <= elapsed / 0.02 + 1
    assert len(chunks) >= 0.5 * elapsed / 0.02
    # Capture stamps advance by exactly one chunk each.
    assert np.allclose(np.diff([c.t for c in chunks]), 0.02)


def test_wav_source_read_returns_none_when_nothing_is_due_yet(tone_wav):
    src = WavFileSource(tone_wav, chunk_ms=100, paced=True)
    src.open()
    assert src.read(timeout=0.01) is None  # the first 100 ms chunk is not captured yet
    assert src.read(timeout=0.5) is not None
    src.close()
    with pytest.raises(DeviceLost):
        src.read(timeout=0.01)


def test_wav_source_once_then_silence(tone_wav):
    src = WavFileSource(tone_wav, chunk_ms=20, paced=False)
    src.open()
    chunks = [src.read(0.0) for _ in range(60)]  # 1.2 s from a 0.5 s file
    played = np.concatenate([c.samples for c in chunks])
    assert np.array_equal(played[:8000], load_wav_16k(tone_wav))
    assert not np.any(played[8000:])  # silence keeps coming, as from a real mic
    assert src.finished
    assert chunks[-1].t - chunks[0].t == pytest.approx(59 * 0.02)


def test_wav_source_loops(tone_wav):
    src = WavFileSource(tone_wav, chunk_ms=30, loop=True, paced=False)  # 480 does not divide 8000
    src.open()
    played = np.concatenate([src.read(0.0).samples for _ in range(60)])
    original = load_wav_16k(tone_wav)
    assert np.array_equal(played[:8000], original)
    assert np.array_equal(played[8000:16000], original)
    assert np.array_equal(played[16000:24000], original)
    assert not src.finished


def test_open_audio_source_picks_the_right_kind(tone_wav, project_root):
    assert open_audio_source(MicrophoneConfig(source="none")) is None
    src = open_audio_source(MicrophoneConfig(source=str(tone_wav), chunk_ms=40, loop=True))
    assert isinstance(src, WavFileSource) and src.loop and src.chunk_samples == 640
    demo = open_audio_source(MicrophoneConfig(source="assets/demo_speech.wav"))  # project-relative
    assert isinstance(demo, WavFileSource) and demo.path == project_root / "assets/demo_speech.wav"
    with pytest.raises(AudioUnavailable, match="nope.wav: no such WAV file"):
        open_audio_source(MicrophoneConfig(source="assets/nope.wav"))
    assert isinstance(open_audio_source(MicrophoneConfig(source="default")), SoundDeviceSource)
    assert isinstance(open_audio_source(MicrophoneConfig(source=3)), SoundDeviceSource)


# --- live devices (real PortAudio; this box has no sound card) ------------------------------


def test_missing_device_name_is_audio_unavailable():
    src = SoundDeviceSource("Focusrite Scarlett 2i2 that is not here")
    with pytest.raises(AudioUnavailable, match="no audio input device named like 'Focusrite"):
        src.open()
    with pytest.raises(AudioUnavailable, match="audio input device 42 does not exist"):
        SoundDeviceSource(42).open()


def test_list_microphones_returns_a_list():
    mics = list_microphones()
    assert isinstance(mics, list)
    for m in mics:
        assert {"index", "name", "channels", "default_samplerate"} <= set(m)
        assert m["channels"] > 0


# --- the mic thread ---------------------------------------------------------------------------


def test_mic_worker_moves_chunks_and_stops(tone_wav, no_thread_leak):
    out: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 100)
    worker = MicWorker(WavFileSource(tone_wav, chunk_ms=20), out)
    worker.start()
    first = out.get(timeout=2.0)
    assert first is not None and first.sample_rate == 16000
    time.sleep(0.2)
    assert stop_all([worker], timeout=2.0) == []
    assert len(out) >= 3 and worker.status().errors == 0


class LosesDeviceOnce:
    """A real WAV source whose "device" vanishes after a few chunks, once: stands in for a
    microphone unplugged mid-show."""

    def __init__(self, inner: WavFileSource, after: int) -> None:
        self.inner, self.after, self.reads, self.closes = inner, after, 0, 0
        self.description = "flaky " + inner.description

    def open(self) -> None:
        self.inner.open()

    def read(self, timeout: float) -> AudioChunk | None:
        self.reads += 1
        if self.reads == self.after:
            raise DeviceLost("unplugged")
        return self.inner.read(timeout)

    def close(self) -> None:
        self.closes += 1
        self.inner.close()


def test_mic_worker_reopens_a_lost_device(tone_wav, no_thread_leak):
    errors = []
    out: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 200)
    source = LosesDeviceOnce(WavFileSource(tone_wav, chunk_ms=20), after=3)
    worker = MicWorker(source, out, on_error=lambda name, exc: errors.append((name, str(exc))))
    worker.backoff_s = (0.05,)
    worker.start()
    deadline = time.monotonic() + 5.0
    while worker.opened < 2 or len(out) < 5:
        assert time.monotonic() < deadline, (worker.opened, len(out), errors)
        time.sleep(0.02)
    assert stop_all([worker], timeout=2.0) == []
    assert errors == [("microphone", "unplugged")]
    assert source.closes >= 2  # closed after the loss, and at teardown


def test_portaudio_start_up_noise_is_silenced_but_python_errors_are_not(tmp_path):
    """ALSA prints "XDG_RUNTIME_DIR is invalid" and friends straight to descriptor 2 while
    PortAudio starts; inside quiet_native_stderr that goes nowhere, and afterwards (and for
    exceptions raised inside) stderr works as before."""
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "from installation.inputs.microphone import quiet_native_stderr\n"
        "with quiet_native_stderr():\n"
        "    os.write(2, b'error: XDG_RUNTIME_DIR is invalid or not set in the environment.\\n')\n"
        "os.write(2, b'after\\n')\n"
        "try:\n"
        "    with quiet_native_stderr():\n"
        "        raise ValueError('a Python error')\n"
        "except ValueError as exc:\n"
        "    print('caught', exc, file=sys.stderr)\n"
        "raise SystemExit('the end')\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert "XDG_RUNTIME_DIR" not in proc.stderr
    assert proc.stderr.splitlines() == ["after", "caught a Python error", "the end"]
