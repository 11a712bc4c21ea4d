"""The event log: one JSON object per line, with `time` (wall clock, ISO 8601), `mono`
(time.monotonic(), to measure latencies between lines), `event` and its fields.

Events: transcript, prompt, generator, osc, osc_flood, error, start, stop, frame (first
presented frame), retention, plus what later stages add. Safe to call from any thread. Its files
(a day's file and its parts) are core/logfiles.py; which fields are a visitor's words,
core/visitor_words.py.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .faults import NO_FAULTS, FaultInjector
from .logfiles import LogFamily, LogFile
from .visitor_words import withhold

log = logging.getLogger(__name__)

EventHook = Callable[..., None]
"""What every stage is given to report events: `hook("camera", state="lost", reason=...)`,
called from the stage's own thread; the app's `on_event` writes it to the event log."""


# Every `stage` an `error` (or `restart`) event may name, with what it covers and what staff
# do about it. The README's troubleshooting table is generated from this, and a test checks
# that the code names no stage that is missing here.
STAGES: dict[str, str] = {
    "camera": "The camera or video input was lost, could not open or ended. The last good frame stays on screen "
              "and Jadong retries every `camera.retry_s`; check the cable, the device index "
              "(`python run.py devices`) or the file.",
    "microphone": "The microphone or its WAV stand-in: no PortAudio, no such device, a device unplugged, a WAV "
                  "that cannot be read. `python run.py devices` lists inputs; set `[microphone] source`.",
    "speech": "Transcription: the Whisper model or engine could not load, or a decode failed (the speech "
              "stage is rebuilt). `python run.py check` says whether the model is on disk.",
    "moderation": "The word list could not be loaded, so nothing heard is painted until it is fixed: "
                  "check `[moderation] blocklist`.",
    "generator": "The diffusion generator failed to load or to paint (a GPU error, out of memory); the preview "
                 "generator keeps the screen moving. `python run.py check` reports model and GPU.",
    "safety": "The image safety checker (`[safety]`) could not load (its weights are missing or broken) or failed "
              "on a frame (that frame is held). With `if_missing = \"preview\"` the labelled preview paints instead "
              "of unchecked frames until it loads (retried). `python run.py check` says what is missing; "
              "`python run.py fetch-models` gets it.",
    "recording": "`--record` could not write (a bad path, the disk filling up); the show goes on unrecorded.",
    "osc": "OSC: the port is taken, a message was malformed or refused (the sender also gets "
           "`/jadong/error`), or a status target does not resolve.",
    "control": "A valid OSC message the show could not apply: an unknown cue or style, a show file that "
               "cannot load. The sender gets `/jadong/error` with the reason.",
    "show": "Switching shows (`/jadong/show`) failed; the previous show was started again.",
    "web": "The operator's page could not start (its port is taken, the address is not this machine's): the "
           "show runs without it. Set `[web] port` or `--web-port`, or stop what holds the port.",
    "vision": "The vision stage (people, presence, scene words) failed or has no camera to read; the "
              "prompt keeps its last scene words. Check `[vision]` and the camera; `python run.py check` "
              "says which detectors are installed.",
    "capture": "A capture could not be written (a full or read-only disk: the image and its sidecar are both "
               "dropped) or signed (the show's [provenance] certificate or key cannot be used: the image is kept "
               "unsigned). `python run.py check` tests the credentials; `[capture] quota_mb` bounds the folder.",
    "state": "The saved show state (`state/SHOW.json`, or `--state PATH`) could not be written (a full or "
             "read-only disk: tried again every few seconds, the show goes on; a restart meanwhile comes back to "
             "the last state written) or was unusable (bad JSON, wrong values: renamed `.corrupt-TIME` beside it, "
             "and the show starts from its top). Free space (`df -h state`); delete the file to start a show afresh.",
    "service": "systemd's notify socket (`NOTIFY_SOCKET`) could not be reached or its queue was full: systemd may "
               "not hear READY or the watchdog pings, and restarts the show after `WatchdogSec`. Check the unit "
               "(`systemctl --user status jadong`, deploy/jadong.service).",
    "events": "The event log itself could not be written (a full disk, a folder made read-only): the show goes on and "
              "lines are counted, not kept. When it writes again, one `error` line with `recovered: true` says how "
              "many were `lost` and for how long (`outage_s`). Free space on the disk (`df -h logs`), or lower "
              "`[privacy] logs_max_mb`; `python run.py check` tests the log folder.",
    "retention": "The retention janitor could not delete or scrub an expired log file or capture (permissions, a "
                 "full disk for the rewritten file): it tries again at its next pass, a few minutes later. Check "
                 "that the user running Jadong owns `logs/` and `captures/`.",
    "ndi": "NDI video out (`--ndi NAME`, an NDI output) could not start: the NDI runtime cannot load (ndi-python "
           "missing, or libndi's system library `libavahi-client3`; `make setup` installs both) or the source "
           "could not be created. The screen and the rest of the show run without it; `python run.py check` says "
           "whether the runtime loads. An NDI camera that cannot be found or goes quiet is a `camera` error.",
    "attract": "The attract behaviour's clip or still (`[attract] clip`, `image`) cannot be read or decoded: a "
               "still shows as a dark card with the caption, a clip keeps the last picture and is retried. Check "
               "the file plays (`ffprobe FILE`) and that OpenCV reads it (MP4/H.264, PNG, JPEG).",
    "hours": "The closed still (`[hours] image`) cannot be read or decoded: while closed the screen is a dark card "
             "with the caption instead. The hours themselves still apply; check the file (PNG, JPEG).",
}


def stages_table_markdown() -> str:
    lines = ["| stage | what went wrong, and what to do |", "|---|---|"]
    lines += [f"| `{name}` | {text} |" for name, text in STAGES.items()]
    return "\n".join(lines) + "\n"


def emit(hook: EventHook | None, event: str, **fields: Any) -> None:
    """Report an event through `hook`, never raising: the log failing must not stop a camera,
    the speech thread or the generator."""
    if hook is None:
        return
    try:
        hook(event, **fields)
    except Exception:
        log.exception("reporting event %r failed", event)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        try:
            return value.item()
        except Exception:
            pass
    return repr(value)


class _Waiting(OSError):
    """The file is closed after an error and its next try is not due yet."""


# How long a log whose file cannot be opened waits before trying again, and how often an idle
# log in an outage tries to write again (tick), so its recovery is seen without a new event.
RETRY_S = 0.5
DEFAULT_FILE_BYTES = 100_000_000  # [privacy] log_file_mb's default: a day's file past this goes on in a part


class EventLog:
    """`path` may contain "{day}" (YYYYMMDD): a show that runs for weeks then writes one file a
    day, which staff can read, rotate and delete like any log. A file past `max_file_bytes`
    goes on in a numbered part (core/logfiles.py), so a flood cannot make one huge file; the
    retention janitor (control/retention.py) prunes and scrubs the closed ones.

    `keep_words=False` (a show with [privacy] keep_words = false): every visitor's words are
    replaced by their word count before the line is written (core/visitor_words.py).

    A line that cannot be written (a full disk, or `faults.disk_full()` from the soak harness,
    which raises the same ENOSPC in the same place) is counted, not retried: the show goes on.
    One console warning per outage; when a line can be written again, an `error` event with
    stage "events", `recovered: true`, `lost` (lines) and `outage_s` comes first. Each line is
    one os.write() on a file opened for appending: a line is never split by another thread's,
    and a line cut short by the disk filling up is cut off again, so every line stays JSON."""

    def __init__(self, path: Path | None, also: TextIO | None = None,
                 observer: Callable[[str, dict[str, Any]], None] | None = None, *,
                 faults: FaultInjector = NO_FAULTS, keep_words: bool = True,
                 max_file_bytes: int = DEFAULT_FILE_BYTES) -> None:
        self._observer = observer  # sees every event written (the counters for monitoring); must not raise
        self._faults = faults
        self.keep_words = keep_words  # one assignment (a show switch): read once per line, safe from any thread
        self.max_file_bytes = max(1, int(max_file_bytes))
        self.family = LogFamily(Path(path)) if path is not None else None
        self._lock = threading.Lock()
        self._also = also
        self._fd: int | None = None
        self._size = 0  # bytes of whole lines in the file: what a line cut short is truncated back to
        self._day = time.strftime("%Y%m%d")
        self._closed = False
        # An outage: lines that could not be written since `_outage_mono` (None: writing).
        self._outage_mono: float | None = None
        self._outage_time = ""
        self._outage_reason = ""
        self._lost = 0
        self._retry_at = 0.0
        self.lines_lost = 0  # over the whole run
        self.path: Path | None = None
        self._part = 0
        if self.family is not None:
            try:
                self.path = self.family.writable(self._day, self.max_file_bytes)
            except OSError:  # a folder that cannot be listed (EACCES, ELOOP): _open says why below
                self.path = self.family.path(self._day)
            self._part = self.family.part_of(self.path)
            with self._lock:
                try:
                    self._open()
                except OSError as exc:  # a read-only or full disk must not stop the show
                    self._begin_outage(exc, time.monotonic())

    # --- the file (all with the lock held) ---------------------------------------------------
    def _open(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o644)
        self._fd, self._size = fd, os.fstat(fd).st_size

    def _close_file(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass

    def _move_to(self, path: Path, part: int) -> None:
        self._close_file()
        self.path, self._part = path, part
        self._open()

    def _make_room(self, nbytes: int) -> None:
        """A new day, a new file; a full file, the next part. Raises OSError."""
        assert self.family is not None
        if self.family.has_day:
            day = time.strftime("%Y%m%d")
            if day != self._day:
                self._day = day
                path = self.family.writable(day, self.max_file_bytes)
                self._move_to(path, self.family.part_of(path))
                return
        if self._size > 0 and self._size + nbytes > self.max_file_bytes:
            self._move_to(self.family.path(self._day, self._part + 1), self._part + 1)

    def _put(self, data: bytes) -> None:
        """One line into the file, whole or not at all. Raises OSError."""
        if self._fd is None:
            if time.monotonic() < self._retry_at:
                raise _Waiting()
            self._open()
        self._make_room(len(data))
        fd = self._fd
        assert fd is not None
        done = 0
        try:
            if self._faults.disk_full():  # the soak harness's full disk, as the kernel says it
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
            while done < len(data):
                n = os.write(fd, data[done:])  # short when the disk fills mid-line; the next one raises
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                done += n
        except OSError:
            if done:
                try:
                    os.ftruncate(fd, self._size)  # the part of the line that got in would break the JSON
                except OSError:
                    pass
            raise
        self._size += len(data)

    def _begin_outage(self, exc: OSError, now: float) -> None:
        """Count from now (the first failure) or, in an outage, set the next try."""
        if exc.errno != errno.ENOSPC:
            self._close_file()  # anything but a full disk: open the file again (it may be back)
        self._retry_at = now + RETRY_S
        if self._outage_mono is not None:
            return
        self._outage_mono = now
        self._outage_time = _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
        self._outage_reason = exc.strerror or str(exc)
        log.warning("event log %s cannot be written (%s): lines are counted and dropped until it can again; "
                    "free space on its disk ([privacy] logs_max_mb bounds the logs) or pass --log PATH",
                    self.path, self._outage_reason)

    def _recovery(self, now: float) -> dict[str, Any]:
        assert self._outage_mono is not None
        outage_s = round(now - self._outage_mono, 3)
        lost = self._lost
        reason = (f"the event log could not be written for {outage_s:g} s ({self._outage_reason}); "
                  f"{lost} line{'s' if lost != 1 else ''} lost")
        return dict(time=_dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"), mono=round(now, 4),
                    event="error", stage="events", recovered=True, lost=lost, outage_s=outage_s,
                    since=self._outage_time, reason=reason)

    def _write_line(self, data: bytes) -> list[tuple[str, dict[str, Any]]]:
        """Write one line, first the recovery event if an outage ends. Returns what the
        observer should hear about the file (an outage beginning or ending)."""
        told: list[tuple[str, dict[str, Any]]] = []
        now = time.monotonic()
        try:
            if self._outage_mono is not None:
                recovery = self._recovery(now)
                self._put((json.dumps(recovery, ensure_ascii=False) + "\n").encode("utf-8"))
                self._outage_mono, self._lost = None, 0
                log.warning("event log %s writes again: %s", self.path, recovery["reason"])
                told.append(("error", {k: v for k, v in recovery.items() if k not in ("time", "mono", "event")}))
            if data:
                self._put(data)
        except OSError as exc:
            if self._outage_mono is None:
                self._begin_outage(exc, now)
                told.append(("error", dict(stage="events", reason=f"the event log {self.path} cannot be written "
                                           f"({self._outage_reason}); lines are dropped and counted")))
            elif not isinstance(exc, _Waiting):
                self._begin_outage(exc, now)  # tried and failed again: the next try in RETRY_S
            if data:
                self._lost += 1
                self.lines_lost += 1
        return told

    # --- the public side ---------------------------------------------------------------------
    def write(self, event: str, **fields: Any) -> dict:
        record = {
            "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
            "mono": round(time.monotonic(), 4),
            "event": event,
        }
        record.update({k: _jsonable(v) for k, v in fields.items()})
        if not self.keep_words:
            record = withhold(event, record)
        self._tell(event, fields)
        line = json.dumps(record, ensure_ascii=False) + "\n"
        told: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            if self.family is not None and not self._closed:
                told = self._write_line(line.encode("utf-8"))
            if self._also is not None:
                try:
                    self._also.write(line)
                except (OSError, ValueError) as exc:  # a closed console must not stop the show
                    log.debug("event log console copy failed: %s", exc)
        for name, told_fields in told:
            self._tell(name, told_fields)
        return record

    def _tell(self, event: str, fields: dict[str, Any]) -> None:
        if self._observer is not None:
            try:
                self._observer(event, fields)
            except Exception:
                log.exception("an event observer failed on %r", event)

    def tick(self) -> None:
        """While lines are being lost, try the file again (at most every RETRY_S), so that
        the recovery is written when the disk has room even if no event comes; nothing else
        (a single attribute read) when the log is writing. Main loop."""
        if self._outage_mono is None or time.monotonic() < self._retry_at:
            return
        with self._lock:
            if self._outage_mono is None or self._closed or self.family is None:
                return
            told = self._write_line(b"")
        for name, told_fields in told:
            self._tell(name, told_fields)

    @property
    def in_outage(self) -> bool:
        return self._outage_mono is not None

    def files(self) -> list[LogFile]:
        """This log's files on disk, oldest first; the one being written among them."""
        if self.family is None:
            return []
        with self._lock:
            day = self._day
        return self.family.files(day)

    def is_current(self, path: Path) -> bool:
        with self._lock:
            return self.path is not None and Path(path) == self.path

    def remove(self, path: Path) -> bool:
        """Delete one of this log's files, never the one being written (checked under the
        lock, so the log cannot move to it meanwhile). True if it was deleted."""
        with self._lock:
            if self.path is not None and Path(path) == self.path:
                return False
            path.unlink(missing_ok=True)
            return True

    def set_policy(self, keep_words: bool, max_file_bytes: int) -> None:
        """A new show's [privacy] from the next line on."""
        with self._lock:
            self.keep_words = keep_words
            self.max_file_bytes = max(1, int(max_file_bytes))

    def close(self) -> None:
        with self._lock:
            if self._outage_mono is not None and self.family is not None and not self._closed:
                self._write_line(b"")  # a last try: the recovery event, if the disk has room now
            self._closed = True
            self._close_file()


