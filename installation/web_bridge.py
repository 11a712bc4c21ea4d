"""The app's side of the operator's page: what the main thread publishes to the web server a
few times a second (status, health, metrics, the frame on screen) through the web room's
`SnapshotBridge`. Composes the app and the web room, so it lives at the top."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol

from .control.scene_words import scene_words
from .control.show_control import ShowControl, ShowState, shows_available
from .core.counters import EventCounters
from .core.worker import Worker
from .show import Show
from .web.bridge import MetricsSnapshot, error_entry


class App(Protocol):
    """What the snapshot reads of the app (app.App), named here so this module needs no
    import of app.py."""

    show: Show
    control: ShowControl
    counters: EventCounters
    workers: list[Worker]
    generator_worker: Any
    presenter: Any
    started_t: float

    @property
    def state(self) -> ShowState: ...

    def stage_of(self, worker: Worker) -> str: ...

    def stage_rates(self) -> dict[str, float]: ...

    def drop_counts(self) -> dict[str, int]: ...

PUBLISH_EVERY_S = 0.25  # the page updates at most ~4 times a second; the snapshot is cheap
HEALTH_STALL_S = 10.0  # a stage that has not worked this long makes /healthz answer 503


SHOWS_EVERY_S = 5.0  # the shows/ folder is listed at most this often, not at every publish


class ShowsList:
    """The show names in shows/ for the page, listed again only after SHOWS_EVERY_S (one per
    app, used on its main thread)."""

    def __init__(self) -> None:
        self._t = float("-inf")
        self._names: list[str] = []

    def get(self, now: float) -> list[str]:
        if now - self._t >= SHOWS_EVERY_S:
            self._t, self._names = now, shows_available()
        return self._names


def gpu_memory() -> dict[str, Any] | None:
    """The GPU's memory where torch is already loaded with CUDA (never imports torch)."""
    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_available():
            return None
        free, total = torch.cuda.mem_get_info()
        return {"name": torch.cuda.get_device_name(0), "memory_used_mb": round((total - free) / 2**20, 1),
                "memory_total_mb": round(total / 2**20, 1)}
    except Exception:  # a GPU error must not stop the status
        return None


def health(app: App) -> tuple[bool, str]:
    """Healthy while every stage's thread is alive and working (the display loop's own
    liveness is the snapshot's freshness, which the server checks)."""
    problems = []
    for worker in app.workers:
        st = worker.status()
        if not st.alive:
            problems.append(f"the {app.stage_of(worker)} stage has stopped")
        elif st.seconds_since_beat > HEALTH_STALL_S:
            problems.append(f"the {app.stage_of(worker)} stage has not worked for {st.seconds_since_beat:.0f} s")
    return (not problems, "; ".join(problems) or "ok")


def status(app: App, now: float, shows: ShowsList) -> dict[str, Any]:
    """The status snapshot (web/bridge.py STATUS_KEYS), made on the main thread."""
    ctl, st = app.control, app.state
    show = app.show
    gw = app.generator_worker
    counters = app.counters.snapshot()
    seen = st.seen
    cue = {"index": st.cue_index, "number": st.cue_index + 1 if st.cue_index >= 0 else 0, "name": ctl.cue_name(),
           "time_left_s": ctl.time_left(now)}
    snapshot: dict[str, Any] = {
        "t": now,
        "show": show.show.name,
        "show_file": show.path.stem if show.path else "",
        "shows": shows.get(now),
        "cue": cue,
        "cues": [{"number": i + 1, "name": c.name} for i, c in enumerate(show.cues)],
        "prompt": st.prompt.text,
        "presence": bool(seen and seen.presence),
        "people": int(seen.people) if seen else 0,
        "scene": scene_words(seen, show.scene).summary(),
        "rates": {k: round(v, 2) for k, v in app.stage_rates().items()},
        "drops": app.drop_counts(),
        "generator": gw.active_name if gw is not None else "",
        "model": gw.active_model if gw is not None else "",
        "gpu": gpu_memory(),
        "uptime_s": round(now - app.started_t, 1),
        "restarts": counters.restarts,
        "errors": [error_entry(e.stage, e.reason, round(time.time() - e.t, 1)) for e in counters.recent_errors],
        "listening": st.listening,
        "blackout": st.blackout,
        "strength": st.params.strength,
        "curation": {"enabled": show.curation.enabled, "timeout_s": show.curation.timeout_s,
                     "on_timeout": show.curation.on_timeout},
        "queue": ctl.queue_snapshot(),
    }
    if show.web.show_words:
        snapshot["words"] = {"text": st.caption_text, "english": st.last_transcript, "age_s": None}
    return snapshot


def metrics(app: App, now: float) -> MetricsSnapshot:
    counters = app.counters.snapshot()
    presenter = app.presenter
    return MetricsSnapshot(
        frames_presented=presenter.presented_frames if presenter is not None else 0,
        rates=app.stage_rates(), drops=app.drop_counts(), transcripts=counters.transcripts,
        rejections=counters.rejections, errors=counters.errors, restarts=counters.restarts,
        model_load_s=counters.model_load_s, uptime_s=now - app.started_t)
