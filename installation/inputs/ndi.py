"""An NDI® source as a camera: a media server, another machine's camera or another Jadong,
received over the network and handed on as RGB frames like any camera.

`camera.source` names it (show.py, `parse_ndi_source`):

- `ndi:NAME`: found by name. NDI calls a source "MACHINE (NAME)"; either the whole of that or
  the part in brackets matches (ignoring case). Discovery asks the network by mDNS and, by
  unicast, every machine in `camera.ndi_ips`: galleries often have no mDNS across their switches
  (or no Avahi daemon), and a machine asked by address answers at once.
- `ndi://HOST/NAME`: found by name, asking HOST by unicast (as if HOST were in `ndi_ips`).
- `ndi://HOST:PORT`: no discovery at all: straight to the sender listening there (NDI senders
  listen from port 5961 up; NDI's tools show the port).

The source is lost (DeviceLost) when no frame has come for `camera.retry_s` seconds (at least
one), or the connection drops; the camera worker then reopens it every `retry_s`, each time
looking for it afresh, so a sender that restarts elsewhere, or on another port, is found again.

ndi-python releases the GIL while it waits for a frame (measured: another thread runs at full
speed meanwhile), so the camera thread's blocking read costs the rest of the show nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import cv2
import numpy as np

from installation.core.interfaces import DeviceLost
from installation.core.ndi_runtime import NdiUnavailable, load_ndi
from installation.show import CameraConfig, NdiSourceName

log = logging.getLogger(__name__)

FIND_TIMEOUT_S = 3.0  # how long open() looks for a source by name before calling it missing
CAPTURE_SLICE_MS = 100  # a read wakes this often to notice interrupt()
MIN_STALL_S = 1.0


def stream_part(full_name: str) -> str:
    """'MACHINE (Stage)' -> 'Stage': the name a sender gave itself, without NDI's machine name."""
    name = full_name.strip()
    if name.endswith(")") and " (" in name:
        return name[name.index(" (") + 2:-1]
    return name


def name_matches(full_name: str, wanted: str) -> bool:
    """A discovered source's NDI name against what the show asks for: the whole name or the
    sender's own part of it, ignoring case and surrounding spaces."""
    want = wanted.strip().casefold()
    return want in (full_name.strip().casefold(), stream_part(full_name).casefold())


def search_ips(cfg: CameraConfig, spec: NdiSourceName) -> list[str]:
    """The machines to ask by unicast: the show's `ndi_ips`, plus the host an ndi://HOST/NAME names."""
    ips = list(cfg.ndi_ips)
    if spec.host and spec.host not in ips:
        ips.append(spec.host)
    return ips


class NdiFinder:
    """NDI discovery (NDIlib find) with the extra addresses to ask by unicast. Created and used
    on one thread (the camera's, or a test's)."""

    def __init__(self, extra_ips: list[str], show_local_sources: bool = True) -> None:
        self._lib = load_ndi().lib
        settings = self._lib.FindCreate(show_local_sources=show_local_sources,
                                        p_extra_ips=",".join(extra_ips) if extra_ips else None)
        self._finder = self._lib.find_create_v2(settings)
        if self._finder is None:
            raise NdiUnavailable("NDI discovery could not start (find_create_v2 failed)",
                                 "check the network interfaces; address a sender directly with ndi://HOST:PORT")

    def sources(self) -> list[Any]:
        """The sources seen so far (NDIlib.Source: ndi_name, url_address)."""
        return list(self._lib.find_get_current_sources(self._finder))

    def find(self, wanted: str, timeout_s: float, interrupt: threading.Event | None = None) -> Any | None:
        """The first source whose name matches `wanted`, waiting up to `timeout_s` for it."""
        deadline = time.monotonic() + timeout_s
        while True:
            matches = sorted((s for s in self.sources() if name_matches(s.ndi_name, wanted)), key=lambda s: s.ndi_name)
            if matches:
                if len(matches) > 1:
                    log.warning("NDI: %d sources match %r (%s); using %s; name the machine too, e.g. %r",
                                len(matches), wanted, ", ".join(s.ndi_name for s in matches), matches[0].ndi_name,
                                matches[0].ndi_name)
                return matches[0]
            left = deadline - time.monotonic()
            if left <= 0 or (interrupt is not None and interrupt.is_set()):
                return None
            self._lib.find_wait_for_sources(self._finder, int(min(left, 0.1) * 1000) + 1)

    def close(self) -> None:
        finder, self._finder = self._finder, None
        if finder is not None:
            self._lib.find_destroy(finder)


