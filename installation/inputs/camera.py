"""Camera sources: a device, a video file or a network stream, all through cv2.VideoCapture,
and the worker that keeps the newest frame in the camera slot.

Live sources (devices, streams) are read continuously by a grabber thread that keeps only the
newest frame, so a slow consumer never sees stale frames queued up inside OpenCV or the
network buffer. Files have no clock of their own: they are paced to their frame rate so that a
file behaves like a camera (and skip ahead when the reader falls behind, as a camera would).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from installation.core.channels import LatestSlot
from installation.core.events import EventHook, emit
from installation.core.faults import NO_FAULTS, FaultInjector
from installation.core.interfaces import DeviceLost, FrameSource
from installation.core.messages import CameraFrame
from installation.core.worker import ErrorHandler, Worker
from installation.show import CameraConfig, parse_ndi_source, resolve_path

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
# OpenCV's FFmpeg backend waits this long for a stream to open or deliver a packet before
# giving up; without it a dead host can block open() for a minute.
STREAM_TIMEOUT_MS = 5000


class EndOfFile(DeviceLost):
    """A camera file reached its end and `camera.loop` is false: it played once, as asked."""


@dataclass(frozen=True)
class SourceSpec:
    """What a `camera.source` value names: a device, a file or a stream."""

    kind: str  # "device", "file", "stream" ("invalid" for a value parse_source refused)
    device: int | str | None = None  # an index, or a device path such as /dev/video2
    path: Path | None = None
    url: str = ""
    description: str = ""


def _redact(url: str) -> str:
    """rtsp://user:secret@host/ → rtsp://user:***@host/ : descriptions end up in logs."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def parse_source(source: int | str) -> SourceSpec:
    """Classify a camera.source value. Raises ValueError for values that can never work."""
    if isinstance(source, bool):  # bool is an int; `source = true` is a typo, not device 1
        raise ValueError(f"camera.source: expected a device index, file path or stream URL, got {source!r}")
    if isinstance(source, int):
        if source < 0:
            raise ValueError(f"camera.source: a device index must be 0 or more, got {source}")
        return SourceSpec("device", device=source, description=f"device {source}")
    text = source.strip()
    if not text:
        raise ValueError('camera.source is empty: give a device index, a file, a stream URL, or "none"')
    if text.isdigit():  # "0" from a command line or an environment variable
        return parse_source(int(text))
    if text.startswith("/dev/video"):
        return SourceSpec("device", device=text, description=f"device {text}")
    if text.lower().startswith("file://"):
        text = text[len("file://"):]
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        return SourceSpec("stream", url=text, description=f"stream {_redact(text)}")
    path = resolve_path(text)
    return SourceSpec("file", path=path, description=f"file {text}")


