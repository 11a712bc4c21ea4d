"""Single-file checkpoints (.safetensors / .ckpt in the original SD "LDM" layout): the tiny model
written out as one, loaded back offline through the show's path with its folder's configs, and
the checks and fetch command that keep a missing file or config from ever hanging a show."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from installation.core.downloads import FETCH_COMMAND
from installation.core.messages import GenerationParams, Prompt
from installation.generation.engine.checkpoint_file import (
    CONFIG_PATTERNS,
    SD15_CONFIG,
    guess_config,
    safetensors_header,
)
from installation.generation.engine.models import locate, model_available_locally
from installation.generation.engine.tiny_model import ensure_tiny_model
from installation.show import GeneratorConfig

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    # Shared by name with test_engine.py and test_stream.py: whichever runs first writes it.
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_file(tiny_model, tmp_path_factory) -> Path:
    from installation.generation.engine.ldm_export import write_single_file

    return write_single_file(tiny_model, tmp_path_factory.mktemp("single") / "tiny-sd.safetensors")


@pytest.fixture()
def offline(monkeypatch):
    """No network, and any attempt by diffusers to fetch configs fails the test loudly."""
    import huggingface_hub.constants
    from diffusers.loaders import single_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def no_download(*args, **kwargs):
        raise AssertionError(f"tried to download configs: {args} {kwargs}")

    monkeypatch.setattr(single_file, "_download_diffusers_model_config_from_hub", no_download)


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    import cv2

    img = np.zeros((64, 64, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]
    cv2.circle(img, (32, 32), 14, (250, 240, 30), -1)
    return img


def config_only_cache(cache: Path, repo_id: str, tiny_model: Path) -> Path:
    """The hub cache as `fetch-models` leaves it for a single file: the repo's config and
    tokenizer files, no weights."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snap = repo / "snapshots" / COMMIT
    shutil.copytree(tiny_model, snap, ignore=lambda d, names: [n for n in names if n.endswith(".safetensors")])
    return snap


def state_dicts_equal(a, b) -> None:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys(), set(sa) ^ set(sb)
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, differ[:5]


def folder_pipeline(tiny_model):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(tiny_model, safety_checker=None, requires_safety_checker=False)


# --- the file itself ---------------------------------------------------------------------


def test_the_exported_file_has_the_original_sd_layout(tiny_file):
    header = safetensors_header(tiny_file)
    assert "model.diffusion_model.input_blocks.0.0.weight" in header
    assert "model.diffusion_model.output_blocks.1.2.conv.weight" in header  # the tiny UNet's upsampler
    assert header["first_stage_model.encoder.mid.attn_1.q.weight"]["shape"][-2:] == [1, 1]  # 1x1 convolutions
    assert "first_stage_model.decoder.up.3.block.0.conv1.weight" in header
    assert "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight" in header
    assert not [k for k in header if not k.startswith(("model.", "first_stage_model.", "cond_stage_model."))]


def test_the_config_guess_agrees_with_diffusers(tiny_file, tmp_path):
    import torch
    from diffusers.loaders.single_file_utils import fetch_diffusers_config, load_single_file_checkpoint
    from safetensors.torch import save_file

    from installation.generation.engine import checkpoint_file as cf

    sd2 = tmp_path / "sd2.safetensors"
    save_file({cf._SD2_KEY: torch.zeros(4, 1024)}, str(sd2))
    xl = tmp_path / "xl.safetensors"
    save_file({cf._SDXL_KEY: torch.zeros(2)}, str(xl))
    for path, expected in ((tiny_file, SD15_CONFIG), (sd2, cf.SD2_CONFIG), (xl, cf.SDXL_CONFIG)):
        theirs = fetch_diffusers_config(load_single_file_checkpoint(str(path)))["pretrained_model_name_or_path"]
        assert guess_config(path) == theirs == expected, path.name


def test_a_file_path_is_a_file_never_a_hub_id(tmp_path):
    assert locate("community/model.safetensors").file is not None
    assert locate("community/model.safetensors").hf_id is None
    assert locate(str(tmp_path / "m.ckpt")).file == tmp_path / "m.ckpt"
    assert locate("stabilityai/sd-turbo").file is None


# --- loading: the file's weights, the folder's configs, offline -----------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_the_file_loads_offline_with_the_folders_exact_weights(tiny_model, tiny_file, tmp_path, suffix, offline):
    import torch

    from installation.generation.engine.ldm_export import write_single_file
    from installation.generation.engine.loading import load_pipeline

    path = tiny_file if suffix == ".safetensors" else write_single_file(tiny_model, tmp_path / "tiny-sd.ckpt")
    cfg = GeneratorConfig(model=str(path), checkpoint_config=str(tiny_model))
    ok, why = model_available_locally(cfg.model, checkpoint_config=cfg.checkpoint_config)
    assert ok and "single-file" in why, why
    pipe = load_pipeline(cfg, torch.float32)
    ref = folder_pipeline(tiny_model)
    for part in ("unet", "vae", "text_encoder"):
        state_dicts_equal(getattr(pipe, part), getattr(ref, part))
    assert dict(pipe.scheduler.config) == dict(ref.scheduler.config)
    assert pipe.tokenizer("a garden").input_ids == ref.tokenizer("a garden").input_ids


