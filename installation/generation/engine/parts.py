"""What the streaming engine runs, from a loaded pipeline (loading.py): the fast autoencoder
(TAESD / TAESDXL), LCM-LoRA and the show's own style LoRA fused into the UNet so they cost
nothing per frame, and the EngineParts view over it all.

Offline like the pipeline itself unless JADONG_ALLOW_DOWNLOAD=1; a missing piece raises
FileNotFoundError naming it and the fetch command.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from installation.core.downloads import FETCH_COMMAND, download_allowed, hf_cache_dir
from installation.show import GeneratorConfig, resolve_path

from .loading import dtype_kwarg
from .models import TAESD, TAESDXL, autoencoder_folder, looks_like_hf_id
from .stream import Conditioning, EngineParts

log = logging.getLogger(__name__)


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


def _hub_kwargs() -> dict[str, Any]:
    return {"local_files_only": not download_allowed(), "cache_dir": str(hf_cache_dir())}


def load_autoencoder(choice: str, model_is_sdxl: bool, dtype: torch.dtype) -> Any | None:
    """The autoencoder to use: None for the model's own (`full`), else an AutoencoderTiny.
    `auto` takes TAESD / TAESDXL when it is on disk and says in one line when it is not."""
    from diffusers import AutoencoderTiny

    if choice == "full":
        return None
    ref = (TAESDXL if model_is_sdxl else TAESD) if choice == "auto" else choice
    folder, missing = autoencoder_folder(ref)
    if folder is not None:
        src, kwargs = str(folder), {}  # a folder: diffusers asks the hub nothing
    elif choice == "auto" and not download_allowed():
        log.warning("the fast autoencoder %s is not downloaded; using the model's own VAE (slower); "
                    "`%s` gets it", ref, FETCH_COMMAND)
        return None
    elif not download_allowed():
        raise FileNotFoundError(f"generator.autoencoder {ref}: {missing}; "
                                + (f"fetch it with: {FETCH_COMMAND}" if looks_like_hf_id(ref) else
                                   "check the path (relative paths start at the project folder)"))
    else:
        src, kwargs = ref, _hub_kwargs()
    try:
        return AutoencoderTiny.from_pretrained(src, **dtype_kwarg(dtype), **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0][:160]
        if choice == "auto":
            log.warning("the fast autoencoder %s could not be loaded (%s); using the model's own VAE (slower)",
                        ref, first)
            return None
        raise FileNotFoundError(f"generator.autoencoder {ref} could not be loaded: {first}") from None


def _lora_args(ref: str) -> tuple[str, dict[str, Any]]:
    """load_lora_weights arguments for a folder, a single .safetensors file or a hub id."""
    p = resolve_path(ref)
    if p.is_file():
        return str(p.parent), {"weight_name": p.name}
    if p.is_dir():
        return str(p), {}
    if looks_like_hf_id(ref):
        return ref, _hub_kwargs()
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
