"""The reference generator: Hugging Face diffusers pipelines, img2img on the camera image and
txt2img without one.

This is the honest, plain path (a faster streaming engine comes later and is measured against
it). It loads from the Hugging Face cache or a local folder and never downloads unless
JADONG_ALLOW_DOWNLOAD=1. One thread calls `generate`; `load` may run on another thread first.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from installation.core.messages import GenerationParams, Prompt
from installation.show import GeneratorConfig
from installation.generation.imaging import check_rgb_uint8, fit_image, to_uint8
from .models import download_allowed, hf_snapshot_folder, locate, resolve_model_source
from .schedulers import img2img_steps

log = logging.getLogger(__name__)

# Above this many UNet parameters a model is "full size" (SD-Turbo's UNet has 866M): on a
# CPU that means seconds per frame, which the gallery should hear about at start.
FULL_SIZE_UNET_PARAMS = 100_000_000
# Below this strength img2img changes nothing visible; skip the model and hand back the input.
MIN_STRENGTH = 0.01


def pick_device(requested: str, torch: Any) -> str:
    cuda = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if cuda else "cpu"
    if requested == "cuda" and not cuda:
        raise RuntimeError(
            f"generator.device is 'cuda' but torch {torch.__version__} sees no CUDA GPU "
            "(a CPU-only torch build, or no driver); use device = \"auto\" or \"cpu\""
        )
    return requested


def _dtype_kwarg(dtype: Any) -> dict[str, Any]:
    """diffusers renamed `torch_dtype` to `dtype` (the old name warns); speak whichever the
    installed version knows."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401  (the new name exists)
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


class DiffusersGenerator:
    """Generator protocol (interfaces.py) over AutoPipelineForImage2Image / Text2Image."""

    name = "diffusers"

    def __init__(self, cfg: GeneratorConfig, cache_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.label = ""
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

    @property
    def loaded(self) -> bool:
        return self._img2img is not None

    # --- loading -------------------------------------------------------------------------
    def _model_index(self, source: str) -> dict:
        loc = locate(self.model)
        folder = loc.folder if loc.folder is not None else hf_snapshot_folder(source, self._cache_dir)
        if folder is None:
            return {}
        try:
            return json.loads((Path(folder) / "model_index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _from_pretrained(self, pipeline_class: Any, dtype: Any) -> Any:
        source, cache = resolve_model_source(self.model, self._cache_dir)
        kwargs: dict[str, Any] = {**_dtype_kwarg(dtype), "local_files_only": not download_allowed()}
        if cache is not None:
            kwargs["cache_dir"] = str(cache)
        if "safety_checker" in self._model_index(source):
            # Prompts are moderated before they get here; the image checker would cost a CLIP
            # model per frame and black out frames at random.
            kwargs["safety_checker"] = None
            kwargs["requires_safety_checker"] = False
        return pipeline_class.from_pretrained(source, **kwargs)

    def load(self) -> None:
        t0 = time.monotonic()
        import torch
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

        device = pick_device(self.cfg.device, torch)
        # fp16 halves memory and doubles speed on a GPU; CPUs have no fast fp16 kernels.
        dtype = torch.float16 if device == "cuda" else torch.float32
        if locate(self.model).file is not None:
            from .loading import load_single_file

            img2img = AutoPipelineForImage2Image.from_pipe(load_single_file(self.cfg, dtype, self._cache_dir))
        else:
            img2img = self._from_pretrained(AutoPipelineForImage2Image, dtype)
        img2img.to(device)
        img2img.set_progress_bar_config(disable=True)
        # from_pipe shares every module: the second pipeline costs no memory.
        txt2img = AutoPipelineForText2Image.from_pipe(img2img)
        txt2img.set_progress_bar_config(disable=True)

        unet = getattr(img2img, "unet", None)
        n_params = sum(p.numel() for p in unet.parameters()) if unet is not None else 0
        if device == "cpu" and n_params > FULL_SIZE_UNET_PARAMS:
            log.warning(
                "%s runs on the CPU (%dM UNet parameters): expect several seconds per frame; "
                "a CUDA GPU is needed for live frame rates",
                self.model,
                n_params // 1_000_000,
            )
        self._torch = torch
        self._txt2img = txt2img
        self._img2img = img2img
        self.device = device
        self.dtype = str(dtype).removeprefix("torch.")
        self.load_seconds = time.monotonic() - t0
        log.info("%s loaded on %s (%s) in %.1f s", self.model, device, self.dtype, self.load_seconds)

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

    def generate(self, prompt: Prompt, params: GenerationParams, image: np.ndarray | None) -> np.ndarray:
        if self._img2img is None:
            raise RuntimeError(f"{self.model}: generate() called before load()")
        width, height = self.cfg.width, self.cfg.height
        text = self._prompt_kwargs(prompt, params.guidance_scale)
        # A CPU generator gives the same noise for a seed on any device.
        generator = self._torch.Generator(device="cpu").manual_seed(int(params.seed))
        common = {"guidance_scale": params.guidance_scale, "generator": generator, "output_type": "np"}

        if image is None or self.cfg.mode == "txt2img":
            out = self._txt2img(**text, **common, num_inference_steps=params.steps, width=width, height=height)
            return to_uint8(out.images[0])

        frame = fit_image(check_rgb_uint8(image, "camera image"), width, height)
        if params.strength < MIN_STRENGTH:
            return frame.copy()
        from PIL import Image

        out = self._img2img(
            **text,
            **common,
            image=Image.fromarray(frame),
            strength=params.strength,
            num_inference_steps=img2img_steps(params.steps, params.strength),
        )
        return to_uint8(out.images[0])
