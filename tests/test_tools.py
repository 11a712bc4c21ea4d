"""The tools beside the show: devices, check, fetch-models (offline here), tiny-model."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from installation.show import Show, parse_show
from installation.tools import CheckResult, check_diffusion_model, check_log_folder, print_results, run_checks

ROOT = Path(__file__).resolve().parent.parent
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def run(*args, unset: tuple[str, ...] = (), **env_changes):
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", **env_changes)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", *unset):
        env.pop(name, None)
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_devices_lists_every_kind_even_when_there_are_none():
    proc = run("devices")
    assert proc.returncode == 0, proc.stderr
    for heading in ("cameras:", "microphones:", "monitors:"):
        assert heading in proc.stdout
    assert "XDG_RUNTIME_DIR" not in proc.stderr


def test_check_the_default_show_on_this_machine():
    """One line per thing the show needs, OK or what is wrong; no screen here (DISPLAY unset,
    the dummy SDL driver), so the fullscreen default show cannot run as written: exit 1."""
    proc = run("check")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Traceback" not in proc.stderr
    for need in ("diffusion model:", "speech model:", "camera:", "microphone:", "display:", "OSC port:", "log folder:"):
        assert need in out
    assert "stabilityai/sd-turbo" in out and "model licence: Stability AI" in out
    assert "OK    camera: file assets/demo_loop.mp4 opens" in out
    assert "OK    microphone: WAV file" in out and "demo_speech.wav reads" in out
    assert "OK    speech model: tiny.en" in out
    assert "FAIL  display:" in out and "DISPLAY is not set" in out and "--headless" in out
    assert "the show cannot run as written" in out


def test_fetch_models_offline_says_what_and_how(tmp_path):
    proc = run("fetch-models", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    assert proc.returncode == 1
    assert "stabilityai/sd-turbo" in proc.stderr and "Traceback" not in proc.stderr
    assert "HF_HUB_OFFLINE is set" in proc.stderr


def _closed_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a TCP port nobody listens on
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_models_without_network_says_so_once_fast_and_how_to_copy_the_cache(tmp_path):
    """No hub to reach (HF_ENDPOINT at a closed port stands in for a machine without network):
    one plain message naming what was not fetched and how to bring the cache over, instead of
    five retries per file, each printed twice, for most of a minute."""
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{_closed_tcp_port()}"}
    proc = run("fetch-models", "gallery", **env, unset=PROXY_VARS + ("HF_HUB_OFFLINE", "HF_HUB_CACHE"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Retry" not in out and "Traceback" not in out and "WARNING" not in out
    assert out.count("cannot reach the Hugging Face hub") == 1
    assert "not fetched: stabilityai/sd-turbo (diffusion model), madebyollin/taesd (fast autoencoder)" in proc.stderr
    assert "fetch-models gallery` there while online" in proc.stderr and str(tmp_path / "hf" / "hub") in proc.stderr
    assert "tiny.en: already present" in proc.stdout


def test_fetch_models_says_a_local_folder_cannot_be_fetched_without_asking_the_network(tmp_path):
    show = tmp_path / "local.toml"
    folder = tmp_path / "my-model"
    show.write_text(f'[generator]\nmodel = "{folder}"\nautoencoder = "full"\n[speech]\nenabled = false\n',
                    encoding="utf-8")
    proc = run("fetch-models", str(show), HF_ENDPOINT=f"http://127.0.0.1:{_closed_tcp_port()}")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"model folder {folder} does not exist" in proc.stderr and "cannot fetch it" in proc.stderr
    assert f"python run.py tiny-model {folder}" in proc.stderr and "cannot reach" not in proc.stderr


def test_the_hub_probe_answers_in_words(monkeypatch):
    from installation.core.downloads import hub_unreachable_reason

    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "yes")
    assert hub_unreachable_reason() == "HF_HUB_OFFLINE is set; unset it to download"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_tcp_port()}")
    assert hub_unreachable_reason(1.0) == "127.0.0.1 refused the connection"
    monkeypatch.setenv("HF_ENDPOINT", "http://")
    assert "names no host" in hub_unreachable_reason(1.0)


# --- check, answer by answer ------------------------------------------------------------------


def quiet_show(tmp_path, **sections) -> Show:
    """A show that runs as written on any machine (preview, no camera, no speech, headless,
    any OSC port), with `sections` changed."""
    data = {"generator": {"kind": "preview"}, "camera": {"source": "none"}, "speech": {"enabled": False},
            "display": {"mode": "headless"}, "osc": {"port": 0}}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return parse_show(data, tmp_path / "test.toml")


def answers(show, need) -> list[CheckResult]:
    found = [r for r in run_checks(show) if r.need == need]
    assert found, f"no answer for {need}"
    return found


@pytest.fixture
def no_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


def test_a_show_that_can_run_says_so_and_exits_0_and_what_it_does_not_use_is_no_problem(tmp_path, no_display,
                                                                                        capsys):
    show = quiet_show(tmp_path)
    results = run_checks(show)
    assert all(isinstance(r, CheckResult) for r in results) and not [r for r in results if r.problem]
    unused = {r.need: r.detail for r in results if not r.needed}
    assert unused["camera"] == 'not needed: camera.source = "none"'
    assert unused["speech model"] == unused["microphone"] == "not needed: speech.enabled = false"
    assert "not needed" in unused["display"] and "not needed" in unused["diffusion model"]
    assert print_results(show, results) == 0
    out = capsys.readouterr().out
    assert "all OK" in out and "FAIL" not in out and "--    camera: not needed" in out


def test_a_missing_local_model_folder_is_not_sent_to_fetch_models(tmp_path, no_display):
    folder = tmp_path / "my-model"
    show = quiet_show(tmp_path, generator={"kind": "auto", "model": str(folder), "engine": "pipeline"})
    (model,) = answers(show, "diffusion model")
    assert not model.ok and model.problem
    assert f"{folder} does not exist" in model.detail and "preview" in model.detail
    assert "fetch it with" not in model.detail + model.remedy and "fetch-models" not in model.detail
    assert "fetches Hugging Face ids only" in model.remedy
    assert f"python run.py tiny-model {folder}" in model.remedy


def test_a_missing_hub_model_is_sent_to_fetch_models_naming_the_show(tmp_path, no_display, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    show = quiet_show(tmp_path, generator={"kind": "auto", "model": "jadong-test/not-fetched"})
    model = answers(show, "diffusion model")[0]
    assert model.problem and "python run.py fetch-models gallery" in check_diffusion_model(show, "gallery")[0].remedy
    taesd = answers(show, "fast autoencoder")[0]  # optional: the model's own VAE stands in
    assert taesd.ok and "not downloaded" in taesd.detail and "slower" in taesd.detail and "fetch-models" in taesd.remedy


def test_an_absent_camera_device_is_a_problem(tmp_path, no_display):
    (camera,) = answers(quiet_show(tmp_path, camera={"source": 7}), "camera")
    assert camera.problem and "device 7" in camera.detail and "cameras found:" in camera.detail
    assert "python run.py devices" in camera.remedy


def test_camera_files_must_open_and_decode_and_streams_are_not_probed(tmp_path, no_display):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    (camera,) = answers(quiet_show(tmp_path, camera={"source": str(bad)}), "camera")
    assert camera.problem and "cannot open it as video" in camera.detail
    (camera,) = answers(quiet_show(tmp_path, camera={"source": str(tmp_path / "gone.mp4")}), "camera")
    assert camera.problem and "no such file" in camera.detail
    (camera,) = answers(quiet_show(tmp_path, camera={"source": "rtsp://192.0.2.1/cam"}), "camera")
    assert camera.ok and "not probed" in camera.detail and "--camera" in camera.remedy


def test_a_missing_wav_microphone_is_a_problem_and_a_bad_one_too(tmp_path, no_display):
    wav = tmp_path / "wish.wav"
    mic = {"source": str(wav)}
    (answer,) = answers(quiet_show(tmp_path, speech={"enabled": True}, microphone=mic), "microphone")
    assert answer.problem and "no such WAV file" in answer.detail and "without speech" in answer.detail
    assert "python run.py devices" in answer.remedy
    wav.write_bytes(b"RIFF junk")
    (answer,) = answers(quiet_show(tmp_path, speech={"enabled": True}, microphone=mic), "microphone")
    assert answer.problem and "not a RIFF/WAVE file" in answer.detail
    speech = quiet_show(tmp_path, speech={"enabled": True}, microphone={"source": "none"})
    assert not answers(speech, "microphone")[0].needed and not answers(speech, "speech model")[0].needed


def test_a_fullscreen_show_without_a_display_is_a_problem(tmp_path, no_display):
    for mode in ("fullscreen", "windowed"):
        (display,) = answers(quiet_show(tmp_path, display={"mode": mode}), "display")
        assert display.problem and f'display.mode = "{mode}" needs a display' in display.detail
        assert "DISPLAY is not set" in display.detail and 'display.mode = "headless"' in display.remedy


def test_an_osc_port_in_use_is_a_problem(tmp_path, no_display):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        (osc,) = answers(quiet_show(tmp_path, osc={"port": port}), "OSC port")
    assert osc.problem and "already in use" in osc.detail and "osc.port" in osc.remedy
    (osc,) = answers(quiet_show(tmp_path, osc={"enabled": False}), "OSC port")
    assert not osc.needed


def test_the_log_folder_must_be_a_writable_folder(tmp_path):
    (ok,) = check_log_folder(tmp_path / "logs")
    assert ok.ok and "created at the first run" in ok.detail
    (ok,) = check_log_folder(tmp_path)
    assert ok.ok
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the folder should be")
    (bad,) = check_log_folder(blocker)
    assert bad.problem and "is not a folder" in bad.detail


def test_a_check_that_breaks_is_a_problem_not_a_traceback(tmp_path, no_display, monkeypatch):
    from installation import tools

    def broken(show):
        raise RuntimeError("the camera library exploded")

    monkeypatch.setattr(tools, "check_camera", broken)
    (camera,) = answers(quiet_show(tmp_path), "camera")
    assert camera.problem and "could not be checked: RuntimeError: the camera library exploded" in camera.detail


def test_check_exit_codes(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[generator]\nkind = "preview"\n[camera]\nsource = "none"\n[speech]\nenabled = false\n'
                    '[display]\nmode = "headless"\n[osc]\nport = 0\n', encoding="utf-8")
    proc = run("check", str(good))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text(encoding="utf-8").replace('source = "none"', "source = 7"), encoding="utf-8")
    proc = run("check", str(bad))
    assert proc.returncode == 1 and "FAIL  camera:" in proc.stdout and "Traceback" not in proc.stderr
    assert run("check", "no-such-show").returncode == 2
    assert run("check", str(good), "--no-such-option").returncode == 2


def test_tools_refuse_an_unknown_show():
    for tool in ("check", "fetch-models"):
        proc = run(tool, "no-such-show")
        assert proc.returncode == 2
        assert "no such show" in proc.stderr and "default" in proc.stderr


def test_tiny_model_also_as_a_single_file_checkpoint(tmp_path):
    from installation.generation.engine.checkpoint_file import check_file, guess_config, safetensors_header

    dest, file = tmp_path / "tiny", tmp_path / "tiny.safetensors"
    proc = run("tiny-model", str(dest), "--single-file", str(file))
    assert proc.returncode == 0, proc.stderr
    assert "checkpoint_config" in proc.stdout and str(file) in proc.stdout
    # Nothing but the answer: no torchvision notes, no progress bars.
    assert "torchvision" not in proc.stderr and "it/s" not in proc.stderr and "Writing model shards" not in proc.stderr
    assert (dest / "model_index.json").is_file() and check_file(file) == ""
    keys = set(safetensors_header(file))
    assert any(k.startswith("model.diffusion_model.") for k in keys)  # the original SD layout
    assert any(k.startswith("first_stage_model.") for k in keys)
    assert guess_config(file)  # recognised as an SD architecture
    bad = run("tiny-model", str(tmp_path / "t2"), "--single-file", str(tmp_path / "x.bin"))
    assert bad.returncode != 0 and "--single-file" in bad.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_tiny_model_into_a_place_it_cannot_write_is_one_clear_line(tmp_path):
    existing = tmp_path / "a-file"
    existing.write_text("not a folder")
    for dest, reason in (("/proc/x", "cannot create the folder /proc/x: /proc does not allow new folders"),
                         (str(existing), f"{existing} exists and is not a folder"),
                         (str(existing / "sub"), f"cannot create the folder {existing / 'sub'}: Not a directory")):
        proc = run("tiny-model", dest)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"error: tiny-model: {reason}; choose a folder you can write, e.g. /tmp/tiny"]
    proc = run("tiny-model", str(tmp_path / "t"), "--single-file", "/proc/x.safetensors")
    assert proc.returncode == 2 and "--single-file /proc/x.safetensors: cannot write into /proc" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "t" / "model_index.json").exists()


def test_check_reports_the_vision_stage(tmp_path, monkeypatch):
    import importlib.util

    (off,) = answers(quiet_show(tmp_path), "vision")
    assert not off.needed
    (blind,) = answers(quiet_show(tmp_path, vision={"enabled": True}), "vision")
    assert blind.problem and 'camera.source = "none"' in blind.detail
    clip = str(ROOT / "assets" / "demo_loop.mp4")
    (haar,) = answers(quiet_show(tmp_path, vision={"enabled": True, "faces": "haar"}, camera={"source": clip}),
                      "vision")
    assert not haar.problem and "faces: OpenCV's Haar cascade" in haar.detail
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mediapipe"
                        else real_find_spec(name, *a))
    (auto,) = answers(quiet_show(tmp_path, vision={"enabled": True}, camera={"source": clip}), "vision")
    assert not auto.problem and "mediapipe not installed" in auto.detail
    (asked,) = answers(quiet_show(tmp_path, vision={"enabled": True, "faces": "mediapipe"}, camera={"source": clip}),
                       "vision")
    assert asked.problem and "setup.sh" in asked.remedy
