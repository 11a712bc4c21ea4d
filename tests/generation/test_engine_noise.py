"""What the engine prints while it loads and fetches: what staff can act on, once, and nothing
else (no torchvision notes, progress bars, deprecation warnings of huggingface_hub, or a
"config.json" error for a fast autoencoder that was simply never downloaded)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from installation.generation.engine.tiny_model import ensure_tiny_model
from installation.show import GeneratorConfig

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
NOISE = ("torchvision", "it/s]", "local_dir_use_symlinks", "does not appear to have a file named", "Traceback")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    # Shared by name with the other engine tests: whichever runs first writes it.
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-sd")


def hub_cache(cache: Path, repo_id: str) -> Path:
    """An empty snapshot folder in the hub cache layout huggingface_hub reads offline."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    return snap


def hub_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "local_dir_use_symlinks" in str(w.message)]


def test_loading_a_model_prints_only_what_matters(tiny_model, tmp_path):
    """The reproduction from the issue: a tiny model through the show's streaming generator,
    TAESD not downloaded. One line says so and what happens instead."""
    script = ("import logging, sys\n"
              "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')\n"
              "from installation.show import GeneratorConfig\n"
              "from installation.generation.engine.stream_generator import StreamGenerator\n"
              "cfg = GeneratorConfig(model=sys.argv[1], width=64, height=64, similarity_filter=0.0)\n"
              "StreamGenerator(cfg).load()\n")
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "empty-cache"))
    env.pop("JADONG_ALLOW_DOWNLOAD", None)
    proc = subprocess.run([sys.executable, "-c", script, str(tiny_model)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert not [n for n in NOISE if n in out], out
    taesd = [line for line in out.splitlines() if "madebyollin/taesd" in line]
    assert taesd == ["WARNING installation.generation.engine.parts: the fast autoencoder madebyollin/taesd is not "
                     "downloaded; using the model's own VAE (slower); `python run.py fetch-models` gets it"], out


def test_a_fetched_fast_autoencoder_loads_from_its_folder_without_hub_warnings(tmp_path, monkeypatch):
    from installation.generation.engine.arch import tiny_taesd
    from installation.generation.engine.models import TAESD, autoencoder_folder
    from installation.generation.engine.parts import load_autoencoder

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("JADONG_ALLOW_DOWNLOAD", raising=False)
    assert autoencoder_folder(TAESD) == (None, f"{TAESD} is not downloaded (not in the Hugging Face cache, "
                                               f"{tmp_path / 'hub'})")
    snap = hub_cache(tmp_path / "hub", TAESD)
    tiny_taesd(seed=1).save_pretrained(snap, safe_serialization=True)
    assert autoencoder_folder(TAESD) == (snap, "")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae = load_autoencoder("auto", False, torch.float32)
    assert type(vae).__name__ == "AutoencoderTiny" and not hub_warnings(caught)
    with pytest.raises(FileNotFoundError, match="generator.autoencoder jadong-test/no-vae: .*fetch-models"):
        load_autoencoder("jadong-test/no-vae", False, torch.float32)


def test_a_fetched_hub_model_loads_from_its_snapshot_folder_without_hub_warnings(tiny_model, tmp_path):
    import shutil

    from installation.generation.engine.loading import load_pipeline
    from installation.generation.engine.models import resolve_model_source

    cache = tmp_path / "hub"
    snap = hub_cache(cache, "jadong-test/tiny-sd")
    shutil.copytree(tiny_model, snap, dirs_exist_ok=True)
    assert resolve_model_source("jadong-test/tiny-sd", cache) == (str(snap), None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = load_pipeline(GeneratorConfig(model="jadong-test/tiny-sd"), torch.float32, cache, image2image=True)
    assert pipe.unet is not None and not hub_warnings(caught)
    assert getattr(pipe, "safety_checker", None) is None


def test_the_licence_is_information_not_a_warning(tmp_path, monkeypatch, caplog, capsys):
    import huggingface_hub

    from installation import tools
    from installation.generation.engine.models import fetch_model

    def fake_file(repo_id, filename, **kwargs):
        raise FileNotFoundError(filename)  # no model_index.json: the whole top level is taken

    def fake_snapshot(repo_id, **kwargs):
        return str(hub_cache(Path(kwargs["cache_dir"]), repo_id))

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_file)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    with caplog.at_level(logging.INFO):
        assert fetch_model("stabilityai/sd-turbo", cache_dir=tmp_path).is_dir()
        assert tools._fetch(tools.Wanted("diffusion model", "stabilityai/sd-turbo", False, lambda: "fetched"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    out = capsys.readouterr().out
    assert "stabilityai/sd-turbo: licence: Stability AI Community License" in out


def test_hub_log_lines_are_printed_once():
    """huggingface_hub's own console handler and the root logger's printed each retry twice."""
    script = ("import logging\n"
              "logging.basicConfig(format='%(levelname)s %(name)s: %(message)s')\n"
              "from installation.generation.engine.models import single_hub_log_lines\n"
              "single_hub_log_lines()\n"
              "logging.getLogger('huggingface_hub.utils._http').warning('Retrying in 1s [Retry 1/5].')\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout + proc.stderr).count("Retrying in 1s") == 1, proc.stderr
