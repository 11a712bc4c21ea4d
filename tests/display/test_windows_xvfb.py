"""Several windows on several monitors from one process (display/windows.py, display/outputs.py):
Xvfb with two screens stands in for two monitors, the outputs run in a child process with
DISPLAY set, and screenshots taken from outside (ImageMagick `import`, one per X screen) must
show each output's own stream. Keys come from the X server itself (XTest, as a keyboard would
send them) into whichever window the pointer is over; a window is closed as a window manager
closes it (WM_DELETE_WINDOW).

SDL sees an Xvfb started with two `-screen` options as two displays, but places a window on the
first display that contains the window's centre, and separate X screens all start at 0,0: with
two screens of the same size every window lands on the first. The second screen here is twice
the first's size, so its centre lies outside the first and each window lands on its own screen.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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
SCREENS = ((320, 240), (640, 480))

# Two outputs, each showing its own stream in its own window; commands on stdin, one JSON
# line of state back per command. The loop keeps rendering and polling events meanwhile.
CHILD = r"""
import json, select, sys
import numpy as np
from installation.core.messages import GeneratedFrame, GenerationParams, Prompt
from installation.display.outputs import build_outputs
from installation.show import parse_show

mode, size = sys.argv[1], json.loads(sys.argv[2])
outputs_cfg = [{"stream": 1, "monitor": 0, "mode": mode}, {"stream": 2, "monitor": 1, "mode": mode}]
outputs_cfg += json.loads(sys.argv[3])
if mode == "windowed":
    for out in outputs_cfg:
        out.update(width=size[0], height=size[1])
show = parse_show({"display": {"fps": 30, "crossfade_s": 0, "caption": False, "hud": False},
                   "streams": [{"name": "one"}, {"name": "two"}], "outputs": outputs_cfg})

def quadrants(colours):
    img = np.zeros((360, 640, 3), np.uint8)
    img[:180, :320], img[:180, 320:], img[180:, :320], img[180:, 320:] = colours
    return GeneratedFrame(img, Prompt("q"), GenerationParams(), "test", "none")

frames = {1: quadrants([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]),
          2: quadrants([(0, 255, 255), (255, 0, 255), (255, 255, 255), (255, 128, 0)])}
outputs = build_outputs(show, "xvfb windows").open()
outputs.show_frames(frames)
actions = []

def state():
    return {"actions": actions,
            "outputs": [{"mode": o.presenter.mode, "note": o.presenter.mode_note, "size": list(o.presenter.size),
                         "hud": o.presenter.hud_visible,
                         "placed_on": o.window.placed_on if o.window else None,
                         "presented": o.presenter.presented_frames, "fps": o.presenter.fps}
                        for o in outputs.outputs]}

for _ in range(10):
    actions += outputs.poll_events()
    outputs.render()
print(json.dumps(state()), flush=True)
while True:
    actions += outputs.poll_events()
    outputs.render()
    if not select.select([sys.stdin], [], [], 0)[0]:
        continue
    command = sys.stdin.readline().split()
    if not command or command[0] == "quit":
        break
    print(json.dumps(state()), flush=True)