def _file_fps(value: float) -> float:
    # Containers without a rate report 0, and some report nonsense such as 90000.
    if not math.isfinite(value) or value <= 0 or value > 1000:
        return DEFAULT_FPS
    return float(value)


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV gives BGR (or gray, or BGRA); the rest of Jadong speaks RGB uint8 (H, W, 3)."""
    import cv2

    if frame.dtype != np.uint8:  # 16-bit sources: keep the high byte
        frame = (frame >> 8).astype(np.uint8) if frame.dtype == np.uint16 else frame.astype(np.uint8)
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    if frame.shape[2] == 1:
        return cv2.cvtColor(frame[:, :, 0], cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV prints a WARN line for every device it fails to open; probing should not.
    The log level is process-wide, so only short probes may use this."""
    try:
        from cv2.utils import logging as cvlog
    except ImportError:  # builds without the utils module: nothing to quiet
        yield
        return
    old = cvlog.getLogLevel()
    cvlog.setLogLevel(cvlog.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cvlog.setLogLevel(old)


class OpenCVSource:
    """A FrameSource over cv2.VideoCapture: a device index, a file or a stream URL.

    `read()` returns RGB uint8 (H, W, 3). It raises DeviceLost (with the source and the reason)
    when the source cannot be opened or stops delivering, and EndOfFile at the end of a file
    when `cfg.loop` is false. `interrupt()` may be called from any thread to make a waiting
    `read()` return at once (by raising DeviceLost), so a worker can stop promptly.
    """

    def __init__(self, cfg: CameraConfig, stall_s: float = 5.0) -> None:
        self.cfg = cfg
        # A source value that can never work is kept as the reason open() fails, so a show with
        # a typo still runs (without its camera) and says why in the event log.
        self._config_error = ""
        try:
            self.spec = parse_source(cfg.source)
        except ValueError as exc:
            self._config_error = str(exc)
            self.spec = SourceSpec("invalid", description=f"source {cfg.source!r}")
        self.description = self.spec.description
        self.stall_s = stall_s  # a live source with no new frame for this long is lost
        self.fps = DEFAULT_FPS
        self.size: tuple[int, int] | None = None  # (width, height) of the frames delivered
        self._cap: Any = None
        self._interrupt = threading.Event()
        # live sources
        self._grabber: _Grabber | None = None
        self._last_seq = 0
        # files
        self._t0: float | None = None
        self._pos = 0  # frames delivered or skipped since _t0
        self._frames_this_pass = 0

    @property
    def live(self) -> bool:
        return self.spec.kind != "file"

    # --- FrameSource -----------------------------------------------------------------
    def open(self) -> None:
        self.close()
        self._interrupt.clear()
        cap = self._open_capture()
        if self.live:
            self._grabber = _Grabber(cap, self.description)
            self._last_seq = 0
            self._grabber.start()
        else:
            self._cap = cap
            self.fps = _file_fps(cap.get(_cv2().CAP_PROP_FPS))
            self._t0 = None
            self._pos = 0
            self._frames_this_pass = 0

    def read(self) -> np.ndarray:
        if self._grabber is not None:
            frame = self._read_live(self._grabber)
        elif self._cap is not None:
            frame = self._read_file()
        else:
            raise DeviceLost(f"camera {self.description} is not open")
        image = to_rgb(frame)
        self.size = (image.shape[1], image.shape[0])
        return image

    def close(self) -> None:
        grabber, self._grabber = self._grabber, None
        if grabber is not None:
            grabber.stop()
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def interrupt(self) -> None:
        """Wake a blocked read() from another thread; it raises DeviceLost("interrupted")."""
        self._interrupt.set()
        grabber = self._grabber
        if grabber is not None:
            grabber.wake()

    # --- opening ---------------------------------------------------------------------
    def _open_capture(self) -> Any:
        if self._config_error:
            raise DeviceLost(self._config_error)
        cv2 = _cv2()
        spec = self.spec
        if spec.kind == "file":
            assert spec.path is not None
            if not spec.path.exists():
                raise DeviceLost(f"camera {self.description}: no such file ({spec.path})")
            if not spec.path.is_file():
                raise DeviceLost(f"camera {self.description}: {spec.path} is not a file")
            cap = cv2.VideoCapture(str(spec.path))
            if not cap.isOpened():
                cap.release()
                raise DeviceLost(f"camera {self.description}: OpenCV cannot open it as video "
                                 "(not a video, an unsupported codec, or a damaged file)")
            return cap
        if spec.kind == "stream":
            if not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
                raise DeviceLost(f"camera {self.description}: this OpenCV build has no FFmpeg backend for streams")
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
            cap = cv2.VideoCapture(spec.url, cv2.CAP_FFMPEG, params)
            if not cap.isOpened():
                cap.release()
                raise DeviceLost(f"camera {self.description}: cannot connect or no video in the stream")
            self._request_size(cap)
            return cap
        # A device. On Linux, look before opening: a missing /dev/videoN makes OpenCV print two
        # warnings per try, and the worker retries every few seconds for as long as it is gone.
        dev = spec.device
        if sys.platform.startswith("linux"):
            node = dev if isinstance(dev, str) else f"/dev/video{dev}"
            if not os.path.exists(node):
                raise DeviceLost(f"camera {self.description}: {node} does not exist (camera unplugged?)")
            cap = cv2.VideoCapture(node, cv2.CAP_V4L2)
        else:
            cap = cv2.VideoCapture(dev)
        if not cap.isOpened():
            cap.release()
            raise DeviceLost(f"camera {self.description}: cannot be opened (in use by another program, "
                             "or no permission: is the user in the 'video' group?)")
        # Only V4L2 honours this; it keeps the driver from queueing old frames.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._request_size(cap)
        return cap

    def _request_size(self, cap: Any) -> None:
        cv2 = _cv2()
        if self.cfg.width > 0:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cfg.width)
        if self.cfg.height > 0:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cfg.height)
        if self.cfg.width > 0 or self.cfg.height > 0:
            got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            want = (self.cfg.width or got[0], self.cfg.height or got[1])
            if got != want:
                log.info("camera %s: asked for %dx%d, it gives %dx%d", self.description, *want, *got)

    # --- live sources ----------------------------------------------------------------
    def _read_live(self, grabber: _Grabber) -> np.ndarray:
        frame, seq, failure = grabber.wait_newer(self._last_seq, self.stall_s, self._interrupt)
        if self._interrupt.is_set():
            raise DeviceLost(f"camera {self.description}: interrupted")
        if frame is None or seq <= self._last_seq:
            if failure:
                raise DeviceLost(f"camera {self.description}: {failure}")
            raise DeviceLost(f"camera {self.description}: no frame for {self.stall_s:g} s")
        self._last_seq = seq
        return frame

    # --- files -----------------------------------------------------------------------
    def _read_file(self) -> np.ndarray:
        if self.cfg.paced:
            self._pace()
        frame = self._next_file_frame(decode=True)
        self._pos += 1
        return frame

    def _pace(self) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0, self._pos = now, 0
            return
        due = self._t0 + self._pos / self.fps
        if due > now:
            if self._interrupt.wait(due - now):
                raise DeviceLost(f"camera {self.description}: interrupted")
            return
        late = int((now - due) * self.fps)  # whole frames the reader is behind
        if late > self.fps:
            # A long stall (a busy machine, a debugger): start the clock again rather than
            # racing through a second of footage.
            self._t0, self._pos = now, 0
        else:
            for _ in range(late):  # drop what a camera would have dropped
                self._next_file_frame(decode=False)
                self._pos += 1

    def _next_file_frame(self, decode: bool) -> np.ndarray:
        cap = self._cap
        ok, frame = cap.read() if decode else (cap.grab(), None)
        if ok and (frame is not None or not decode):
            self._frames_this_pass += 1
            return frame
        frames = self._frames_this_pass
        if not self.cfg.loop:
            raise EndOfFile(f"camera {self.description} ended after {frames} frames (camera.loop = false)")
        if frames == 0:
            raise DeviceLost(f"camera {self.description}: no frame could be decoded")
        # Reopen rather than seek to 0: seeking is unreliable in some containers, reopening
        # costs a few milliseconds once a loop, and it notices a file that was replaced or
        # removed (an open handle would keep playing the old one forever).
        cap.release()
        self._cap = None
        self._cap = self._open_capture()
        self._frames_this_pass = 0
        ok, frame = self._cap.read() if decode else (self._cap.grab(), None)
        if not ok or (decode and frame is None):
            raise DeviceLost(f"camera {self.description}: no frame could be decoded after looping")
        self._frames_this_pass = 1
        return frame


