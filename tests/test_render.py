"""`python run.py render`: a real clip (the demo loop with the demo speech as its sound) restyled
by the preview and by the tiny random-weight model keeps its frame count, size, duration and
sound; an interrupted render (a real SIGINT, in the process and from a shell) continues without
painting its frames again; bad inputs get one line and status 2."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from installation import render
from installation.core.messages import Prompt
from installation.generation.choice import params_from_config
from installation.generation.preview import PreviewGenerator
from installation.show import GeneratorConfig
from media import read_video

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
FPS = 30

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="ffmpeg and ffprobe are installed by `make setup`")


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def probe(path: Path) -> dict[str, dict]:
    """Each stream's type → its codec, size, decoded frame count and duration (ffprobe)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                          "stream=codec_type,codec_name,width,height,nb_read_frames,duration", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


def frames_of(path: Path) -> list[np.ndarray]:
    return read_video(path)[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s (60 frames, 640×360, 30 fps) of the demo loop with the demo speech as AAC sound."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    _ffmpeg("-i", str(ASSETS / "demo_loop.mp4"), "-i", str(ASSETS / "demo_speech.wav"), "-t", "2",
            "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path))
    return path


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory, clip) -> Path:
    """The first 12 frames (0.4 s) of the clip, for the slower tiny model."""
    path = tmp_path_factory.mktemp("short") / "short.mp4"
    _ffmpeg("-i", str(clip), "-frames:v", "12", "-t", "0.4", "-c:v", "libx264", "-c:a", "aac", str(path))
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from installation.generation.engine.tiny_model import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-sd")


def write_show(folder: Path, name: str, generator: str, prompt: str = "red snow, ink wash") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'[show]\nname = "{name}"\n[prompt]\ninitial = "{prompt}"\n'
                    f'[styles]\nposter = "a poster of {{speech}}"\n[generator]\n{generator}\n', encoding="utf-8")
    return path


@pytest.fixture
def preview_show(tmp_path) -> Path:
    return write_show(tmp_path, "preview", 'kind = "preview"\nwidth = 128\nheight = 128')


def assert_same_shape(out: Path, src: Path) -> None:
    """Same frame count, size and duration (within a frame), with a sound stream."""
    got, want = probe(out), probe(src)
    assert int(got["video"]["nb_read_frames"]) == int(want["video"]["nb_read_frames"])
    assert (got["video"]["width"], got["video"]["height"]) == (want["video"]["width"], want["video"]["height"])
    assert abs(float(got["video"]["duration"]) - float(want["video"]["duration"])) <= 1 / FPS + 1e-6
    assert "audio" in got, f"{out} has no sound"
    assert abs(float(got["audio"]["duration"]) - float(want["audio"]["duration"])) <= 1 / FPS


def run_render(show: Path, src: Path, out: Path, *extra: str, on_frame=None) -> int:
    return render.main([str(show), "--input", str(src), "--output", str(out), *extra], on_frame=on_frame)


