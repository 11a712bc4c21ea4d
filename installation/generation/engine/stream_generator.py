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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from installation.core.messages import GenerationParams, Prompt, StreamRequest
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
        self._feeding = False  # a stream of the last call ran a feedback loop (a cue's mode)
        # How many streams are painted together (generate_many), to prepare at load: a count
        # not prepared runs as a plain CUDA graph captured at run time, never torch.compile'd.
        self.prepare_streams: tuple[int, ...] = (1,)

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
        return eng.changing() or self.cfg.mode == "feedback" or self._feeding

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
        engine.prepare(steps, modes, cfg.guidance_scale, progress=self._progress, streams=list(self.prepare_streams))
        self.engine = engine
        self.style_lora = style_lora
        self.device = device
        self.dtype = where.dtype_name
        self.accel = engine.accel_label
        self.load_seconds = time.monotonic() - t0
        extra = f", LoRA {', '.join(loras)}" if loras else ""
        log.info("%s loaded for streaming on %s (%s, %s, %s autoencoder%s) in %.1f s", cfg.model, device, self.dtype,
                 self.accel, "tiny" if vae is not None else "full", extra, self.load_seconds)

    def release(self) -> None:
        """Drops the engine (its pipeline parts, CUDA graphs, compiled programs) and frees its
        memory (after running out of GPU memory); `load` builds it again. Called on the painting
        thread."""
        compiled = "compile" in self.accel
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.close()  # its own reference cycles emptied: freed now, without a full collection
        del engine
        self.style_lora = None
        self._still_loaded = False
        self.device = ""
        from .memory import free_memory

        free_memory(compiled=compiled)

    def set_lora_scale(self, scale: float) -> None:
        """The style LoRA's weight from now on (a cue's), without reloading: the weights are
        rewritten in place, and prompts encoded again if the LoRA reaches the text encoder."""
        lora, engine = self.style_lora, self.engine
        if lora is None or engine is None or lora.weight == scale:
            return
        engine.weights_changed(text_encoder=lora.set_weight(scale))

    def generate(self, prompt: Prompt, params: GenerationParams, image: np.ndarray | None) -> np.ndarray:
        return self._paint([StreamRequest(0, prompt, params, image)], single=True)[0]

    def generate_many(self, requests: Sequence[StreamRequest]) -> list[np.ndarray]:
        """One frame per stream, at the show's generator size. Streams with the same steps and
        mode (img2img and feedback together; txt2img apart) and guidance on or off are painted
        in one batched engine call, each with its own prompt, seed, strength and image; the
        engine paints the other groups in turn (StreamEngine.frames)."""
        return self._paint(list(requests), single=False)

    def _paint(self, requests: list[StreamRequest], single: bool) -> list[np.ndarray]:
        from .stream import FrameRequest

        engine = self.engine
        if engine is None:
            raise RuntimeError(f"{self.model}: generate() called before load()")
        out: list[np.ndarray | None] = [None] * len(requests)
        items: list[tuple[FrameRequest, np.ndarray | None]] = []
        where: list[int] = []
        starts: set[int] = set()  # feedback loops that start from a txt2img frame (no still, no camera)
        feeding = False
        for n, sr in enumerate(requests):
            params, image = sr.params, sr.image
            mode = params.mode if params.mode in ("img2img", "txt2img", "feedback") else self.cfg.mode
            if image is not None:
                check_rgb_uint8(image, "camera image" if single else f"stream {sr.stream}: camera image")
            req = FrameRequest(prompt=sr.prompt.text, negative=sr.prompt.negative, steps=params.steps,
                               strength=max(params.strength, MIN_STRENGTH), guidance_scale=params.guidance_scale,
                               seed=params.seed, seed_drift=params.seed_drift, blend_s=params.prompt_blend_s,
                               stream=sr.stream)
            if mode == "img2img" and image is not None:
                if params.strength < MIN_STRENGTH:  # nothing visible would change: hand back the camera
                    out[n] = fit_image(image, self.cfg.width, self.cfg.height).copy()
                    continue
            elif mode == "feedback":
                feeding = True
                if image is None and not engine.feedback_ready(sr.stream):
                    req.txt2img = True
                    starts.add(n)
                else:
                    req.feedback_loop = True
            else:
                req.txt2img = True
            items.append((req, None if req.txt2img else image))
            where.append(n)
        # One stream goes through engine.frame, which a render wraps to paint on video time.
        painted = ([engine.frame(*items[0])] if single else engine.frames(items)) if items else []
        for n, (req, _), frame in zip(where, items, painted):
            out[n] = frame
            if n in starts:
                engine.set_still(frame, stream=req.stream)
        self._feeding = feeding
        assert all(frame is not None for frame in out)
        return out  # type: ignore[return-value]


def _read_still(path: str) -> np.ndarray:
    import cv2

    p = resolve_path(path)
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"generator.still_image {path}: cannot read an image at {p}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
