"""The image safety checker ([safety] in a show): diffusers' StableDiffusionSafetyChecker, the
CLIP ViT-L/14 image encoder with 17 concept and 3 "special care" embeddings that Stable
Diffusion's own pipelines run, with its CLIPImageProcessor.

Its verdict is computed here from the checker's own modules rather than by calling its
`forward`, for one reason: `forward` hard-codes `adjustment = 0.0`, the knob its source says to
raise "to create a stronger nsfw filter". The rule is the library's, step for step:

    special = round(cos(image, special_care_embeds[k]) - special_care_embeds_weights[k] + adjustment, 3)
    any special > 0  →  every concept score gets +0.01 (the checker is stricter for that image)
    concept = round(cos(image, concept_embeds[k]) - concept_embeds_weights[k] + adjustment [+ 0.01], 3)
    flagged  ⇔  any concept > 0

With `adjustment = 0` it agrees with `forward`'s `has_nsfw_concepts` (a test checks this on the
library's own forward). One difference, on purpose: where `forward` *sets* the adjustment to
0.01 after a special-care match (which would lower a show's stricter setting), the 0.01 is
added here.

Where the weights come from follows the rest of the engine: a local folder, or a Hugging Face id
from the cache, never downloaded at show time unless core/downloads.py allows it;
`fetch_safety_checker` is what `python run.py fetch-models` calls. No torch at import (the
`check` command asks `locate_safety_checker`, files only).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from installation.core.downloads import FETCH_HINT, download_allowed, hf_cache_dir, hub_offline_by_env
from installation.show import resolve_path

from .models import looks_like_hf_id

log = logging.getLogger(__name__)

DEFAULT_SAFETY_CHECKER = "CompVis/stable-diffusion-safety-checker"
# diffusers' bonus on every concept score once a special-care concept matched.
SPECIAL_CARE_BONUS = 0.01
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_PROCESSOR = "preprocessor_config.json"
# The CompVis repository keeps a pickled pytorch_model.bin; safetensors is preferred where there
# is one (transformers loads a .bin with torch's weights_only loader: tensors, no code).
_FETCH_PATTERNS = ["*.json", "*.md", "*.safetensors"]


@dataclass(frozen=True)
class Verdict:
    """One frame's verdict: flagged or not, and the highest concept score (> 0 flags)."""

    flagged: bool
    score: float
    special_care: bool = False


@dataclass(frozen=True)
class CheckerFiles:
    ref: str
    folder: Path
    where: str  # "folder /x" or "the Hugging Face cache": for messages


def is_hub_ref(ref: str) -> bool:
    """Whether [safety] model names a Hugging Face id rather than a folder (a folder that exists wins)."""
    ref = ref.strip()
    return looks_like_hf_id(ref) and not resolve_path(ref).is_dir()


def _problem(folder: Path) -> str:
    """'' when `folder` holds a safety checker (config, weights, image processor), else what is wrong."""
    config = folder / "config.json"
    if not config.is_file():
        return f"{folder} has no config.json (not a safety checker folder)"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{config} cannot be read as JSON ({exc})"
    if not isinstance(data, dict) or data.get("model_type") != "clip":
        kind = data.get("model_type") if isinstance(data, dict) else None
        return (f"{folder} holds a {kind or 'unnamed'!r} model; the safety checker is a CLIP model "
                f"({DEFAULT_SAFETY_CHECKER})")
    missing = [what for what, names in (("weights (model.safetensors or pytorch_model.bin)", _WEIGHTS),
                                        (f"image processor ({_PROCESSOR})", (_PROCESSOR,)))
               if not any((folder / n).is_file() for n in names)]
    return f"{folder} lacks its {' and '.join(missing)} (incomplete download or copy?)" if missing else ""


def locate_safety_checker(ref: str, cache_dir: Path | None = None) -> tuple[CheckerFiles | None, str]:
    """(the checker's files, '') when `ref` ([safety] model) is complete on this machine, else
    (None, why, in one line). Never downloads, never imports torch."""
    ref = ref.strip()
    if not ref:
        return None, "no safety checker named ([safety] model is empty)"
    path = resolve_path(ref)
    if not is_hub_ref(ref):
        if not path.is_dir():
            return None, f"safety.model folder {path} does not exist (a folder, or a Hugging Face id owner/name)"
        problem = _problem(path)
        return (CheckerFiles(ref, path, f"folder {path}"), "") if not problem else (None, problem)
    from huggingface_hub import try_to_load_from_cache

    cache = cache_dir or hf_cache_dir()
    found = try_to_load_from_cache(ref, "config.json", cache_dir=str(cache))
    if not isinstance(found, str):
        return None, f"{ref} is not downloaded (not in the Hugging Face cache {cache}); {FETCH_HINT}"
    snapshot = Path(found).parent
    problem = _problem(snapshot)
    if problem:
        return None, f"{ref} is only partly in the Hugging Face cache: {problem}; {FETCH_HINT} again"
    return CheckerFiles(ref, snapshot, "the Hugging Face cache"), ""


