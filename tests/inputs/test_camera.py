"""Camera sources on real video: the bundled demo clip, clips written by cv2.VideoWriter with
known contents (colour, a frame number in the brightness), and a live MPEG-TS stream from an
ffmpeg process that is killed and restarted."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from installation.core.channels import LatestSlot
from installation.core.interfaces import DeviceLost
from installation.core.worker import stop_all
from installation.inputs.camera import (
    CameraWorker,
    EndOfFile,
    OpenCVSource,
    list_cameras,
    open_frame_source,
    parse_source,
)
from installation.show import PROJECT_ROOT, CameraConfig

DEMO = PROJECT_ROOT / "assets" / "demo_loop.mp4"
LEVEL_STEP = 10  # frame i of a numbered clip is a flat grey of i * LEVEL_STEP


def write_clip(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """Write BGR frames with OpenCV's own writer (MJPG in AVI: no external encoder needed)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def numbered_clip(path: Path, n: int, fps: float) -> Path:
    return write_clip(path, [np.full((48, 64, 3), i * LEVEL_STEP, np.uint8) for i in range(n)], fps)


def frame_number(image: np.ndarray) -> int:
    return int(round(float(image.mean()) / LEVEL_STEP))


def source(path: Path | str, **kw) -> OpenCVSource:
    return OpenCVSource(CameraConfig(source=str(path), **kw))


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Events:
    """Collects on_event calls from the worker thread."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self._lock = threading.Lock()

    def __call__(self, kind: str, **fields) -> None:
        with self._lock:
            self.items.append({"kind": kind, **fields})

    def states(self) -> list[str]:
        with self._lock:
            return [e["state"] for e in self.items]


# --- parsing the source ------------------------------------------------------------------

def test_parse_source_kinds():
    assert parse_source(0).kind == "device" and parse_source(0).device == 0
    assert parse_source("2").device == 2
    assert parse_source("/dev/video3").device == "/dev/video3"
    s = parse_source("rtsp://cam:secret@10.0.0.5/live")
    assert s.kind == "stream" and s.url.endswith("/live")
    assert "secret" not in s.description and "***" in s.description
    f = parse_source("assets/demo_loop.mp4")
    assert f.kind == "file" and f.path == DEMO  # relative paths are from the project root
    assert parse_source("file:///tmp/x.mp4").path == Path("/tmp/x.mp4")


@pytest.mark.parametrize("bad", ["", "  ", -1, True])
def test_parse_source_rejects_values_that_can_never_work(bad):
    with pytest.raises(ValueError, match="camera.source"):
        parse_source(bad)


def test_a_source_that_can_never_work_fails_at_open_not_at_startup():
    src = open_frame_source(CameraConfig(source=""))  # a typo must not stop the show
    with pytest.raises(DeviceLost, match="camera.source is empty"):
        src.open()


def test_none_source_means_no_camera():
    assert open_frame_source(CameraConfig(source="none")) is None
    assert isinstance(open_frame_source(CameraConfig(source="assets/demo_loop.mp4")), OpenCVSource)


# --- files -------------------------------------------------------------------------------

def test_demo_clip_reads_as_rgb_frames_at_30_fps():
    src = source("assets/demo_loop.mp4", paced=False)
    src.open()
    try:
        img = src.read()
        assert img.shape == (360, 640, 3) and img.dtype == np.uint8
        assert src.fps == 30.0
        assert src.size == (640, 360)
        assert src.description == "file assets/demo_loop.mp4"
        assert img.std() > 5  # a picture, not a blank frame
    finally:
        src.close()


def test_colour_order_is_rgb(tmp_path):
    # Left half pure red, right half pure blue, written as BGR the way OpenCV expects.
    bgr = np.zeros((64, 64, 3), np.uint8)
    bgr[:, :32] = (0, 0, 255)
    bgr[:, 32:] = (255, 0, 0)
    clip = write_clip(tmp_path / "rb.avi", [bgr] * 3, 10)
    src = source(clip, paced=False)
    src.open()
    try:
        img = src.read().astype(int)
    finally:
        src.close()
    left, right = img[8:56, 4:28].mean(axis=(0, 1)), img[8:56, 36:60].mean(axis=(0, 1))
    assert left[0] > 200 and left[2] < 50, f"left should be red in RGB, got {left}"
    assert right[2] > 200 and right[0] < 50, f"right should be blue in RGB, got {right}"


def test_paced_file_keeps_to_its_clock_and_skips_when_the_reader_is_late(tmp_path):
    clip = numbered_clip(tmp_path / "n.avi", 24, fps=20)
    src = source(clip, paced=True, loop=False)
    src.open()
    try:
        t0 = time.monotonic()
        got = [frame_number(src.read()) for _ in range(6)]
        elapsed = time.monotonic() - t0
        assert got == [0, 1, 2, 3, 4, 5]
        assert elapsed >= 0.2, f"6 frames at 20 fps must span 0.25 s, took {elapsed:.3f} s"
        time.sleep(0.4)  # a slow consumer: a camera would have moved on meanwhile
        late = frame_number(src.read())
        assert late >= 10, f"a paced file should skip ahead like a camera, got frame {late} after 5"
    finally:
        src.close()


def test_unpaced_file_gives_every_frame_whatever_the_delay(tmp_path):
    clip = numbered_clip(tmp_path / "n.avi", 24, fps=20)
    src = source(clip, paced=False, loop=False)
    src.open()
    try:
        assert frame_number(src.read()) == 0
        time.sleep(0.4)
        assert frame_number(src.read()) == 1
    finally:
        src.close()


def test_looping_file_wraps_to_the_first_frame(tmp_path):
    clip = numbered_clip(tmp_path / "n.avi", 12, fps=30)
    src = source(clip, paced=False, loop=True)
    src.open()
    try:
        got = [frame_number(src.read()) for _ in range(30)]
    finally:
        src.close()
    assert got == list(range(12)) + list(range(12)) + list(range(6))


def test_file_without_loop_ends_clearly(tmp_path):
    clip = numbered_clip(tmp_path / "n.avi", 5, fps=30)
    src = source(clip, paced=False, loop=False)
    src.open()
    try:
        for _ in range(5):
            src.read()
        with pytest.raises(EndOfFile, match=r"ended after 5 frames \(camera.loop = false\)"):
            src.read()
    finally:
        src.close()
    assert issubclass(EndOfFile, DeviceLost)


def test_missing_and_unreadable_files_are_lost_devices_with_reasons(tmp_path):
    with pytest.raises(DeviceLost, match="no such file"):
        source(tmp_path / "gone.mp4").open()
    junk = tmp_path / "notes.mp4"
    junk.write_text("this is not a video\n" * 50)
    with pytest.raises(DeviceLost, match="cannot open it as video"):
        source(junk).open()
    with pytest.raises(DeviceLost, match="not a file"):
        source(tmp_path).open()


def test_read_before_open_says_so():
    with pytest.raises(DeviceLost, match="not open"):
        source(DEMO).read()


def test_missing_device_is_lost_without_opencv_warnings(capfd):
    # No /dev/video7 on a dev box; if there is one, there is nothing to test here.
    if Path("/dev/video7").exists():
        pytest.skip("this machine has /dev/video7")
    with pytest.raises(DeviceLost, match="/dev/video7 does not exist"):
        OpenCVSource(CameraConfig(source=7)).open()
    assert "WARN" not in capfd.readouterr().err


def test_list_cameras_probes_quietly(capfd):
    cams = list_cameras()
    assert "WARN" not in capfd.readouterr().err
    for cam in cams:  # a machine with cameras: each entry names its device
        assert {"index", "device", "name"} <= cam.keys()
    if not list(Path("/dev").glob("video*")):
        assert cams == []


# --- the worker: losing and finding the camera again -----------------------------------------

def test_worker_keeps_last_frame_while_file_is_gone_and_recovers(tmp_path, no_thread_leak):
    clip = numbered_clip(tmp_path / "cam.avi", 6, fps=30)  # loops every 0.2 s: reopens often
    hidden = tmp_path / "away.avi"
    slot: LatestSlot = LatestSlot("camera")
    events = Events()
    errors: list[str] = []
    worker = CameraWorker(source(clip, loop=True), slot, retry_s=0.1,
                          on_error=lambda name, exc: errors.append(str(exc)), on_event=events)
    worker.start()
    try:
        wait_until(lambda: worker.frames >= 3, 10, "first frames")
        assert events.states()[0] == "ok"
        first = slot.get()
        assert first.image.shape == (48, 64, 3) and first.source == f"file {clip}"

        clip.rename(hidden)  # noticed at the next wrap, when the file is reopened
        wait_until(lambda: worker.state == "lost", 10, "the loss")
        last = slot.get()
        assert last is not None
        time.sleep(0.5)  # several retries go by...
        assert slot.get() is last, "the slot must keep the last good frame while lost"
        assert events.states().count("lost") == 1, "a loss is reported once, not once per retry"
        assert len(errors) == 1 and "no such file" in errors[0]
        lost = [e for e in events.items if e["state"] == "lost"][0]
        assert "no such file" in lost["reason"] and lost["retry_s"] == 0.1

        hidden.rename(clip)
        n = worker.frames
        wait_until(lambda: worker.frames > n + 3, 10, "frames after recovery")
        ok = [e for e in events.items if e["state"] == "ok"]
        assert ok[-1]["recovered"] is True
        assert worker.losses == 1 and worker.state == "ok"
    finally:
        assert stop_all([worker]) == []


def test_worker_with_missing_file_at_start_reports_and_waits(tmp_path, no_thread_leak):
    target = tmp_path / "later.avi"
    slot: LatestSlot = LatestSlot("camera")
    events = Events()
    worker = CameraWorker(source(target), slot, retry_s=0.1, on_event=events)
    worker.start()
    try:
        wait_until(lambda: worker.state == "lost", 5, "the first failure")
        assert slot.get() is None
        numbered_clip(tmp_path / "tmp.avi", 5, fps=30).rename(target)  # appears whole
        wait_until(lambda: slot.get() is not None, 10, "a frame once the file exists")
        assert events.states()[:2] == ["lost", "ok"]
    finally:
        assert stop_all([worker]) == []


def test_worker_file_without_loop_ends_and_keeps_last_frame(tmp_path, no_thread_leak):
    clip = numbered_clip(tmp_path / "once.avi", 4, fps=30)
    slot: LatestSlot = LatestSlot("camera")
    events = Events()
    worker = CameraWorker(source(clip, loop=False, paced=False), slot, retry_s=0.1, on_event=events)
    worker.start()
    try:
        wait_until(lambda: worker.state == "ended", 5, "the end of the file")
        assert worker.frames == 4 and frame_number(slot.get().image) == 3
        assert events.states() == ["ok", "ended"]
    finally:
        assert stop_all([worker]) == []


def test_worker_stops_promptly_during_a_slow_paced_read(tmp_path, no_thread_leak):
    clip = numbered_clip(tmp_path / "slow.avi", 4, fps=0.5)  # one frame every 2 s
    worker = CameraWorker(source(clip), LatestSlot("camera"), retry_s=0.1)
    worker.start()
    wait_until(lambda: worker.frames >= 1, 5, "the first frame")
    t0 = time.monotonic()
    assert stop_all([worker], timeout=5) == []
    assert time.monotonic() - t0 < 1.5, "stop should interrupt the 2 s wait for the next frame"


# --- a live stream, killed and restarted -----------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_stream(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
         "-i", "testsrc=size=160x120:rate=15", "-c:v", "libx264", "-preset", "ultrafast",
         "-tune", "zerolatency", "-g", "15", "-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is installed by `make setup`")
def test_stream_killed_mid_show_is_lost_then_recovers(no_thread_leak):
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    slot: LatestSlot = LatestSlot("camera")
    events = Events()
    # The worker may try before ffmpeg listens; that is a loss it must recover from too.
    ff = _serve_stream(port)
    worker = CameraWorker(OpenCVSource(CameraConfig(source=url)), slot, retry_s=0.2, on_event=events)
    worker.start()
    try:
        wait_until(lambda: worker.frames >= 5, 20, "frames from the stream")
        assert slot.get().image.shape == (120, 160, 3)
        assert slot.get().source == f"stream {url}"
        losses_before = worker.losses

        ff.kill()
        ff.wait()
        wait_until(lambda: worker.state == "lost", 10, "the stream loss")
        assert worker.losses == losses_before + 1
        last = slot.get()
        time.sleep(0.5)
        assert slot.get() is last, "the slot must keep the last good frame while lost"

        ff = _serve_stream(port)
        n = worker.frames
        wait_until(lambda: worker.frames > n + 3, 20, "frames after the stream came back")
        assert [e for e in events.items if e["state"] == "ok"][-1]["recovered"] is True
    finally:
        stopped = stop_all([worker], timeout=8)
        ff.kill()
        ff.wait()
    assert stopped == []
