"""From a show's generator settings to the engine's parts: the pipeline's components, the
fast autoencoder (TAESD / TAESDXL), LCM-LoRA and the show's own style LoRA, fused into the
UNet so they cost nothing per frame.

Everything loads offline (`local_files_only`) unless JADONG_ALLOW_DOWNLOAD=1; a missing piece
raises FileNotFoundError naming it and the fetch command.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from installation.show import GeneratorConfig, resolve_path
from .models import FETCH_COMMAND, download_allowed, hf_cache_dir, locate, looks_like_hf_id
from .stream import Conditioning, EngineParts

log = logging.getLogger(__name__)

TAESD = "madebyollin/taesd"
TAESDXL = "madebyollin/taesdxl"
LCM_SCHEDULER = "lcm"


def parts_from_pipeline(pipe: Any, vae: Any = None, scheduler: Any = None, device: str = "cpu",
                        dtype: torch.dtype = torch.float32) -> EngineParts:
    """EngineParts over a loaded diffusers pipeline (SD 1.x/2.x or SDXL): its encode_prompt is
    the one text path, so LoRA scales, clip skip and SDXL's two encoders behave as diffusers'."""
    sdxl = hasattr(pipe, "text_encoder_2")

    def encode(text: str, negative: str, cfg: bool) -> Conditioning:
        with torch.inference_mode():
            if sdxl:
                pe, npe, pooled, npooled = pipe.encode_prompt(
                    prompt=text, device=device, num_images_per_prompt=1, do_classifier_free_guidance=cfg,
                    negative_prompt=negative or None)
                return Conditioning(pe, npe if cfg else None, pooled, npooled if cfg else None)
            pe, npe = pipe.encode_prompt(prompt=text, device=device, num_images_per_prompt=1,
                                         do_classifier_free_guidance=cfg, negative_prompt=negative or None)
            return Conditioning(pe, npe if cfg else None)

    return EngineParts(unet=pipe.unet, vae=vae if vae is not None else pipe.vae,
                       scheduler=scheduler if scheduler is not None else pipe.scheduler,
                       encode_prompt=encode, device=device, dtype=dtype)


def _source(ref: str, what: str) -> tuple[str, dict[str, Any]]:
    """(path or id, from_pretrained kwargs) for a model reference; FileNotFoundError if absent."""
    loc = locate(ref)
    if loc.folder is not None:
        if not loc.folder.exists():
            raise FileNotFoundError(f"{what} {ref}: {loc.folder} does not exist")
        return str(loc.folder), {}
    kwargs: dict[str, Any] = {"local_files_only": not download_allowed(), "cache_dir": str(hf_cache_dir())}
    return ref, kwargs


def load_autoencoder(choice: str, model_is_sdxl: bool, dtype: torch.dtype) -> Any | None:
    """The autoencoder to use: None for the model's own (`full`), else an AutoencoderTiny.
    `auto` takes TAESD / TAESDXL when it is on disk and says so when it is not."""
    from diffusers import AutoencoderTiny

    if choice == "full":
        return None
    ref = (TAESDXL if model_is_sdxl else TAESD) if choice == "auto" else choice
    src, kwargs = _source(ref, "autoencoder")
    try:
        return AutoencoderTiny.from_pretrained(src, **_dtype_kw(dtype), **kwargs)
    except (OSError, ValueError) as exc:
        if choice == "auto":
            log.warning("fast autoencoder %s not found (%s); using the model's full VAE (slower). "
                        "Fetch it with: %s", ref, str(exc).splitlines()[0][:160], FETCH_COMMAND)
            return None
        raise FileNotFoundError(f"generator.autoencoder {ref} could not be loaded: {exc}; "
                                f"fetch it with: {FETCH_COMMAND}") from None


def _dtype_kw(dtype: torch.dtype) -> dict[str, Any]:
    from .diffusers_generator import _dtype_kwarg

    return _dtype_kwarg(dtype)


def _lora_args(ref: str) -> tuple[str, dict[str, Any]]:
    """load_lora_weights arguments for a folder, a single .safetensors file or a hub id."""
    p = resolve_path(ref)
    if p.is_file():
        return str(p.parent), {"weight_name": p.name}
    if p.is_dir():
        return str(p), {}
    if looks_like_hf_id(ref):
        return ref, {"local_files_only": not download_allowed(), "cache_dir": str(hf_cache_dir())}
    raise FileNotFoundError(f"LoRA {ref}: no such file or folder ({p})")


def apply_loras(pipe: Any, cfg: GeneratorConfig) -> list[str]:
    """Loads LCM-LoRA and the show's LoRA, fuses them into the weights, and drops the adapters:
    a fused LoRA costs nothing per frame and keeps the UNet plain for compile and graphs."""
    names, weights, loaded = [], [], []
    for ref, name, weight in ((cfg.lcm_lora, "lcm", 1.0), (cfg.lora, "style", cfg.lora_scale)):
        if not ref:
            continue
        src, kwargs = _lora_args(ref)
        try:
            pipe.load_lora_weights(src, adapter_name=name, **kwargs)
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"LoRA {ref} could not be loaded ({str(exc).splitlines()[0][:200]}); "
                                    f"fetch it with: {FETCH_COMMAND}") from None
        names.append(name)
        weights.append(weight)
        loaded.append(ref)
    if names:
        pipe.set_adapters(names, adapter_weights=weights)
        pipe.fuse_lora(adapter_names=names)
        pipe.unload_lora_weights()
    return loaded


def load_single_file(cfg: GeneratorConfig, dtype: torch.dtype, cache_dir: Path | None = None) -> Any:
    """A pipeline from a single .safetensors/.ckpt checkpoint (the original SD layout): weights
    from the file, architecture from `cfg.checkpoint_config`'s configs on disk (or diffusers' guess),
    handed to from_single_file as a folder so it never reaches for the network by itself."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    from .checkpoint_file import checkpoint_is_sdxl
    from .models import resolve_single_file

    file, config, cache = resolve_single_file(cfg.model, cfg.checkpoint_config, cache_dir)
    # `config` is a folder on disk, or (downloads allowed) a hub id not fetched yet.
    xl = checkpoint_is_sdxl(file, Path(config) if cache is None else None, config)
    kwargs: dict[str, Any] = {**_dtype_kw(dtype), "config": config, "local_files_only": cache is None}
    if cache is not None:
        kwargs["cache_dir"] = str(cache)
    if not xl:  # SD 1.x/2.x pipelines carry a safety checker; prompts are moderated before they get here
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    cls = StableDiffusionXLPipeline if xl else StableDiffusionPipeline
    try:
        return cls.from_single_file(str(file), **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        # A checkpoint of another architecture than its configs gives shape or key errors.
        raise RuntimeError(f"{file} could not be loaded with the configs of {config} ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200]}); if it is not SD 1.5, set generator.checkpoint_config "
                           f"to the matching diffusers model") from exc


def load_pipeline(cfg: GeneratorConfig, device: str, dtype: torch.dtype, cache_dir: Path | None = None) -> Any:
    """A text-to-image pipeline for `cfg.model`: a diffusers folder, a hub id, or a single
    .safetensors/.ckpt checkpoint file (with `cfg.checkpoint_config`)."""
    from diffusers import AutoPipelineForText2Image

    from .models import resolve_model_source

    if locate(cfg.model).file is not None:
        pipe = load_single_file(cfg, dtype, cache_dir)
    else:
        source, cache = resolve_model_source(cfg.model, cache_dir)
        kwargs: dict[str, Any] = {**_dtype_kw(dtype), "safety_checker": None, "requires_safety_checker": False,
                                  "local_files_only": not download_allowed()}
        if cache is not None:
            kwargs["cache_dir"] = str(cache)
        try:
            pipe = AutoPipelineForText2Image.from_pretrained(source, **kwargs)
        except TypeError:  # a pipeline class without a safety checker argument
            kwargs.pop("safety_checker"), kwargs.pop("requires_safety_checker")
            pipe = AutoPipelineForText2Image.from_pretrained(source, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe
