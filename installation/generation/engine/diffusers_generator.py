"""The reference generator: a Hugging Face diffusers pipeline per frame, img2img on the
camera image and txt2img without one (`generator.engine = "pipeline"`).

The honest, plain path the streaming engine (stream_generator.py) is measured against. It
loads through loading.py like the streaming engine: from the Hugging Face cache or a local
folder, never downloading unless JADONG_ALLOW_DOWNLOAD=1. One thread calls `generate`; `load`
may run on another thread first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from installation.core.messages import GenerationParams, Prompt, StreamRequest
from installation.generation.imaging import check_rgb_uint8, fit_image, to_uint8
from installation.show import GeneratorConfig

from .schedulers import MIN_STRENGTH, img2img_steps

log = logging.getLogger(__name__)


class DiffusersGenerator:
    """Generator protocol (core/interfaces.py) over AutoPipelineForImage2Image / Text2Image.
    Deterministic for the same inputs, so `animating` only while txt2img noise walks
    (`seed_drift`); its load is one step, so it never calls `progress_callback`."""

    name = "diffusers"

    def __init__(self, cfg: GeneratorConfig, cache_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.label = ""
        self.reason = ""
        self.progress_callback: Callable[[str], None] | None = None
        self.device = ""  # "cuda" or "cpu" once loaded
        self.dtype = ""
        self.load_seconds = 0.0
        self._cache_dir = cache_dir
        self._img2img: Any = None
        self._txt2img: Any = None
        self._torch: Any = None
        self._embeds_key: tuple | None = None
        self._embeds: dict[str, Any] | None = None
        self._can_cache_embeds = True
        self.style_lora: Any = None  # parts.StyleLora: the show's `lora`, its weight changeable per cue
        # Per stream, a blending.NoiseWalk over txt2img's starting latents, while they walk.
        self._walks: dict[int, Any] = {}
        self._walking = False  # a stream of the last call walked

    @property
    def animating(self) -> bool:
        """True while txt2img noise walks (`seed_drift`): the same inputs paint a new frame."""
        return self._walking

    @property
    def loaded(self) -> bool:
        return self._img2img is not None

    # --- loading -------------------------------------------------------------------------
    def load(self) -> None:
        t0 = time.monotonic()
        import torch

        from .quiet import quiet_model_loading

        quiet_model_loading()  # before diffusers' pipelines are imported: their import warns
        from diffusers import AutoPipelineForText2Image

        from .loading import load_pipeline, placement, warn_if_slow
        from .parts import apply_loras
        from .schedulers import LCM, prepare_scheduler

        where = placement(self.cfg.device)
        img2img = load_pipeline(self.cfg, where.dtype, self._cache_dir, image2image=True)
        # The show's LoRAs, as the streaming engine has them (LCM-LoRA needs its scheduler).
        loaded, self.style_lora = apply_loras(img2img, self.cfg)
        if self.cfg.lcm_lora:
            img2img.scheduler = prepare_scheduler(img2img.scheduler, LCM)
        if loaded:
            log.info("%s: LoRA %s", self.model, ", ".join(loaded))
        img2img.to(where.device)
        # from_pipe shares every module: the second pipeline costs no memory.
        txt2img = AutoPipelineForText2Image.from_pipe(img2img)
        txt2img.set_progress_bar_config(disable=True)
        warn_if_slow(self.model, getattr(img2img, "unet", None), where.device)
        self._torch = torch
        self._txt2img = txt2img
        self._img2img = img2img
        self.device = where.device
        self.dtype = where.dtype_name
        self.load_seconds = time.monotonic() - t0
        log.info("%s loaded on %s (%s) in %.1f s", self.model, self.device, self.dtype, self.load_seconds)

    def release(self) -> None:
        """Drops the pipelines and everything made from them, then frees their memory (after
        running out of GPU memory); `load` builds them again. Called on the painting thread."""
        self._img2img = self._txt2img = None
        self._embeds_key = self._embeds = None
        self._walks = {}
        self.style_lora = None
        self._walking = False
        self.device = ""
        from .memory import free_memory

        free_memory()

    # --- generating ----------------------------------------------------------------------
    def _do_cfg(self, guidance_scale: float) -> bool:
        # The pipelines' own rule: guidance only above 1, and never for guidance-distilled UNets.
        unet = getattr(self._img2img, "unet", None)
        distilled = unet is not None and getattr(unet.config, "time_cond_proj_dim", None) is not None
        return guidance_scale > 1.0 and not distilled

    def _prompt_kwargs(self, prompt: Prompt, guidance_scale: float) -> dict[str, Any]:
        """Prompt embeddings, encoded once per distinct prompt: the text encoder is a fixed
        cost per frame otherwise, and the prompt changes far more rarely than frames come."""
        do_cfg = self._do_cfg(guidance_scale)
        plain = {"prompt": prompt.text, "negative_prompt": prompt.negative or None}
        if not self._can_cache_embeds:
            return plain
        key = (prompt.text, prompt.negative, do_cfg)
        if key == self._embeds_key and self._embeds is not None:
            return self._embeds
        try:
            with self._torch.no_grad():
                out = self._img2img.encode_prompt(
                    prompt=prompt.text,
                    device=self.device,
                    num_images_per_prompt=1,
                    do_classifier_free_guidance=do_cfg,
                    negative_prompt=prompt.negative or None,
                )
        except TypeError as exc:  # a pipeline family with another encode_prompt signature
            log.info("%s: prompt embeddings not cached (%s)", self.model, exc)
            self._can_cache_embeds = False
            return plain
        if len(out) == 2:  # SD 1.x / 2.x
            embeds = {"prompt_embeds": out[0], "negative_prompt_embeds": out[1]}
        elif len(out) == 4:  # SDXL: also the pooled embeddings
            embeds = {
                "prompt_embeds": out[0],
                "negative_prompt_embeds": out[1],
                "pooled_prompt_embeds": out[2],
                "negative_pooled_prompt_embeds": out[3],
            }
        else:
            self._can_cache_embeds = False
            return plain
        self._embeds_key, self._embeds = key, {k: v for k, v in embeds.items() if v is not None}
        return self._embeds

    def set_lora_scale(self, scale: float) -> None:
        """The style LoRA's weight from now on (a cue's), without reloading."""
        if self.style_lora is not None and self.style_lora.set_weight(scale):
            self._embeds_key = self._embeds = None  # the text encoder changed: encode prompts again

    def _walked_latents(self, stream: int, params: GenerationParams) -> Any:
        """txt2img's starting noise of `stream` while it walks (`seed_drift` > 0), else None
        (the pipeline draws it from the seed, as always)."""
        if params.seed_drift <= 0:
            self._walks.pop(stream, None)
            return None
        walk = self._walks.get(stream)
        if walk is None:
            from .blending import NoiseWalk

            channels = self._txt2img.unet.config.in_channels
            shape = (1, channels, self.cfg.height // 8, self.cfg.width // 8)
            torch = self._torch
            walk = self._walks[stream] = NoiseWalk(
                lambda seed: torch.randn(shape, generator=torch.Generator().manual_seed(seed)))
        now = time.monotonic()
        walk.set_drift(params.seed_drift)
        walk.set_seed(int(params.seed), params.prompt_blend_s, now)
        return walk.value(now).to(self.device, self._txt2img.unet.dtype)

    def generate(self, prompt: Prompt, params: GenerationParams, image: np.ndarray | None) -> np.ndarray:
        return self.generate_many([StreamRequest(0, prompt, params, image)])[0]

    def generate_many(self, requests: Sequence[StreamRequest]) -> list[np.ndarray]:
        """One pipeline call per stream, in turns: this is the plain reference path (a diffusers
        pipeline takes one strength and step count per call, so streams could only batch when
        those agree, and it would no longer be the path a user writes)."""
        if self._img2img is None:
            raise RuntimeError(f"{self.model}: generate() called before load()")
        streams = [r.stream for r in requests]
        if len(set(streams)) != len(streams):
            raise ValueError(f"streams {streams}: each stream at most once per call")
        single = len(requests) == 1
        painted = [self._generate_one(r, "camera image" if single else f"stream {r.stream}: camera image")
                   for r in requests]
        self._walking = any(walked for _, walked in painted)
        return [frame for frame, _ in painted]

    def _generate_one(self, request: StreamRequest, image_label: str) -> tuple[np.ndarray, bool]:
        """The stream's frame, and whether its txt2img noise walks."""
        prompt, params, image = request.prompt, request.params, request.image
        width, height = self.cfg.width, self.cfg.height
        text = self._prompt_kwargs(prompt, params.guidance_scale)
        # A CPU generator gives the same noise for a seed on any device.
        generator = self._torch.Generator(device="cpu").manual_seed(int(params.seed))
        common = {"guidance_scale": params.guidance_scale, "generator": generator, "output_type": "np"}

        if image is None or self.cfg.mode == "txt2img":
            latents = self._walked_latents(request.stream, params)
            out = self._txt2img(**text, **common, num_inference_steps=params.steps, width=width, height=height,
                                latents=latents)
            return to_uint8(out.images[0]), latents is not None

        frame = fit_image(check_rgb_uint8(image, image_label), width, height)
        if params.strength < MIN_STRENGTH:
            return frame.copy(), False
        from PIL import Image

        out = self._img2img(
            **text,
            **common,
            image=Image.fromarray(frame),
            strength=params.strength,
            num_inference_steps=img2img_steps(params.steps, params.strength),
        )
        return to_uint8(out.images[0]), False
