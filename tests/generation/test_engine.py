"""The engine on real diffusers code: a tiny random-weight SD model written by the test session,
loaded through the same DiffusersGenerator a show uses, on the CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from installation.core.downloads import FETCH_COMMAND
from installation.core.messages import GenerationParams, Prompt
from installation.generation.engine.models import MODEL_LICENCES, model_available_locally
from installation.generation.engine.tiny_model import ensure_tiny_model
from installation.show import GeneratorConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    # Shared by name with test_generation.py: whichever runs first writes it.
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-sd")


@pytest.fixture(scope="module")
def generator(tiny_model):
    from installation.generation.engine.diffusers_generator import DiffusersGenerator

    gen = DiffusersGenerator(GeneratorConfig(kind="diffusers", model=str(tiny_model), width=96, height=64))
    gen.load()
    return gen


@pytest.fixture(scope="module")
def camera_image() -> np.ndarray:
    """A 4:3 camera-sized frame with structure (gradient, shapes), not flat noise."""
    import cv2

    img = np.zeros((480, 640, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, 640, dtype=np.uint8)[None, :]
    img[..., 2] = np.linspace(255, 0, 480, dtype=np.uint8)[:, None]
    cv2.circle(img, (320, 240), 120, (250, 240, 30), -1)
    cv2.rectangle(img, (40, 300), (200, 460), (20, 200, 60), -1)
    return img


def fake_hf_cache(cache: Path, repo_id: str, source: Path | None) -> Path:
    """The hub cache layout (refs/main → snapshots/<commit>/...) that huggingface_hub reads
    offline; `source` is copied in as the snapshot (None: only model_index.json)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    if source is not None:
        shutil.copytree(source, snap)
    else:
        snap.mkdir(parents=True)
        (snap / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                           "unet": ["diffusers", "UNet2DConditionModel"]}))
    return snap


# --- the tiny model ----------------------------------------------------------------------


def test_tiny_model_has_the_standard_layout(tiny_model):
    index = json.loads((tiny_model / "model_index.json").read_text())
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert index[part][0] in ("diffusers", "transformers"), part
        assert (tiny_model / part).is_dir(), part
    unet = json.loads((tiny_model / "unet" / "config.json").read_text())
    assert unet["sample_size"] == 16
    sched = json.loads((tiny_model / "scheduler" / "scheduler_config.json").read_text())
    assert sched["_class_name"] == "EulerDiscreteScheduler"
    assert sched["timestep_spacing"] == "trailing"
    ok, why = model_available_locally(str(tiny_model))
    assert ok, why


def test_tiny_tokenizer_knows_whole_words_and_falls_back_to_bytes(tiny_model):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(tiny_model / "tokenizer")
    assert tok.model_max_length == 77
    tokens = tok.convert_ids_to_tokens(tok("A quiet garden at dawn, ink wash").input_ids)
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"
    assert ["a</w>", "quiet</w>", "garden</w>", "at</w>", "dawn</w>"] == tokens[1:6]
    # A word it never saw still tokenizes (into pieces), never into unknown tokens.
    ids = tok("xylophone 한글").input_ids
    assert tok.unk_token_id not in ids[1:-1]
    assert tok.decode(ids, skip_special_tokens=True) == "xylophone 한글"


def test_same_seed_writes_the_same_weights(tiny_model, tmp_path):
    from installation.generation.engine.tiny_model import write_tiny_model

    again = write_tiny_model(tmp_path / "again", seed=0)
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert (again / part).read_bytes() == (tiny_model / part).read_bytes(), part


# --- DiffusersGenerator ------------------------------------------------------------------


@pytest.mark.parametrize("steps,strength", [(1, 0.5), (2, 0.5), (1, 0.3), (3, 0.1), (1, 1.0), (4, 0.35), (1, 0.07)])
def test_img2img_steps_make_diffusers_run_the_asked_steps(steps, strength):
    from installation.generation.engine.diffusers_generator import img2img_steps

    n = img2img_steps(steps, strength)
    assert min(int(n * strength), n) >= steps  # diffusers' own count (get_timesteps)
    assert int((n - 1) * strength) < steps or n == steps  # and no more than needed


