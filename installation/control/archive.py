"""The captures archive: writes each capture (PNG, optional MP4 clip, JSON sidecar) on its own
thread, signs it with content credentials, lists it in `index.jsonl`, and keeps the folder
under its quota by removing the oldest captures first.

Why a thread: encoding a 512×512 PNG takes about 7 ms and signing it 2-5 ms (measured with
c2pa-python 0.38 on this project's CPU machine), most of a 60 Hz frame; the main thread only
reserves the file name and hands the frame over. Every file is written to a temporary name and
renamed, so a reader (the operator's page, a backup) never sees half a capture, and an image is
never left without its sidecar.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from installation.core.events import EventHook, emit

log = logging.getLogger(__name__)

INDEX = "index.jsonl"
# A capture's files: STAMP.png, STAMP.json, STAMP.mp4 (STAMP = 20250101-120000-123, "-2" for a
# second capture in the same millisecond). Sorting by name sorts by time.
CAPTURE_FILE = re.compile(r"^(\d{8}-\d{6}-\d{3}(?:-\d+)?)\.(png|json|mp4)$")
IDLE_EXIT_S = 2.0  # the writer thread ends when idle this long (a show switch leaves no thread behind)
MAX_PENDING = 8  # captures waiting to be written; more at once are refused (a script gone wrong)
# Shared by every archive in the process: after a show switch the old show's writer may still be
# finishing in the same folder while the new one starts.
_FOLDER_LOCK = threading.Lock()
_RESERVED: set[str] = set()
# Every archive, so that the process waits for captures being written before it ends: besides
# keeping them, a daemon thread stopped inside the signer's native code aborts the interpreter.
_ARCHIVES: weakref.WeakSet[Archive] = weakref.WeakSet()
EXIT_WAIT_S = 10.0


class CaptureError(OSError):
    """The capture could not be written; the text names the file and the reason."""


@dataclass(frozen=True)
class CaptureJob:
    """One capture to write: RGB images, the sidecar's fields (already as private as the show
    wants them) and the event's."""

    stem: str
    image: np.ndarray
    record: dict[str, Any]
    event: dict[str, Any] = field(default_factory=dict)
    clip: tuple[np.ndarray, ...] = ()
    clip_fps: float = 0.0


