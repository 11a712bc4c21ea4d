"""Microphone sources: a live input device (PortAudio through sounddevice) and a WAV file
played through the same chunking in real time, so a show without a microphone behaves like
one with it. Both yield 16 kHz mono float32 `AudioChunk`s stamped with capture time.

`MicWorker` is the thread that pulls from a source into the audio queue and reopens a lost
device with the worker backoff.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from installation.core.channels import DropOldestQueue
from installation.core.interfaces import AudioSource, DeviceLost
from installation.core.messages import AudioChunk
from installation.show import MicrophoneConfig, resolve_path
from installation.core.worker import ErrorHandler, Worker

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
_CONVERT_HINT = "convert it with: ffmpeg -i IN -ar 16000 -ac 1 -sample_fmt s16 OUT.wav"


class AudioUnavailable(RuntimeError):
    """No usable audio input: PortAudio missing, no such device, an unreadable WAV. The
    message says what and how to fix it; the app logs it and runs without speech."""


# --- WAV reading -------------------------------------------------------------------------
# A small RIFF reader instead of the stdlib `wave`: Python 3.11's `wave` refuses 32-bit float
# and WAVE_FORMAT_EXTENSIBLE files, which are what Audacity and most DAWs export by default
# (and what ffmpeg writes for 24-bit or multichannel). Only numpy and struct are needed.

_PCM = 1
_MAX_WAV_BYTES = 256 * 2**20  # ~2 h of 16 kHz mono s16; the whole file is held in memory
_FLOAT = 3
_EXTENSIBLE = 0xFFFE


@dataclass(frozen=True)
class WavData:
    samples: np.ndarray  # mono float32 in [-1, 1], at the file's own rate
    sample_rate: int
    channels: int  # in the file, before the mono mixdown
    bits: int
    path: Path

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sample_rate)


def read_wav(path: Path | str) -> WavData:
    """Reads a PCM (8/16/24/32-bit) or float (32/64-bit) WAV, any rate and channel count, and
    mixes it down to mono float32. Raises AudioUnavailable naming the file and the problem."""
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_WAV_BYTES:
            raise AudioUnavailable(
                f"{path}: {path.stat().st_size / 2**20:.0f} MB is too long for a microphone stand-in "
                f"(at most {_MAX_WAV_BYTES // 2**20} MB); trim it, or {_CONVERT_HINT}"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AudioUnavailable(f"{path}: no such audio file") from None
    except OSError as exc:
        raise AudioUnavailable(f"{path}: cannot be read ({exc.strerror or exc})") from None

    def bad(why: str) -> AudioUnavailable:
        return AudioUnavailable(f"{path}: {why}; {_CONVERT_HINT}")

    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        what = "an RF64/BW64 file" if raw[:4] in (b"RF64", b"BW64") else "not a RIFF/WAVE file"
        raise bad(f"{what} (expected a 16-bit PCM .wav)")

    fmt: tuple[int, int, int, int] | None = None  # (format tag, channels, rate, bits)
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(raw):
        cid = raw[pos : pos + 4]
        (size,) = struct.unpack("<I", raw[pos + 4 : pos + 8])
        body = raw[pos + 8 : pos + 8 + size]  # a streaming writer may leave size too large
        if cid == b"fmt ":
            if len(body) < 16:
                raise bad("its fmt chunk is truncated")
            tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == _EXTENSIBLE and len(body) >= 26:
                (tag,) = struct.unpack("<H", body[24:26])  # first two bytes of the subformat GUID
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            data = body
            if fmt is not None:
                break
        pos += 8 + size + (size & 1)  # chunks are padded to even sizes

    if fmt is None:
        raise bad("it has no fmt chunk")
    if data is None:
        raise bad("it has no data chunk")
    tag, channels, rate, bits = fmt
    if channels < 1 or rate < 1000:
        raise bad(f"it claims {channels} channels at {rate} Hz")
    width = bits // 8 if bits % 8 == 0 else (bits + 7) // 8
    frame_bytes = width * channels
    n = len(data) // frame_bytes
    if n == 0:
        raise AudioUnavailable(f"{path}: contains no audio samples")
    data = data[: n * frame_bytes]

    if tag == _PCM and width == 1:
        x = (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == _PCM and width == 2:
        x = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    elif tag == _PCM and width == 3:
        b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif tag == _PCM and width == 4:
        x = (np.frombuffer(data, "<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    elif tag == _FLOAT and width == 4:
        x = np.frombuffer(data, "<f4").astype(np.float32)
    elif tag == _FLOAT and width == 8:
        x = np.frombuffer(data, "<f8").astype(np.float32)
    else:
        raise bad(f"unsupported sample format (format tag {tag}, {bits} bits)")

    x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32) if channels > 1 else x
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    return WavData(np.clip(x, -1.0, 1.0).astype(np.float32, copy=False), rate, channels, bits, path)


# --- resampling ----------------------------------------------------------------------------


def resample(x: np.ndarray, src_rate: int, dst_rate: int, half_width: int = 16) -> np.ndarray:
    """Band-limited resampling with a Hann-windowed sinc (numpy only).

    The cutoff sits just under the lower of the two Nyquist rates, so downsampling 44.1 kHz
    speech to 16 kHz filters what would otherwise alias into the speech band. `half_width` is
    the number of zero crossings kept on each side; 16 gives stopband rejection well beyond
    what speech recognition notices.
    """
    x = np.asarray(x, dtype=np.float32)
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    if src_rate == dst_rate or len(x) == 0:
        return x.copy()
    ratio = dst_rate / src_rate
    fc = min(1.0, ratio) * 0.95  # cutoff as a fraction of the input Nyquist rate
    w = int(np.ceil(half_width / fc))  # taps each side, in input samples
    n_out = int(np.floor(len(x) * ratio))
    padded = np.concatenate([np.zeros(w, np.float32), x, np.zeros(w + 1, np.float32)])
    offsets = np.arange(-w + 1, w + 1)

    def taps_for(frac: np.ndarray) -> np.ndarray:
        d = frac[:, None] - offsets[None, :]  # distance from each output to its input taps
        taps = fc * np.sinc(fc * d) * (0.5 + 0.5 * np.cos(np.pi * np.clip(d / w, -1.0, 1.0)))
        return taps / taps.sum(axis=1, keepdims=True)  # unit gain at DC

    # Rates in a small integer ratio (44100 -> 16000 is 441:160) reuse one filter per phase.
    g = math.gcd(src_rate, dst_rate)
    up, down = dst_rate // g, src_rate // g
    table = taps_for(np.arange(up) / up) if up <= 4096 else None
    out = np.empty(n_out, np.float32)
    block = max(1, 400_000 // (2 * w))  # keeps the tap matrices near a few MB
    for start in range(0, n_out, block):
        n = np.arange(start, min(start + block, n_out), dtype=np.int64)
        base = (n * down) // up
        phase = (n * down) % up
        taps = table[phase] if table is not None else taps_for(phase / up)
        out[start : start + len(n)] = np.einsum("ij,ij->i", taps, padded[base[:, None] + offsets[None, :] + w])
    return out


def load_wav_16k(path: Path | str) -> np.ndarray:
    """A WAV file as 16 kHz mono float32, whatever its own rate and channels."""
    wav = read_wav(path)
    return resample(wav.samples, wav.sample_rate, SAMPLE_RATE)


# --- the WAV file source ------------------------------------------------------------------


class WavFileSource:
    """Plays a WAV file as if it were a microphone: 16 kHz mono chunks of `chunk_ms`, each
    delivered when its last sample would have been captured (paced by time.monotonic), then
    silence forever (a real mic keeps delivering), unless `loop`.

    `paced=False` delivers at once (for tests) while keeping the same timestamps, so timing
    downstream is computed as if it had been real time. If the reader falls more than
    `max_lag_s` behind, the backlog is skipped and counted in `overruns`, as a real device's
    buffer would overflow.
    """

    def __init__(
        self,
        path: Path | str,
        chunk_ms: int = 20,
        loop: bool = False,
        paced: bool = True,
        sample_rate: int = SAMPLE_RATE,
        max_lag_s: float = 2.0,
    ) -> None:
        if chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be positive, got {chunk_ms}")
        self.path = Path(path)
        self.loop = loop
        self.paced = paced
        self.sample_rate = sample_rate
        self.chunk_samples = max(1, round(sample_rate * chunk_ms / 1000))
        self.max_lag_s = max_lag_s
        self.description = f"WAV file {self.path}" + (" (loop)" if loop else "")
        self.overruns = 0
        self._samples: np.ndarray | None = None
        self._index = 0  # chunks delivered since open
        self._t0 = 0.0
        self._closed = threading.Event()

    @property
    def file_duration(self) -> float:
        return 0.0 if self._samples is None else len(self._samples) / self.sample_rate

    @property
    def finished(self) -> bool:
        """True once a non-looping file has played to its end (only silence follows)."""
        return (
            self._samples is not None
            and not self.loop
            and self._index * self.chunk_samples >= len(self._samples)
        )

    def open(self) -> None:
        wav = read_wav(self.path)
        samples = resample(wav.samples, wav.sample_rate, self.sample_rate)
        if len(samples) == 0:
            raise AudioUnavailable(f"{self.path}: too short to hold one sample at {self.sample_rate} Hz")
        self._samples = samples
        self._index = 0
        self._closed.clear()
        self._t0 = time.monotonic()

    def _slice(self, samples: np.ndarray, start: int) -> np.ndarray:
        n, total = self.chunk_samples, len(samples)
        if self.loop:
            return samples[np.arange(start, start + n) % total]
        out = np.zeros(n, np.float32)
        if start < total:
            part = samples[start : start + n]
            out[: len(part)] = part
        return out

    def read(self, timeout: float) -> AudioChunk | None:
        samples = self._samples  # close() from another thread may clear it meanwhile
        if samples is None:
            raise DeviceLost(f"{self.description}: read before open (or after close)")
        chunk_s = self.chunk_samples / self.sample_rate
        t_first = self._t0 + self._index * chunk_s
        if self.paced:
            wait = (t_first + chunk_s) - time.monotonic()
            if wait > timeout:
                self._closed.wait(max(timeout, 0.0))
                return None
            if wait > 0:
                if self._closed.wait(wait):
                    return None
            elif -wait > self.max_lag_s:
                skip = int(-wait / chunk_s)
                self.overruns += skip
                self._index += skip
                t_first = self._t0 + self._index * chunk_s
        if self._closed.is_set():
            return None
        chunk = self._slice(samples, self._index * self.chunk_samples)
        self._index += 1
        return AudioChunk(samples=chunk, sample_rate=self.sample_rate, t=t_first)

    def close(self) -> None:
        self._closed.set()
        self._samples = None


# --- live devices ------------------------------------------------------------------------


_STDERR_LOCK = threading.RLock()  # re-entrant: device listing nests inside a caller's quiet block


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silences what C libraries write straight to file descriptor 2 while PortAudio starts
    or lists devices: ALSA and its pulse plugin print "XDG_RUNTIME_DIR is invalid or not set"
    and "Unknown PCM" lines on every machine without a sound server, which would bury the
    messages that matter. Python's own errors are untouched: they are raised, not printed,
    and reach the caller after the descriptor is restored."""
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
        except Exception:
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 at all (a daemon): nothing to silence
            yield
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 2)
            finally:
                os.close(devnull)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


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
        raise AudioUnavailable(f"the Python package sounddevice is missing ({exc}); `pip install sounddevice`") from None
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
        name: str = "mic",
    ) -> None:
        super().__init__(name=name, on_error=on_error)
        self.source = source
        self.out = out
        self.opened = 0  # how many times the source was (re)opened, for status and tests

    def setup(self) -> None:
        self.source.open()
        self.opened += 1
        log.info("%s: listening to %s", self.name, self.source.description)

    def step(self) -> None:
        chunk = self.source.read(self.read_timeout_s)
        if chunk is not None:
            self.out.put(chunk)
            self.rate_meter.tick()

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