def test_a_frame_from_the_file_equals_one_from_the_folder(tiny_model, tiny_file, camera, offline):
    from installation.generation.engine.diffusers_generator import DiffusersGenerator
    from installation.generation.engine.stream_generator import StreamGenerator

    common = dict(width=64, height=64, similarity_filter=0.0, autoencoder="full")
    params, prompt = GenerationParams(seed=3), Prompt("a quiet garden at dawn")
    for cls, engine in ((StreamGenerator, "stream"), (DiffusersGenerator, "pipeline")):
        from_file = cls(GeneratorConfig(model=str(tiny_file), checkpoint_config=str(tiny_model), engine=engine,
                                        **common))
        from_folder = cls(GeneratorConfig(model=str(tiny_model), engine=engine, **common))
        from_file.load()
        from_folder.load()
        a, b = from_file.generate(prompt, params, camera), from_folder.generate(prompt, params, camera)
        assert a.shape == (64, 64, 3) and a.std() > 0
        # The weights are bitwise equal (test above), but each loader leaves them at other
        # memory alignments, which changes the CPU kernels' summation order: UNet outputs agree
        # to ~1e-6, so a pixel may round the other way, never by more than one level.
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.05, (engine, diff.max(), diff.mean())


def test_configs_from_the_hub_cache_need_no_weights(tiny_model, tiny_file, tmp_path, offline):
    import torch

    from installation.generation.engine.loading import load_pipeline

    cache = tmp_path / "hub"
    config_only_cache(cache, "jadong-test/tiny-sd-configs", tiny_model)
    cfg = GeneratorConfig(model=str(tiny_file), checkpoint_config="jadong-test/tiny-sd-configs")
    ok, why = model_available_locally(cfg.model, cache, cfg.checkpoint_config)
    assert ok and "jadong-test/tiny-sd-configs" in why, why
    pipe = load_pipeline(cfg, torch.float32, cache_dir=cache)
    state_dicts_equal(pipe.unet, folder_pipeline(tiny_model).unet)


# --- what is missing, said clearly -----------------------------------------------------------


def test_a_missing_file_is_named(tmp_path, offline):
    import torch

    from installation.generation.choice import missing_model_label
    from installation.generation.engine.loading import load_pipeline

    gone = tmp_path / "gone.safetensors"
    ok, why = model_available_locally(str(gone))
    assert not ok and f"checkpoint file {gone} does not exist" in why
    with pytest.raises(FileNotFoundError, match="gone.safetensors"):
        load_pipeline(GeneratorConfig(model=str(gone)), torch.float32)
    assert "gone.safetensors is missing" in missing_model_label(str(gone))


def test_a_cut_short_file_is_not_available(tiny_file, tmp_path):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(tiny_file.read_bytes()[:-1000])
    ok, why = model_available_locally(str(cut), checkpoint_config=str(tmp_path))
    assert not ok and "cut short" in why and "incomplete download" in why
    not_st = tmp_path / "text.safetensors"
    not_st.write_text("this is a text file, not a checkpoint")
    ok, why = model_available_locally(str(not_st))
    assert not ok and "not a .safetensors file" in why


def test_missing_configs_offline_name_the_fetch_command(tiny_file, tmp_path, monkeypatch, offline):
    import torch

    from installation.generation.choice import choose_generator
    from installation.generation.engine.loading import load_pipeline

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    ok, why = model_available_locally(str(tiny_file))  # no checkpoint_config: diffusers' guess, SD 1.5
    assert not ok and SD15_CONFIG in why and FETCH_COMMAND in why and "no weights" in why
    assert "generator.checkpoint_config" in why  # how to name another architecture
    with pytest.raises(FileNotFoundError, match=FETCH_COMMAND):
        load_pipeline(GeneratorConfig(model=str(tiny_file)), torch.float32)
    ok, why = model_available_locally(str(tiny_file), checkpoint_config="jadong-test/not-fetched")
    assert not ok and "jadong-test/not-fetched" in why and FETCH_COMMAND in why
    ok, why = model_available_locally(str(tiny_file), checkpoint_config=str(tmp_path))
    assert not ok and "no model_index.json" in why
    gen, reason = choose_generator(GeneratorConfig(model=str(tiny_file)))
    assert gen.name == "preview" and FETCH_COMMAND in gen.label and SD15_CONFIG in reason


