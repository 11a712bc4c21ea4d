"""A real App with the operator's page on 127.0.0.1, port 0, for the tests that talk to a
running show over HTTP or through a browser (test_page_browser.py, test_health_stall.py).

The show runs on a background thread (installation.harness), the test on the main thread.
App.run wants the main thread only for its signal handlers, and skips them elsewhere
(App._install_signal_handlers); selenium and pytest's own waiting and asserting are simplest
on the main thread, and the harness already starts shows this way for the OSC tests.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from typing import Any

from installation.app import App, RunOptions
from installation.harness import start_show_thread, stop_show_thread
from installation.show import Show, parse_show

PASSWORD = "gallery-staff-7"


def page_show(path: Path, **sections: Any) -> Show:
    """A quick show for the page: no camera, no microphone, the preview painting a 160×96 frame
    in the prompt's colours (red roses, then cues in blue and orange), headless, no OSC, and
    the operator's password in [web]. `sections` replace whole sections."""
    spec: dict[str, Any] = {
        "show": {"name": "page-test"},
        "camera": {"source": "none"},
        "microphone": {"source": "none"},
        "prompt": {"initial": "a crimson field of red roses"},
        "generator": {"kind": "preview", "width": 160, "height": 96, "max_fps": 10},
        "display": {"mode": "headless", "width": 320, "height": 180, "fps": 30},
        "osc": {"enabled": False},
        "web": {"password": PASSWORD},
        "cues": [{"name": "dawn", "prompt": "a deep blue sky over the sea"},
                 {"name": "storm", "prompt": "a burning orange fire"}],
    }
    spec.update(sections)
    return parse_show(spec, path)


def wait_until(found: Callable[[], Any], seconds: float, what: str, every: float = 0.05) -> Any:
    """The first truthy value `found()` returns within `seconds`; AssertionError naming `what` otherwise."""
    deadline = time.monotonic() + seconds
    while True:
        value = found()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        time.sleep(every)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LiveApp:
    """A running App with its page; `events()` reads its event log."""

    app: App
    thread: Thread
    log: Path

    @property
    def port(self) -> int:
        return int(self.app.web.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def events(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(x) for x in self.log.read_text(encoding="utf-8").splitlines() if x.strip()]

    def wait_event(self, found: Callable[[dict[str, Any]], bool], seconds: float, what: str) -> dict[str, Any]:
        """The first event in the log that `found` accepts, waiting for it up to `seconds`."""
        try:
            return wait_until(lambda: next((r for r in self.events() if found(r)), None), seconds, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last events: {self.events()[-12:]}") from None

    def request(self, method: str, path: str, body: bytes | dict | None = None, *, password: str | None = PASSWORD,
                headers: dict[str, str] | None = None, timeout: float = 10.0) -> Answer:
        """One HTTP request to the page's server (http.client sends `path` as given)."""
        hdrs = dict(headers or {})
        if password is not None:
            hdrs.setdefault("Authorization", f"Bearer {password}")
        if isinstance(body, dict):
            body = json.dumps(body).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def stop(self) -> None:
        assert stop_show_thread(self.app, self.thread), "the show did not stop within 20 s"


def start_app(show: Show, log: Path, seconds: float | None = 300.0) -> LiveApp:
    """`show` with the page on a free port, once its first frame is presented. `seconds` stops
    it by itself should a test never stop it."""
    app, thread = start_show_thread(show, RunOptions(log_path=log, seconds=seconds, web_port=0))
    if app.web is None:
        stop_show_thread(app, thread)
        raise AssertionError(f"the operator's page did not start; events: {log.read_text(encoding='utf-8')[-2000:]}")
    return LiveApp(app, thread, log)


@contextmanager
def stalled_generator(app: App, hold_s: float = 60.0) -> Iterator[None]:
    """The generator stage stalls for real while inside: its worker's next step blocks and never
    beats (as a GPU call that hangs would), the display holding the last frame. On leaving, the
    real step is back and the blocked one returns, so the stage beats and paints again."""
    worker = app.generator_worker
    assert worker is not None, "the show has no generator stage"
    release = threading.Event()
    worker.step = lambda: release.wait(hold_s)  # the instance's step: Worker.run calls self.step()
    try:
        yield
    finally:
        del worker.step
        release.set()