def test_img2img_makes_a_frame_of_the_configured_size(generator, camera_image):
    frame = generator.generate(Prompt("a quiet garden at dawn"), GenerationParams(strength=0.5, steps=1), camera_image)
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    assert frame.std() > 0  # not a blank frame
    assert generator.device == "cpu" and generator.dtype == "float32"
    assert generator.name == "diffusers" and generator.label == ""


def test_same_seed_same_frame_and_seed_or_prompt_change_it(generator, camera_image):
    p = Prompt("red fire in the snow")
    a = generator.generate(p, GenerationParams(seed=7), camera_image)
    b = generator.generate(p, GenerationParams(seed=7), camera_image)
    c = generator.generate(p, GenerationParams(seed=8), camera_image)
    d = generator.generate(Prompt("blue ocean at night"), GenerationParams(seed=7), camera_image)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, d)


def test_the_camera_image_shapes_the_frame(generator, camera_image):
    p, params = Prompt("a garden"), GenerationParams(strength=0.3)
    a = generator.generate(p, params, camera_image)
    b = generator.generate(p, params, camera_image[::-1].copy())
    assert not np.array_equal(a, b)


def test_txt2img_without_image_and_in_txt2img_mode(generator, tiny_model, camera_image):
    from installation.generation.engine.diffusers_generator import DiffusersGenerator

    params = GenerationParams(steps=2, seed=3)
    frame = generator.generate(Prompt("a lonely tower"), params, None)
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame, generator.generate(Prompt("a lonely tower"), params, None))

    # In txt2img mode the camera image is ignored: the same frame as without one.
    txt = DiffusersGenerator(GeneratorConfig(model=str(tiny_model), mode="txt2img", width=96, height=64))
    txt.load()
    assert np.array_equal(txt.generate(Prompt("a lonely tower"), params, camera_image), frame)


def test_strength_zero_returns_the_camera_image_fitted(generator, camera_image):
    from installation.generation.imaging import fit_image

    out = generator.generate(Prompt("x"), GenerationParams(strength=0.0), camera_image)
    assert np.array_equal(out, fit_image(camera_image, 96, 64))


def test_prompt_embeddings_are_encoded_once_per_prompt(generator, camera_image, monkeypatch):
    calls = []
    real = generator._img2img.encode_prompt

    def counting(*args, **kwargs):
        if kwargs.get("prompt") is not None:  # the pipeline itself calls it with embeddings only
            calls.append(kwargs["prompt"])
        return real(*args, **kwargs)

    monkeypatch.setattr(generator._img2img, "encode_prompt", counting)
    for text in ("one tree", "one tree", "one tree", "two trees", "two trees"):
        generator.generate(Prompt(text), GenerationParams(), camera_image)
    generator.generate(Prompt("two trees"), GenerationParams(), None)  # txt2img shares them
    assert calls == ["one tree", "two trees"]


def test_guidance_above_one_uses_a_negative_prompt(generator, camera_image):
    p = Prompt("a cat", negative="blurry")
    a = generator.generate(p, GenerationParams(guidance_scale=5.0, seed=1), camera_image)
    b = generator.generate(p, GenerationParams(guidance_scale=0.0, seed=1), camera_image)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_bad_input_is_a_clear_error(generator, tiny_model):
    from installation.generation.engine.diffusers_generator import DiffusersGenerator

    with pytest.raises(ValueError, match=r"camera image: expected an RGB uint8 array"):
        generator.generate(Prompt("x"), GenerationParams(), np.zeros((48, 64), np.uint8))
    with pytest.raises(ValueError, match=r"camera image: expected an RGB uint8 array"):
        generator.generate(Prompt("x"), GenerationParams(), np.zeros((48, 64, 3), np.float32))
    with pytest.raises(RuntimeError, match="before load"):
        DiffusersGenerator(GeneratorConfig(model=str(tiny_model))).generate(Prompt("x"), GenerationParams(), None)


def test_cuda_asked_on_a_machine_without_it_runs_on_the_cpu_and_says_so(tiny_model, caplog):
    # It used to refuse to load; one device rule now (core/devices.py) for every engine: a
    # show file written for the GPU machine paints slowly on another rather than not at all.
    import torch

    from installation.generation.engine.diffusers_generator import DiffusersGenerator

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    gen = DiffusersGenerator(GeneratorConfig(model=str(tiny_model), device="cuda"))
    with caplog.at_level("WARNING"):
        gen.load()
    assert gen.device == "cpu"
    assert any("generator.device is 'cuda'" in r.getMessage() and "sees no CUDA GPU" in r.getMessage()
               and "running on the CPU" in r.getMessage() for r in caplog.records)


