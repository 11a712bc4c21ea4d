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


class StyleLora:
    """The show's style LoRA in the weights, at a weight that can change between two frames
    without reloading (a cue's `lora_scale`).

    It is added into the weights as fusing does (so it costs nothing per frame and the UNet
    stays plain for compile and graphs), but each layer's weight without it is kept on the CPU
    with the LoRA's own low-rank factors: a new weight writes `base + weight × delta` into the
    very same tensors, so captured CUDA graphs and compiled programs see it at once.
    """

    def __init__(self, ref: str, layers: list[_LoraTarget], weight: float) -> None:
        self.ref = ref
        self._layers = layers
        self.weight = float("nan")  # nothing written yet
        self.set_weight(weight)

    @property
    def touches_text_encoder(self) -> bool:
        return any(layer.text_encoder for layer in self._layers)

    @torch.no_grad()
    def set_weight(self, weight: float) -> bool:
        """Writes the LoRA at `weight` into the model. True when that changed the text
        encoder too (prompts must then be encoded again)."""
        weight = float(weight)
        if weight == self.weight:
            return False
        for layer in self._layers:
            layer.write(weight)
        self.weight = weight
        return self.touches_text_encoder


class _LoraTarget:
    """One layer the style LoRA changes: the live module, its weight without the LoRA (CPU), and
    peft's detached LoRA layer, which knows the delta (linear or convolution alike)."""

    def __init__(self, module: Any, lora_layer: Any, adapter: str, text_encoder: bool, attention: Any) -> None:
        self.module = module
        self.lora_layer = lora_layer
        self.adapter = adapter
        self.text_encoder = text_encoder
        self.attention = attention  # the diffusers Attention it projects for (fused q/k/v are refreshed), or None
        self.base = module.weight.detach().to("cpu", copy=True)

    def write(self, weight: float) -> None:
        w = self.module.weight
        self.lora_layer.to(w.device)  # the factors follow the model (a no-op once there)
        delta = self.lora_layer.get_delta_weight(self.adapter).to(torch.float32)
        new = self.base.to(w.device, torch.float32) + weight * delta
        w.copy_(new.to(w.dtype))
        _refresh_fused_projections(self.attention)


def _refresh_fused_projections(attn: Any) -> None:
    """diffusers' fuse_qkv_projections copies q, k and v into one layer: after they change,
    copy them again, in place (a captured graph keeps reading the same tensor)."""
    if attn is None or not getattr(attn, "fused_projections", False):
        return
    qkv, kv = getattr(attn, "to_qkv", None), getattr(attn, "to_kv", None)
    if qkv is not None:
        qkv.weight.copy_(torch.cat([attn.to_q.weight, attn.to_k.weight, attn.to_v.weight]))
    if kv is not None:
        kv.weight.copy_(torch.cat([attn.to_k.weight, attn.to_v.weight]))


def _lora_targets(pipe: Any, adapter: str) -> list[tuple[Any, str, Any, bool]]:
    """(component, module name, peft LoRA layer, is a text encoder) for every layer `adapter` changes."""
    from peft.tuners.lora import LoraLayer

    found = []
    for attr in ("unet", "text_encoder", "text_encoder_2"):
        component = getattr(pipe, attr, None)
        if component is None:
            continue
        for name, module in component.named_modules():
            if isinstance(module, LoraLayer) and adapter in module.lora_A:
                found.append((component, name, module, attr != "unet"))
    return found


def _load_lora(pipe: Any, ref: str, name: str) -> None:
    src, kwargs = _lora_args(ref)
    try:
        pipe.load_lora_weights(src, adapter_name=name, **kwargs)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"LoRA {ref} could not be loaded ({str(exc).splitlines()[0][:200]}); "
                                f"fetch it with: {FETCH_COMMAND}") from None


def apply_loras(pipe: Any, cfg: GeneratorConfig) -> tuple[list[str], StyleLora | None]:
    """Loads LCM-LoRA and the show's LoRA into the weights and drops the adapters: a LoRA in the
    weights costs nothing per frame and keeps the UNet plain for compile and graphs. LCM-LoRA is
    fused for good; the style LoRA is written by a StyleLora at `lora_scale`, so a cue can change
    its weight later. Returns the LoRAs loaded and the StyleLora (None without `lora`)."""
    loaded = []
    if cfg.lcm_lora:
        _load_lora(pipe, cfg.lcm_lora, "lcm")
        loaded.append(cfg.lcm_lora)
    if cfg.lora:
        _load_lora(pipe, cfg.lora, "style")
        loaded.append(cfg.lora)
    if not loaded:
        return [], None
    targets = _lora_targets(pipe, "style") if cfg.lora else []
    if cfg.lcm_lora:
        pipe.set_adapters(["lcm"], adapter_weights=[1.0])
        pipe.fuse_lora(adapter_names=["lcm"])
    if cfg.lora:
        pipe.set_adapters(["style"], adapter_weights=[1.0])  # the delta at weight 1; StyleLora scales it
    pipe.unload_lora_weights()  # the LCM-LoRA stays fused; the style LoRA's layers are kept below
    style = None
    if targets:
        layers = []
        for component, name, lora_layer, text_encoder in targets:
            module = component.get_submodule(name)  # the plain layer, back in the model
            parent = component.get_submodule(name.rsplit(".", 1)[0]) if "." in name else None
            attention = parent if hasattr(parent, "to_q") else None
            layers.append(_LoraTarget(module, lora_layer, "style", text_encoder, attention))
        style = StyleLora(cfg.lora, layers, cfg.lora_scale)
    return loaded, style