def test_a_file_with_its_configs_gets_the_diffusion_generator(tiny_model, tiny_file):
    from installation.generation.choice import choose_generator

    gen, reason = choose_generator(GeneratorConfig(model=str(tiny_file), checkpoint_config=str(tiny_model)))
    assert gen.name == "stream" and "single-file" in reason


# --- fetch-models: the configs, never the file ------------------------------------------------


def write_show(tmp_path: Path, model: Path, checkpoint_config: str = "") -> Path:
    show = tmp_path / "file-show.toml"
    show.write_text(f'[generator]\nmodel = "{model}"\ncheckpoint_config = "{checkpoint_config}"\n'
                    'autoencoder = "full"\n\n[speech]\nenabled = false\n', encoding="utf-8")
    return show


def test_fetch_models_for_a_file_show_fetches_only_configs(tiny_model, tiny_file, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    from installation.tools import cmd_fetch_models

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("installation.tools.hub_unreachable_reason", lambda *a, **k: "")  # the downloads are faked
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):  # what a real download would leave
        calls.append((repo_id, kwargs))
        return str(config_only_cache(Path(kwargs["cache_dir"]), repo_id, tiny_model))

    def no_file_download(*args, **kwargs):
        raise AssertionError(f"hf_hub_download called: {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_file_download)
    before = tiny_file.stat().st_mtime_ns, tiny_file.stat().st_size

    assert cmd_fetch_models([str(write_show(tmp_path, tiny_file))]) == 0
    assert [c[0] for c in calls] == [SD15_CONFIG]
    assert calls[0][1]["allow_patterns"] == CONFIG_PATTERNS and calls[0][1]["cache_dir"] == str(cache)
    assert not any(p.endswith((".safetensors", ".bin", ".ckpt")) for p in CONFIG_PATTERNS)
    assert "configs fetched to" in capsys.readouterr().out
    assert (tiny_file.stat().st_mtime_ns, tiny_file.stat().st_size) == before
    ok, why = model_available_locally(str(tiny_file))
    assert ok, why

    # Fetched once, it is present: nothing more to download.
    calls.clear()
    assert cmd_fetch_models([str(write_show(tmp_path, tiny_file))]) == 0
    assert not calls and "already present" in capsys.readouterr().out


def test_fetch_models_with_local_configs_or_a_missing_file_downloads_nothing(tiny_model, tiny_file, tmp_path,
                                                                             monkeypatch, capsys):
    import huggingface_hub

    from installation.tools import cmd_fetch_models

    def no_download(*args, **kwargs):
        raise AssertionError(f"download attempted: {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    assert cmd_fetch_models([str(write_show(tmp_path, tiny_file, str(tiny_model)))]) == 0
    assert "already present" in capsys.readouterr().out
    gone = tmp_path / "gone.safetensors"
    assert cmd_fetch_models([str(write_show(tmp_path, gone))]) == 1
    assert f"checkpoint file {gone} does not exist" in capsys.readouterr().err


def test_sdxl_is_told_from_what_is_on_disk(tiny_model, tiny_file, tmp_path, monkeypatch):
    """What decides TAESD or TAESDXL (fetch-models) and the SDXL pipeline class (a single file
    whose configs are a hub id not fetched yet): the checkpoint's own keys, a folder's pipeline
    class, and only for a hub id not on disk its name."""
    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    from installation.generation.engine import checkpoint_file as cf
    from installation.generation.engine.arch import tiny_sdxl_pipeline
    from installation.generation.engine.models import model_is_sdxl

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    base = StableDiffusionPipeline.from_pretrained(tiny_model, safety_checker=None, requires_safety_checker=False)
    tiny_sdxl_pipeline(base).save_pretrained(tmp_path / "tiny-sdxl")
    xl_file = tmp_path / "juggernaut.safetensors"  # an SDXL file whose name says nothing
    save_file({cf._SDXL_KEY: torch.zeros(2)}, str(xl_file))
    assert model_is_sdxl(str(tmp_path / "tiny-sdxl"))
    assert not model_is_sdxl(str(tiny_model))
    assert model_is_sdxl(str(xl_file)) and not model_is_sdxl(str(tiny_file))
    assert cf.checkpoint_is_sdxl(xl_file, None, "owner/any-config")  # the keys win over the config's name
    ckpt = tmp_path / "old.ckpt"  # unreadable without torch: its configs decide
    ckpt.write_bytes(b"")
    assert cf.checkpoint_is_sdxl(ckpt, tmp_path / "tiny-sdxl", "")
    assert cf.checkpoint_is_sdxl(ckpt, None, "stabilityai/sdxl-turbo")
    assert not cf.checkpoint_is_sdxl(ckpt, tiny_model, "")
    assert model_is_sdxl("stabilityai/sdxl-turbo") and not model_is_sdxl("stabilityai/sd-turbo")
