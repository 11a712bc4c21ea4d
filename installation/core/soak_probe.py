"""What a running app tells the soak harness (`--faults` only): a `heartbeat` event every
quarter second with what each stage has done so far, and the faults' lives as `fault` events.

The harness reads the event log, so everything it judges must be in it, stamped with
time.monotonic() (one clock for all processes on the machine, so the harness can set the
app's stamps against its own SIGTERM). Two things are measured here rather than in the
harness, because only the display loop can see them exactly:

- the gap between two presented frames (each pass of the display loop that presents), as the
  longest since the last heartbeat and the longest in this process's life: a heartbeat lost
  to an injected full disk loses no gap;
- whether the primary generator paints again after a generator fault: the first good frame
  from it after the fault is the stage's recovery (the preview standing in does not count).

Runs on the main thread only. Nothing here runs without `--faults`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from .events import EventLog
from .faults import FaultInjector
from .messages import GeneratedFrame

HEARTBEAT_S = 0.25  # fine enough that a recovery seen through heartbeats is timed to a quarter second


class FrameGaps:
    """Seconds between consecutive presented frames: the longest since `take_window`, and the
    longest since the first frame."""

    def __init__(self) -> None:
        self._last: float | None = None
        self.window_max = 0.0
        self.life_max = 0.0
        self.frames = 0

    def presented(self, now: float) -> None:
        if self._last is not None:
            gap = now - self._last
            self.window_max = max(self.window_max, gap)
            self.life_max = max(self.life_max, gap)
        self._last = now
        self.frames += 1

    def take_window(self) -> float:
        value, self.window_max = self.window_max, 0.0
        return value


def rss_mb() -> float | None:
    """This process's resident memory in MB, from /proc (None where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 1e6, 1)


class Observed(Protocol):
    """What the probe reads from the app (duck-typed: workers by their thread names)."""

    workers: list[Any]
    generator_worker: Any
    presenter: Any


def stage_counters(app: Observed) -> dict[str, Any]:
    """What each stage has done so far in this process: the harness tells from these whether
    the camera, the microphone, the speech stage and the generator are working."""
    by_name = {w.name: w for w in app.workers}
    out: dict[str, Any] = {}
    cam = by_name.get("camera")
    if cam is not None:
        out["camera_frames"] = int(getattr(cam, "frames", 0))
        out["camera_state"] = str(getattr(cam, "state", ""))
    mic = by_name.get("microphone")
    if mic is not None:
        out["audio_chunks"] = mic.rate_meter.count
    speech = by_name.get("speech")
    if speech is not None:
        st = speech.status()
        out["speech_alive"] = st.alive
        out["speech_beat_s"] = round(st.seconds_since_beat, 2)
    gw = app.generator_worker
    if gw is not None:
        out["generated"] = gw.rate_meter.count
        out["generator"] = gw.active_name
        out["primary_painting"] = gw.active is gw.primary
    if app.presenter is not None:
        out["new_frames"] = app.presenter.presented_frames
    return out


class SoakProbe:
    """`presented` after each frame the display loop presents; it writes the heartbeat and the
    faults' reports when due. `close` writes a last heartbeat (the gaps up to the end)."""

    def __init__(self, faults: FaultInjector, events: EventLog, app: Observed,
                 frame_problem: Callable[[object], str], primary_name: Callable[[], str | None],
                 every_s: float = HEARTBEAT_S) -> None:
        self.faults = faults
        self.events = events
        self.app = app
        self.frame_problem = frame_problem  # '' for a frame fit for the screen, else why not
        self.primary_name = primary_name  # the primary generator's name (None: only the preview)
        self.every_s = every_s
        self.gaps = FrameGaps()
        self.bad_frames = 0  # frames in the frame slot that were not fit for the screen
        self._last_frame: GeneratedFrame | None = None
        self._last_beat = 0.0
        self._seq = 0

    def presented(self, frame: GeneratedFrame | None, now: float) -> None:
        self.gaps.presented(now)
        if frame is not None and frame is not self._last_frame:
            self._last_frame = frame
            problem = self.frame_problem(frame.image)
            if problem:
                self.bad_frames += 1
                self.events.write("soak_bad_frame", generator=frame.generator, reason=problem)
            elif frame.generator == self.primary_name():
                self.faults.worked("generator", frame.t)
        self._write_reports()
        if now - self._last_beat >= self.every_s:
            self._last_beat = now
            self._heartbeat(now)

    def close(self) -> None:
        self._write_reports()
        self._heartbeat(time.monotonic(), final=True)

    def _write_reports(self) -> None:
        for report in self.faults.take_reports():
            self.events.write("fault", **asdict(report), recovered_after_s=report.recovered_after_s)

    def _heartbeat(self, now: float, final: bool = False) -> None:
        self._seq += 1
        self.events.write("heartbeat", seq=self._seq, pid=os.getpid(), frames=self.gaps.frames,
                          gap_max_s=round(self.gaps.take_window(), 4), gap_life_max_s=round(self.gaps.life_max, 4),
                          bad_frames=self.bad_frames, rss_mb=rss_mb(), final=final, **stage_counters(self.app))


__all__ = ["FrameGaps", "HEARTBEAT_S", "Observed", "SoakProbe", "rss_mb", "stage_counters"]