outputs.close()
print("closed", flush=True)
"""


def _free_display() -> int:
    for n in range(141, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    pytest.skip("no free X display number")


@pytest.fixture
def two_screens():
    if not (shutil.which("Xvfb") and shutil.which("xdpyinfo") and shutil.which("import")):
        pytest.skip("Xvfb, xdpyinfo and ImageMagick's import are installed by `make setup`")
    n = _free_display()
    screens = [arg for i, (w, h) in enumerate(SCREENS) for arg in ("-screen", str(i), f"{w}x{h}x24")]
    proc = subprocess.Popen(["Xvfb", f":{n}", *screens, "-nolisten", "tcp"],
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


class Child:
    """The outputs in their own process, driven line by line."""

    def __init__(self, display: str, mode: str, size: tuple[int, int] = (200, 150),
                 more: list[dict] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "WAYLAND_DISPLAY")}
        env["DISPLAY"] = display
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, json.dumps(size), json.dumps(more or [])],
                                     cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.state = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"outputs failed: {self.proc.stderr.read()}")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        self.state = self._read()
        return self.state

    def close(self) -> str:
        out, err = self.proc.communicate("quit\n", timeout=30)
        assert "closed" in out, err
        return err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(child: Child, done, timeout: float = 10.0) -> dict:
    """The child's state once `done(state)` holds (it handles X events between our questions)."""
    deadline = time.monotonic() + timeout
    while not done(child.ask("state")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert done(child.state), child.state
    return child.state


def _shoot(display: str, screen: int, path: Path) -> np.ndarray:
    import cv2

    subprocess.run(["import", "-display", f"{display}.{screen}", "-window", "root", str(path)], check=True,
                   timeout=30, capture_output=True)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"{path} is not an image"
    return bgr[:, :, ::-1]


def _rgb(shot: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in shot[y, x])


class XTest:
    """The X server's own input: the pointer moved onto a screen and keys pressed there, as a
    keyboard and mouse would (libXtst, which x11-utils brings with xdpyinfo)."""

    def __init__(self, display: str) -> None:
        x11, xtst = ctypes.util.find_library("X11"), ctypes.util.find_library("Xtst")
        if not (x11 and xtst):
            pytest.skip("libX11 and libXtst are needed to type into the windows")
        self.x11, self.xtst = ctypes.CDLL(x11), ctypes.CDLL(xtst)
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        for name, args in (("XFlush", [ctypes.c_void_p]), ("XCloseDisplay", [ctypes.c_void_p]),
                           ("XKeysymToKeycode", [ctypes.c_void_p, ctypes.c_ulong]),
                           ("XStringToKeysym", [ctypes.c_char_p])):
            getattr(self.x11, name).argtypes = args
        self.x11.XStringToKeysym.restype = ctypes.c_ulong
        self.xtst.XTestFakeMotionEvent.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                   ctypes.c_ulong]
        self.xtst.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
        self.x11.XInternAtom.restype = ctypes.c_ulong
        self.x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self.x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        self.name = display
        self.dpy = self.x11.XOpenDisplay(display.encode())
        assert self.dpy, f"cannot open {display}"

    def point(self, screen: int, x: int, y: int) -> None:
        self.xtst.XTestFakeMotionEvent(self.dpy, screen, x, y, 0)
        self.x11.XFlush(self.dpy)

    def key(self, name: str) -> None:
        code = self.x11.XKeysymToKeycode(self.dpy, self.x11.XStringToKeysym(name.encode()))
        for down in (1, 0):
            self.xtst.XTestFakeKeyEvent(self.dpy, code, down, 0)
        self.x11.XFlush(self.dpy)

    def close_window(self, screen: int) -> None:
        """The window manager's close button on the one window on `screen`: WM_DELETE_WINDOW,
        the message a window manager sends (SDL turns it into a window's close event)."""
        listing = subprocess.run(["xwininfo", "-display", f"{self.name}.{screen}", "-root", "-children"],
                                 capture_output=True, text=True, check=True).stdout
        ids = [int(line.split()[0], 16) for line in listing.splitlines() if line.strip().startswith("0x")]
        assert len(ids) == 1, listing
        protocols = self.x11.XInternAtom(self.dpy, b"WM_PROTOCOLS", False)
        delete = self.x11.XInternAtom(self.dpy, b"WM_DELETE_WINDOW", False)
        event = _ClientMessage(type=33, send_event=True, window=ids[0], message_type=protocols, format=32)
        event.data[0] = delete  # and data[1], the time: CurrentTime (0)
        assert self.x11.XSendEvent(self.dpy, ids[0], False, 0, ctypes.byref(event))
        self.x11.XFlush(self.dpy)

    def close(self) -> None:
        self.x11.XCloseDisplay(self.dpy)


class _ClientMessage(ctypes.Structure):
    """Xlib's XClientMessageEvent, padded to the size of an XEvent (24 longs)."""

    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int), ("data", ctypes.c_long * 5), ("pad", ctypes.c_long * 12)]


# Stream 1's and stream 2's quadrants: top left, top right, bottom left, bottom right.
STREAM_1 = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
STREAM_2 = [(0, 255, 255), (255, 0, 255), (255, 255, 255), (255, 128, 0)]


