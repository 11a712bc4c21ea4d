"""Recording what the screen showed to a video file, without ever stalling the display loop.

The display thread only copies the pixels and drops them into a small drop-oldest queue; a
background worker converts, resizes if needed and encodes with cv2.VideoWriter. If encoding
falls behind, the oldest waiting frames are dropped and counted rather than letting the
display wait or memory grow.

Frames written with a capture time `t` are placed on the file's timeline: a gap (the display
loop stalled, or a frame was dropped) is filled by repeating the frame that was on screen
during it, and a frame that comes before its slot is skipped, so the video plays at the speed the show ran (and stays in
step with a sound recording made alongside).

The file is opened at the first frame, not before: a show stopped before anything was shown
leaves no file behind (and a file already at that path is left as it was), never a header-only
video no player opens. Whether the path can be recorded to at all is checked up front by
`record_path_problem()`, which really creates (and removes) a probe file there and opens the
encoder on it, so a bad `--record` fails before the show starts with the actual reason.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from installation.core.channels import DropOldestQueue
from installation.core.worker import Worker, WorkerStatus

log = logging.getLogger(__name__)

# After a long pause (a suspended machine) the gap is not filled beyond this many seconds.
MAX_FILL_S = 2.0
# Warn when more than this share of frames is dropped: the encoder cannot keep up.
DROP_WARN_SHARE = 0.2

# Recording stops (the file finished and playable) when the disk has less than this left, so a
# weeks-long run never fills the disk the event log and the OS need. Checked every few seconds.
MIN_FREE_MB = 1024
DISK_CHECK_S = 2.0

# Container suffix → FourCC. mp4v and MJPG are encoders OpenCV's bundled FFmpeg always has.
CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}

# Channel layouts write() accepts, as the index of R, G and B in the last axis.
_CHANNELS = {
    "RGB": (0, 1, 2),
    "BGR": (2, 1, 0),
    "RGBA": (0, 1, 2),
    "RGBX": (0, 1, 2),
    "BGRA": (2, 1, 0),
    "BGRX": (2, 1, 0),
    "ARGB": (1, 2, 3),
    "XRGB": (1, 2, 3),
    "ABGR": (3, 2, 1),
    "XBGR": (3, 2, 1),
}


class RecorderError(RuntimeError):
    """The recording cannot be made; the message says which file and why."""


def supported_suffixes() -> str:
    return ", ".join(sorted(CODECS))


def record_path_problem(path: Path | str, *, fps: float = 30.0, size: tuple[int, int] = (640, 360),
                        min_free_mb: float = MIN_FREE_MB) -> str | None:
    """Why a recording cannot be written to `path`, as one sentence naming it, or None if it can.

    Checks in the order a person would fix them: the path itself (a folder, an unsupported
    suffix), its folder (missing, not a folder), then really creates and removes a probe file
    next to it and opens the encoder on that probe (a read-only or virtual filesystem such as
    /proc fails there, with the OS's reason), and only then the free space. A file already at
    `path` is not touched. A missing folder is reported rather than created, so a typo or an
    unmounted drive (`/media/usb/show.mp4`) does not silently record onto the system disk."""
    path = Path(path)
    where = f"cannot record to {path}"
    if "\0" in str(path):
        return f"cannot record to {str(path)!r}: a file name cannot contain a NUL character"
    try:
        if path.is_dir():
            return f"{where}: it is a folder, not a file; name the video file, e.g. {path / 'show.mp4'}"
        fourcc = CODECS.get(path.suffix.lower())
        if fourcc is None:
            return (f"{where}: '{path.suffix or '(no suffix)'}' files are not supported; "
                    f"use one of {supported_suffixes()}")
        if path.exists() and not path.is_file():
            return f"{where}: it exists and is not a regular file"
        folder = path.parent
        if not folder.exists():
            return f"{where}: the folder {folder} does not exist; create it first (or check the spelling)"
        if not folder.is_dir():
            return f"{where}: {folder} is a file, not a folder"
    except OSError as exc:  # a folder on the way that cannot be looked into
        return f"{where}: the path cannot be checked ({exc.strerror or exc})"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{where}: the file already exists and is not writable"
    problem = _probe(path, fourcc, fps, size)
    if problem:
        return f"{where}: {problem}"
    try:
        low = _disk_problem(folder, min_free_mb)
    except OSError:
        low = None  # not knowing the free space is not a full disk (the recorder warns later)
    return f"{where}: {low}" if low else None


def _probe(path: Path, fourcc: str, fps: float, size: tuple[int, int]) -> str | None:
    """Create a file next to `path` and open the encoder on it, then remove it: the only sure
    way to know the folder takes files and OpenCV can write this container there."""
    folder = path.parent
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.probe-", suffix=path.suffix, dir=folder)
    except OSError as exc:
        return _create_failure(folder, exc)
    os.close(fd)
    writer = None
    cannot = (f"OpenCV cannot open a {fourcc} encoder for '{path.suffix}' files "
              f"({int(size[0])}x{int(size[1])} at {float(fps):g} fps) in {folder}")
    try:
        writer = cv2.VideoWriter(name, cv2.VideoWriter_fourcc(*fourcc), float(fps), (int(size[0]), int(size[1])))
        return None if writer.isOpened() else cannot
    except cv2.error as exc:
        return f"{cannot} ({exc})"
    finally:
        if writer is not None:
            writer.release()
        try:
            os.unlink(name)
        except OSError:
            log.warning("could not remove the probe file %s", name)


def _create_failure(folder: Path, exc: OSError) -> str:
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return f"the folder {folder} is not writable (permission denied)"
    if code == errno.EROFS:
        return f"the folder {folder} is on a read-only filesystem"
    if code == errno.ENOSPC:
        return f"the disk holding {folder} is full"
    if code == errno.EDQUOT:
        return f"the disk quota for {folder} is used up"
    return (f"no file can be created in {folder} ({exc.strerror or exc}); it is not a regular "
            f"filesystem: record to a folder on a disk")


def _disk_problem(folder: Path, min_free_mb: float) -> str | None:
    """Why the disk holding `folder` cannot take a recording, or None; raises OSError when its
    free space cannot be read. A filesystem reporting no size at all (/proc, /sys) is not a
    nearly full disk, and is named as what it is."""
    usage = shutil.disk_usage(folder)
    if usage.total == 0:
        return f"{folder} is not on a disk (a virtual filesystem such as /proc); record to a folder on a disk"
    if usage.free < min_free_mb * 1024 * 1024:
        return (f"the disk is nearly full: {usage.free / 1024 / 1024:.0f} MB free on {folder}, "
                f"recording needs {min_free_mb:.0f} MB")
    return None


@dataclass(frozen=True)
class RecorderStats:
    path: str
    fps: float
    size: tuple[int, int]
    received: int  # frames handed to write()
    written: int  # frames encoded into the file
    dropped: int  # frames dropped because encoding fell behind
    resized: int  # frames whose size differed from the file's and were scaled
    repeated: int  # extra copies written to fill gaps on the timeline
    skipped: int  # timed frames that came before their slot was due
    stopped: str | None = None  # why recording stopped before close() (the disk filling up)


@dataclass(frozen=True)
class _Pending:
    pixels: np.ndarray
    channels: str
    t: float | None


class _WriterWorker(Worker):
    def __init__(self, recorder: VideoRecorder) -> None:
        super().__init__(name=f"recorder:{recorder.path.name}")
        self._rec = recorder

    def step(self) -> None:
        item = self._rec._queue.get(timeout=0.1)
        self._rec._check_disk()
        if item is not None and self._rec.stopped is None:
            self._rec._encode(item)
            self.rate_meter.tick()

    def teardown(self) -> None:
        # Frames still waiting when close() was called belong in the file.
        for item in self._rec._queue.drain():
            if self._rec.stopped is None:
                self._rec._encode(item)
        self._rec._release()


class VideoRecorder:
    """Writes frames to `path` (.mp4 → mp4v, .avi → MJPG) at `fps`, frame size `size`
    (width, height). `write()` returns at once; encoding runs in a background thread.

    Raises RecorderError at construction with `record_path_problem()`'s reason if the path cannot
    be recorded to (including a disk with less than `min_free_mb` free). The file itself is
    created at the first frame; closed before any frame, the recorder leaves no file (and an
    existing file at `path` untouched). When free space falls below `min_free_mb` during the
    recording, the file is finished (playable up to there), `stopped` says why, and later
    frames are ignored."""

    def __init__(self, path: Path | str, fps: float, size: tuple[int, int], *,
                 queue_size: int = 4, min_free_mb: float = MIN_FREE_MB) -> None:
        self.path = Path(path)
        self.min_free_mb = float(min_free_mb)
        self.stopped: str | None = None
        self._warned_disk = False
        self.fps = float(fps)
        self.size = (int(size[0]), int(size[1]))
        if not self.fps > 0:
            raise RecorderError(f"{self.path}: recording fps must be above 0, got {fps!r}")
        if self.size[0] < 2 or self.size[1] < 2:
            raise RecorderError(f"{self.path}: recording size must be at least 2x2, got {size!r}")
        problem = record_path_problem(self.path, fps=self.fps, size=self.size, min_free_mb=self.min_free_mb)
        if problem:
            raise RecorderError(problem)
        self.fourcc = CODECS[self.path.suffix.lower()]
        self._next_disk_check = time.monotonic() + DISK_CHECK_S
        # Opened by the writer thread at the first frame: no frame, no file (see the module doc).
        self._writer: cv2.VideoWriter | None = None
        self._queue: DropOldestQueue[_Pending] = DropOldestQueue(f"recorder:{self.path.name}", queue_size)
        self._lock = threading.Lock()  # guards the counters written from two threads
        self._received = 0
        self._written = 0
        self._resized = 0
        self._repeated = 0
        self._skipped = 0
        self._t0: float | None = None  # capture time of the file's first frame
        self._last: np.ndarray | None = None  # the last frame encoded, to fill gaps with
        self._closed = False
        self._warned_after_close = False
        self._warned_drops = False
        self._worker = _WriterWorker(self)
        self._worker.start()
        log.info("recording to %s (%s, %dx%d at %g fps)", self.path, self.fourcc, *self.size, self.fps)

    # --- called from the display thread --------------------------------------------------
    def write(self, image: np.ndarray, channels: str = "RGB", t: float | None = None) -> None:
        """Queue one frame: (H, W, 3) or (H, W, 4) uint8 in the given channel layout (RGB
        by default). The pixels are copied, so the caller may reuse its buffer at once.

        `t` (a time.monotonic() stamp of when the frame was shown) places it on the timeline;
        without it every frame written is one frame of video."""
        if self.stopped is not None:
            return  # the disk filled up: nothing more is recorded (stopped says so)
        if self._closed:
            if not self._warned_after_close:
                log.warning("%s: frame written after the recording was closed; ignored", self.path)
                self._warned_after_close = True
            return
        order = _CHANNELS.get(channels.upper())
        if order is None:
            raise ValueError(f"recorder: unknown channel layout {channels!r}; expected one of "
                             f"{', '.join(_CHANNELS)}")
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
                or image.shape[2] != len(channels) or image.shape[0] < 1 or image.shape[1] < 1:
            desc = (f"{type(image).__name__} {getattr(image, 'dtype', '')} "
                    f"{getattr(image, 'shape', '')}").strip()
            raise ValueError(f"recorder: expected a uint8 array of shape (H, W, {len(channels)}) "
                             f"for {channels.upper()}, got {desc}")
        with self._lock:
            self._received += 1
        self._queue.put(_Pending(np.array(image, copy=True), channels.upper(), t))

    def close(self, timeout: float = 5.0) -> None:
        """Encode what is still queued, finish the file. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._worker.stop()
        self._worker.join(timeout)
        if self._worker.is_alive():
            log.warning("%s: the recorder did not finish within %.1f s; the file may be cut short",
                        self.path, timeout)
        else:
            log.info("recording %s closed: %s", self.path, self.stats())

    def __enter__(self) -> VideoRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> RecorderStats:
        with self._lock:
            return RecorderStats(str(self.path), self.fps, self.size, self._received, self._written,
                                 self._queue.stats().dropped, self._resized, self._repeated,
                                 self._skipped, self.stopped)

    def status(self) -> WorkerStatus:
        return self._worker.status()

    # --- the writer thread -----------------------------------------------------------------
    def _low_disk(self) -> str | None:
        """Why the disk is too full to record on, or None."""
        try:
            return _disk_problem(self.path.parent, self.min_free_mb)
        except OSError as exc:
            # Not knowing is not a full disk (a network share's hiccup): say so once, record on.
            if not self._warned_disk:
                self._warned_disk = True
                log.warning("%s: cannot read the free space of %s (%s); recording on", self.path,
                            self.path.parent, exc)
            return None

    def _check_disk(self) -> None:
        if self.stopped is not None or time.monotonic() < self._next_disk_check:
            return
        self._next_disk_check = time.monotonic() + DISK_CHECK_S
        low = self._low_disk()
        if low:
            self._stop(f"recording stopped: {low}")

    def _stop(self, reason: str) -> None:
        """Stop recording for good: the file is finished (playable up to here), frames after
        this are ignored, and `stopped` says why."""
        self.stopped = reason
        self._release()
        log.error("%s: %s (%d frames written)", self.path, reason, self._written)

    def _open_writer(self) -> bool:
        """Open the file for the first frame; on failure (the folder changed since the check at
        construction) the recording stops with the reason."""
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, self.size)
        if writer.isOpened():
            self._writer = writer
            return True
        writer.release()
        reason = (record_path_problem(self.path, fps=self.fps, size=self.size, min_free_mb=0)
                  or f"cannot open {self.path} for recording ({self.fourcc}, {self.size[0]}x{self.size[1]})")
        self._stop(f"recording stopped: {reason}")
        return False

    def _copies(self, t: float | None) -> int:
        """How many times to write a frame captured at `t` to keep the timeline true."""
        if t is None:
            return 1
        if self._t0 is None:
            self._t0 = t
        due = int(round((t - self._t0) * self.fps)) + 1  # frames the file should hold after it
        with self._lock:
            n = due - self._written
        if n <= 0:
            return 0
        return min(n, max(1, int(MAX_FILL_S * self.fps)))

    def _encode(self, item: _Pending) -> None:
        copies = self._copies(item.t)
        if copies == 0:
            with self._lock:
                self._skipped += 1
            return
        order = _CHANNELS[item.channels]
        px = item.pixels
        if order == (2, 1, 0):
            bgr = px[:, :, :3]
        else:  # a fancy index copies; cheap next to encoding
            bgr = px[:, :, [order[2], order[1], order[0]]]
        if (bgr.shape[1], bgr.shape[0]) != self.size:
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
            with self._lock:
                self._resized += 1
        bgr = np.ascontiguousarray(bgr)
        if self._writer is None and not self._open_writer():
            return
        writer = self._writer
        assert writer is not None  # opened just above
        # The previous frame stayed on screen through the gap; this one begins after it.
        hold = self._last if self._last is not None else bgr
        for _ in range(copies - 1):
            writer.write(hold)
        writer.write(bgr)
        self._last = bgr
        with self._lock:
            self._written += copies
            self._repeated += copies - 1
        self._check_drops()

    def _check_drops(self) -> None:
        dropped = self._queue.stats().dropped
        if not self._warned_drops and dropped >= 30 and dropped > DROP_WARN_SHARE * self._received:
            self._warned_drops = True
            log.warning("%s: encoding cannot keep up: %d of %d frames dropped; the video repeats "
                        "frames to keep time (a lower record fps or size costs less)",
                        self.path, dropped, self._received)

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        elif self.stopped is None and self._closed:
            log.info("%s: no frame was recorded, so no file was written%s", self.path,
                     " (the file already there is left as it was)" if self.path.exists() else "")
