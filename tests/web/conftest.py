"""The web server against real parts: a ShowControl driven through the control tests' recording
host, the app's controls queue (a DropOldestQueue of Controls) drained by a thread that does
what the app's main thread does (ShowControl.handle, then a fresh status snapshot), and the
server on 127.0.0.1, port 0, spoken to over real HTTP.

Fixtures: `rig` (a running server with password PASSWORD; `rig.call(...)` makes a request) and
`make_rig` (the same with other settings). Browser and curation tests may use them too.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from control.test_control import SHOW, RecordingHost
from installation.control.show_control import ShowControl
from installation.core.channels import DropOldestQueue
from installation.core.messages import Control, GenerationParams
from installation.show import WebConfig, parse_show
from installation.web.auth import Lockout, RateLimit
from installation.web.bridge import SnapshotBridge, error_entry
from installation.web.server import WebLimits, WebServer
from web.live_app import Answer as Response  # one HTTP answer type for both rigs

PASSWORD = "correct horse battery staple"
# Generous rate limits for tests that are not about them; a short lockout so a test can wait it out.
TEST_LIMITS = WebLimits(per_client=RateLimit(1000.0, 1000.0), everyone=RateLimit(1000.0, 1000.0),
                        lockout=Lockout(free=3, base_s=0.5, max_s=2.0), control_timeout_s=1.0, heartbeat_s=0.5)


def status_snapshot(ctl: ShowControl, started: float) -> dict[str, Any]:
    """A status dict as bridge.STATUS_KEYS describes it, made from the show control's state
    (what the app builds on its main thread)."""
    st = ctl.state
    queue = ctl.queue_snapshot() if hasattr(ctl, "queue_snapshot") else []
    return {
        "t": time.monotonic(),
        "show": ctl.show.show.name,
        "show_file": "test",
        "shows": ["test", "other"],
        "cue": {"index": st.cue_index, "number": st.cue_index + 1 if st.cue_index >= 0 else 0,
                "name": ctl.cue_name(), "time_left_s": None},
        "cues": [{"number": i + 1, "name": c.name} for i, c in enumerate(ctl.show.cues)],
        "prompt": st.prompt.text,
        "words": {"text": st.last_transcript, "english": st.words, "age_s": 0.0},
        "presence": False,
        "people": 0,
        "scene": "",
        "rates": {"display": 60.0, "generator": 12.5},
        "drops": {"audio": 0, "controls": 0},
        "generator": "preview",
        "model": "",
        "gpu": None,
        "uptime_s": round(time.monotonic() - started, 1),
        "restarts": {},
        "errors": [error_entry("control", st.last_error, 0.0)] if st.last_error else [],
        "listening": st.listening,
        "blackout": st.blackout,
        "strength": st.params.strength,
        "curation": {"enabled": ctl.show.curation.enabled, "timeout_s": ctl.show.curation.timeout_s,
                     "on_timeout": ctl.show.curation.on_timeout},
        "queue": queue,
    }


class ShowLoop:
    """The app's main thread, as far as the web server sees it: applies queued controls in
    order and publishes a status snapshot after each and every 50 ms."""

    def __init__(self, ctl: ShowControl, bridge: SnapshotBridge) -> None:
        self.ctl = ctl
        self.bridge = bridge
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.handled = 0

    def start(self) -> None:
        self._stop.clear()
        self.bridge.publish_status(status_snapshot(self.ctl, self.started))
        self._thread = threading.Thread(target=self._run, name="show-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            control = self.bridge.controls.get(timeout=0.05)
            if control is not None:
                self.ctl.handle(control)
                self.handled += 1
            self.bridge.publish_status(status_snapshot(self.ctl, self.started))


@dataclass
class Rig:
    server: WebServer
    ctl: ShowControl
    host: RecordingHost
    bridge: SnapshotBridge
    loop: ShowLoop
    tmp: Path
    password: str = PASSWORD
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return self.server.port

    def call(self, method: str, path: str, body: bytes | str | dict | None = None, *,
             password: str | None = "", headers: dict[str, str] | None = None, timeout: float = 10.0) -> Response:
        """One request with http.client, which sends `path` exactly as given (no normalising).
        password "" (the default) sends the rig's; None sends no Authorization header."""
        hdrs = dict(headers or {})
        if password is not None:
            hdrs.setdefault("Authorization", f"Bearer {password or self.password}")
        if isinstance(body, dict):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def control(self, address: str, *args: Any, **kwargs: Any) -> Response:
        return self.call("POST", "/api/control", {"address": address, "args": list(args)}, **kwargs)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.server.stop()
            self.loop.stop()


@pytest.fixture
def make_rig(tmp_path: Path, no_thread_leak: None) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(*, cfg: WebConfig | None = None, password: str | None = PASSWORD, limits: WebLimits = TEST_LIMITS,
             show: dict[str, Any] | None = None, environ: dict[str, str] | None = None, start_loop: bool = True) -> Rig:
        host = RecordingHost()
        ctl = ShowControl(parse_show(show or SHOW, Path("test.toml")), host, GenerationParams(strength=0.5, steps=1))
        bridge = SnapshotBridge(DropOldestQueue[Control]("controls", maxsize=64))
        loop = ShowLoop(ctl, bridge)
        shows = tmp_path / "shows"
        shows.mkdir(exist_ok=True)
        for name in ("test", "other"):
            (shows / f"{name}.toml").write_text("", encoding="utf-8")
        (tmp_path / "captures").mkdir(exist_ok=True)
        server = WebServer(bridge, cfg or WebConfig(), port=0, password=password, environ=environ or {},
                           captures_dir=tmp_path / "captures", shows_dir=shows, limits=limits)
        rig = Rig(server, ctl, host, bridge, loop, tmp_path, password=password or "")
        rigs.append(rig)
        if start_loop:
            loop.start()
        else:
            bridge.publish_status(status_snapshot(ctl, loop.started))
        server.start()
        return rig

    yield make
    for rig in rigs:
        rig.stop()


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()