def test_a_model_in_the_hf_cache_loads_offline(tiny_model, tmp_path, camera_image):
    from installation.generation.engine.diffusers_generator import DiffusersGenerator

    cache = tmp_path / "hub"
    fake_hf_cache(cache, "jadong-test/tiny-sd", tiny_model)
    ok, why = model_available_locally("jadong-test/tiny-sd", cache_dir=cache)
    assert ok, why
    gen = DiffusersGenerator(GeneratorConfig(model="jadong-test/tiny-sd", width=64, height=64), cache_dir=cache)
    gen.load()
    assert gen.generate(Prompt("moon"), GenerationParams(), camera_image).shape == (64, 64, 3)


def test_a_missing_model_fails_to_load_with_the_reason(tmp_path):
    from installation.generation.engine.diffusers_generator import DiffusersGenerator

    gen = DiffusersGenerator(GeneratorConfig(model="jadong-test/not-here"), cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        gen.load()


# --- models: is it here? ----------------------------------------------------------------


def test_missing_hf_id_says_where_it_looked_and_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    ok, why = model_available_locally("stabilityai/sd-turbo")
    assert not ok
    assert "stabilityai/sd-turbo is not in the Hugging Face cache" in why
    assert str(tmp_path / "hub") in why and FETCH_COMMAND in why


def test_partly_downloaded_hf_model_is_not_available(tmp_path):
    fake_hf_cache(tmp_path, "stabilityai/sd-turbo", None)
    ok, why = model_available_locally("stabilityai/sd-turbo", cache_dir=tmp_path)
    assert not ok and "only partly" in why and "unet/" in why


def test_local_folders_are_checked(tiny_model, tmp_path):
    ok, why = model_available_locally(str(tmp_path / "nowhere"))
    assert not ok and "does not exist" in why
    ok, why = model_available_locally(str(tmp_path))
    assert not ok and "no model_index.json" in why
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    ok, why = model_available_locally(str(broken))
    assert not ok and "has no weights" in why and "unet" in why


def test_relative_folders_are_taken_from_the_project_root(tiny_model):
    ok, why = model_available_locally("tests/not-a-model-folder")
    assert not ok and str(ROOT / "tests" / "not-a-model-folder") in why


def test_licences_are_listed_for_the_default_models():
    for model in ("stabilityai/sd-turbo", "stabilityai/sdxl-turbo", "madebyollin/taesd"):
        assert "https://huggingface.co/" + model in MODEL_LICENCES[model]
    assert MODEL_LICENCES["madebyollin/taesd"].startswith("MIT")


def test_nothing_outside_the_engine_pulls_in_torch():
    """Every module but the engine (and the engine's benchmark) imports without torch,
    diffusers or transformers, so a show on the preview starts in a second."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import installation\n"
        "skip = ('installation.generation.engine', 'installation.bench.engine')\n"
        "names = [m.name for m in pkgutil.walk_packages(installation.__path__, 'installation.')\n"
        "         if not m.name.startswith(skip)]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert len(names) > 30, names\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_full_size_model_on_the_cpu_is_announced_as_slow(tiny_model, monkeypatch, caplog):
    from installation.generation.engine import loading
    from installation.generation.engine.diffusers_generator import DiffusersGenerator

    monkeypatch.setattr(loading, "FULL_SIZE_UNET_PARAMS", 1000)  # the tiny UNet counts as big
    with caplog.at_level("WARNING", logger="installation.generation.engine.loading"):
        DiffusersGenerator(GeneratorConfig(model=str(tiny_model), device="cpu")).load()
    assert any("runs on the CPU" in r.getMessage() and "seconds per frame" in r.getMessage() for r in caplog.records)


def test_fetch_refuses_offline_and_returns_local_folders(tiny_model, monkeypatch, tmp_path):
    from installation.generation.engine.models import fetch_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE is set"):
        fetch_model("stabilityai/sd-turbo", cache_dir=tmp_path)
    assert fetch_model(str(tiny_model)) == tiny_model
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fetch_model(str(tmp_path / "gone"))
