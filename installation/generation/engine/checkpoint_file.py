"""Single-file checkpoints (`.safetensors` / `.ckpt` in the original Stable Diffusion "LDM"
layout, as most community SD 1.5 models ship): is the file whole, which diffusers configs
describe its architecture, and are those configs on disk.

Stdlib only (no torch, no diffusers): the app checks a show's model before it pays for those
imports. The weights come from the file; diffusers still needs the architecture's config
files (unet/vae/text_encoder/tokenizer/scheduler), which `python run.py fetch-models` fetches
without weights.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

SUFFIXES = (".safetensors", ".ckpt")

# What `fetch-models` takes from a config repo: the same patterns diffusers' from_single_file
# downloads when it has to (configs, tokenizer vocab and merges), never weights.
CONFIG_PATTERNS = ["**/*.json", "*.json", "*.txt", "**/*.txt", "**/*.model"]

# Diffusers' own guess from the checkpoint's keys (diffusers.loaders.single_file_utils:
# CHECKPOINT_KEY_NAMES, infer_diffusers_model_type, DIFFUSERS_DEFAULT_PIPELINE_PATHS), reduced
# to the text-to-image families a show can run; anything else is SD 1.x, as diffusers assumes.
SD15_CONFIG = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD2_CONFIG = "stabilityai/stable-diffusion-2-1"
SDXL_CONFIG = "stabilityai/stable-diffusion-xl-base-1.0"
_SD2_KEY = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
_SDXL_KEY = "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"

# Pipeline components whose configs from_single_file does not need: we pass safety_checker=None.
_NOT_NEEDED = {"safety_checker"}


def is_checkpoint_path(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def safetensors_header(path: Path) -> dict:
    """The tensor table of a .safetensors file: {name: {"dtype", "shape", "data_offsets"}}.
    Raises ValueError when the file is not safetensors or is cut short (a partial download)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path} is too short to be a .safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100_000_000:
            raise ValueError(f"{path} is not a .safetensors file (header length {n}, file size {size})")
        try:
            header = json.loads(f.read(n))
        except ValueError as exc:
            raise ValueError(f"{path} is not a .safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a .safetensors file (header is not a table)")
    header.pop("__metadata__", None)
    end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
    if 8 + n + end > size:
        raise ValueError(f"{path} is cut short ({size} bytes of {8 + n + end}; incomplete download?)")
    return header


def guess_config(path: Path) -> str:
    """The Hugging Face repo whose configs describe the checkpoint at `path`, as diffusers
    would guess it. A .ckpt cannot be read without torch: taken as SD 1.x."""
    if path.suffix.lower() != ".safetensors":
        return SD15_CONFIG
    header = safetensors_header(path)
    sd2 = header.get(_SD2_KEY)
    if sd2 and sd2.get("shape", [0])[-1] == 1024:
        return SD2_CONFIG
    if _SDXL_KEY in header:
        return SDXL_CONFIG
    return SD15_CONFIG


def checkpoint_is_sdxl(path: Path, config_folder: Path | None, config_ref: str) -> bool:
    """Whether the checkpoint is SDXL: from its own keys when it is safetensors, else from the
    configs it is loaded with (their pipeline class, or the config's name)."""
    if path.suffix.lower() == ".safetensors":
        try:
            return _SDXL_KEY in safetensors_header(path)
        except (OSError, ValueError):
            pass
    if config_folder is not None:
        return "XL" in pipeline_class_name(config_folder)
    return "xl" in config_ref.lower()


def check_file(path: Path) -> str:
    """'' if the checkpoint file is there and (for safetensors) whole, else what is wrong."""
    if not path.exists():
        return f"checkpoint file {path} does not exist"
    if not path.is_file():
        return f"{path} is not a file"
    if path.suffix.lower() == ".safetensors":
        try:
            safetensors_header(path)
        except (OSError, ValueError) as exc:
            return str(exc)
    return ""


def pipeline_components(folder: Path, what: str) -> tuple[list[str], str]:
    """(the component folders a diffusers folder's model_index.json lists, such as ["unet",
    "vae", ...], and ''), or ([], what is wrong); `what` says what the folder should be."""
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        return [], f"{folder} has no model_index.json, so it is not {what}"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [], f"{index_path} cannot be read ({exc})"
    if not isinstance(index, dict):
        return [], f"{index_path} is not a JSON object"
    names = [name for name, spec in index.items()
             if not name.startswith("_") and isinstance(spec, list) and len(spec) == 2 and spec[0] is not None]
    return names, ""


def check_config_folder(folder: Path) -> str:
    """'' if `folder` holds the diffusers configs a single file needs (model_index.json and a
    config file in each component's folder; weights not needed), else what is missing."""
    names, problem = pipeline_components(folder, "a folder of diffusers configs")
    if problem:
        return problem
    for name in names:
        if name in _NOT_NEEDED:
            continue
        sub = folder / name
        if not sub.is_dir() or not any(p.suffix == ".json" for p in sub.iterdir()):
            return f"{folder} lacks the config files of {name}/ (incomplete download?)"
    return ""


def pipeline_class_name(config_folder: Path) -> str:
    """The pipeline class a config folder describes ("StableDiffusionXLPipeline", ...)."""
    try:
        index = json.loads((config_folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(index.get("_class_name", "")) if isinstance(index, dict) else ""
