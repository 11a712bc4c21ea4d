"""Model architectures built from configs with random weights: the real SD-Turbo shapes for GPU
benchmarks (what a frame costs does not depend on the weights' values), and tiny ones for
tests and the CPU benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# stabilityai/sd-turbo's unet/config.json (the SD 2.1 UNet, 866M parameters).
SD_TURBO_UNET = dict(
    act_fn="silu", attention_head_dim=[5, 10, 20, 20], block_out_channels=[320, 640, 1280, 1280],
    center_input_sample=False, cross_attention_dim=1024,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    downsample_padding=1, dual_cross_attention=False, flip_sin_to_cos=True, freq_shift=0, in_channels=4,
    layers_per_block=2, mid_block_scale_factor=1, norm_eps=1e-05, norm_num_groups=32, out_channels=4,
    sample_size=64, up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    use_linear_projection=True, upcast_attention=False,
)
# The OpenCLIP ViT-H/14 text tower SD 2.x uses (23 of its 24 layers, as SD 2 takes the penultimate).
SD_TURBO_TEXT = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
                     projection_dim=512, hidden_act="gelu", max_position_embeddings=77)
# TAESD is AutoencoderTiny's default configuration.
TINY_TAESD = dict(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                  num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))


@dataclass
class Components:
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    description: str


def euler_trailing() -> Any:
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  num_train_timesteps=1000, prediction_type="epsilon",
                                  timestep_spacing="trailing", steps_offset=1)


def tiny_taesd(seed: int = 0) -> Any:
    from diffusers import AutoencoderTiny

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderTiny(**TINY_TAESD)


def _tokenizer() -> Any:
    import tempfile
    from pathlib import Path

    from transformers import CLIPTokenizer

    from .bpe_vocab import END_TOKEN, learn_bpe

    folder = Path(tempfile.mkdtemp(prefix="jadong-tok-"))
    learn_bpe().write(folder)
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), bos_token="<|startoftext|>",
                         eos_token=END_TOKEN, unk_token=END_TOKEN, pad_token=END_TOKEN, model_max_length=77)


def sd_turbo_components(device: str, dtype: torch.dtype, seed: int = 0) -> Components:
    """SD-Turbo's architecture (SD 2.1 UNet, OpenCLIP-H text encoder, TAESD) with random weights,
    created straight on `device` (no slow CPU initialisation of 866M parameters)."""
    from diffusers import AutoencoderTiny, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = _tokenizer()
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**SD_TURBO_UNET)
        vae = AutoencoderTiny()
        text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, bos_token_id=tok.bos_token_id,
                                            eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id,
                                            **SD_TURBO_TEXT))
    for m in (unet, vae, text):
        m.to(dtype).eval().requires_grad_(False)
    n = sum(p.numel() for p in unet.parameters()) // 1_000_000
    return Components(unet, vae, text, tok, euler_trailing(),
                      f"SD-Turbo architecture (SD 2.1 UNet {n}M params, OpenCLIP-H text encoder, TAESD), "
                      "random weights")


def tiny_components(folder: Any, seed: int = 0) -> Components:
    """The tiny test model's UNet, text encoder and tokenizer, with a tiny TAESD-shaped autoencoder."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    return Components(pipe.unet.eval(), tiny_taesd(seed).eval(), pipe.text_encoder.eval(), pipe.tokenizer,
                      pipe.scheduler, "tiny random-weight SD (UNet 32/64 channels, 2-layer CLIP, 8-channel TAESD)")


def tiny_sdxl_pipeline(base: Any, seed: int = 0) -> Any:
    """A tiny random-weight SDXL text-to-image pipeline: diffusers' own tiny SDXL test shapes
    (a UNet with SDXL's text+time conditioning, two CLIP text encoders, the second with a
    projection for the pooled embedding), sharing the tiny SD model's tokenizer, autoencoder
    and scheduler (`base`, a loaded tiny SD pipeline). SDXL-Turbo's code paths on a CPU."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    te = base.text_encoder.config
    text_config = dict(bos_token_id=te.bos_token_id, eos_token_id=te.eos_token_id, pad_token_id=te.pad_token_id,
                       hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4,
                       num_hidden_layers=2, vocab_size=te.vocab_size,
                       max_position_embeddings=te.max_position_embeddings, hidden_act="gelu", projection_dim=32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=6 * 8 + 32,  # time ids (6 × 8) + the pooled text embedding
            cross_attention_dim=64, norm_num_groups=1)  # the two encoders' 32 + 32 features
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**text_config))
    pipe = StableDiffusionXLPipeline(vae=base.vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=base.tokenizer, tokenizer_2=base.tokenizer, unet=unet.eval(),
                                     scheduler=base.scheduler, force_zeros_for_empty_prompt=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
