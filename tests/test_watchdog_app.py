"""The real app under a systemd-style notify socket: `python run.py` as a process with
NOTIFY_SOCKET and WATCHDOG_USEC set, as systemd sets them for deploy/jadong.service. It says
READY once the first frame is on screen, then WATCHDOG every half period and a STATUS line when
the state changes, and STOPPING at the end. When the display loop hangs (the `display_hang`
fault: the loop sleeps as a hung GPU driver would), the pings stop for as long as it hangs;
under systemd, WatchdogSec then kills and restarts the process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pythonosc.udp_client import SimpleUDPClient

from installation.app import App, RunOptions
from installation.core.faults import DISPLAY_HANG_S
from installation.show import parse_show
from notify_socket import NotifySocket

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

WATCHDOG_USEC = 200_000  # pings every 0.1 s
SHOW = """
[show]
name = "watchdog-test"
[camera]
source = "none"
[microphone]
source = "none"
[generator]
kind = "preview"
width = 160
height = 96
max_fps = 10
[display]
mode = "headless"
width = 320
height = 180
fps = 30
[osc]
port = 0
[[cues]]
name = "dawn"
prompt = "a quiet dawn"
[[cues]]
name = "storm"
prompt = "a storm at sea"
"""


@pytest.fixture
def receiver(tmp_path):
    r = NotifySocket(tmp_path)
    yield r
    r.close()


def osc_port(lines: list[str], timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            if "OSC: listening on udp 127.0.0.1:" in line:
                return int(line.rsplit(":", 1)[1])
        time.sleep(0.05)
    raise AssertionError("no OSC port in the app's output:\n" + "".join(lines)[-3000:])


def test_ready_then_watchdog_pings_status_and_stopping(tmp_path, receiver):
    show = tmp_path / "watchdog-test.toml"
    show.write_text(SHOW, encoding="utf-8")
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", NOTIFY_SOCKET=receiver.env_value,
               WATCHDOG_USEC=str(WATCHDOG_USEC))
    env.pop("DISPLAY", None)
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), str(show), "--seconds", "60",
                             "--log", str(tmp_path / "events.jsonl")], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        ready = receiver.wait_for("READY", timeout=60.0)[0]
        assert ready.fields["READY"] == "1" and "show watchdog-test" in ready.fields["STATUS"]
        pings = receiver.wait_for("WATCHDOG", count=5, timeout=20.0)
        assert all(p.t > ready.t for p in pings)
        c = SimpleUDPClient("127.0.0.1", osc_port(lines))
        c.send_message("/jadong/cue/go", "storm")
        status = receiver.wait_for("STATUS", count=2, timeout=10.0)
        deadline = time.monotonic() + 10.0
        while not any("cue 2 storm" in m.fields["STATUS"] for m in status) and time.monotonic() < deadline:
            time.sleep(0.05)
            status = receiver.with_field("STATUS")
        assert any("cue 2 storm" in m.fields["STATUS"] for m in status), status
        c.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        reader.join(5.0)
    assert code == 0, "".join(lines)[-3000:]
    stopping = receiver.wait_for("STOPPING")
    messages = receiver.received()
    assert messages[0] is ready and messages.index(stopping[0]) > messages.index(pings[-1])
    # Pings every half period, not every frame (the loop turns 30 times a second): arrival
    # times jitter on a loaded machine, so the middle gap is what is checked.
    times = [m.t for m in receiver.with_field("WATCHDOG")]
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    assert gaps and gaps[len(gaps) // 2] >= WATCHDOG_USEC / 2e6 * 0.9, gaps


def test_no_pings_while_the_display_loop_hangs(tmp_path, receiver, monkeypatch):
    """The hang is armed over OSC (`/jadong/fault display_hang`, accepted only with faults on, as
    the soak harness runs the app); the app runs in this process, on a thread, with the
    environment systemd gives it."""
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    show = parse_show({"show": {"name": "watchdog-test"}, "camera": {"source": "none"},
                       "microphone": {"source": "none"},
                       "generator": {"kind": "preview", "width": 160, "height": 96, "max_fps": 10},
                       "display": {"mode": "headless", "width": 320, "height": 180, "fps": 30},
                       "osc": {"port": 0}}, tmp_path / "watchdog-test.toml")
    app = App(show, RunOptions(log_path=tmp_path / "events.jsonl", seconds=60, faults=True))
    thread = threading.Thread(target=app.run, name="show:watchdog-test", daemon=True)
    thread.start()
    try:
        receiver.wait_for("READY", timeout=60.0)
        receiver.wait_for("WATCHDOG", count=3, timeout=20.0)
        assert app.osc is not None
        c = SimpleUDPClient("127.0.0.1", app.osc.port)
        armed_t = time.monotonic()
        c.send_message("/jadong/fault", "display_hang")
        c.close()
        time.sleep(DISPLAY_HANG_S + 1.5)
        after = receiver.with_field("WATCHDOG")
    finally:
        app.stop_event.set()
        thread.join(30)
    assert not thread.is_alive()
    times = [m.t for m in after]
    gaps = [(a, b) for a, b in zip(times, times[1:]) if a >= armed_t - 0.2]
    longest = max(gaps, key=lambda g: g[1] - g[0])
    # While the loop slept, nothing arrived: one gap as long as the hang (systemd's period is
    # 0.2 s here, so systemd would have killed it), then the pings resume.
    assert longest[1] - longest[0] >= DISPLAY_HANG_S * 0.95, gaps
    assert [t for t in times if t > longest[1]], "the pings did not resume after the hang"
    assert sum(1 for t in times if longest[0] < t < longest[1]) == 0
