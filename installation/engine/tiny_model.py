"""A tiny random-weight Stable Diffusion model folder, for tests and for trying the pipeline
on a machine without the real weights.

The layout is the one `save_pretrained` gives a real model (model_index.json, unet/, vae/,
text_encoder/, tokenizer/, scheduler/), so the very code that loads SD-Turbo loads this too.
Sizes follow diffusers' own `get_dummy_components()`, with one change: the autoencoder has
four blocks, so it shrinks images 8× like SD's does and latent shapes match production.
The scheduler is SD-Turbo's (Euler, trailing timesteps).
"""

from __future__ import annotations

import json
from pathlib import Path

from .bpe_vocab import END_TOKEN, learn_bpe

# Pixels per side the model is "made for" (64 → 8×8 latents, 128 → 16×16). Any multiple of 8
# works; these are just the defaults a pipeline uses when no size is given.
TINY_IMAGE_SIZE = 128
MAX_TOKENS = 77


def write_tiny_model(dest: Path, seed: int = 0) -> Path:
    """Writes the model into `dest` (created if needed) and returns `dest`. The same seed
    gives the same weights."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)

    bpe = learn_bpe()
    tok_dir = dest / "tokenizer"
    bpe.write(tok_dir)
    # model_max_length must be written: without it the pipeline pads prompts to 10^30 tokens.
    tok_config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_TOKENS,
        "bos_token": "<|startoftext|>",
        "eos_token": END_TOKEN,
        "unk_token": END_TOKEN,
        "pad_token": END_TOKEN,
        "do_lower_case": True,
    }
    (tok_dir / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2), encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)

    # Fork the RNG so writing a model never disturbs another thread's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=1,
            sample_size=TINY_IMAGE_SIZE // 8,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            norm_num_groups=32,
        )
        vae = AutoencoderKL(
            block_out_channels=(16, 32, 32, 32),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=8,
            sample_size=TINY_IMAGE_SIZE,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                bos_token_id=bpe.bos_token_id,
                eos_token_id=bpe.eos_token_id,
                pad_token_id=bpe.eos_token_id,
                hidden_size=32,
                intermediate_size=37,
                layer_norm_eps=1e-05,
                num_attention_heads=4,
                num_hidden_layers=2,
                vocab_size=len(bpe.vocab),
                max_position_embeddings=MAX_TOKENS,
            )
        )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        prediction_type="epsilon",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(dest, safe_serialization=True)
    return dest


def ensure_tiny_model(dest: Path, seed: int = 0) -> Path:
    """`dest` holding the tiny model, written only if it is not there yet. It is written
    beside `dest` and renamed into place, so a reader never sees half a model."""
    dest = Path(dest)
    if (dest / "model_index.json").is_file():
        return dest
    import shutil
    import tempfile

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        write_tiny_model(tmp, seed)
        try:
            tmp.rename(dest)
        except OSError:  # another process won the race; its model is as good as ours
            if not (dest / "model_index.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