class _Grabber(threading.Thread):
    """Reads a live capture as fast as it delivers and keeps only the newest frame. It owns
    the capture once started and releases it when it ends, so a read stuck in the network
    cannot race a release from another thread."""

    def __init__(self, cap: Any, description: str) -> None:
        super().__init__(name=f"camera-grab {description}", daemon=True)
        self._cap = cap
        self._description = description
        self._cond = threading.Condition()
        self._quit = threading.Event()
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._failure = ""

    def run(self) -> None:
        try:
            while not self._quit.is_set():
                try:
                    ok, frame = self._cap.read()
                except Exception as exc:  # cv2.error from a broken driver
                    ok, frame, why = False, None, f"read failed: {exc}"
                else:
                    why = "stream ended or device stopped delivering frames"
                if self._quit.is_set():
                    break
                if not ok or frame is None:
                    with self._cond:
                        self._failure = why
                        self._cond.notify_all()
                    break
                with self._cond:
                    self._frame = frame
                    self._seq += 1
                    self._cond.notify_all()
        finally:
            self._cap.release()

    def wait_newer(self, seq: int, timeout: float, interrupt: threading.Event) -> tuple[np.ndarray | None, int, str]:
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq or bool(self._failure) or interrupt.is_set(), timeout)
            return self._frame, self._seq, self._failure

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def stop(self, timeout: float = STREAM_TIMEOUT_MS / 1000 + 1.0) -> None:
        self._quit.set()
        self.wake()
        if self.ident is not None:
            self.join(timeout)
        if self.is_alive():  # stuck in a network read; it releases the capture when that returns
            log.warning("%s: grabber still blocked in a read after %.0f s", self._description, timeout)


def _cv2() -> Any:
    import cv2

    return cv2


def open_frame_source(cfg: CameraConfig) -> FrameSource | None:
    """The frame source a show's [camera] asks for, or None for `source = "none"`.
    Does not open it (the camera worker does, and retries while it is missing). Never raises:
    a source value that can never work (an empty string, a negative index) makes open() fail
    with DeviceLost naming camera.source and why, which the worker reports."""
    if isinstance(cfg.source, str) and cfg.source.strip().lower() == "none":
        return None
    ndi = parse_ndi_source(cfg.source) if isinstance(cfg.source, str) else None
    if ndi is not None:  # "ndi:NAME", "ndi://HOST/NAME", "ndi://HOST:PORT" (validated by the show)
        from installation.inputs.ndi import NdiFrameSource

        return NdiFrameSource(cfg, ndi)
    return OpenCVSource(cfg)


