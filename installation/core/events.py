"""The event log: one JSON object per line, with `time` (wall clock, ISO 8601), `mono`
(time.monotonic(), to measure latencies between lines), `event` and its fields.

Events: transcript, prompt, generator, osc, osc_flood, error, start, stop, frame (first
presented frame), plus what later stages add. Safe to call from any thread.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

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


DAY = "{day}"  # in a log path: replaced by the date, and a new file is opened each day


class EventLog:
    """`path` may contain "{day}" (YYYYMMDD): a show that runs for weeks then writes one file a
    day, which staff can read, rotate and delete like any log."""

    def __init__(self, path: Path | None, also: TextIO | None = None,
                 observer: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self._observer = observer  # sees every event written (the counters for monitoring); must not raise
        self._template = str(path) if path is not None and DAY in str(path) else None
        self._day = time.strftime("%Y%m%d")
        self.path = Path(self._template.replace(DAY, self._day)) if self._template else path
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._also = also
        self._open()

    def _open(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:  # a read-only or full disk must not stop the show
            log.error("event log %s cannot be written (%s); events go to the console only", self.path, exc)
            self._file = None
            self._also = self._also or sys.stderr

    def _roll_over(self) -> None:
        """Called with the lock held: a new day, a new file."""
        assert self._template is not None  # write() calls this only for a "{day}" path
        day = time.strftime("%Y%m%d")
        if day == self._day:
            return
        self._day = day
        if self._file is not None:
            self._file.close()
        self.path = Path(self._template.replace(DAY, day))
        self._open()

    def write(self, event: str, **fields: Any) -> dict:
        record = {
            "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
            "mono": round(time.monotonic(), 4),
            "event": event,
        }
        record.update({k: _jsonable(v) for k, v in fields.items()})
        if self._observer is not None:
            try:
                self._observer(event, fields)
            except Exception:
                log.exception("an event observer failed on %r", event)
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            if self._template is not None:
                self._roll_over()
            for f in (self._file, self._also):
                if f is not None:
                    try:
                        f.write(line + "\n")
                    except (OSError, ValueError) as exc:  # a full disk must not stop the show
                        log.warning("event log write failed: %s", exc)
        return record

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


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
