"""The live microphone: an input device through PortAudio (sounddevice), chosen by name or
index, yielding 16 kHz mono float32 `AudioChunk`s stamped with capture time; the choice of
source a show's [microphone] asks for (a device, a WAV file, or none); and `MicWorker`, the
thread that pulls from a source into the audio queue and reopens a lost device with the
worker backoff.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from installation.core.channels import DropOldestQueue
from installation.core.faults import NO_FAULTS, FaultInjector
from installation.core.interfaces import AudioSource, DeviceLost
from installation.core.messages import AudioChunk
from installation.core.native_stderr import quiet_native_stderr
from installation.core.worker import ErrorHandler, Worker
from installation.show import MicrophoneConfig, resolve_path

from .wav import SAMPLE_RATE, AudioUnavailable, WavFileSource

log = logging.getLogger(__name__)


# --- live devices ------------------------------------------------------------------------


def _import_sounddevice() -> Any:
    """sounddevice, or AudioUnavailable saying how to get PortAudio."""
    try:
        with quiet_native_stderr():  # the import initialises PortAudio
            import sounddevice  # noqa: PLC0415 - only devices need PortAudio
    except OSError as exc:  # raised at import when libportaudio is not installed
        raise AudioUnavailable(
            f"PortAudio is not installed ({exc}); install it (Debian/Ubuntu: "
            "`apt-get install libportaudio2`, macOS: `brew install portaudio`) or set "
            "[microphone] source to a WAV file or \"none\""
        ) from None
    except ImportError as exc:
        raise AudioUnavailable(f"the Python package sounddevice is missing ({exc}); "
                               "`pip install sounddevice`") from None
    return sounddevice


def _refresh_portaudio(sd: Any) -> None:
    """PortAudio lists devices once, when it starts; a microphone plugged in (or a sound
    server started) later stays invisible until it restarts. Only safe while this process
    has no stream open, which holds when one SoundDeviceSource is being (re)opened."""
    try:
        with quiet_native_stderr():
            sd._terminate()
            sd._initialize()
    except Exception as exc:  # a failed refresh leaves the old list, which is still usable
        log.debug("PortAudio refresh failed: %s", exc)


def _input_devices(sd: Any) -> list[dict]:
    try:
        with quiet_native_stderr():
            devices = sd.query_devices()
    except Exception as exc:
        raise AudioUnavailable(f"PortAudio cannot list audio devices ({exc})") from None
    return [dict(d, index=i) for i, d in enumerate(devices) if d.get("max_input_channels", 0) > 0]


def _describe_inputs(inputs: list[dict]) -> str:
    if not inputs:
        return "this machine has no audio input devices"
    return "inputs available: " + ", ".join(f"{d['index']}: {d['name']!r}" for d in inputs)


def find_input_device(sd: Any, device: int | str) -> dict:
    """The input device for a show's `microphone.source`: "default", an index, or a name
    (a case-insensitive substring; an exact name wins over a partial match)."""
    inputs = _input_devices(sd)
    if isinstance(device, str) and device.strip().lower() == "default":
        try:
            default_index = sd.default.device[0]
        except Exception:
            default_index = -1
        if default_index is None or default_index < 0:
            default_index = next((d["index"] for d in inputs), -1)
        for d in inputs:
            if d["index"] == default_index:
                return d
        raise AudioUnavailable(f"no default audio input device; {_describe_inputs(inputs)}")
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        for d in inputs:
            if d["index"] == index:
                return d
        raise AudioUnavailable(
            f"audio input device {index} does not exist or has no input channels; {_describe_inputs(inputs)}"
        )
    wanted = str(device).strip().lower()
    exact = [d for d in inputs if d["name"].lower() == wanted]
    partial = [d for d in inputs if wanted in d["name"].lower()]
    if exact or partial:
        chosen = (exact or partial)[0]
        if not exact and len(partial) > 1:
            log.info("microphone %r matches %d devices; using %r", device, len(partial), chosen["name"])
        return chosen
    raise AudioUnavailable(
        f"no audio input device named like {device!r}; {_describe_inputs(inputs)}"
    )


class SoundDeviceSource:
    """A live microphone through PortAudio. The stream callback (PortAudio's thread) pushes
    blocks of `chunk_ms` into a small bounded queue; `read` pulls them. A stream error, a
    stream that stopped on its own, or no audio for `stall_s` raises DeviceLost, and the
    MicWorker reopens the device."""

    def __init__(
        self,
        device: int | str = "default",
        chunk_ms: int = 20,
        sample_rate: int = SAMPLE_RATE,
        queue_s: float = 2.0,
        stall_s: float = 2.0,
    ) -> None:
        self.device = device
        self.sample_rate = sample_rate
        self.chunk_samples = max(1, round(sample_rate * chunk_ms / 1000))
        self.stall_s = stall_s
        self.description = f"microphone {device!r}"
        self._queue: DropOldestQueue[AudioChunk] = DropOldestQueue(
            f"mic:{device}", max(4, int(queue_s * 1000 / max(chunk_ms, 1)))
        )
        self._stream: Any = None
        self._channels = 1
        self._lost = ""
        self._closing = False
        self._last_callback = 0.0
        self._opened_before = False
        self.overflows = 0  # blocks PortAudio reported as overflowed (audio lost in the driver)

    @property
    def dropped(self) -> int:
        return self._queue.stats().dropped

    def open(self) -> None:
        sd = _import_sounddevice()
        if self._opened_before:
            _refresh_portaudio(sd)
        self._opened_before = True
        try:
            info = find_input_device(sd, self.device)
        except AudioUnavailable:
            _refresh_portaudio(sd)  # it may have appeared since PortAudio started
            info = find_input_device(sd, self.device)
        self.description = f"microphone {info['index']}: {info['name']!r}"
        self._lost = ""
        self._closing = False
        self._queue.drain()
        errors = []
        # Mono first; some drivers only open a device with its own channel count.
        for channels in dict.fromkeys((1, min(2, int(info["max_input_channels"])))):
            stream = None
            try:
                stream = sd.InputStream(
                    device=info["index"],
                    samplerate=self.sample_rate,  # explicit: the default reads 44100
                    channels=channels,
                    dtype="float32",
                    blocksize=self.chunk_samples,
                    callback=self._callback,
                    finished_callback=self._finished,
                )
                self._channels = channels
                self._last_callback = time.monotonic()
                stream.start()
                self._stream = stream
                return
            except Exception as exc:  # sd.PortAudioError, or ValueError for bad settings
                errors.append(f"{channels} ch: {exc}")
                if stream is not None:
                    try:
                        stream.close()
                    except Exception:
                        pass
        raise AudioUnavailable(
            f"{self.description} cannot record {self.sample_rate} Hz audio ({'; '.join(errors)}); "
            "choose the 'default' or 'pulse' device, which resample, or another input"
        )

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic()
        self._last_callback = now
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        # PortAudio says when the first sample hit the converter, on its own clock; the
        # difference to its "now" moves that onto ours. Some host APIs (ALSA's pulse plugin)
        # report nonsense, and a block's first sample is at least a block old in any case.
        lag = frames / self.sample_rate
        try:
            adc, cur = float(time_info.inputBufferAdcTime), float(time_info.currentTime)
            if adc > 0 and cur > 0 and lag <= cur - adc < 1.0:
                lag = cur - adc
        except Exception:
            pass
        samples = indata[:, 0].copy() if self._channels == 1 else indata.mean(axis=1, dtype=np.float32)
        self._queue.put(AudioChunk(samples=samples, sample_rate=self.sample_rate, t=now - lag))

    def _finished(self) -> None:
        if not self._closing:
            self._lost = "the audio stream stopped (device unplugged or the sound server went away)"

    def read(self, timeout: float) -> AudioChunk | None:
        if self._stream is None:
            raise DeviceLost(f"{self.description}: not open")
        chunk = self._queue.get(timeout)
        if chunk is not None:
            return chunk
        if self._lost:
            raise DeviceLost(f"{self.description}: {self._lost}")
        try:
            active = bool(self._stream.active)
        except Exception:
            active = False
        if not active:
            raise DeviceLost(f"{self.description}: the audio stream is no longer running")
        silent_for = time.monotonic() - self._last_callback
        if silent_for > self.stall_s:
            raise DeviceLost(f"{self.description}: no audio for {silent_for:.1f} s")
        return None

    def close(self) -> None:
        self._closing = True
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()  # stop() waits for buffers to drain, which a vanished device never does
            except Exception:
                pass
            try:
                stream.close()
            except Exception:
                pass


def list_microphones() -> list[dict]:
    """The input devices PortAudio sees: index, name, channels, default_samplerate, hostapi,
    default. An empty list when PortAudio is missing or lists nothing."""
    try:
        sd = _import_sounddevice()
        inputs = _input_devices(sd)
    except AudioUnavailable as exc:
        log.info("no microphones listed: %s", exc)
        return []
    try:
        default_index = sd.default.device[0]
    except Exception:
        default_index = -1
    try:
        hostapis = [h["name"] for h in sd.query_hostapis()]
    except Exception:
        hostapis = []
    out = []
    for d in inputs:
        h = d.get("hostapi", -1)
        out.append(
            {
                "index": d["index"],
                "name": d["name"],
                "channels": int(d["max_input_channels"]),
                "default_samplerate": float(d.get("default_samplerate", 0.0)),
                "hostapi": hostapis[h] if 0 <= h < len(hostapis) else "",
                "default": d["index"] == default_index,
            }
        )
    return out


def open_audio_source(cfg: MicrophoneConfig, paced: bool = True) -> AudioSource | None:
    """The source a show's [microphone] asks for: None for "none", a WavFileSource for a
    .wav path or an existing file (relative to the project root), else a live device.
    Raises AudioUnavailable for a WAV path that does not exist (the device itself is only
    looked up when the source opens, in the mic thread)."""
    src = cfg.source
    if isinstance(src, str):
        text = src.strip()
        if text.lower() in ("none", ""):
            return None
        path = resolve_path(text)
        if text.lower().endswith(".wav") or path.is_file():
            if not path.is_file():
                raise AudioUnavailable(f"microphone.source: {text}: no such WAV file (looked in {path})")
            return WavFileSource(path, chunk_ms=cfg.chunk_ms, loop=cfg.loop, paced=paced,
                                 sample_rate=cfg.sample_rate)
    return SoundDeviceSource(src, chunk_ms=cfg.chunk_ms, sample_rate=cfg.sample_rate)


# --- the thread ----------------------------------------------------------------------------


class MicWorker(Worker):
    """Pulls chunks from an AudioSource into the audio queue. A lost device is closed and
    reopened by the Worker's setup-retry with backoff, so unplugging a microphone mid-show
    costs the audio of that moment and nothing else."""

    read_timeout_s = 0.2

    def __init__(
        self,
        source: AudioSource,
        out: DropOldestQueue[AudioChunk],
        on_error: ErrorHandler | None = None,
        name: str = "microphone",
        faults: FaultInjector = NO_FAULTS,
    ) -> None:
        super().__init__(name=name, on_error=on_error)
        self.source = source
        self.out = out
        self.faults = faults  # the soak harness's mic_error (core/faults.py); inert in a show
        self.opened = 0  # how many times the source was (re)opened, for status and tests

    def setup(self) -> None:
        self.source.open()
        self.opened += 1
        log.info("%s: listening to %s", self.name, self.source.description)

    def step(self) -> None:
        if self.faults.take("mic_error"):
            # As a stream that stopped under us: the real close-and-reopen path below runs.
            raise DeviceLost(f"{self.source.description}: injected fault mic_error (the audio stream failed)")
        chunk = self.source.read(self.read_timeout_s)
        if chunk is not None:
            self.out.put(chunk)
            self.rate_meter.tick()
            self.faults.worked("microphone")

    def on_failure(self, exc: BaseException) -> bool:
        if isinstance(exc, DeviceLost) or super().on_failure(exc):
            self._close_quietly()
            return True
        return False

    def _close_quietly(self) -> None:
        try:
            self.source.close()
        except Exception as exc:
            log.debug("%s: close after failure: %s", self.name, exc)

    def teardown(self) -> None:
        self.source.close()
