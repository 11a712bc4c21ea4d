"""`python run.py SHOW --ndi NAME` end to end: the default show runs headless as its own process
with a camera clip that alternates red and green; a real NDI receiver in the test (ndi_peer.py,
discovery by address at 127.0.0.1: no mDNS here) finds NAME within seconds, receives at least 5
frames a second at the screen's size, and sees the clip's colours come and go in the presented
picture; the run exits 0 when its seconds are up. Where the NDI runtime cannot load (ndi-python
without libndi), the run says so and the show runs; `check` says it too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from installation.show import Show, load_show
from installation.tools import check_camera, check_ndi
from ndi_peer import ROOT, Finder, PatternSender, Receiver, env_without_libndi

pytestmark = pytest.mark.slow

SECONDS = 8
RED, GREEN = (230, 20, 20), (20, 210, 20)


def _env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(base or os.environ, SDL_VIDEODRIVER="dummy")
    env.pop("DISPLAY", None)
    return env


def _clip(path: Path, fps: int = 10, seconds: int = 12) -> Path:
    """Red for a second, green for a second, and so on (MJPG, OpenCV's own encoder)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    assert writer.isOpened()
    for i in range(fps * seconds):
        rgb = RED if (i // fps) % 2 == 0 else GREEN
        writer.write(np.full((240, 320, 3), rgb[::-1], np.uint8))
    writer.release()
    return path


def _run(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "default", "--headless", "--osc-port", "0",
                             "--mic", "none", "--generator", "preview", "--log", str(log), *args],
                            cwd=ROOT, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def test_run_with_ndi_sends_what_the_screen_presents(tmp_path):
    name = f"jadong-e2e {os.getpid()}"
    log = tmp_path / "events.jsonl"
    started = time.monotonic()
    proc = _run(["--seconds", str(SECONDS), "--ndi", name, "--camera", str(_clip(tmp_path / "cam.avi"))], {}, log)
    received: list[tuple[float, np.ndarray]] = []
    sizes: set = set()
    try:
        with Finder() as finder:  # asks 127.0.0.1 by unicast
            source = finder.wait_for(name, timeout=20)
            found_after = time.monotonic() - started
            assert source is not None, f"{name!r} not found; seen {finder.names()}; run: {proc.poll()}"
        with Receiver(source) as rx:
            while proc.poll() is None:
                frame = rx.frame(timeout=0.5, step=8)  # a look at every 8th pixel: the test keeps up
                if frame is not None:
                    received.append((time.monotonic(), frame.reshape(-1, 3).mean(0)))
                    sizes.add(rx.size)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    # Found within seconds of the process starting (imports and the window included).
    assert found_after < 15, found_after
    assert sizes == {(1280, 720)}  # the screen's size (the show's display), at least 256 wide
    span = received[-1][0] - received[0][0]
    gaps = np.diff([t for t, _ in received])
    assert len(received) >= 5 * span and span > SECONDS / 2, (len(received), span, found_after, gaps.max())
    # What the screen presents: the preview paints over the camera clip, so the picture leans red,
    # then green, then red... A stale, frozen or channel-swapped stream fails here.
    means = np.array([m for _, m in received])
    red = means[:, 0] - means[:, 1] > 40
    green = means[:, 1] - means[:, 0] > 40
    assert red.sum() >= 5 and green.sum() >= 5, means[::10].round()
    switches = int(np.count_nonzero(np.diff(red[red | green].astype(int))))
    assert switches >= 3, (switches, means[::10].round())
    sending = [e for e in _events(log) if e["event"] == "ndi" and e.get("state") == "sending"]
    assert sending and sending[0]["source"].endswith(f"({name})")


def test_run_with_ndi_where_the_runtime_cannot_load_runs_the_show_and_says_why(tmp_path):
    log = tmp_path / "events.jsonl"
    proc = _run(["--seconds", "3", "--ndi", "nowhere", "--camera", "none"], env_without_libndi(tmp_path), log)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert "NDI output 'nowhere' is off" in out and "libndi.so" in out and "Traceback" not in out
    events = _events(log)
    errors = [e for e in events if e["event"] == "error" and e.get("stage") == "ndi"]
    assert len(errors) == 1 and "ndi-python" in errors[0]["remedy"]
    assert any(e["event"] == "frame" and e.get("first") for e in events)  # the show ran


def _ndi_camera_show(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "ndi-camera.toml"
    path.write_text(f'[show]\nname = "ndi camera"\n[camera]\nsource = "{source}"\nndi_ips = ["127.0.0.1"]\n')
    return path


def test_check_reports_the_runtime_and_receives_from_an_ndi_camera(tmp_path):
    name = f"jadong-check {os.getpid()}"
    with PatternSender(name, colour=(90, 90, 200), size=(320, 180)):
        show = load_show(_ndi_camera_show(tmp_path, f"ndi:{name}"))
        [runtime], [camera] = check_ndi(show), check_camera(show)
    assert runtime.ok and runtime.needed and "NDI runtime 6." in runtime.detail and "camera.source" in runtime.detail
    assert camera.ok and "receives (320x180" in camera.detail
    [missing] = check_camera(load_show(_ndi_camera_show(tmp_path, f"ndi:{name} gone")))
    assert not missing.ok and "no NDI source by that name" in missing.detail and "ndi_ips" in missing.remedy
    assert not check_ndi(Show())[0].needed  # a show without NDI loads nothing


def test_check_says_when_the_runtime_cannot_load(tmp_path):
    """`check`'s NDI answer, printed as `python run.py check` prints it, with ndi-python's libndi
    missing (the rest of `check`, GPU and models, is tested elsewhere and takes seconds)."""
    show = _ndi_camera_show(tmp_path, "ndi:Stage")
    code = ("import sys\n"
            "from installation.show import load_show\n"
            "from installation.tools import check_ndi, print_results\n"
            f"show = load_show({str(show)!r})\n"
            "sys.exit(print_results(show, check_ndi(show)))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(env_without_libndi(tmp_path)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "NDI runtime:" in x)
    assert "FAIL" in line and "libndi.so" in line and "camera.source" in line
    assert "pip install" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("value, words", [("", "needs a name"), ("x" * 101, "at most 100")])
def test_a_bad_ndi_name_is_refused_by_the_option(value, words, capsys):
    from installation.cli import _run_parser

    with pytest.raises(SystemExit):
        _run_parser().parse_args(["--ndi", value])
    err = capsys.readouterr().err
    assert "argument --ndi" in err and words in err


def test_an_ndi_sender_feeds_a_shows_camera_and_the_screen_follows(tmp_path):
    """A real App (on a thread, headless): its camera is an NDI source in the test, the preview
    paints the camera image unchanged (strength 0), and what the screen presents follows the
    sender's colour, red, then blue."""
    from installation.app import RunOptions
    from installation.harness import start_show_thread, stop_show_thread
    from installation.show import parse_show

    name = f"jadong-feed {os.getpid()}"
    show = parse_show({
        "show": {"name": "ndi in"}, "microphone": {"source": "none"}, "osc": {"enabled": False},
        "camera": {"source": f"ndi:{name}", "ndi_ips": ["127.0.0.1"], "retry_s": 0.5},
        "generator": {"kind": "preview", "mode": "img2img", "strength": 0.0, "width": 64, "height": 64},
        "display": {"mode": "headless", "width": 320, "height": 180, "fps": 30, "crossfade_s": 0.0},
    }, tmp_path / "ndi-in.toml")

    def screen_is(colour) -> bool:
        shot = app.presenter.screenshot()
        return bool(np.abs(shot[60:120, 100:220].reshape(-1, 3).mean(0) - colour).max() < 12)

    with PatternSender(name, colour=RED, size=(160, 120)) as sender:
        app, thread = start_show_thread(show, RunOptions(log_path=tmp_path / "events.jsonl"))
        try:
            deadline = time.monotonic() + 20
            while not screen_is(RED) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert screen_is(RED), app.presenter.screenshot()[90, 160]
            sender.set_colour((20, 40, 220))
            deadline = time.monotonic() + 10
            while not screen_is((20, 40, 220)) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert screen_is((20, 40, 220)), app.presenter.screenshot()[90, 160]
        finally:
            assert stop_show_thread(app, thread)
    camera = [e for e in _events(tmp_path / "events.jsonl") if e["event"] == "camera"]
    assert camera[0]["state"] == "ok" and camera[0]["source"] == f"NDI {name!r}"
