"""Where a recording can go, and what a stopped show leaves behind: real files in tmp dirs, the
real OpenCV encoder, read back through cv2.VideoCapture (issue #15, defects 6 and 7)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from installation.display.presenter import Presenter
from installation.display.recorder import RecorderError, VideoRecorder, record_path_problem
from installation.show import DisplayConfig
from media import read_video

ROOT = Path(__file__).resolve().parents[2]
W, H = 160, 96


def cfg() -> DisplayConfig:
    return DisplayConfig(mode="headless", width=320, height=180, fps=240.0, crossfade_s=0.0, hud=False)


def solid(color, w=W, h=H) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :] = color
    return img


def started(events: Path) -> bool:
    """The app wrote its start event: the display is being built, the loop has not run yet."""
    if not events.exists():
        return False
    for line in events.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("event") == "start":
                return True
        except ValueError:
            pass  # a line still being written
    return False


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- defect 6: a stop before the first frame ------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_recorder_closed_before_any_frame_leaves_no_file(tmp_path, no_thread_leak, suffix):
    path = tmp_path / f"never{suffix}"
    rec = VideoRecorder(path, 30.0, (W, H))
    rec.close()
    assert not path.exists()
    assert leftovers(tmp_path) == []  # nor a probe file
    assert rec.stats().written == 0


def test_a_recorder_closed_before_any_frame_keeps_the_file_already_there(tmp_path, no_thread_leak):
    path = tmp_path / "yesterday.mp4"
    path.write_bytes(b"yesterday's recording")
    VideoRecorder(path, 30.0, (W, H)).close()
    assert path.read_bytes() == b"yesterday's recording"


def test_the_file_is_created_at_the_first_frame_and_plays(tmp_path, no_thread_leak):
    path = tmp_path / "one.mp4"
    path.write_bytes(b"yesterday's recording")  # overwritten once there is something to record
    with VideoRecorder(path, 30.0, (W, H)) as rec:
        rec.write(solid((200, 40, 10)))
    size, frames, _ = read_video(path)
    assert size == (W, H) and len(frames) == rec.stats().written == 1


def test_a_presenter_closed_before_it_rendered_leaves_no_file(tmp_path, no_thread_leak):
    path = tmp_path / "show.mp4"
    p = Presenter(cfg(), record_path=path).open()
    assert p.recorder is not None and p.recording_error == ""
    p.close()
    assert leftovers(tmp_path) == []


def test_a_folder_removed_before_the_first_frame_stops_the_recording_with_the_reason(tmp_path, no_thread_leak):
    folder = tmp_path / "usb"
    folder.mkdir()
    rec = VideoRecorder(folder / "show.avi", 30.0, (W, H))
    folder.rmdir()  # the drive was pulled after the check at start
    rec.write(solid((1, 2, 3)))
    rec.close()
    assert rec.stopped is not None and "does not exist" in rec.stopped and str(folder) in rec.stopped
    assert rec.stats().written == 0


def test_the_cli_stopped_before_its_first_frame_leaves_no_unplayable_video(tmp_path):
    """SIGINT while the show is still starting (the loop has not rendered): no file, or one
    that plays. Before the fix this left a 258-byte mp4 with no video stream."""
    video, events = tmp_path / "x.mp4", tmp_path / "events.jsonl"
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    env.pop("DISPLAY", None)
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--headless", "--seconds", "20",
                             "--record", str(video), "--log", str(events), "--osc-port", "0",
                             "--camera", "none"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None and not started(events):
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    records = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert any(r["event"] == "signal" for r in records)
    if video.exists():
        _, frames, _ = read_video(video)
        assert frames, f"{video} ({video.stat().st_size} bytes) has no frames"
    assert [n for n in leftovers(tmp_path) if "probe" in n] == []


# --- defect 7: a path that cannot be recorded to --------------------------------------------

def test_a_usable_path_is_fine_and_the_check_leaves_nothing_behind(tmp_path):
    assert record_path_problem(tmp_path / "show.mp4") is None
    assert record_path_problem(tmp_path / "show.avi") is None
    existing = tmp_path / "old.mp4"
    existing.write_bytes(b"keep")
    assert record_path_problem(existing) is None
    assert existing.read_bytes() == b"keep"
    assert leftovers(tmp_path) == ["old.mp4"]


@pytest.mark.parametrize("name", ["out", "out.mp4"])
def test_a_folder_is_not_a_recording(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    reason = record_path_problem(folder)
    assert reason is not None and str(folder) in reason and "is a folder" in reason


def test_an_unsupported_suffix_names_the_supported_ones(tmp_path):
    reason = record_path_problem(tmp_path / "show.txt")
    assert reason is not None and str(tmp_path / "show.txt") in reason and "'.txt'" in reason
    assert ".mp4" in reason and ".avi" in reason


def test_a_missing_folder_is_reported_not_created(tmp_path):
    path = tmp_path / "typo" / "show.mp4"
    reason = record_path_problem(path)
    assert reason is not None and str(path) in reason and "does not exist" in reason
    assert not (tmp_path / "typo").exists()


def test_a_file_as_the_folder(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    reason = record_path_problem(blocker / "show.mp4")
    assert reason is not None and "a_file is a file, not a folder" in reason


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_proc_is_not_a_regular_filesystem_nor_a_full_disk():
    """Before the fix: 'the disk is nearly full' (/proc reports 0 bytes free)."""
    reason = record_path_problem(Path("/proc/x.mp4"))
    assert reason is not None and "/proc/x.mp4" in reason
    assert "not a regular filesystem" in reason and "nearly full" not in reason


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        reason = record_path_problem(folder / "show.mp4")
    finally:
        folder.chmod(0o755)
    assert reason is not None and "not writable" in reason and str(folder) in reason


@pytest.mark.parametrize(("code", "words"), [(13, "not writable"), (30, "read-only filesystem"),
                                             (28, "is full")])
def test_why_a_probe_file_could_not_be_created(tmp_path, monkeypatch, code, words):
    """The OS's reason, as a person would put it (read-only mounts and full disks cannot be
    made for real without privileges; root ignores permission bits)."""
    import installation.display.recorder as recorder

    def refuse(**kw):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(recorder.tempfile, "mkstemp", refuse)
    reason = record_path_problem(tmp_path / "show.mp4")
    assert reason is not None and words in reason and str(tmp_path) in reason


def test_an_encoder_that_cannot_open_is_reported_and_its_probe_removed(tmp_path, monkeypatch):
    import installation.display.recorder as recorder

    monkeypatch.setitem(recorder.CODECS, ".mp4", "ZZZZ")  # a FourCC FFmpeg does not know
    reason = record_path_problem(tmp_path / "show.mp4")
    assert reason is not None and "ZZZZ" in reason and "OpenCV" in reason
    assert leftovers(tmp_path) == []


def test_nearly_full_only_when_it_really_is(tmp_path):
    free_mb = shutil.disk_usage(tmp_path).free / 1024 / 1024
    assert record_path_problem(tmp_path / "x.mp4", min_free_mb=free_mb / 2) is None
    reason = record_path_problem(tmp_path / "x.mp4", min_free_mb=free_mb + 1024)
    assert reason is not None and "nearly full" in reason and str(tmp_path) in reason


@pytest.mark.parametrize("where", ["folder", "txt", "proc"])
def test_the_presenter_refuses_with_the_real_reason(tmp_path, no_thread_leak, where):
    if where == "proc" and not Path("/proc/self").exists():
        pytest.skip("needs Linux /proc")
    path, words = {"folder": (tmp_path, "is a folder"), "txt": (tmp_path / "show.txt", "'.txt'"),
                   "proc": (Path("/proc/x.mp4"), "not a regular filesystem")}[where]
    p = Presenter(cfg(), record_path=path).open()
    try:
        assert p.recorder is None
        assert str(path) in p.recording_error and words in p.recording_error
        assert "nearly full" not in p.recording_error
        p.render()  # the show itself goes on
    finally:
        p.close()
    with pytest.raises(RecorderError, match=words.replace(".", r"\.")):
        VideoRecorder(path, 30.0, (W, H))
