"""How a generator gets its diffusers pipeline: the one place for device and dtype, the safety
checker rule, `from_pretrained` and single-file (`from_single_file`) loading. Both generators
(DiffusersGenerator, StreamGenerator) load through here, so they cannot drift apart.

Everything loads offline (`local_files_only`) unless JADONG_ALLOW_DOWNLOAD=1 (core/downloads.py);
a missing piece raises FileNotFoundError naming it (models.py says how to fetch it). What the
streaming engine loads beside the pipeline (fast autoencoder, LoRAs) is in parts.py.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from installation.core.devices import choose_device
from installation.core.downloads import download_allowed
from installation.show import GeneratorConfig

from .checkpoint_file import checkpoint_is_sdxl
from .models import hf_snapshot_folder, locate, resolve_model_source, resolve_single_file
from .quiet import quiet_model_loading

log = logging.getLogger(__name__)

# Above this many UNet parameters a model is "full size" (SD-Turbo's UNet has 866M): on a
# CPU that means seconds per frame, which the gallery should hear about at start.
FULL_SIZE_UNET_PARAMS = 100_000_000

# The pipelines' own image safety checker is never loaded, by either generator. Prompts are
# moderated upstream (speech/moderation.py) before any generator sees them; the pipeline's checker
# would cost a CLIP model per frame and black out single frames at random in front of visitors. A
# show that wants images checked says so in [safety]: the same checker then runs on the generator
# thread with a streak rule, and held frames leave the last one on screen (generation/safety.py,
# safety_checker.py). The arguments go
# only to pipelines that carry a checker (SD 1.x/2.x), or may (a hub model not fetched yet):
# SDXL's pipelines have none and would warn about arguments they do not expect.
NO_SAFETY_CHECKER: dict[str, Any] = {"safety_checker": None, "requires_safety_checker": False}


@dataclass(frozen=True)
class Placement:
    """Where a generator's model runs and in which precision."""

    device: str  # "cuda" or "cpu"
    dtype: torch.dtype

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def placement(requested: str) -> Placement:
    """The device for a show's `generator.device` (core/devices.py's rule, with the GPUs torch
    sees) and its dtype: fp16 halves memory and doubles speed on a GPU; CPUs have no fast
    fp16 kernels."""
    cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = choose_device(requested, cuda_devices, "generator.device", f"torch {torch.__version__}")
    return Placement(device, torch.float16 if device == "cuda" else torch.float32)


def warn_if_slow(model: str, unet: Any, device: str) -> bool:
    """Warns (and returns True) when a full-size UNet is to run on the CPU."""
    n_params = sum(p.numel() for p in unet.parameters()) if unet is not None else 0
    if device != "cpu" or n_params <= FULL_SIZE_UNET_PARAMS:
        return False
    log.warning("%s runs on the CPU (%dM UNet parameters): expect several seconds per frame; "
                "a CUDA GPU is needed for live frame rates", model, n_params // 1_000_000)
    return True


def dtype_kwarg(dtype: torch.dtype) -> dict[str, Any]:
    """diffusers renamed `torch_dtype` to `dtype` (the old name warns); speak whichever the
    installed version knows."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401  (the new name exists)
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def _model_index(model: str, source: str, download_cache: Path | None, cache_dir: Path | None) -> dict | None:
    """The model's model_index.json (a folder's, or the cached hub snapshot's); None when it
    is not on disk yet (a hub model that will be downloaded) or cannot be read. `source` is a
    folder unless `download_cache` is set (resolve_model_source's answer)."""
    loc = locate(model)
    if loc.folder is not None:
        folder: Path | None = loc.folder
    elif download_cache is None:
        folder = Path(source)
    else:
        folder = hf_snapshot_folder(source, cache_dir)
    if folder is None:
        return None
    try:
        index = json.loads((Path(folder) / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def load_single_file(cfg: GeneratorConfig, dtype: torch.dtype, cache_dir: Path | None = None) -> Any:
    """A text-to-image pipeline from a single .safetensors/.ckpt checkpoint (the original SD
    layout): weights from the file, architecture from `cfg.checkpoint_config`'s configs on disk
    (or diffusers' guess), handed to from_single_file as a folder so it never reaches for the
    network by itself."""
    quiet_model_loading()
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    file, config, cache = resolve_single_file(cfg.model, cfg.checkpoint_config, cache_dir)
    # `config` is a folder on disk, or (downloads allowed) a hub id not fetched yet.
    xl = checkpoint_is_sdxl(file, Path(config) if cache is None else None, config)
    kwargs: dict[str, Any] = {**dtype_kwarg(dtype), "config": config, "local_files_only": cache is None}
    if cache is not None:
        kwargs["cache_dir"] = str(cache)
    if not xl:  # SD 1.x/2.x pipelines carry a safety checker
        kwargs.update(NO_SAFETY_CHECKER)
    cls = StableDiffusionXLPipeline if xl else StableDiffusionPipeline
    try:
        return cls.from_single_file(str(file), **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        # A checkpoint of another architecture than its configs gives shape or key errors.
        raise RuntimeError(f"{file} could not be loaded with the configs of {config} ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200]}); if it is not SD 1.5, set generator.checkpoint_config "
                           f"to the matching diffusers model") from exc


def _from_pretrained(pipeline_class: Any, cfg: GeneratorConfig, dtype: torch.dtype, cache_dir: Path | None) -> Any:
    source, cache = resolve_model_source(cfg.model, cache_dir)
    kwargs: dict[str, Any] = {**dtype_kwarg(dtype), "local_files_only": not download_allowed()}
    if cache is not None:
        kwargs["cache_dir"] = str(cache)
    index = _model_index(cfg.model, source, cache, cache_dir)
    if index is None or "safety_checker" in index:
        kwargs.update(NO_SAFETY_CHECKER)
    return pipeline_class.from_pretrained(source, **kwargs)


def load_pipeline(cfg: GeneratorConfig, dtype: torch.dtype, cache_dir: Path | None = None,
                  image2image: bool = False) -> Any:
    """A pipeline for `cfg.model` (a diffusers folder, a hub id, or a single .safetensors/.ckpt
    checkpoint file with `cfg.checkpoint_config`), on the CPU in `dtype`, progress bars off:
    text-to-image, or image-to-image when asked (its `from_pipe` sibling shares every module)."""
    quiet_model_loading()  # before diffusers' pipelines are imported: their import warns too
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

    auto = AutoPipelineForImage2Image if image2image else AutoPipelineForText2Image
    if locate(cfg.model).file is not None:
        pipe = load_single_file(cfg, dtype, cache_dir)
        if image2image:
            pipe = auto.from_pipe(pipe)
    else:
        pipe = _from_pretrained(auto, cfg, dtype, cache_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe
