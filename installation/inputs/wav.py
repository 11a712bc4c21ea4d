"""WAV files as a microphone: reading any common WAV (PCM, float, extensible; any rate and
channel count) as 16 kHz mono float32, and `WavFileSource`, which plays one through the same
chunking as a live device, in real time, so a show without a microphone behaves like one with
it (the bundled demo wish, tests, benchmarks).
"""

from __future__ import annotations

import logging
import math
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from installation.core.interfaces import DeviceLost
from installation.core.messages import AudioChunk

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
        raise bad(f"{what} (expected a WAV file: PCM 8–32-bit or float, any rate and channels)")

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
    def started_at(self) -> float | None:
        """When the first sample counts as captured (time.monotonic()), or None before open():
        sample i of the file is due at `started_at + i / sample_rate`."""
        return None if self._samples is None else self._t0

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
