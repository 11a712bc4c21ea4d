"""A real microphone path without a sound card: a PulseAudio null sink (see
/work/shared/TESTING.md). Speech played into the sink with `paplay` comes back through
PortAudio → SoundDeviceSource → MicWorker → SpeechWorker (tiny.en); killing the sound server
is a microphone unplugged mid-show, and the worker picks it up again when it returns."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from installation.core.channels import DropOldestQueue
from installation.core.interfaces import DeviceLost
from installation.core.messages import AudioChunk, Transcript
from installation.core.worker import stop_all
from installation.inputs.microphone import MicWorker, SoundDeviceSource, list_microphones
from installation.show import SpeechConfig
from installation.speech.endpointing import Endpointer
from installation.speech.worker import SpeechWorker
from media import espeak_wav

pytestmark = [
    pytest.mark.pulse,
    pytest.mark.skipif(
        any(shutil.which(b) is None for b in ("pulseaudio", "pactl", "paplay", "parec")),
        reason="needs pulseaudio and pulseaudio-utils (apt-get install pulseaudio pulseaudio-utils)",
    ),
]


class PulseServer:
    """A private PulseAudio daemon with a 16 kHz mono null sink `vmic` whose monitor is the
    default source, plus the "keeper" reader that keeps the sink rendering in small blocks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = {"XDG_RUNTIME_DIR": str(folder), "HOME": str(folder), "PULSE_SERVER": f"unix:{folder}/native"}
        self._keeper: subprocess.Popen | None = None

    def _run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env={**os.environ, **self.env}, capture_output=True, text=True,
                              check=check, timeout=10)

    def start(self) -> None:
        d = self.folder
        self._run("pulseaudio", "--daemonize=yes", "-n", "--exit-idle-time=-1", "--disable-shm=yes",
                  f"--log-target=file:{d}/pa.log",
                  f"--load=module-native-protocol-unix socket={d}/native auth-anonymous=1",
                  "--load=module-null-sink sink_name=vmic rate=16000 channels=1",
                  "--load=module-always-sink")
        deadline = time.monotonic() + 5
        while self._run("pactl", "info").returncode != 0:  # `pulseaudio -D` exits 0 even on failure
            if time.monotonic() > deadline:
                log = (d / "pa.log").read_text() if (d / "pa.log").exists() else ""
                pytest.skip(f"PulseAudio did not start here: {log[-500:]}")
            time.sleep(0.05)
        self._run("pactl", "set-default-sink", "vmic", check=True)
        self._run("pactl", "set-default-source", "vmic.monitor", check=True)
        self._keeper = subprocess.Popen(["parec", "--latency-msec=20", "-d", "vmic.monitor"],
                                        env={**os.environ, **self.env},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not self._run("pactl", "list", "short", "source-outputs").stdout.strip():
            if time.monotonic() > deadline:
                pytest.fail("the keeper reader never connected to PulseAudio")
            time.sleep(0.02)
        self._run("pactl", "suspend-sink", "vmic", "1")
        self._run("pactl", "suspend-sink", "vmic", "0")

    def play(self, wav: Path) -> subprocess.Popen:
        return subprocess.Popen(["paplay", "-d", "vmic", str(wav)], env={**os.environ, **self.env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        pid_file = self.folder / "pulse" / "pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.02)
            except ProcessLookupError:
                pass
        if self._keeper is not None:
            self._keeper.kill()
            self._keeper.wait(5)
            self._keeper = None


@pytest.fixture(scope="module")
def pulse():
    folder = Path(tempfile.mkdtemp(prefix="jadong-pulse-"))
    folder.chmod(0o700)
    server = PulseServer(folder)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in server.env.items():
            mp.setenv(k, v)  # PortAudio's ALSA pulse plugin finds the server through these
        server.start()
        try:
            yield server
        finally:
            server.stop()
            shutil.rmtree(folder, ignore_errors=True)


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_pulse_device_is_listed_and_found_by_name(pulse):
    src = SoundDeviceSource("PULSE")  # case-insensitive; PortAudio is restarted to see it
    src.open()
    try:
        assert "pulse" in src.description
        chunk = src.read(timeout=1.0)
        assert chunk is not None and chunk.sample_rate == 16000 and len(chunk.samples) == 320
        assert chunk.t <= time.monotonic() - chunk.duration + 1e-3  # stamped at capture
    finally:
        src.close()
    assert any(m["name"] == "pulse" for m in list_microphones())


@pytest.mark.slow
def test_spoken_into_the_sink_comes_out_as_words(pulse, tiny_en, tmp_path):
    # Where the speech falls on the 20 ms frame grid varies run to run here, and tiny.en reads
    # some espeak phrases differently by the millisecond; this one reads the same at any offset.
    wav = espeak_wav("a paper boat on a river", tmp_path / "wish.wav")
    errors: list = []
    on_error = lambda name, exc: errors.append((name, exc))  # noqa: E731
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 1500)
    out: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", 10)
    mic = MicWorker(SoundDeviceSource("pulse", chunk_ms=20), audio, on_error=on_error)
    speech = SpeechWorker(audio, tiny_en, Endpointer(SpeechConfig()), out, on_error=on_error)
    before = set(threading.enumerate())
    mic.start()
    speech.start()
    try:
        wait_for(lambda: mic.rate_meter.count > 5, 5.0, "audio from the null sink")
        player = pulse.play(wav)
        assert player.wait(15) == 0, player.stderr.read()
        played_at = time.monotonic()
        transcript = None
        deadline = time.monotonic() + 15.0
        while transcript is None and time.monotonic() < deadline:
            got = out.get(timeout=0.5)
            if isinstance(got, Transcript) and got.final:  # partials come first from a live microphone
                transcript = got
    finally:
        hung = stop_all([mic, speech], timeout=5.0)
    assert hung == [] and errors == []
    assert transcript is not None
    heard = transcript.text.lower()
    assert all(w in heard for w in ("paper", "boat", "river")), transcript.text
    # The voiced end, stamped from PortAudio's capture clock, lies before paplay returned.
    assert transcript.utterance_end_t < played_at < transcript.t
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive() and t.name != "tqdm_monitor"]
    assert left == []


def test_sound_server_loss_and_return(pulse):
    errors: list[BaseException] = []
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 500)
    mic = MicWorker(SoundDeviceSource("pulse", chunk_ms=20, stall_s=1.0), audio,
                    on_error=lambda name, exc: errors.append(exc))
    mic.backoff_s = (0.2,)
    mic.start()
    try:
        wait_for(lambda: mic.rate_meter.count > 5, 5.0, "audio before the loss")
        pulse.stop()  # the microphone goes away
        wait_for(lambda: any(isinstance(e, DeviceLost) for e in errors), 5.0, "DeviceLost")
        assert mic.is_alive()
        pulse.start()  # and comes back
        wait_for(lambda: mic.opened >= 2, 10.0, "the device to be reopened")
        count = mic.rate_meter.count
        wait_for(lambda: mic.rate_meter.count > count + 5, 5.0, "audio after the return")
    finally:
        assert stop_all([mic], timeout=5.0) == []
    assert isinstance(errors[0], DeviceLost)
    # Every failure is counted; a repeat of the same one is reported once (Worker.report).
    assert mic.status().errors >= len(errors)
    # Audio after the return is live audio again, stamped near now.
    newest = audio.drain()[-1]
    assert time.monotonic() - newest.t < 2.0 and np.all(np.isfinite(newest.samples))
