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

    from .quiet import quiet_model_loading

    quiet_model_loading()  # before diffusers' pipelines are imported: their import warns
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


def write_tiny_lora(model: Path, dest: Path, seed: int = 0, rank: int = 4) -> Path:
    """Writes a random-weight LoRA for the tiny model at `model` into `dest` (a folder holding
    pytorch_lora_weights.safetensors, as diffusers' training scripts save one): the UNet's
    attention projections and the text encoder's, so a show's `lora` and its weight can be
    tested end to end. The same seed gives the same LoRA."""
    import torch

    from .quiet import quiet_model_loading

    quiet_model_loading()
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(model)
    # init_lora_weights=False: both factors random, so the LoRA changes the picture at once
    # (a trained one starts from B = 0 and learns).
    unet_cfg = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                          target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    text_cfg = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                          target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = inject_adapter_in_model(unet_cfg, pipe.unet)
        text_encoder = inject_adapter_in_model(text_cfg, pipe.text_encoder)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        dest, unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
        text_encoder_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(text_encoder)),
        safe_serialization=True)
    return dest


def _bench(folder: Path, size: int, frames: int) -> None:
    """Per-frame time of the tiny model through the real DiffusersGenerator (1 step, img2img
    at strength 0.5 and txt2img), for the report; prints numbers, asserts nothing."""
    import statistics
    import time

    import numpy as np

    from installation.core.messages import GenerationParams, Prompt
    from installation.show import GeneratorConfig

    from .diffusers_generator import DiffusersGenerator

    gen = DiffusersGenerator(GeneratorConfig(kind="diffusers", model=str(folder), width=size, height=size))
    gen.load()
    image = (np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8)
    prompt, params = Prompt("a quiet garden at dawn, ink wash painting"), GenerationParams(strength=0.5, steps=1)
    for label, img in (("img2img", image), ("txt2img", None)):
        gen.generate(prompt, params, img)  # warm-up: first call pays for kernel selection
        times = []
        for _ in range(frames):
            t0 = time.perf_counter()
            gen.generate(prompt, params, img)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{label} {size}x{size} on {gen.device}: median {statistics.median(times):.1f} ms, "
              f"min {min(times):.1f} ms over {frames} frames")


def main(argv: list[str] | None = None) -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Write the tiny random-weight SD model (and time it).")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bench", type=int, default=0, metavar="FRAMES", help="time this many frames per mode")
    parser.add_argument("--size", type=int, action="append", help="frame size for --bench (repeatable)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    write_tiny_model(args.dest, args.seed)
    print(f"wrote {args.dest} in {time.perf_counter() - t0:.2f} s")
    for size in args.size or [64, 128]:
        if args.bench:
            _bench(args.dest, size, args.bench)


if __name__ == "__main__":
    main()