def _quadrant_points(left: int, top: int, width: int, height: int) -> list[tuple[int, int]]:
    return [(left + width * fx // 4, top + height * fy // 4) for fy in (1, 3) for fx in (1, 3)]


def test_two_fullscreen_windows_each_show_their_own_stream(two_screens, tmp_path):
    # A third screen asks for a monitor that is not there: it runs headless, over nobody's picture.
    child = Child(two_screens, "fullscreen", more=[{"stream": 1, "monitor": 5}])
    try:
        outs = child.state["outputs"]
        assert [o["mode"] for o in outs] == ["fullscreen", "fullscreen", "headless"], outs
        assert "there is no monitor 5 (2 found: 0 to 1)" in outs[2]["note"]
        assert [o["placed_on"] for o in outs] == [0, 1, None]
        assert [tuple(o["size"]) for o in outs[:2]] == list(SCREENS)
        assert all(o["presented"] >= 1 for o in outs)
        for screen, colours in ((0, STREAM_1), (1, STREAM_2)):
            shot = _shoot(two_screens, screen, tmp_path / f"screen{screen}.png")
            assert shot.shape[:2] == SCREENS[screen][::-1]
            w, h = SCREENS[screen]
            for (x, y), colour in zip(_quadrant_points(0, 0, w, h), colours):
                assert _rgb(shot, x, y) == colour, (screen, x, y)

        # Keys go to the window under the pointer: h toggles that window's HUD only; space is GO.
        xtest = XTest(two_screens)
        try:
            xtest.point(1, 320, 240)
            time.sleep(0.3)
            xtest.key("h")
            xtest.key("space")
            wait_for(child, lambda st: st["actions"])
            assert child.state["actions"] == ["toggle_hud", "go"]
            assert [o["hud"] for o in child.state["outputs"]] == [False, True, False]
            shot = _shoot(two_screens, 1, tmp_path / "hud.png")
            hud_corner = shot[5:60, 400:635].astype(int)  # the HUD's box, top right, over the magenta quadrant
            assert (np.abs(hud_corner - STREAM_2[1]).max(axis=2) > 40).sum() > 200

            # One window closed (its close button): that output goes on headless, the other keeps its picture.
            xtest.close_window(0)
            state = wait_for(child, lambda st: st["outputs"][0]["mode"] == "headless")
            assert [o["mode"] for o in state["outputs"]] == ["headless", "fullscreen", "headless"]
            assert state["actions"] == ["toggle_hud", "go"]  # no quit: the show goes on
            time.sleep(0.5)
            assert child.ask("state")["outputs"][1]["fps"] > 10  # still presenting at its rate (30)
            first, second = _shoot(two_screens, 0, tmp_path / "gone.png"), _shoot(two_screens, 1, tmp_path / "kept.png")
            assert _rgb(first, 80, 60) != STREAM_1[0]  # the window is gone: the bare root shows
            assert _rgb(second, 160, 120) == STREAM_2[0]
            # The last window closed ends the show, as closing the one window always has.
            xtest.close_window(1)
            assert wait_for(child, lambda st: "quit" in st["actions"])["actions"][-1] == "quit"
        finally:
            xtest.close()
    finally:
        err = child.close() if child.proc.poll() is None else ""
        child.kill()
    assert "Traceback" not in err, err


def test_two_windows_on_two_monitors(two_screens, tmp_path):
    size = (200, 150)
    child = Child(two_screens, "windowed", size)
    try:
        outs = child.state["outputs"]
        assert [o["mode"] for o in outs] == ["windowed", "windowed"], outs
        assert [o["placed_on"] for o in outs] == [0, 1]
        assert [tuple(o["size"]) for o in outs] == [size, size]
        for screen, colours in ((0, STREAM_1), (1, STREAM_2)):
            shot = _shoot(two_screens, screen, tmp_path / f"w{screen}.png")
            w, h = SCREENS[screen]
            left, top = (w - size[0]) // 2, (h - size[1]) // 2  # centred on its monitor
            for (x, y), colour in zip(_quadrant_points(left, top, *size), colours):
                assert _rgb(shot, x, y) == colour, (screen, x, y)
            assert _rgb(shot, 2, 2) == (0, 0, 0)  # outside the window: the bare root
    finally:
        child.close() if child.proc.poll() is None else None
        child.kill()
