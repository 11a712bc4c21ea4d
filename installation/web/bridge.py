"""What the web server reads from the running show, and how it sends controls: the bridge.

The app implements `WebBridge` (or uses `SnapshotBridge`, which does the locking): the main
thread publishes a status snapshot a few times a second, the counters for /metrics and the
newest presented frame; the web server's thread only reads those copies and enqueues Controls,
so a slow phone or a flood of requests never touches the show state or the render loop.

The status snapshot is a JSON-able dict; `STATUS_KEYS` below says what each key holds. Every
key is optional except `t` (the page shows what is there), so the app can grow it freely.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from installation.core.channels import DropOldestQueue
from installation.core.events import STAGES
from installation.core.messages import Control

# A status snapshot older than this means the main thread stopped publishing: /healthz says
# "the display loop is not presenting" (the app publishes from the loop that presents frames).
STALE_AFTER_S = 3.0

# Every Control from the page carries this sender: the curation log says "web" (control/curation.py
# `who`), and the app must not try to answer it over OSC (App.reply and send_status skip it).
WEB_SENDER: tuple[str, int] = ("web", 0)

# The one key the server removes itself when [web] show_words is false (the app omits it too):
# the visitor's last words. The prompt and the curation queue stay (a person must read them to decide).
WORDS_KEY = "words"

STATUS_KEYS: dict[str, str] = {
    "t": "float, required: time.monotonic() when the main thread made the snapshot (stale after 3 s)",
    "show": "str: the show's name ([show] name)",
    "show_file": "str: the show's file name in shows/ without .toml (what /jadong/show NAME restarts)",
    "shows": "list[str]: the shows in shows/ (the page also asks /api/shows)",
    "cue": "{index: int (0-based, -1 before the first), number: int (1-based, 0 before the first), "
           "name: str (\"\" before the first), time_left_s: float | null (null: the cue does not end by itself)}",
    "cues": "list[{number: int, name: str}]: the show's cues in order",
    "prompt": "str: the prompt painted now",
    "words": "{text: str (the visitor's own words), english: str, age_s: float}: the last words heard; "
             "OMITTED when [web] show_words is false",
    "presence": "bool: the vision stage sees somebody (false without [vision])",
    "people": "int: how many people the vision stage counts",
    "scene": "str: the scene words now",
    "rates": "{stage: float}: frames (or items) per second per stage: display, generator, camera, vision, ...",
    "drops": "{channel: int}: items each channel dropped so far",
    "generator": "str: the generator painting now (diffusers, preview)",
    "model": "str: the model it paints with",
    "gpu": "{name: str, memory_used_mb: float, memory_total_mb: float} | null: null without a GPU",
    "uptime_s": "float: seconds since the runtime started",
    "restarts": "{stage: int}: supervisor restarts per stage",
    "errors": "list[{stage: str, reason: str, advice: str, age_s: float}]: the last errors, oldest first; "
              "advice is core.events.STAGES[stage] (see `error_entry`)",
    "listening": "bool: the microphone is listened to",
    "blackout": "bool: the screen is faded to black",
    "strength": "float: img2img strength, 0-1",
    "curation": "{enabled: bool, timeout_s: float, on_timeout: str}: the show's [curation]",
    "queue": "list[{id: int, text: str, caption: str, age_s: float, left_s: float}]: visitors' words waiting "
             "for a decision (ShowControl.queue_snapshot()); passed through as is",
}


@dataclass(frozen=True)
class MetricsSnapshot:
    """Counters for GET /metrics. Keys are stage and channel names, never visitors' words: the
    collector drops any label value that is not a short identifier."""

    frames_presented: int = 0
    rates: Mapping[str, float] = field(default_factory=dict)  # per stage, frames (items) per second
    drops: Mapping[str, int] = field(default_factory=dict)  # per channel, since start
    transcripts: int = 0  # accepted transcripts since start
    rejections: int = 0  # transcripts refused (noise, hallucination, moderation) since start
    errors: Mapping[str, int] = field(default_factory=dict)  # per stage, since start
    restarts: Mapping[str, int] = field(default_factory=dict)  # per stage, since start
    model_load_s: float | None = None  # how long the generator's model took to load (None: not loaded)
    uptime_s: float = 0.0


class WebBridge(Protocol):
    """What the web server asks of the running show. Every method is called on the web
    server's thread and must be thread-safe, fast (no I/O, no locks held for long) and never
    raise."""

    def status(self) -> dict[str, Any]:
        """The newest status snapshot (see STATUS_KEYS), made on the main thread; {} before the first."""
        ...

    def health(self) -> tuple[bool, str]:
        """(True, "ok") while frames are presented; (False, the reason in plain words) otherwise.
        The server adds the staleness check itself."""
        ...

    def metrics(self) -> MetricsSnapshot: ...

    def preview(self) -> np.ndarray | None:
        """The newest presented RGB uint8 frame (H, W, 3), or None before the first. Not copied:
        the app must not write into an array after publishing it. The server encodes the JPEG."""
        ...

    def submit(self, control: Control) -> bool:
        """Enqueue a control for the main thread (which settles `control.outcome`); False if the
        queue refused it."""
        ...


def error_entry(stage: str, reason: str, age_s: float) -> dict[str, Any]:
    """One entry of the status's "errors" list, with what staff should do (core/events.STAGES)."""
    return {"stage": stage, "reason": reason, "advice": STAGES.get(stage, ""), "age_s": round(max(0.0, age_s), 1)}


class SnapshotBridge:
    """A WebBridge the app can use as is: the main thread calls the publish_* methods, the web
    thread reads. Controls go into `controls`, the same queue the OSC server fills, so the main
    thread applies them in arrival order with ShowControl.handle."""

    def __init__(self, controls: DropOldestQueue[Control],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.controls = controls
        self._clock = clock
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {}
        self._health: tuple[bool, str] = (True, "ok")
        self._metrics = MetricsSnapshot()
        self._preview: np.ndarray | None = None
        self._closed = False

    # --- main thread --------------------------------------------------------------------
    def publish_status(self, status: dict[str, Any]) -> None:
        """A new snapshot (stamped with `t` if it has none). The dict is kept, not copied: build a new one each time."""
        status.setdefault("t", self._clock())
        with self._lock:
            self._status = status

    def publish_health(self, ok: bool, reason: str = "ok") -> None:
        with self._lock:
            self._health = (bool(ok), "ok" if ok else reason)

    def publish_metrics(self, metrics: MetricsSnapshot) -> None:
        with self._lock:
            self._metrics = metrics

    def publish_preview(self, frame: np.ndarray | None) -> None:
        with self._lock:
            self._preview = frame

    def close(self) -> None:
        """The show is stopping: controls are refused from now on (the page is told to retry)."""
        with self._lock:
            self._closed = True

    # --- web thread ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self._lock:
            return self._status

    def health(self) -> tuple[bool, str]:
        with self._lock:
            return self._health

    def metrics(self) -> MetricsSnapshot:
        with self._lock:
            return self._metrics

    def preview(self) -> np.ndarray | None:
        with self._lock:
            return self._preview

    def submit(self, control: Control) -> bool:
        with self._lock:
            if self._closed:
                return False
        # A full queue drops its oldest control, never this one: whoever waited for that one
        # gets "the show did not answer" when its wait ends.
        self.controls.put(control)
        return True
