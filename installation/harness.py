"""A show running on a background thread, for benchmarks and tests that act as its audience
(an OSC peer, a microphone feed) from the calling thread. pygame runs on that thread too,
which SDL's offscreen and dummy drivers allow; a real window wants the main thread (run.py)."""

from __future__ import annotations

import threading
import time

from .app import App, RunOptions
from .show import Show


def start_show_thread(show: Show, options: RunOptions, timeout: float = 30.0) -> tuple[App, threading.Thread]:
    """Start `show` and wait until its first frame is on screen and OSC (if enabled) listens."""
    app = App(show, options)
    thread = threading.Thread(target=app.run, name=f"show:{show.show.name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        osc_ready = app.osc is not None or not show.osc.enabled
        if osc_ready and app.presenter is not None and app.presenter.first_frame_t is not None:
            return app, thread
        time.sleep(0.05)
    stop_show_thread(app, thread)
    raise RuntimeError(f"show {show.show.name!r} did not present a frame within {timeout:.0f} s")


def stop_show_thread(app: App, thread: threading.Thread, timeout: float = 20.0) -> bool:
    """Ask the show to stop and wait for it; True if it did."""
    app.stop_event.set()
    thread.join(timeout)
    return not thread.is_alive()
