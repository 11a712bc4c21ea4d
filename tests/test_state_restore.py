"""The show state survives a restart, end to end: the real app (`python run.py`) as a process,
a cue fired and strength changed over OSC on loopback UDP, SIGTERM, a second process on the same
`--state` file answering /jadong/cue and /jadong/strength queries with what the first one had.
And a trial run (`--seconds` without `--state`) writes no state at all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

from peers import read_events

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

SHOW = """
[show]
name = "restore-test"
[camera]
source = "none"
[microphone]
source = "none"
[prompt]
initial = "a calm sea at dawn"
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
strength = 0.3
"""
LISTENING = re.compile(r"OSC: listening on udp 127\.0\.0\.1:(\d+)")


class RunningShow:
    """`python run.py SHOW ...` headless, its stderr read on a thread (the OSC port is in it)."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, SDL_VIDEODRIVER="dummy")
        env.pop("DISPLAY", None)
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def osc_port(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = LISTENING.search(line)
                if match:
                    return int(match.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("the show's OSC server did not start:\n" + "".join(self.lines)[-3000:])

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._reader.join(5.0)
        return code


def client_for(port: int) -> SimpleUDPClient:
    c = SimpleUDPClient("127.0.0.1", port)
    c._sock.bind(("127.0.0.1", 0))  # replies come back to this port
    return c


def ask(c: SimpleUDPClient, address: str) -> tuple:
    """A value query: the address without arguments; the reply carries the value."""
    c.send_message(address, [])
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        data = c.receive(10.0)
        reply = OscMessage(data)
        if reply.address == address:
            return tuple(reply.params)
        assert reply.address != "/jadong/error", reply.params
    raise AssertionError(f"no reply to {address}")


def test_cue_and_strength_survive_sigterm_and_a_new_process(tmp_path):
    show = tmp_path / "restore-test.toml"
    show.write_text(SHOW, encoding="utf-8")
    state = tmp_path / "saved" / "state.json"
    first = RunningShow(str(show), "--state", str(state), "--seconds", "120", "--log", str(tmp_path / "a.jsonl"))
    try:
        c = client_for(first.osc_port())
        c.send_message("/jadong/cue/go", "storm")  # sets strength 0.3 ...
        c.send_message("/jadong/strength", 0.8)  # ... which the performer then changes
        assert ask(c, "/jadong/cue") == (2, "storm")
        assert ask(c, "/jadong/strength")[0] == pytest.approx(0.8)
        deadline = time.monotonic() + 10.0  # saved within about half a second of the change
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        c.close()
    finally:
        code = first.stop()
    assert code == 0, "".join(first.lines)[-3000:]
    saved = json.loads(state.read_text(encoding="utf-8"))
    assert (saved["cue_index"], saved["cue_name"], saved["schema"]) == (1, "storm", 1)
    assert saved["strength"] == pytest.approx(0.8)

    second = RunningShow(str(show), "--state", str(state), "--seconds", "120", "--log", str(tmp_path / "b.jsonl"))
    try:
        c = client_for(second.osc_port())
        assert ask(c, "/jadong/cue") == (2, "storm")
        assert ask(c, "/jadong/strength")[0] == pytest.approx(0.8)  # not the cue's 0.3: restored, not re-fired
        assert ask(c, "/jadong/prompt") == ("a storm at sea",)
        c.close()
    finally:
        code = second.stop()
    assert code == 0, "".join(second.lines)[-3000:]
    records = read_events(tmp_path / "b.jsonl")
    restored = [r for r in records if r["event"] == "state" and r.get("action") == "restored"]
    assert restored and restored[0]["cue"] == 2 and restored[0]["cue_name"] == "storm"
    assert not [r for r in records if r["event"] == "cue"]  # the cue was not fired again


def test_a_trial_run_reads_and_writes_no_state(tmp_path):
    name = f"trial-{uuid.uuid4().hex[:8]}"
    show = tmp_path / f"{name}.toml"
    show.write_text(SHOW, encoding="utf-8")
    project_state = ROOT / "state"
    before = set(project_state.iterdir()) if project_state.is_dir() else set()
    run = RunningShow(str(show), "--seconds", "4", "--log", str(tmp_path / "events.jsonl"))
    try:
        c = client_for(run.osc_port())
        c.send_message("/jadong/cue/go", "storm")
        c.send_message("/jadong/strength", 0.9)
        assert ask(c, "/jadong/strength")[0] == pytest.approx(0.9)
        c.close()
        code = run.proc.wait(60)
    finally:
        run.stop()
    assert code == 0, "".join(run.lines)[-3000:]
    after = set(project_state.iterdir()) if project_state.is_dir() else set()
    assert not (project_state / f"{name}.json").exists()
    assert not {p for p in after - before if name in p.name}
    assert not list(tmp_path.rglob("*.json"))
    records = read_events(tmp_path / "events.jsonl")
    assert not [r for r in records if r["event"] == "state" or r.get("stage") == "state"]


def test_a_switch_back_to_a_show_brings_its_own_state(tmp_path, monkeypatch):
    """Per show, in the app itself: each show keeps its own file, and /jadong/show back to one
    brings its settings back (the app runs in this process with its state in tmp_path; the
    shows folder is tmp_path too)."""
    from installation.app import App, RunOptions
    from installation.control import show_control
    from installation.harness import start_show_thread, stop_show_thread
    from installation.show import load_show

    for name in ("alpha", "beta"):
        (tmp_path / f"{name}.toml").write_text(SHOW.replace("restore-test", name), encoding="utf-8")
    monkeypatch.setattr(show_control, "SHOWS_DIR", tmp_path)
    state = tmp_path / "state"
    app, thread = start_show_thread(load_show(tmp_path / "alpha.toml"),
                                    RunOptions(log_path=tmp_path / "events.jsonl", seconds=60, state_dir=state))
    assert isinstance(app, App)

    def switch(c: SimpleUDPClient, name: str) -> None:
        c.send_message("/jadong/show", name)
        deadline = time.monotonic() + 20.0
        while app.show.show.name != name and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.show.show.name == name

    try:
        assert app.osc is not None
        c = client_for(app.osc.port)
        c.send_message("/jadong/strength", 0.7)
        c.send_message("/jadong/cue/go", "dawn")
        assert ask(c, "/jadong/strength")[0] == pytest.approx(0.7)
        switch(c, "beta")
        assert ask(c, "/jadong/strength")[0] == pytest.approx(0.5)  # beta's own, from its [generator]
        c.send_message("/jadong/strength", 0.2)
        assert ask(c, "/jadong/strength")[0] == pytest.approx(0.2)
        switch(c, "alpha")
        assert ask(c, "/jadong/strength")[0] == pytest.approx(0.7)
        assert ask(c, "/jadong/cue") == (1, "dawn")
        c.close()
    finally:
        assert stop_show_thread(app, thread)
    alpha = json.loads((state / "alpha.json").read_text(encoding="utf-8"))
    beta = json.loads((state / "beta.json").read_text(encoding="utf-8"))
    assert alpha["strength"] == pytest.approx(0.7) and alpha["cue_name"] == "dawn"
    assert beta["strength"] == pytest.approx(0.2) and beta["cue_index"] == -1


def test_a_folder_for_state_is_a_clear_error(tmp_path):
    show = tmp_path / "restore-test.toml"
    show.write_text(SHOW, encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), str(show), "--state", str(tmp_path), "--seconds", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
    assert done.returncode == 2
    assert f"error: --state {tmp_path}: is a folder; give a file" in done.stderr
    assert "Traceback" not in done.stderr
