"""NDI® out: the presented frames as a named NDI source that TouchDesigner, OBS, Resolume, vMix
or another Jadong on the network can receive.

`NdiSender` is a `FrameSink` (core/interfaces.py): the presenter hands it every frame it presents
(`send`, on the display thread), which only drops the frame into a latest-value slot. The
sender's own thread takes the newest frame, scales it to the output's size, converts it to
BGRX, BGRA or UYVY and sends it; NDI's clocked send paces that thread to the output's frame
rate, repeating the last frame when the screen has shown nothing new, so receivers get a steady
stream whatever the display's rate. The display never waits on NDI: a frame the sender has not
taken yet is replaced by the next (and counted as dropped).

The sender thread owns the NDI sender; ndi-python releases the GIL while NDI paces and
compresses (measured: another Python thread runs at full speed meanwhile).

Receivers on networks without mDNS find this source by asking this machine's address (NDI
Access Manager's "extra IPs", or another Jadong's `camera.ndi_ips`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import cv2
import numpy as np

from installation.core.channels import LatestSlot
from installation.core.events import EventHook, emit
from installation.core.ndi_runtime import NdiUnavailable, load_ndi
from installation.core.worker import ErrorHandler, Worker, WorkerStatus

log = logging.getLogger(__name__)

PixelFormat = Literal["bgrx", "bgra", "uyvy"]
PIXEL_FORMATS: tuple[str, ...] = ("bgrx", "bgra", "uyvy")
MAX_NAME_CHARS = 100  # NDI shows "MACHINE (NAME)" in every receiver's list


def ndi_name_problem(name: str) -> str | None:
    """Why `name` cannot name an NDI source (None if it can): receivers list it, so it must be
    printable, not empty and short."""
    if not name.strip():
        return "an NDI source needs a name"
    if not name.isprintable():
        return f"{name!r} has unprintable characters"
    if len(name) > MAX_NAME_CHARS:
        return f"at most {MAX_NAME_CHARS} characters, got {len(name)}"
    return None


@dataclass(frozen=True)
class NdiOutputSettings:
    """One NDI output. `width` and `height` 0: the presented size (else the frame is scaled and
    centre-cropped to fill them, like the screen does); `overlays`: the caption, label and HUD
    burnt in as on screen, or the picture alone; `pixel_format`: bgrx (opaque), bgra (an alpha
    channel, fully opaque: for receivers that key or expect one) or uyvy (4:2:2, half the
    bytes per pixel, BT.709 video range)."""

    name: str
    width: int = 0
    height: int = 0
    fps: float = 30.0
    pixel_format: PixelFormat = "bgrx"
    overlays: bool = True

    def __post_init__(self) -> None:
        problem = ndi_name_problem(self.name)
        if problem:
            raise ValueError(f"NDI output name: {problem}")
        if (self.width == 0) != (self.height == 0) or self.width < 0 or self.height < 0:
            raise ValueError(f"NDI output {self.name!r}: width and height are both 0 (the presented size) or both "
                             f"above 0, got {self.width}x{self.height}")
        if self.width > 7680 or self.height > 4320:
            raise ValueError(f"NDI output {self.name!r}: at most 7680x4320, got {self.width}x{self.height}")
        if not (math.isfinite(self.fps) and 0 < self.fps <= 240):
            raise ValueError(f"NDI output {self.name!r}: fps above 0 and at most 240, got {self.fps}")
        if self.pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"NDI output {self.name!r}: pixel_format is one of {', '.join(PIXEL_FORMATS)}, "
                             f"got {self.pixel_format!r}")


@dataclass(frozen=True)
class NdiSenderStats:
    offered: int  # frames the presenter handed over
    sent: int  # frames sent (repeats of a held frame included)
    dropped: int  # frames replaced before the sender took them
    connections: int  # receivers connected now
    convert_ms: float  # mean scale + colour conversion time per new frame, on the sender thread
    send_ms: float  # mean time in NDI's send per frame (compression and the clock's wait)


def frame_rate(fps: float) -> tuple[int, int]:
    """fps as NDI's numerator/denominator (29.97 -> 2997/100; 30 -> 30/1)."""
    f = Fraction(fps).limit_denominator(1001)
    return f.numerator, f.denominator


