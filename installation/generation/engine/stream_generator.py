"""The Generator (core/interfaces.py) over the streaming engine (stream.py): what a show runs
by default (`generator.engine = "stream"`).

`load` gets the pipeline through loading.py (device, dtype, offline rules, as the diffusers
generator does), adds the streaming engine's parts (parts.py: TAESD, fused LoRAs) and prepares
the step counts the show allows (CUDA graphs, torch.compile) while the GeneratorWorker keeps
the preview on screen; `progress_callback`, when set, hears each preparation step for the screen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from installation.core.messages import GenerationParams, Prompt
from installation.generation.imaging import check_rgb_uint8, fit_image
from installation.show import GeneratorConfig, resolve_path

from .schedulers import MIN_STRENGTH

if TYPE_CHECKING:  # stream.py imports torch; this module loads it only in load()
    from .parts import StyleLora
    from .stream import StreamEngine

log = logging.getLogger(__name__)


class StreamGenerator:
    """Generator protocol (core/interfaces.py) over a StreamEngine."""

    name = "stream"

    def __init__(self, cfg: GeneratorConfig, cache_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.label = ""
        self.reason = ""
        self.device = ""
        self.dtype = ""
        self.load_seconds = 0.0
        self.accel = ""
        self.progress_callback: Callable[[str], None] | None = None
        self.engine: StreamEngine | None = None
        self.style_lora: StyleLora | None = None  # the show's `lora`, its weight changeable per cue
        self._cache_dir = cache_dir
        self._still_loaded = False

    @property
    def loaded(self) -> bool:
        return self.engine is not None

    @property
    def animating(self) -> bool:
        """True while frames change with unchanged inputs (a blend, drifting noise, the
        feedback loop): the worker must keep painting instead of waiting for news."""
        eng = self.engine
        if eng is None:
            return False
        return eng.changing() or self.cfg.mode == "feedback"

    def _progress(self, msg: str) -> None:
        log.info("%s: %s", self.model, msg)
        cb = self.progress_callback
        if cb is not None:
            try:
                cb(msg)
            except Exception:  # the screen's label must never stop a load
                log.exception("progress callback failed")

    def load(self) -> None:
        t0 = time.monotonic()
        import torch

        from .loading import load_pipeline, placement, warn_if_slow
        from .parts import apply_loras, load_autoencoder, parts_from_pipeline
        from .schedulers import LCM, prepare_scheduler
        from .stream import EngineOptions, StreamEngine

        cfg = self.cfg
        where = placement(cfg.device)
        device, dtype = where.device, where.dtype
        self._progress(f"loading {cfg.model}")
        pipe = load_pipeline(cfg, dtype, self._cache_dir)
        loras, style_lora = apply_loras(pipe, cfg)
        scheduler = prepare_scheduler(pipe.scheduler, LCM if cfg.lcm_lora else "auto")
        sdxl = hasattr(pipe, "text_encoder_2")
        vae = load_autoencoder(cfg.autoencoder, sdxl, dtype)
        pipe.to(device)
        if vae is not None:
            vae.to(device)
        elif dtype == torch.float16 and getattr(pipe.vae.config, "force_upcast", False):
            pipe.vae.to(torch.float32)  # SDXL's VAE overflows in fp16
        if warn_if_slow(cfg.model, pipe.unet, device):
            self._progress(f"{cfg.model} on the CPU: expect several seconds per frame")
        if device == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            pipe.unet.to(memory_format=torch.channels_last)
            (vae or pipe.vae).to(memory_format=torch.channels_last)
            try:  # one matmul for q, k and v instead of three
                pipe.unet.fuse_qkv_projections()
            except Exception as exc:
                log.info("fuse_qkv_projections unavailable: %s", exc)
        parts = parts_from_pipeline(pipe, vae, scheduler, device, dtype)
        options = EngineOptions(similarity_threshold=cfg.similarity_filter, feedback=cfg.feedback,
                                stream_batch=cfg.stream_batch, acceleration=cfg.acceleration)
        engine = StreamEngine(parts, cfg.width, cfg.height, options)
        engine.progress = self._progress  # run-time preparation of a step count says so too
        if cfg.still_image:
            engine.set_still(_read_still(cfg.still_image))
            self._still_loaded = True
        steps = sorted({cfg.steps, *cfg.prepare_steps})
        # img2img falls back to txt2img without a camera
        modes = [cfg.mode == "txt2img"] if cfg.mode != "img2img" else [False, True]
        engine.prepare(steps, modes, cfg.guidance_scale, progress=self._progress)
        self.engine = engine
        self.style_lora = style_lora
        self.device = device
        self.dtype = where.dtype_name
        self.accel = engine.accel_label
        self.load_seconds = time.monotonic() - t0
        extra = f", LoRA {', '.join(loras)}" if loras else ""
        log.info("%s loaded for streaming on %s (%s, %s, %s autoencoder%s) in %.1f s", cfg.model, device, self.dtype,
                 self.accel, "tiny" if vae is not None else "full", extra, self.load_seconds)

    def set_lora_scale(self, scale: float) -> None:
        """The style LoRA's weight from now on (a cue's), without reloading: the weights are
        rewritten in place, and prompts encoded again if the LoRA reaches the text encoder."""
        lora, engine = self.style_lora, self.engine
        if lora is None or engine is None or lora.weight == scale:
            return
        engine.weights_changed(text_encoder=lora.set_weight(scale))

    def generate(self, prompt: Prompt, params: GenerationParams, image: np.ndarray | None) -> np.ndarray:
        from .stream import FrameRequest

        if self.engine is None:
            raise RuntimeError(f"{self.model}: generate() called before load()")
        mode = params.mode if params.mode in ("img2img", "txt2img", "feedback") else self.cfg.mode
        if image is not None:
            check_rgb_uint8(image, "camera image")
        req = FrameRequest(prompt=prompt.text, negative=prompt.negative, steps=params.steps,
                           strength=max(params.strength, MIN_STRENGTH), guidance_scale=params.guidance_scale,
                           seed=params.seed, seed_drift=params.seed_drift, blend_s=params.prompt_blend_s)
        if mode == "img2img" and image is not None:
            if params.strength < MIN_STRENGTH:  # nothing visible would change: hand back the camera
                return fit_image(image, self.cfg.width, self.cfg.height).copy()
            return self.engine.frame(req, image)
        if mode == "feedback":
            if image is None and not self._still_loaded and not self.engine.has_still:
                # No still and no camera: the loop starts from a txt2img frame.
                req.txt2img = True
                first = self.engine.frame(req, None)
                self.engine.set_still(first)
                self._still_loaded = True
                return first
            req.feedback_loop = True
            return self.engine.frame(req, image)
        req.txt2img = True
        return self.engine.frame(req, None)


def _read_still(path: str) -> np.ndarray:
    import cv2

    p = resolve_path(path)
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"generator.still_image {path}: cannot read an image at {p}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