class NdiFrameSource:
    """A FrameSource receiving one NDI source: `read()` returns RGB uint8 (H, W, 3), the newest
    frame NDI has (NDI keeps a short queue; a slow reader gets the next one, never a backlog
    older than NDI's own few frames)."""

    def __init__(self, cfg: CameraConfig, spec: NdiSourceName, find_timeout_s: float = FIND_TIMEOUT_S) -> None:
        self.cfg = cfg
        self.spec = spec
        self.description = spec.description
        self.stall_s = max(MIN_STALL_S, cfg.retry_s)
        self.find_timeout_s = find_timeout_s
        self.size: tuple[int, int] | None = None  # (width, height) of the frames delivered
        self.connected_to = ""  # the NDI name (or address) of the sender, once found
        self._lib: Any = None
        self._recv: Any = None
        self._interrupt = threading.Event()

    # --- FrameSource -----------------------------------------------------------------
    def open(self) -> None:
        self.close()
        self._interrupt.clear()
        try:
            lib = load_ndi().lib
        except NdiUnavailable as exc:
            raise DeviceLost(f"camera {self.description}: {exc}") from None
        source = self._locate(lib)
        recv = lib.recv_create_v3(lib.RecvCreateV3(color_format=lib.RECV_COLOR_FORMAT_BGRX_BGRA,
                                                   bandwidth=lib.RECV_BANDWIDTH_HIGHEST,
                                                   allow_video_fields=False, p_ndi_recv_name="Jadong camera"))
        if recv is None:
            raise DeviceLost(f"camera {self.description}: NDI could not create a receiver")
        lib.recv_connect(recv, source)
        self._lib, self._recv = lib, recv

    def read(self) -> np.ndarray:
        lib, recv = self._lib, self._recv
        if recv is None:
            raise DeviceLost(f"camera {self.description} is not open")
        deadline = time.monotonic() + self.stall_s
        while True:
            if self._interrupt.is_set():
                raise DeviceLost(f"camera {self.description}: interrupted")
            kind, video, _audio, _meta = lib.recv_capture_v2(recv, CAPTURE_SLICE_MS, want_audio=False,
                                                             want_metadata=False)
            if kind == lib.FRAME_TYPE_VIDEO:
                try:
                    image = _to_rgb(video)
                finally:
                    lib.recv_free_video_v2(recv, video)
                self.size = (image.shape[1], image.shape[0])
                return image
            if kind == lib.FRAME_TYPE_ERROR:
                raise DeviceLost(f"camera {self.description}: the NDI connection was lost")
            if time.monotonic() >= deadline:
                raise DeviceLost(f"camera {self.description}: no frame for {self.stall_s:g} s (sender stopped?)")

    def close(self) -> None:
        recv, self._recv = self._recv, None
        if recv is not None:
            self._lib.recv_destroy(recv)

    def interrupt(self) -> None:
        """Wake a blocked open() or read() from another thread (within CAPTURE_SLICE_MS)."""
        self._interrupt.set()

    # --- finding the sender ------------------------------------------------------------
    def _locate(self, lib: Any) -> Any:
        spec = self.spec
        if spec.address:  # no discovery: the sender's own address
            self.connected_to = spec.address
            return lib.Source(p_ndi_name=spec.name or None, p_url_address=spec.address)
        ips = search_ips(self.cfg, spec)
        try:
            finder = NdiFinder(ips)
        except NdiUnavailable as exc:
            raise DeviceLost(f"camera {self.description}: {exc}") from None
        try:
            found = finder.find(spec.name, self.find_timeout_s, self._interrupt)
            seen = [s.ndi_name for s in finder.sources()]
        finally:
            finder.close()
        if self._interrupt.is_set():
            raise DeviceLost(f"camera {self.description}: interrupted")
        if found is None:
            where = f"mDNS and {', '.join(ips)}" if ips else "mDNS only (camera.ndi_ips is empty)"
            others = f"; sources seen: {', '.join(seen)}" if seen else "; no NDI source seen at all"
            raise DeviceLost(f"camera {self.description}: no NDI source by that name (searched {where}){others}")
        self.connected_to = found.ndi_name
        # A copy that outlives the finder: a Source from find_get_current_sources points into
        # the finder's own list, which find_destroy frees.
        return lib.Source(p_ndi_name=found.ndi_name, p_url_address=found.url_address or None)


def _to_rgb(video: Any) -> np.ndarray:
    """An NDI BGRX/BGRA video frame as a new RGB array (the frame's memory goes back to NDI
    right after). cvtColor reads the strided view and writes the copy in one pass."""
    data = video.data  # (H, W, 4) view into NDI's buffer, rows line_stride_in_bytes apart
    if data.ndim != 3 or data.shape[2] != 4:
        raise DeviceLost(f"NDI sent a frame Jadong cannot read (shape {data.shape}, FourCC {video.FourCC})")
    return cv2.cvtColor(data, cv2.COLOR_BGRA2RGB)