def fetch_safety_checker(hf_id: str, cache_dir: Path | None = None) -> Path:
    """Downloads the checker into the Hugging Face cache and returns its snapshot folder: configs
    and safetensors weights, the pickled .bin only when the repository has nothing else."""
    if not looks_like_hf_id(hf_id):
        raise ValueError(f"{hf_id} is not a Hugging Face id (owner/name); a local folder is the show's own")
    if hub_offline_by_env():
        raise RuntimeError(f"cannot fetch {hf_id}: HF_HUB_OFFLINE is set; unset it to download")
    from huggingface_hub import snapshot_download

    cache = str(cache_dir or hf_cache_dir())
    folder = Path(snapshot_download(hf_id, cache_dir=cache, allow_patterns=_FETCH_PATTERNS))
    if not any((folder / n).is_file() for n in _WEIGHTS):
        folder = Path(snapshot_download(hf_id, cache_dir=cache, allow_patterns=[*_FETCH_PATTERNS, "*.bin"]))
    problem = _problem(folder)
    if problem:
        raise RuntimeError(problem)
    return folder


class SafetyChecker:
    """A loaded checker. `check` blocks for the model's time: call it from the generator
    thread, one frame at a time."""

    def __init__(self, ref: str, model: Any, processor: Any, device: str, adjustment: float = 0.0) -> None:
        import torch

        self.ref = ref
        self.model = model
        self.processor = processor
        self.device = device
        self.adjustment = float(adjustment)
        self._torch = torch
        self.load_seconds = 0.0

    def scores(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(concept scores, special-care scores) for an RGB uint8 frame, before the adjustment,
        the bonus and rounding: cosine similarity minus each concept's threshold."""
        from diffusers.pipelines.stable_diffusion.safety_checker import cosine_distance

        torch, model = self._torch, self.model
        with torch.inference_mode():
            pixels = self.processor(images=frame, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(self.device, dtype=model.dtype)
            embeds = model.visual_projection(model.vision_model(pixels)[1])
            special = cosine_distance(embeds, model.special_care_embeds)[0].float()
            concept = cosine_distance(embeds, model.concept_embeds)[0].float()
            special = (special - model.special_care_embeds_weights.float()).cpu().numpy()
            concept = (concept - model.concept_embeds_weights.float()).cpu().numpy()
        return concept, special

    def check(self, frame: np.ndarray) -> Verdict:
        concept, special = self.scores(frame)
        adjustment = np.float32(self.adjustment)
        special_care = bool((np.round(special + adjustment, 3) > 0).any())
        bonus = np.float32(SPECIAL_CARE_BONUS if special_care else 0.0)
        final = np.round(concept + adjustment + bonus, 3)
        return Verdict(bool((final > 0).any()), float(final.max()), special_care)

    def describe(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        size = f"{n / 1e6:.0f} M" if n >= 1e6 else f"{n / 1e3:.0f} k"
        return f"{self.ref} ({size} parameters) on {self.device}, adjustment {self.adjustment:+g}"


def load_safety_checker(ref: str, device: str = "auto", adjustment: float = 0.0,
                        cache_dir: Path | None = None) -> SafetyChecker:
    """The checker named by [safety] model, on the generator's device (fp16 on a GPU). Raises
    FileNotFoundError saying what is missing and how to fetch it, RuntimeError for files that
    will not load."""
    files, reason = locate_safety_checker(ref, cache_dir)
    source: str | Path
    kwargs: dict[str, Any] = {}
    if files is not None:
        source = files.folder
    elif is_hub_ref(ref) and download_allowed():
        source = ref.strip()
        kwargs["cache_dir"] = str(cache_dir or hf_cache_dir())
    else:
        raise FileNotFoundError(reason)
    t0 = time.monotonic()
    from .loading import placement
    from .quiet import quiet_model_loading

    quiet_model_loading()
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    where = placement(device)
    try:
        model = StableDiffusionSafetyChecker.from_pretrained(source, local_files_only=files is not None, **kwargs)
        processor = CLIPImageProcessor.from_pretrained(source, local_files_only=files is not None, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise RuntimeError(f"safety checker {ref} would not load ({type(exc).__name__}: {first})") from exc
    model.to(where.device, dtype=where.dtype).eval()
    checker = SafetyChecker(ref.strip(), model, processor, where.device, adjustment)
    checker.load_seconds = time.monotonic() - t0
    log.info("safety checker %s loaded in %.1f s", checker.describe(), checker.load_seconds)
    return checker


__all__ = ["CheckerFiles", "DEFAULT_SAFETY_CHECKER", "SPECIAL_CARE_BONUS", "SafetyChecker", "Verdict",
           "fetch_safety_checker", "is_hub_ref", "load_safety_checker", "locate_safety_checker"]