# --- what the output keeps ------------------------------------------------------------------------
def test_the_preview_restyles_every_frame_at_the_shows_settings(preview_show, clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert run_render(preview_show, clip, out) == 0
    assert_same_shape(out, clip)
    assert not (tmp_path / "out.mp4.partial").exists()
    assert "sound kept (aac)" in capsys.readouterr().out

    # Each frame is the preview's painting of the same input frame (at the show's pixel count in
    # the input's shape), scaled back: within encoding error of painting it here.
    w, h = render.generation_size(640, 360, 128, 128)
    preview = PreviewGenerator(w, h)
    params = params_from_config(GeneratorConfig(kind="preview"))
    src, got = frames_of(clip), frames_of(out)
    for i in (0, 29, 59):
        painted = preview.generate(Prompt("red snow, ink wash"), params, cv2.cvtColor(src[i], cv2.COLOR_BGR2RGB))
        want = cv2.cvtColor(cv2.resize(painted, (640, 360), interpolation=cv2.INTER_CUBIC), cv2.COLOR_RGB2BGR)
        assert cv2.PSNR(want, got[i]) > 30, f"frame {i} is not the preview's painting of input frame {i}"
        assert cv2.PSNR(src[i], got[i]) < 25, f"frame {i} was not restyled"


def test_prompt_and_style_choose_the_words(preview_show, clip, tmp_path):
    """--prompt replaces the show's words and --style paints them through the show's template:
    a different picture from the show's own words."""
    plain, styled = tmp_path / "plain.mp4", tmp_path / "styled.mp4"
    assert run_render(preview_show, clip, plain) == 0
    assert run_render(preview_show, clip, styled, "--prompt", "blue ocean", "--style", "POSTER") == 0
    a, b = frames_of(plain)[10], frames_of(styled)[10]
    assert cv2.PSNR(a, b) < 20
    # The ocean palette is blue: its frame is bluer than the red one.
    assert b[..., 0].mean() - b[..., 2].mean() > a[..., 0].mean() - a[..., 2].mean() + 20


@pytest.mark.parametrize("engine", ["stream", "pipeline"])
def test_the_tiny_model_renders_a_clip(engine, tiny_model, short_clip, tmp_path, capsys):
    """The model named with --model paints every frame through the generator a show runs."""
    show = write_show(tmp_path, "tiny", f'kind = "diffusers"\nengine = "{engine}"\nwidth = 64\nheight = 64\n'
                      'acceleration = "eager"\nstrength = 0.5')
    out = tmp_path / "tiny.mp4"
    painted = []
    assert run_render(show, short_clip, out, "--model", str(tiny_model), on_frame=painted.append) == 0
    assert_same_shape(out, short_clip)
    assert painted == list(range(1, 13))
    err = capsys.readouterr().err
    assert f"loading {engine if engine == 'stream' else 'diffusers'} {tiny_model}" in err


def test_a_stream_batch_frame_is_painted_from_the_same_input_frame(tiny_model, tmp_path):
    """With steps = 2 the streaming engine hands back the frame before the one it is given; the
    render lines them up: the picture changes at the very frame the input changes."""
    src = tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    ramp = np.tile(np.linspace(0, 255, 96, dtype=np.float32), (64, 1))
    for i in range(8):
        image = ramp if i < 4 else ramp[:, ::-1]  # a cut after frame 4
        writer.write(np.repeat(image[:, :, None], 3, axis=2).astype(np.uint8))
    writer.release()
    show = write_show(tmp_path, "batch", f'model = "{tiny_model}"\nwidth = 64\nheight = 64\nsteps = 2\n'
                      'strength = 0.3\nacceleration = "eager"')
    out = tmp_path / "cut.mp4"
    assert run_render(show, src, out) == 0
    frames = [f.astype(np.float32) for f in frames_of(out)]
    assert len(frames) == 8
    changes = [float(np.abs(frames[i] - frames[i - 1]).mean()) for i in range(1, 8)]
    assert max(range(7), key=changes.__getitem__) == 3, changes  # between frames 4 and 5 (index 3)


def test_sound_the_container_cannot_hold_is_re_encoded_and_odd_sizes_are_kept(preview_show, tmp_path, capsys):
    """PCM sound in a .mov does not go into an .mp4 as it is: it becomes AAC. 321×181 stays
    321×181 (4:4:4, as 4:2:0 needs even sides)."""
    src = tmp_path / "odd.mov"
    _ffmpeg("-i", str(ASSETS / "demo_loop.mp4"), "-i", str(ASSETS / "demo_speech.wav"), "-t", "0.5",
            "-map", "0:v", "-map", "1:a", "-vf", "scale=321:181", "-c:v", "mjpeg", "-c:a", "pcm_s16le", str(src))
    out = tmp_path / "odd.mp4"
    assert run_render(preview_show, src, out) == 0
    assert_same_shape(out, src)
    assert probe(out)["audio"]["codec_name"] == "aac"
    assert "re-encoded for this container" in capsys.readouterr().out


def test_without_ffmpeg_the_frames_are_joined_by_opencv_without_sound(preview_show, clip, tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.setattr(render, "_ffmpeg", lambda: None)
    out = tmp_path / "silent.mp4"
    assert run_render(preview_show, clip, out) == 0
    got = probe(out)
    assert int(got["video"]["nb_read_frames"]) == 60 and "audio" not in got
    captured = capsys.readouterr()
    assert "ffmpeg is not installed" in captured.err and "no sound" in captured.out


# --- resuming -------------------------------------------------------------------------------------
def stop_after(n: int):
    """An on_frame hook that sends this process a real SIGINT after frame n."""
    def hook(frame: int) -> None:
        if frame == n:
            os.kill(os.getpid(), signal.SIGINT)
    return hook


def test_an_interrupted_render_resumes_without_painting_its_frames_again(preview_show, clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert run_render(preview_show, clip, out, on_frame=stop_after(25)) == 130
    err = capsys.readouterr().err
    assert "stopped with 25 of 60 frames painted" in err and "run the same command again" in err
    assert not out.exists()
    state = json.loads((tmp_path / "out.mp4.partial" / "state.json").read_text())
    assert sum(s["frames"] for s in state["segments"]) == 25

    painted: list[int] = []
    assert run_render(preview_show, clip, out, on_frame=painted.append) == 0
    assert painted == list(range(26, 61))  # frames 26-60 only
    captured = capsys.readouterr()
    assert "continuing" in captured.err and "at frame 26 of 60" in captured.err
    assert "60 frames" in captured.out and "25 of them by an earlier run" in captured.out
    assert_same_shape(out, clip)

    # The same frames as a render never interrupted (the preview is deterministic).
    whole = tmp_path / "whole.mp4"
    assert run_render(preview_show, clip, whole) == 0
    for a, b in zip(frames_of(out), frames_of(whole), strict=True):
        assert cv2.PSNR(a, b) > 40


def test_other_settings_are_refused_until_restart(preview_show, clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert run_render(preview_show, clip, out, on_frame=stop_after(10)) == 130
    capsys.readouterr()
    assert run_render(preview_show, clip, out, "--prompt", "blue ocean") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: render: ") and "the settings differ: prompt" in err and "--restart" in err
    assert len(err.splitlines()) == 1

    painted: list[int] = []
    assert run_render(preview_show, clip, out, "--prompt", "blue ocean", "--restart", on_frame=painted.append) == 0
    assert painted == list(range(1, 61))
    # A finished output is not rendered again by accident.
    assert run_render(preview_show, clip, out, "--prompt", "blue ocean") == 2
    assert "already exists; pass --restart" in capsys.readouterr().err


def test_a_render_stopped_while_encoding_only_encodes_again(preview_show, clip, tmp_path, capsys, monkeypatch):
    """Ctrl-C while ffmpeg writes the output: every frame is kept, and the rerun neither loads
    the generator nor paints a frame."""
    real_assemble = render.assemble

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "assemble", interrupted)
    out = tmp_path / "out.mp4"
    assert run_render(preview_show, clip, out) == 130
    assert "stopped with 60 of 60 frames painted" in capsys.readouterr().err
    monkeypatch.setattr(render, "assemble", real_assemble)
    painted: list[int] = []
    assert run_render(preview_show, clip, out, on_frame=painted.append) == 0
    err = capsys.readouterr().err
    assert painted == [] and "all frames painted" in err and "loading" not in err
    assert_same_shape(out, clip)


def test_the_same_render_started_twice_is_refused(preview_show, clip, tmp_path, capsys):
    import fcntl

    out = tmp_path / "out.mp4"
    partial = tmp_path / "out.mp4.partial"
    partial.mkdir()
    with (partial / "lock").open("a") as held:  # what a render in progress holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert run_render(preview_show, clip, out) == 2
    assert "another render is writing it now" in capsys.readouterr().err
    assert run_render(preview_show, clip, out) == 0  # the lock is gone with its holder


def _slow_show(folder: Path) -> Path:
    # The preview at 2048×1152 paints a frame in tens of milliseconds: time to send a signal.
    return write_show(folder, "slow", 'kind = "preview"\nwidth = 1536\nheight = 1536')


def _start(show: Path, src: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "render", str(show), "--input", str(src),
                             "--output", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for_first_frame(proc: subprocess.Popen) -> list[str]:
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if " 1/60 frames" in line:
            return lines
    raise AssertionError(f"no progress line: {lines}")


def test_ctrl_c_from_a_shell_stops_cleanly_and_the_same_command_finishes(clip, tmp_path):
    show, out = _slow_show(tmp_path), tmp_path / "out.mp4"
    proc = _start(show, clip, out)
    _wait_for_first_frame(proc)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest
    stopped = [line for line in rest.splitlines() if line.startswith("render: stopped")]
    assert len(stopped) == 1, rest
    done = int(stopped[0].split("stopped with ")[1].split()[0])
    assert 1 <= done < 60

    again = subprocess.run([sys.executable, str(ROOT / "run.py"), "render", str(show), "--input", str(clip),
                            "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"at frame {done + 1} of 60" in again.stderr
    assert f"{done} of them by an earlier run" in again.stdout
    assert_same_shape(out, clip)


def test_a_killed_render_paints_its_unfinished_segment_again(clip, tmp_path):
    """SIGKILL leaves a segment no state names: the rerun removes it and paints those frames."""
    show, out = _slow_show(tmp_path), tmp_path / "out.mp4"
    proc = _start(show, clip, out)
    _wait_for_first_frame(proc)
    proc.kill()
    proc.communicate(timeout=30)
    partial = tmp_path / "out.mp4.partial"
    assert list(partial.glob("seg-*.avi")), "the open segment should be on disk"
    again = subprocess.run([sys.executable, str(ROOT / "run.py"), "render", str(show), "--input", str(clip),
                            "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "at frame 1 of 60" in again.stderr
    assert_same_shape(out, clip)


# --- bad inputs -----------------------------------------------------------------------------------
def _not_a_video(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n")
    return path


@pytest.mark.parametrize(("case", "expect"), [
    ("missing", "--input {dir}/nothing.mp4: no such file"),
    ("not a video", "notes.mp4: not a video (Invalid data found when processing input)"),
    ("same path", "is the input itself"),
    ("no folder", "the folder {dir}/nowhere does not exist"),
    ("suffix", "expected a video file name ending in"),
    ("folder", "is a folder"),
    ("style", "--style sketchy: no such style in the show's [styles] (known: poster)"),
    ("read-only", "cannot write"),
])
def test_bad_inputs_get_one_line_and_status_2(case, expect, preview_show, clip, tmp_path, capsys):
    src, out, extra = clip, tmp_path / "out.mp4", []
    if case == "missing":
        src = tmp_path / "nothing.mp4"
    elif case == "not a video":
        src = _not_a_video(tmp_path)
    elif case == "same path":
        src = out = tmp_path / "same.mp4"
        shutil.copy(clip, src)
    elif case == "no folder":
        out = tmp_path / "nowhere" / "out.mp4"
    elif case == "suffix":
        out = tmp_path / "out.txt"
    elif case == "folder":
        out = tmp_path / "dir.mp4"
        out.mkdir()
    elif case == "style":
        extra = ["--style", "sketchy"]
    elif case == "read-only":
        out = Path("/proc/out.mp4")  # even root cannot make a folder there
    assert run_render(preview_show, src, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: render: ") and len(err.splitlines()) == 1, err
    assert expect.format(dir=tmp_path) in err


def test_a_model_that_is_not_here_is_an_error_not_a_preview(clip, tmp_path, capsys):
    show = write_show(tmp_path, "missing", f'model = "{tmp_path / "no-model"}"')
    assert run_render(show, clip, tmp_path / "out.mp4") == 2
    err = capsys.readouterr().err.strip()
    assert "no-model is missing or incomplete" in err and "--generator preview" in err
    # Nothing was painted: no state is left to refuse the preview's settings with.
    assert not (tmp_path / "out.mp4.partial").exists()
    assert run_render(show, clip, tmp_path / "out.mp4", "--generator", "preview") == 0


def test_the_command_is_reached_through_run_py(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "render", "--input", str(_not_a_video(tmp_path)),
                           "--output", str(tmp_path / "o.mp4")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("error: render: --input"), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("size", "show", "want"), [
    ((640, 360), (512, 512), (680, 384)),
    ((1920, 1080), (512, 512), (680, 384)),
    ((360, 640), (512, 512), (384, 680)),
    ((512, 512), (512, 512), (512, 512)),
    ((640, 360), (64, 64), (112, 64)),  # at least 64 a side, the shape kept
    ((8000, 100), (2048, 2048), (2048, 64)),
])
def test_the_generator_paints_the_inputs_shape_at_the_shows_pixel_count(size, show, want):
    assert render.generation_size(*size, *show) == want


def test_drifting_noise_moves_on_the_videos_time_not_the_wall_clock(tiny_model, short_clip, tmp_path):
    """txt2img with seed_drift: the picture moves (never a still), by the same amount per frame
    however long a frame takes to paint, so two renders of one clip are the same video."""
    show = write_show(tmp_path, "drift", f'model = "{tiny_model}"\nwidth = 64\nheight = 64\nmode = "txt2img"\n'
                      'seed_drift = 1.0\nacceleration = "eager"')
    src = tmp_path / "six.mp4"
    _ffmpeg("-i", str(short_clip), "-frames:v", "6", "-an", "-c:v", "libx264", str(src))
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    assert run_render(show, src, first) == 0
    assert run_render(show, src, second, on_frame=lambda n: time.sleep(0.1 * (n % 2))) == 0
    a, b = frames_of(first), frames_of(second)
    assert len(a) == len(b) == 6
    assert min(cv2.PSNR(x, y) for x, y in zip(a, b, strict=True)) > 40
    assert cv2.PSNR(a[0], a[-1]) < 35, "the noise did not walk: a still"