# What the archive signs with: (file bytes, ".png" or ".mp4", record, title) -> signed bytes.
SignFn = Callable[[bytes, str, dict[str, Any], str], bytes]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def encode_png(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
    if not ok:
        raise OSError("the PNG encoder refused the image")
    return buf.tobytes()


def encode_mp4(frames: tuple[np.ndarray, ...], fps: float, scratch: Path) -> bytes:
    """The frames as an MP4 (mp4v), through a scratch file: OpenCV writes only to files."""
    import cv2

    h, w = frames[-1].shape[:2]
    writer = cv2.VideoWriter(str(scratch), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    try:
        if not writer.isOpened():
            raise OSError("OpenCV cannot write MP4 here")
        for frame in frames:
            if frame.shape[:2] == (h, w):
                writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    finally:
        writer.release()
    try:
        return scratch.read_bytes()
    finally:
        scratch.unlink(missing_ok=True)


class Archive:
    """Captures written in `folder` on a background thread (see the module note). `sign` is
    made on the writer thread at the first capture (loading credentials may write them, and
    costs more than a frame); None, or one that raises, leaves captures unsigned and says why
    through `on_error` once per reason."""

    def __init__(self, folder: Path, quota_bytes: int, sign: Callable[[], SignFn | None] | None = None,
                 on_event: EventHook | None = None, on_error: Callable[[str], None] | None = None) -> None:
        self.folder = folder
        self.quota_bytes = int(quota_bytes)
        self._make_signer = sign
        self._sign: SignFn | None = None
        self._signer_tried = False
        self._on_event = on_event
        self._on_error = on_error
        self._reported: set[str] = set()
        self._jobs: queue.Queue[CaptureJob] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self.written = 0
        # (stem, error) for each capture done, written ("") or not (the reason), for the main
        # thread to take (Captures.tick): a performer hears the path once the file is there.
        self.finished: deque[tuple[str, str]] = deque()
        _ARCHIVES.add(self)

    # --- the main thread's side -------------------------------------------------------------
    def reserve(self, now: float | None = None) -> str:
        """A new capture's stem (its files' name), unique in the folder and among those queued."""
        now = time.time() if now is None else now
        base = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1000) % 1000:03d}"
        with _FOLDER_LOCK:
            stem, n = base, 1
            while str(self.folder / stem) in _RESERVED or (self.folder / f"{stem}.png").exists():
                n += 1
                stem = f"{base}-{n}"
            _RESERVED.add(str(self.folder / stem))
        return stem

    def submit(self, job: CaptureJob) -> Path:
        """Queue `job`; returns the PNG's path (written a few milliseconds later). Raises
        CaptureError when too many captures already wait."""
        with self._lock:
            if self._pending >= MAX_PENDING:
                self._release(job.stem)
                raise CaptureError(f"{MAX_PENDING} captures are still being written; this one was not taken")
            self._pending += 1
            self._jobs.put(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
                self._thread.start()
        return self.folder / f"{job.stem}.png"

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued capture is written (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _release(self, stem: str) -> None:
        with _FOLDER_LOCK:
            _RESERVED.discard(str(self.folder / stem))

    # --- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_EXIT_S)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            error = ""
            try:
                self._write(job)
            except Exception as exc:  # a full disk, a bug: this capture is lost, the show is not
                if isinstance(exc, CaptureError):
                    error = str(exc)
                else:
                    error = f"capture {job.stem}: {type(exc).__name__}: {exc}"
                    log.exception("capture %s failed", job.stem)
                self._error(error, key=f"write {type(exc).__name__}")
            finally:
                self.finished.append((job.stem, error))
                self._release(job.stem)
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _error(self, reason: str, key: str = "") -> None:
        emit(self._on_event, "error", stage="capture", reason=reason)
        if self._on_error is not None:
            self._on_error(reason)
        if key and key not in self._reported:
            self._reported.add(key)
            log.error("%s", reason)

    def _signer(self) -> SignFn | None:
        if not self._signer_tried and self._make_signer is not None:
            self._signer_tried = True
            try:
                self._sign = self._make_signer()
            except Exception as exc:  # bad credentials: the picture is still kept, and staff are told
                self._error(f"captures are saved without content credentials: {exc}", key="signer")
        return self._sign

    def _signed(self, data: bytes, suffix: str, record: dict[str, Any], title: str) -> tuple[bytes, bool]:
        sign = self._signer()
        if sign is None:
            return data, False
        try:
            return sign(data, suffix, record, title), True
        except Exception as exc:
            self._error(f"{title} saved without content credentials: {exc}", key=f"sign {type(exc).__name__}")
            return data, False

    def _write(self, job: CaptureJob) -> None:
        png_path = self.folder / f"{job.stem}.png"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            png, signed = self._signed(encode_png(job.image), ".png", job.record, png_path.name)
            _write_atomic(png_path, png)
        except OSError as exc:
            raise CaptureError(f"could not write {png_path}: {exc.strerror or exc}") from None
        written = [png_path]
        try:
            record = dict(job.record, signed=signed)
            if job.clip:
                clip_path = self.folder / f"{job.stem}.mp4"
                data = encode_mp4(job.clip, job.clip_fps, self.folder / f".{job.stem}.scratch.mp4")
                data, record["clip_signed"] = self._signed(data, ".mp4", job.record, clip_path.name)
                _write_atomic(clip_path, data)
                written.append(clip_path)
                record["clip"] = clip_path.name
            sidecar = png_path.with_suffix(".json")
            _write_atomic(sidecar, json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8"))
            written.append(sidecar)
        except OSError as exc:
            for path in written:
                path.unlink(missing_ok=True)  # an image without its words would break traceability
            raise CaptureError(f"could not write {job.stem}'s clip or sidecar: {exc.strerror or exc}") from None
        with _FOLDER_LOCK:
            self._append_index(record, written)
            removed = self.enforce_quota(keep=job.stem)
        self.written += 1
        fields = dict(job.event, path=png_path, signed=signed)
        if removed:
            fields["removed"] = removed
        emit(self._on_event, "capture", **fields)

    # --- the index and the quota -----------------------------------------------------------
    def _append_index(self, record: dict[str, Any], written: list[Path]) -> None:
        line: dict[str, Any] = {"image": written[0].name, "sidecar": written[0].with_suffix(".json").name}
        line.update((k, record[k]) for k in ("clip", "time", "show", "cue", "trigger", "fired_by", "signed")
                    if k in record)
        line["bytes"] = sum(p.stat().st_size for p in written)
        # One write() of one line with O_APPEND: lines from any writer never interleave.
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.folder / INDEX, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def captures(self) -> dict[str, list[Path]]:
        """The captures in the folder by stem, oldest first."""
        return capture_groups(self.folder)

    def enforce_quota(self, keep: str = "") -> list[str]:
        """Remove the oldest captures until the folder's captures fit the quota; never `keep`
        (the one just written, even if it alone is over). Returns the removed images' names."""
        groups = self.captures()
        sizes = {stem: sum(p.stat().st_size for p in paths if p.exists()) for stem, paths in groups.items()}
        total = sum(sizes.values())
        removed: list[str] = []
        for stem, paths in groups.items():
            if total <= self.quota_bytes:
                break
            if stem == keep:
                continue
            for path in paths:
                path.unlink(missing_ok=True)
            total -= sizes[stem]
            removed.append(f"{stem}.png")
        if removed:
            self._drop_from_index(set(removed))
            log.info("captures/ over its quota (%.0f MB): removed the %d oldest", self.quota_bytes / 1e6, len(removed))
        return removed

    def _drop_from_index(self, images: set[str]) -> None:
        drop_from_index(self.folder, images)


def capture_groups(folder: Path) -> dict[str, list[Path]]:
    """The captures in `folder` by stem (their files), oldest first."""
    groups: dict[str, list[Path]] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                m = CAPTURE_FILE.match(entry.name)
                if m and entry.is_file(follow_symlinks=False):
                    groups.setdefault(m.group(1), []).append(Path(entry.path))
    except FileNotFoundError:
        return {}
    return dict(sorted(groups.items()))


def drop_from_index(folder: Path, images: set[str]) -> None:
    """Rewrite `folder`'s index without the lines of `images` (atomically). Call with
    _FOLDER_LOCK held: a writer appends to the index under it."""
    path = folder / INDEX
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    kept = []
    for line in lines:
        try:
            if json.loads(line).get("image") in images:
                continue
        except (ValueError, AttributeError):
            pass  # a line this version cannot read stays
        kept.append(line)
    if len(kept) != len(lines):
        _write_atomic(path, ("\n".join(kept) + "\n" if kept else "").encode("utf-8"))


def taken_at(stem: str) -> float | None:
    """When the capture `stem` (20250101-120000-123[-2]) was taken, as time.time(); its name
    is the local time it was reserved at."""
    try:
        base = time.mktime(time.strptime(stem[:15], "%Y%m%d-%H%M%S"))
        return base + int(stem[16:19]) / 1000
    except (ValueError, OverflowError):
        return None


def expire_captures(folder: Path, before: float) -> list[str]:
    """Delete every capture in `folder` taken before `before` (time.time()): its picture, clip
    and sidecar, and its line in the index. Returns the removed images' names. Raises OSError
    for a file that cannot be removed (the others are removed first)."""
    removed: list[str] = []
    failed: OSError | None = None
    # The folder lock is held only to check a name and to rewrite the index, never across the
    # deletes: the main thread takes it to reserve a capture's name, and a pass deleting a
    # month of captures on a slow card would hold the picture up. An expired capture is never
    # one being written (those are new), and the writer's quota may delete the same files
    # meanwhile (missing_ok).
    for stem, paths in capture_groups(folder).items():
        with _FOLDER_LOCK:
            if str(folder / stem) in _RESERVED:
                continue  # being written now
        t = taken_at(stem)
        if t is None:
            try:
                t = min(p.stat().st_mtime for p in paths)
            except (OSError, ValueError):
                continue  # deleted meanwhile (the writer's quota)
        if t >= before:
            break  # oldest first: the rest are newer
        try:
            # The sidecar last: a picture is never left without its words.
            for path in sorted(paths, key=lambda p: p.suffix == ".json"):
                path.unlink(missing_ok=True)
        except OSError as exc:
            failed = failed or exc
            continue
        removed.append(f"{stem}.png")
    if removed:
        with _FOLDER_LOCK:
            drop_from_index(folder, set(removed))
    if failed is not None:
        raise failed
    return removed


def read_index(folder: Path) -> list[dict[str, Any]]:
    """The archive's index, oldest first (lines that cannot be read are skipped)."""
    try:
        lines = (folder / INDEX).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


@atexit.register
def _flush_all() -> None:
    deadline = time.monotonic() + EXIT_WAIT_S
    for archive in list(_ARCHIVES):
        archive.flush(max(0.0, deadline - time.monotonic()))
