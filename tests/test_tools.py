"""The tools beside the show: devices, check, fetch-models (offline here), tiny-model."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args, **env_changes):
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", **env_changes)
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_devices_lists_every_kind_even_when_there_are_none():
    proc = run("devices")
    assert proc.returncode == 0, proc.stderr
    for heading in ("cameras:", "microphones:", "monitors:"):
        assert heading in proc.stdout
    assert "XDG_RUNTIME_DIR" not in proc.stderr


def test_check_reports_models_licences_and_inputs():
    proc = run("check")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "stabilityai/sd-turbo" in out and "licence:" in out and "Stability AI" in out
    assert "tiny.en" in out and "on disk" in out
    assert "camera: show uses 'assets/demo_loop.mp4'" in out


def test_fetch_models_offline_says_what_and_how(tmp_path):
    proc = run("fetch-models", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    assert proc.returncode == 1
    assert "stabilityai/sd-turbo" in proc.stderr and "Traceback" not in proc.stderr


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
    assert (dest / "model_index.json").is_file() and check_file(file) == ""
    keys = set(safetensors_header(file))
    assert any(k.startswith("model.diffusion_model.") for k in keys)  # the original SD layout
    assert any(k.startswith("first_stage_model.") for k in keys)
    assert guess_config(file)  # recognised as an SD architecture
    bad = run("tiny-model", str(tmp_path / "t2"), "--single-file", str(tmp_path / "x.bin"))
    assert bad.returncode != 0 and "--single-file" in bad.stderr