class FloodSummary:
    """Lets the first `burst` events of a kind through each `window_s`; the rest are counted
    and written as one summary line when the window closes, so a flood of OSC messages
    cannot fill the disk or slow the server."""

    def __init__(self, log_: EventLog, event: str, burst: int = 20, window_s: float = 1.0) -> None:
        self._log = log_
        self._event = event
        self._burst = burst
        self._window_s = window_s
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._in_window = 0
        self._suppressed = 0
        self._suppressed_by: dict[str, int] = {}

    def write(self, key: str = "", **fields: Any) -> None:
        summary = None
        with self._lock:
            t = time.monotonic()
            if t - self._window_start >= self._window_s:
                summary = self._take_summary(t)
            self._in_window += 1
            allowed = self._in_window <= self._burst
            if not allowed:
                self._suppressed += 1
                self._suppressed_by[key] = self._suppressed_by.get(key, 0) + 1
        if summary:
            self._log.write(f"{self._event}_flood", **summary)
        if allowed:
            self._log.write(self._event, **fields)

    def _take_summary(self, t: float) -> dict | None:
        summary = None
        if self._suppressed:
            summary = {
                "suppressed": self._suppressed,
                "seconds": round(t - self._window_start, 3),
                "by": dict(sorted(self._suppressed_by.items(), key=lambda kv: -kv[1])[:10]),
            }
        self._window_start = t
        self._in_window = 0
        self._suppressed = 0
        self._suppressed_by = {}
        return summary

    def tick(self) -> None:
        """Write the summary of a window that has closed, even if no event came after it
        (called from the main loop), so a flood's summary never waits for the next message."""
        with self._lock:
            t = time.monotonic()
            if t - self._window_start < self._window_s or not self._suppressed:
                return
            summary = self._take_summary(t)
        if summary:
            self._log.write(f"{self._event}_flood", **summary)

    def flush(self) -> None:
        with self._lock:
            summary = self._take_summary(time.monotonic())
        if summary:
            self._log.write(f"{self._event}_flood", **summary)