def fit(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`rgb` scaled and centre-cropped to fill `size` (width, height), keeping its aspect."""
    h, w = rgb.shape[:2]
    dw, dh = size
    if (w, h) == (dw, dh):
        return rgb
    scale = max(dw / w, dh / h)
    cw, ch = min(w, max(1, round(dw / scale))), min(h, max(1, round(dh / scale)))
    x, y = (w - cw) // 2, (h - ch) // 2
    crop = rgb[y:y + ch, x:x + cw]
    return cv2.resize(crop, (dw, dh), interpolation=cv2.INTER_AREA if cw > dw else cv2.INTER_LINEAR)


# BT.709's luma weights (Kr, Kb): libndi's own UYVY to BGRX conversion reads UYVY as BT.709 at
# every frame size (measured against a receiver: 601 or 2020 weights shift saturated colours by up
# to 23 levels, 709 by at most 2 beyond the codec's own loss).
KR, KB = 0.2126, 0.0722


def rgb_to_uyvy(rgb: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3), W even, as UYVY 4:2:2, BT.709 video range: (H, W, 2) uint8 whose bytes
    run U0 Y0 V0 Y1 ... Three OpenCV passes (a colour matrix, the pixel pairs' chroma averaged,
    the channels interleaved): about 3x faster than numpy slicing."""
    h, w = rgb.shape[:2]
    kr, kb = KR, KB
    kg = 1.0 - kr - kb
    ys, cs = 219.0 / 255.0, 224.0 / 255.0
    m = np.array([
        [kr * ys, kg * ys, kb * ys, 16.0],
        [-kr / (2 * (1 - kb)) * cs, -kg / (2 * (1 - kb)) * cs, 0.5 * cs, 128.0],
        [0.5 * cs, -kg / (2 * (1 - kr)) * cs, -kb / (2 * (1 - kr)) * cs, 128.0],
    ], np.float32)
    ycc = cv2.transform(rgb, m)  # (H, W, 3) uint8: Y, Cb, Cr, rounded and clipped
    pairs = cv2.resize(ycc, (w // 2, h), interpolation=cv2.INTER_AREA)  # each pixel pair averaged
    out = np.empty((h, w // 2, 4), np.uint8)  # per pair: Cb, Y0, Cr, Y1
    # Channels counted across the inputs: pairs 0-2 (Y, Cb, Cr), then ycc as 6 channels per pair
    # (Y0, Cb0, Cr0, Y1, Cb1, Cr1) at 3-8.
    cv2.mixChannels([pairs, ycc.reshape(h, w // 2, 6)], [out], [1, 0, 3, 1, 2, 2, 6, 3])
    return out.reshape(h, w, 2)


class NdiSender:
    """A FrameSink sending presented frames as the NDI source `settings.name`. Creating it loads
    the NDI runtime and creates the source at once (raising NdiUnavailable with the reason and
    the fix), then starts the sender thread."""

    def __init__(self, settings: NdiOutputSettings, on_event: EventHook | None = None,
                 on_error: ErrorHandler | None = None) -> None:
        self.settings = settings
        self.name = f"NDI {settings.name}"
        self.overlays = settings.overlays
        self._on_event = on_event
        self._lib = load_ndi().lib
        lib = self._lib
        instance = lib.send_create(lib.SendCreate(settings.name, clock_video=True, clock_audio=False))
        if instance is None:
            raise NdiUnavailable(f"NDI could not create the source {settings.name!r}",
                                 "check the network interfaces, or choose another name")
        self._instance = instance
        # What receivers list: "MACHINE (name)".
        self.source_name = str(lib.send_get_source_name(instance).ndi_name)
        self._slot: LatestSlot[tuple[np.ndarray, float]] = LatestSlot(self.name)
        self._offered = 0
        self._closed = False
        self._worker = _SendWorker(self, on_error)
        self._worker.start()
        size = f"{settings.width}x{settings.height}" if settings.width else "as presented"
        emit(on_event, "ndi", state="sending", source=self.source_name, size=size, fps=settings.fps,
             pixel_format=settings.pixel_format, overlays=settings.overlays)
        log.info("NDI: sending %r (%s, %g fps, %s)", self.source_name, size, settings.fps, settings.pixel_format)

    # --- FrameSink ---------------------------------------------------------------------
    def send(self, rgb: np.ndarray, t: float) -> None:
        self._offered += 1
        self._slot.put((rgb, t))

    def close(self, timeout: float = 2.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._worker.stop()
        self._worker.join(timeout)
        if self._worker.is_alive():  # stuck inside NDI: leave the instance to the process exit
            log.warning("%s: the sender thread did not stop within %.0f s", self.name, timeout)
            return
        self._lib.send_destroy(self._instance)
        emit(self._on_event, "ndi", state="stopped", source=self.source_name, sent=self._worker.sent)

    # --- status ------------------------------------------------------------------------
    def connections(self) -> int:
        """Receivers connected now (0 once closed)."""
        if self._closed:
            return 0
        return int(self._lib.send_get_no_connections(self._instance, 0))

    def stats(self) -> NdiSenderStats:
        w = self._worker
        return NdiSenderStats(offered=self._offered, sent=w.sent, dropped=self._slot.stats().dropped,
                              connections=self.connections(), convert_ms=w.mean_convert_ms, send_ms=w.mean_send_ms)

    def status(self) -> WorkerStatus:
        return self._worker.status()


class _SendWorker(Worker):
    """Takes the newest presented frame, converts it and sends it, paced by NDI's clock."""

    def __init__(self, sender: NdiSender, on_error: ErrorHandler | None) -> None:
        super().__init__(f"ndi-out {sender.settings.name}", on_error=on_error)
        self._sender = sender
        self._version = 0
        self._frame: Any = None  # the VideoFrameV2 last sent, with `_pixels` its data
        self._pixels: np.ndarray | None = None
        self.sent = 0
        self._convert_s = 0.0
        self._converted = 0
        self._send_s = 0.0

    @property
    def mean_convert_ms(self) -> float:
        return 1000 * self._convert_s / self._converted if self._converted else 0.0

    @property
    def mean_send_ms(self) -> float:
        return 1000 * self._send_s / self.sent if self.sent else 0.0

    def step(self) -> None:
        slot = self._sender._slot
        if self._frame is None:  # nothing presented yet: wait for the first frame
            item, version = slot.wait_newer(self._version, timeout=0.25)
        else:
            item, version = slot.get_with_version()
        if item is not None and version != self._version:
            self._version = version
            t0 = time.perf_counter()
            self._prepare(item[0])
            self._convert_s += time.perf_counter() - t0
            self._converted += 1
        if self._frame is None or self.stopping:
            return
        lib = self._sender._lib
        t0 = time.perf_counter()
        # Clocked: returns when this frame's slot at the output's rate comes (the GIL released).
        lib.send_send_video_v2(self._sender._instance, self._frame)
        self._send_s += time.perf_counter() - t0
        self.sent += 1
        self.rate_meter.tick()

    def _prepare(self, rgb: np.ndarray) -> None:
        settings = self._sender.settings
        lib = self._sender._lib
        h, w = rgb.shape[:2]
        size = (settings.width, settings.height) if settings.width else (w, h)
        if settings.pixel_format == "uyvy" and size[0] % 2:
            size = (size[0] - 1, size[1])  # 4:2:2 pairs pixels: an even width
        image = fit(rgb, size)
        if settings.pixel_format == "uyvy":
            pixels, fourcc = rgb_to_uyvy(image), lib.FOURCC_VIDEO_TYPE_UYVY
        else:
            pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGRA)  # alpha 255: opaque
            fourcc = lib.FOURCC_VIDEO_TYPE_BGRA if settings.pixel_format == "bgra" else lib.FOURCC_VIDEO_TYPE_BGRX
        n, d = frame_rate(settings.fps)
        frame = lib.VideoFrameV2(FourCC=fourcc, frame_rate_N=n, frame_rate_D=d)
        # The frame points into `pixels` (ndi-python keeps no reference): both are kept together
        # until the next frame replaces them, after the synchronous send that read them returned.
        pixels = np.ascontiguousarray(pixels)
        frame.data = pixels
        frame.timecode = lib.SEND_TIMECODE_SYNTHESIZE
        self._frame, self._pixels = frame, pixels


def open_ndi_output(settings: NdiOutputSettings, on_event: EventHook | None = None,
                    on_error: ErrorHandler | None = None) -> NdiSender | None:
    """An NDI output, or None when NDI cannot run here: then the reason and the fix go to the
    event log (`error`, stage `ndi`) and the console, and the show runs on without it."""
    try:
        return NdiSender(settings, on_event=on_event, on_error=on_error)
    except NdiUnavailable as exc:
        reason = f"NDI output {settings.name!r} is off: {exc.reason}"
        emit(on_event, "error", stage="ndi", reason=reason, remedy=exc.remedy)
        log.error("%s; %s", reason, exc.remedy)
        return None