class CameraWorker(Worker):
    """Opens a frame source and puts every frame into the camera slot as a CameraFrame.

    When the source is lost it says so once (on_event("camera", state="lost", reason=...)),
    closes it and tries to open it again every `retry_s` until it is back
    (on_event("camera", state="ok")). Meanwhile the slot keeps the last good frame, so the
    show keeps painting the last thing the camera saw rather than something else. A file that
    ends with loop = false reports state="ended" and the last frame stays.
    """

    def __init__(self, source: FrameSource, out: LatestSlot[CameraFrame], retry_s: float = 2.0,
                 on_error: ErrorHandler | None = None, on_event: EventHook | None = None,
                 faults: FaultInjector = NO_FAULTS) -> None:
        super().__init__("camera", on_error=on_error)
        self.faults = faults  # the soak harness's camera_lost (core/faults.py); inert in a show
        if retry_s <= 0:
            raise ValueError(f"camera retry_s must be positive, got {retry_s}")
        self.source = source
        self.out = out
        self.retry_s = retry_s
        self._on_event = on_event
        self._open = False
        self._ended = False
        self._lost_reason = ""  # non-empty while lost
        self.frames = 0
        self.losses = 0

    @property
    def state(self) -> str:
        """"ok", "lost", "ended" or "starting", for status."""
        if self._ended:
            return "ended"
        if self._lost_reason:
            return "lost"
        return "ok" if self._open else "starting"

    def stop(self) -> None:
        super().stop()
        interrupt = getattr(self.source, "interrupt", None)
        if interrupt is not None:
            interrupt()

    def setup(self) -> None:
        self._try_open()

    def step(self) -> None:
        if self._ended:
            self.sleep(0.5)  # played once, as asked; the slot keeps the last frame
            return
        if not self._open:
            if self.sleep(self.retry_s) or not self._try_open():
                return
        try:
            if self.faults.take("camera_lost"):
                # As a pulled cable: the read fails and the real loss-and-reopen path below runs.
                raise DeviceLost(f"camera {self.source.description}: injected fault camera_lost (as if unplugged)")
            image = self.source.read()
        except EndOfFile as exc:
            self._close()
            self._ended = True
            emit(self._on_event, "camera", source=self.source.description, state="ended", reason=str(exc))
            return
        except Exception as exc:  # DeviceLost, or anything a broken driver throws
            if self.stopping:
                return
            self._lose(exc)
            return
        self.frames += 1
        frame = CameraFrame(image=image, index=self.frames, source=self.source.description)
        self.out.put(frame)
        self.rate_meter.tick()
        self.faults.worked("camera", frame.t)

    def teardown(self) -> None:
        self._close()

    # --- internals -------------------------------------------------------------------
    def _try_open(self) -> bool:
        try:
            self.source.open()
        except Exception as exc:
            if self.stopping:
                return False
            self._close()
            self._lose(exc)
            return False
        self._open = True
        recovered = bool(self._lost_reason)
        self._lost_reason = ""
        emit(self._on_event, "camera", source=self.source.description, state="ok", recovered=recovered)
        return True

    def _lose(self, exc: BaseException) -> None:
        self._close()
        reason = str(exc) or type(exc).__name__
        if not self._lost_reason:  # say it once per loss, not once per retry
            self.losses += 1
            self._lost_reason = reason
            self.report(exc)
            emit(self._on_event, "camera", source=self.source.description, state="lost", reason=reason,
                 retry_s=self.retry_s)
        else:
            log.debug("camera still lost: %s", reason)

    def _close(self) -> None:
        self._open = False
        try:
            self.source.close()
        except Exception as exc:
            log.warning("camera %s: close failed: %s", self.source.description, exc)



def list_cameras(max_index: int = 8) -> list[dict]:
    """Cameras that can be opened: [{"index", "device", "name"}]. On Linux only existing
    /dev/videoN nodes are tried (and OpenCV's warnings are silenced while probing), so a
    machine without cameras answers [] at once. Metadata nodes that cannot capture are left
    out."""
    cv2 = _cv2()
    found: list[dict] = []
    linux = sys.platform.startswith("linux")
    with quiet_opencv():
        for i in range(max_index):
            node = f"/dev/video{i}"
            if linux and not os.path.exists(node):
                continue
            cap = cv2.VideoCapture(node, cv2.CAP_V4L2) if linux else cv2.VideoCapture(i)
            try:
                if not cap.isOpened():
                    continue
                entry = {"index": i, "device": node if linux else str(i), "name": _device_name(i) or f"camera {i}"}
                w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
                if w > 0 and h > 0:
                    entry["size"] = (w, h)
                found.append(entry)
            finally:
                cap.release()
    return found


def _device_name(index: int) -> str:
    try:
        return Path(f"/sys/class/video4linux/video{index}/name").read_text(encoding="utf-8").strip()
    except OSError:
        return ""
