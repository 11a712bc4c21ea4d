"""A real NDI® peer for tests, straight on ndi-python (NDIlib), independent of Jadong's own NDI
code: a sender that plays a picture at a steady rate, and a receiver that finds a source by name
at 127.0.0.1 (these machines run no mDNS daemon: discovery by address, as SCOUTING says).

    with PatternSender("cam-1", colour=(200, 40, 40)) as sender:   # sends until closed
        sender.set_image(other)                                      # from the next frame on
    with Receiver.find("Jadong out", timeout=10) as rx:
        rgb = rx.frame(timeout=2)                                    # (H, W, 3) uint8, or None
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from installation.core.ndi_runtime import load_ndi

LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]


def ndi_lib() -> Any:
    return load_ndi().lib


def bars(width: int, height: int) -> np.ndarray:
    """Six flat colour bars over a white band (top quarter): content a test can check block by
    block, away from the edges where NDI's codec rings."""
    colours = [(200, 30, 40), (20, 180, 60), (30, 60, 220), (240, 200, 20), (128, 128, 128), (20, 20, 20)]
    img = np.zeros((height, width, 3), np.uint8)
    for i, c in enumerate(colours):
        img[:, i * width // 6:(i + 1) * width // 6] = c
    img[: height // 4] = 250
    return img


class PatternSender:
    """An NDI source `name` sending an RGB image (BGRX) at `fps` on its own thread until closed."""

    def __init__(self, name: str, image: np.ndarray | None = None, colour: tuple[int, int, int] = (128, 128, 128),
                 size: tuple[int, int] = (320, 240), fps: float = 30.0) -> None:
        self.name = name
        self._lib = ndi_lib()
        self._fps = fps
        self._lock = threading.Lock()
        self._pixels = self._convert(image if image is not None else np.full((size[1], size[0], 3), colour, np.uint8))
        self._stop = threading.Event()
        self.sent = 0
        self._instance = self._lib.send_create(self._lib.SendCreate(name, clock_video=True, clock_audio=False))
        assert self._instance is not None, f"NDI could not create the test source {name!r}"
        self.full_name = self._lib.send_get_source_name(self._instance).ndi_name
        self._thread = threading.Thread(target=self._run, name=f"test-ndi-send {name}", daemon=True)
        self._thread.start()

    @staticmethod
    def _convert(rgb: np.ndarray) -> np.ndarray:
        bgrx = np.empty((*rgb.shape[:2], 4), np.uint8)
        bgrx[..., :3] = rgb[..., ::-1]
        bgrx[..., 3] = 255
        return bgrx

    def set_image(self, rgb: np.ndarray) -> None:
        with self._lock:
            self._pixels = self._convert(rgb)

    def set_colour(self, colour: tuple[int, int, int]) -> None:
        h, w = self._pixels.shape[:2]
        self.set_image(np.full((h, w, 3), colour, np.uint8))

    def _run(self) -> None:
        lib = self._lib
        n = int(round(self._fps * 1000))
        while not self._stop.is_set():
            with self._lock:
                pixels = self._pixels
            frame = lib.VideoFrameV2(FourCC=lib.FOURCC_VIDEO_TYPE_BGRX, frame_rate_N=n, frame_rate_D=1000)
            frame.data = pixels
            lib.send_send_video_v2(self._instance, frame)  # clocked: paced to fps
            self.sent += 1

    def url_address(self, timeout: float = 5.0) -> str:
        """"127.0.0.1:PORT": where this sender listens, as a finder at 127.0.0.1 reports it."""
        with Finder() as finder:
            found = finder.wait_for(self.full_name, timeout)
            assert found is not None, f"{self.full_name!r} not found at {LOOPBACK}"
            return str(found.url_address)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(5.0)
        self._lib.send_destroy(self._instance)

    def __enter__(self) -> PatternSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Finder:
    """NDI discovery asking 127.0.0.1 (and any `extra_ips`) by unicast."""

    def __init__(self, extra_ips: str = LOOPBACK) -> None:
        self._lib = ndi_lib()
        self._finder = self._lib.find_create_v2(self._lib.FindCreate(show_local_sources=True, p_extra_ips=extra_ips))

    def names(self) -> list[str]:
        return [s.ndi_name for s in self._lib.find_get_current_sources(self._finder)]

    def wait_for(self, name: str, timeout: float) -> Any | None:
        """The source whose full name is `name` or ends with "(name)", waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in self._lib.find_get_current_sources(self._finder):
                if s.ndi_name == name or s.ndi_name.endswith(f"({name})"):
                    return self._lib.Source(s.ndi_name, s.url_address)
            self._lib.find_wait_for_sources(self._finder, 100)
        return None

    def close(self) -> None:
        self._lib.find_destroy(self._finder)

    def __enter__(self) -> Finder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Receiver:
    """A receiver connected to one source, handing frames over as RGB (H, W, 3) uint8."""

    def __init__(self, source: Any) -> None:
        self._lib = ndi_lib()
        lib = self._lib
        self.source_name = source.ndi_name
        self._recv = lib.recv_create_v3(lib.RecvCreateV3(color_format=lib.RECV_COLOR_FORMAT_BGRX_BGRA))
        lib.recv_connect(self._recv, source)
        self.size: tuple[int, int] | None = None  # (width, height) of the last frame received

    @classmethod
    def find(cls, name: str, timeout: float = 10.0) -> Receiver:
        with Finder() as finder:
            source = finder.wait_for(name, timeout)
            seen = finder.names()
            assert source is not None, f"no NDI source {name!r} at {LOOPBACK} within {timeout:g} s; seen: {seen}"
        return cls(source)

    def frame(self, timeout: float = 2.0, step: int = 1) -> np.ndarray | None:
        """The next video frame as RGB (every `step`-th pixel each way: a cheap look at a big
        frame), or None if none came within `timeout`. `size` is then the frame's full size."""
        lib = self._lib
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            kind, video, _a, _m = lib.recv_capture_v2(self._recv, 100, want_audio=False, want_metadata=False)
            if kind == lib.FRAME_TYPE_VIDEO:
                try:
                    self.size = (int(video.xres), int(video.yres))
                    rgb = np.ascontiguousarray(video.data[::step, ::step, 2::-1])
                finally:
                    lib.recv_free_video_v2(self._recv, video)
                return rgb
        return None

    def connections(self) -> int:
        return int(self._lib.recv_get_no_connections(self._recv))

    def close(self) -> None:
        if self._recv is not None:
            self._lib.recv_destroy(self._recv)
            self._recv = None

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def env_without_libndi(folder: Path) -> dict[str, str]:
    """An environment in which ndi-python is installed but its libndi cannot load: a copy of the
    NDIlib package without libndi.so* in `folder`, first on PYTHONPATH. The dynamic loader then
    fails exactly as on a machine where the runtime is missing ("libndi.so.6: cannot open
    shared object file")."""
    import NDIlib

    package = Path(NDIlib.__file__).parent
    copy = folder / "NDIlib"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("libndi.so*", "__pycache__"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
