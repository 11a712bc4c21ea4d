"""A diffusers SD 1.x/2.x model as one checkpoint in the original Stable Diffusion ("LDM")
layout: the format community single-file models ship in.

The inverse of what diffusers' `from_single_file` reads (diffusers.loaders.single_file_utils),
after diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py, but with the block
numbering computed from the model's config instead of SD's fixed 4 blocks × 2 layers: the tiny
test model (2 UNet blocks, 1 layer each) round-trips through the very path a show's
`.safetensors` takes. Every tensor must find a name; one that does not is an error, not a gap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."

_UNET_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_VAE_RESNET = (("conv_shortcut", "nin_shortcut"),)
_VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _unet_prefixes(cfg: dict) -> list[tuple[str, str, tuple]]:
    """(diffusers prefix, LDM prefix, renames inside) for every UNet module. LDM numbers the
    down path as input_blocks (1 conv_in, then layers+1 per block: the layers and a
    downsampler) and the up path as output_blocks (layers+1 per block, upsampler inside the last)."""
    n, per = len(cfg["block_out_channels"]), cfg["layers_per_block"]
    out: list[tuple[str, str, tuple]] = [
        ("time_embedding.linear_1.", "time_embed.0.", ()), ("time_embedding.linear_2.", "time_embed.2.", ()),
        ("conv_in.", "input_blocks.0.0.", ()), ("conv_norm_out.", "out.0.", ()), ("conv_out.", "out.2.", ()),
        ("mid_block.resnets.0.", "middle_block.0.", _UNET_RESNET), ("mid_block.attentions.0.", "middle_block.1.", ()),
        ("mid_block.resnets.1.", "middle_block.2.", _UNET_RESNET),
    ]
    for i in range(n):
        for j in range(per):
            k = (per + 1) * i + j + 1
            out += [(f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{k}.0.", _UNET_RESNET),
                    (f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{k}.1.", ())]
        out.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(per + 1) * (i + 1)}.0.op.", ()))
        for j in range(per + 1):
            k = (per + 1) * i + j
            out += [(f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{k}.0.", _UNET_RESNET),
                    (f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{k}.1.", ())]
        # The upsampler sits after the last layer's resnet and, in cross-attention blocks, its attention.
        slot = 2 if "Attn" in cfg["up_block_types"][i] else 1
        out.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{(per + 1) * i + per}.{slot}.", ()))
    return out


def _vae_prefixes(cfg: dict) -> list[tuple[str, str, tuple]]:
    """The autoencoder: LDM counts decoder blocks from the bottom (up.0 is the last to run)."""
    n, per = len(cfg["block_out_channels"]), cfg["layers_per_block"]
    out: list[tuple[str, str, tuple]] = [
        ("encoder.conv_norm_out.", "encoder.norm_out.", ()), ("decoder.conv_norm_out.", "decoder.norm_out.", ())]
    for part in ("encoder", "decoder"):
        out += [(f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1.", _VAE_RESNET),
                (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2.", _VAE_RESNET),
                (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.", _VAE_ATTENTION)]
    for i in range(n):
        out += [(f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.", _VAE_RESNET)
                for j in range(per)]
        out.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.", ()))
        out += [(f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{n - 1 - i}.block.{j}.", _VAE_RESNET)
                for j in range(per + 1)]
        out.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample.", ()))
    for same in ("encoder.conv_in.", "encoder.conv_out.", "decoder.conv_in.", "decoder.conv_out.",
                 "quant_conv.", "post_quant_conv.", ):
        out.append((same, same, ()))
    return out


def _rename(state: dict[str, Any], prefixes: list[tuple[str, str, tuple]], what: str) -> dict[str, Any]:
    out = {}
    for key, tensor in state.items():
        match = max((p for p in prefixes if key.startswith(p[0])), key=lambda p: len(p[0]), default=None)
        if match is None:
            raise KeyError(f"{what}: no LDM name for {key}")
        src, dst, inner = match
        rest = key[len(src):]
        for old, new in inner:
            if rest.startswith(old + "."):
                rest = new + rest[len(old):]
                break
        out[dst + rest] = tensor
    return out


def unet_to_ldm(state: dict[str, Any], config: dict) -> dict[str, Any]:
    return {UNET_PREFIX + k: v for k, v in _rename(state, _unet_prefixes(config), "unet").items()}


def vae_to_ldm(state: dict[str, Any], config: dict) -> dict[str, Any]:
    out = {}
    for key, tensor in _rename(state, _vae_prefixes(config), "vae").items():
        # LDM's mid-block attention is made of 1x1 convolutions where diffusers has linear layers.
        if ".mid.attn_1." in key and key.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")):
            tensor = tensor.reshape(*tensor.shape, 1, 1)
        out[VAE_PREFIX + key] = tensor
    return out


def clip_to_ldm(state: dict[str, Any]) -> dict[str, Any]:
    """SD 1.x kept the Hugging Face CLIPTextModel whole, under one prefix, as transformers 4
    named it ("text_model.embeddings..."); transformers 5 drops the "text_model." level."""
    return {CLIP_PREFIX + (k if k.startswith("text_model.") else "text_model." + k): v for k, v in state.items()}


def ldm_state_dict(unet: Any, vae: Any, text_encoder: Any) -> dict[str, Any]:
    """One LDM-layout state dict from loaded diffusers/transformers modules (contiguous copies,
    as safetensors refuses views and shared storage)."""
    state = {**unet_to_ldm(unet.state_dict(), dict(unet.config)),
             **vae_to_ldm(vae.state_dict(), dict(vae.config)),
             **clip_to_ldm(text_encoder.state_dict())}
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


def write_single_file(folder: Path, dest: Path) -> Path:
    """The diffusers model in `folder` as one checkpoint at `dest`: .safetensors, or .ckpt (a
    torch pickle with the tensors under "state_dict", as the original SD releases)."""
    import torch

    from .quiet import quiet_model_loading

    quiet_model_loading()
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    folder, dest = Path(folder), Path(dest)
    state = ldm_state_dict(UNet2DConditionModel.from_pretrained(folder, subfolder="unet"),
                           AutoencoderKL.from_pretrained(folder, subfolder="vae"),
                           CLIPTextModel.from_pretrained(folder, subfolder="text_encoder"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix.lower() == ".ckpt":
        torch.save({"state_dict": state}, dest)
    else:
        from safetensors.torch import save_file

        save_file(state, str(dest))
    return dest
