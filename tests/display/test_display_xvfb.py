"""The presenter in a real X window: Xvfb stands in for the monitor, and a screenshot taken
from outside the process (ImageMagick `import`) must show exactly what was presented."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

# The presenter, run in its own process with DISPLAY set and SDL_VIDEODRIVER unset, shows
# four solid quadrants, reports what it opened and waits for the screenshot.
CHILD = r"""
import json, sys
import numpy as np
from installation.display.presenter import Presenter, list_monitors
from installation.core.messages import GeneratedFrame, GenerationParams, Prompt
from installation.show import DisplayConfig

mode = sys.argv[1]
img = np.zeros((360, 640, 3), np.uint8)
img[:180, :320] = (255, 0, 0); img[:180, 320:] = (0, 255, 0)
img[180:, :320] = (0, 0, 255); img[180:, 320:] = (255, 255, 0)
p = Presenter(DisplayConfig(mode=mode, width=1280, height=720, fps=30, crossfade_s=0,
                            monitor=int(sys.argv[2])), title="xvfb test",
              record_path=sys.argv[3] if len(sys.argv) > 3 else None,
              fallback_to_headless=False).open()
p.show_frame(GeneratedFrame(img, Prompt("q"), GenerationParams(), "test", "none"))
p.set_label("label")
for _ in range(10):
    p.poll_events(); p.render()
print(json.dumps(dict(mode=p.mode, size=p.size, note=p.mode_note, monitors=list_monitors())), flush=True)
sys.stdin.readline()  # hold the window while the test takes its screenshot
for _ in range(2):
    p.poll_events(); p.render()
p.close()
print("closed", flush=True)
"""


def _free_display() -> int:
    for n in range(91, 140):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    pytest.skip("no free X display number")


@pytest.fixture
def xvfb():
    if not (shutil.which("Xvfb") and shutil.which("xdpyinfo") and shutil.which("import")):
        pytest.skip("Xvfb, xdpyinfo and ImageMagick's import are installed by `make setup`")
    n = _free_display()
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["xdpyinfo", "-display", f":{n}"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"Xvfb :{n} did not start")
            time.sleep(0.05)
        yield f":{n}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_and_shoot(display: str, mode: str, monitor: int, shot: Path, record: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = display
    child = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(monitor), str(record)], cwd=ROOT, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        line = child.stdout.readline()
        if not line:
            raise AssertionError(f"presenter failed: {child.stderr.read()}")
        info = json.loads(line)
        subprocess.run(["import", "-display", display, "-window", "root", str(shot)], check=True,
                       timeout=30, capture_output=True)
        out, err = child.communicate("\n", timeout=30)
        assert "closed" in out, err
        info["stderr"] = err
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return info


def _read_png(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"{path} is not an image"
    return bgr[:, :, ::-1]


@pytest.mark.parametrize("mode, monitor", [("fullscreen", 0), ("windowed", 0), ("fullscreen", 5)])
def test_presented_quadrants_reach_the_screen(xvfb, tmp_path, mode, monitor):
    shot_path = tmp_path / "shot.png"
    info = _run_and_shoot(xvfb, mode, monitor, shot_path, tmp_path / "rec.avi")
    assert info["mode"] == mode and info["size"] == [1280, 720], info
    assert info["monitors"] == [{"index": 0, "width": 1280, "height": 720}]
    shot = _read_png(shot_path)
    assert shot.shape == (720, 1280, 3)
    for (y, x), color in {(200, 320): (255, 0, 0), (200, 960): (0, 255, 0),
                          (540, 320): (0, 0, 255), (540, 960): (255, 255, 0)}.items():
        assert tuple(int(v) for v in shot[y, x]) == color, (mode, y, x)
    # The label box sits over the red quadrant, top left.
    assert (np.abs(shot[5:40, 5:80].astype(int) - (255, 0, 0)).max(axis=2) > 30).sum() > 100
    if monitor > 0:
        assert f"display.monitor={monitor}" in info["stderr"] and "using monitor 0" in info["stderr"]
    # What the window showed was recorded too (read from the window's own pixel buffer).
    import cv2

    cap = cv2.VideoCapture(str(tmp_path / "rec.avi"))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (720, 1280, 3)
    assert np.abs(frame[540, 960].astype(int) - (0, 255, 255)).max() < 30  # yellow, as BGR
