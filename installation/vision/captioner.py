"""The optional captioning model: a camera frame in, a short English phrase out, for a show's
{scene} words ([vision] captioner = a Hugging Face id or a local folder; "" for none).

Which models: GIT is the supported default (microsoft/git-base-coco, MIT, fine-tuned on COCO
captions): 177 M parameters at 224 px, measured here at about 1 s a caption on a busy 2-core
CPU, where BLIP-base (224 M parameters at 384 px) took about 3.4 s for captions of the same
quality (COCO CIDEr 131 for GIT-base, 128-133 for BLIP-base, per their papers). BLIP is
accepted too (Salesforce/blip-image-captioning-base, BSD-3-Clause): it costs one more class
here and is the model most fine-tunes start from.
Both are plain transformers classes; Florence-2 and the like need `trust_remote_code` (code from
the hub run at show time), which Jadong does not do. Both repositories keep their weights as a
pickled pytorch_model.bin on their main branch; transformers loads it with torch's
weights_only loader (torch >= 2.6), which builds tensors and runs no code from the file.

Nothing here downloads at show time unless core/downloads.py allows it; `fetch_captioner` is
what `python run.py fetch-models` calls. torch and transformers are imported inside the
functions that need them: `locate_captioner` (what `check` asks) reads files only.

A caption costs a second or more on a CPU, so it belongs on the vision worker's thread at
[vision] caption_every_s, never on the render loop.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from installation.core.devices import choose_device
from installation.core.downloads import FETCH_HINT, download_allowed, hf_cache_dir, hub_offline_by_env
from installation.show import resolve_path

DEFAULT_CAPTIONER = "microsoft/git-base-coco"
# config.json's model_type → the family's name in messages. Both load with transformers' own classes.
FAMILIES = {"blip": "BLIP", "git": "GIT"}
# What a gallery agrees to by running these weights (from the model cards; the cards are the authority).
CAPTIONER_LICENCES: dict[str, str] = {
    "Salesforce/blip-image-captioning-base": "BSD-3-Clause; https://huggingface.co/Salesforce/blip-image-captioning-base",
    "Salesforce/blip-image-captioning-large": (
        "BSD-3-Clause; https://huggingface.co/Salesforce/blip-image-captioning-large"),
    "microsoft/git-base-coco": "MIT; https://huggingface.co/microsoft/git-base-coco",
    "microsoft/git-base": "MIT; https://huggingface.co/microsoft/git-base",
}

MAX_CAPTION_CHARS = 120
# Greedy decoding stops at the model's end token; real captions are 8-15 tokens, this bounds the worst.
MAX_NEW_TOKENS = 24
# Frames are shrunk to this longest side before the processor resizes them (to 384 or 224 px):
# a 1080p frame would otherwise cost more in PIL's bicubic resize than in the model.
MAX_INPUT_SIDE = 640

# An "owner/name" Hugging Face repo id (the same rule as generation/engine/models.py's, which
# this room may not import).
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_PROCESSOR_CONFIGS = ("preprocessor_config.json", "processor_config.json")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
# Fetched from the hub: configs, the tokenizer, the model card (its licence) and safetensors
# weights; the pickled .bin only when a repo has nothing else (both defaults' main branches).
_FETCH_PATTERNS = ["*.json", "*.txt", "*.md", "*.safetensors"]
_TORCHVISION_FALLBACK = "requires torchvision (not installed)"


def looks_like_hf_id(ref: str) -> bool:
    return bool(_HF_ID.match(ref)) and not ref.startswith((".", "~"))


def is_hub_ref(ref: str) -> bool:
    """Whether vision.captioner names a Hugging Face id (what fetch-models can get) rather than a
    folder: a folder that exists wins over an id of the same spelling."""
    ref = ref.strip()
    return looks_like_hf_id(ref) and not resolve_path(ref).is_dir()


# --- where it is (files only: no torch) -----------------------------------------------------


@dataclass(frozen=True)
class CaptionerFiles:
    """A captioner on disk: its folder (a local folder or a hub snapshot) and its family."""

    ref: str  # as the show names it
    folder: Path
    model_type: str  # a key of FAMILIES
    where: str  # "folder /x" or "the Hugging Face cache": for messages

    @property
    def family(self) -> str:
        return FAMILIES[self.model_type]


def model_type_of(folder: Path) -> tuple[str, str]:
    """(model_type, '') when `folder`'s config.json names a BLIP or GIT model, else ('', why not)."""
    config = folder / "config.json"
    if not config.is_file():
        return "", f"{folder} has no config.json (not a transformers model folder)"
    try:
        model_type = str(json.loads(config.read_text(encoding="utf-8")).get("model_type", ""))
    except (OSError, ValueError, AttributeError) as exc:
        return "", f"{config} cannot be read as JSON ({exc})"
    if model_type not in FAMILIES:
        return "", (f"{folder} holds a {model_type or 'unnamed'!r} model; the captioner runs BLIP or GIT models "
                    f"(e.g. {DEFAULT_CAPTIONER})")
    return model_type, ""


def _missing_files(folder: Path) -> str:
    """'' when the folder has weights, an image processor and a tokenizer, else what it lacks."""
    missing = [what for what, names in (("weights (model.safetensors or pytorch_model.bin)", _WEIGHTS),
                                        ("image processor (preprocessor_config.json)", _PROCESSOR_CONFIGS),
                                        ("tokenizer (tokenizer.json or vocab.txt)", _TOKENIZER_FILES))
               if not any((folder / n).is_file() for n in names)]
    return f"{folder} lacks its {' and '.join(missing)} (incomplete download or copy?)" if missing else ""


def _cached_snapshot(hf_id: str, cache_dir: Path | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hf_id, "config.json", cache_dir=str(cache_dir or hf_cache_dir()))
    return Path(found).parent if isinstance(found, str) else None


def locate_captioner(ref: str, cache_dir: Path | None = None) -> tuple[CaptionerFiles | None, str]:
    """(the captioner's files, '') when `ref` (vision.captioner) is complete on this machine, else
    (None, why, in one line that says what to do). Never downloads, never imports torch. A folder
    that exists wins over a hub id of the same spelling."""
    ref = ref.strip()
    if not ref:
        return None, 'no captioner configured (vision.captioner = ""): {scene} stays empty, the scene words alone'
    path = resolve_path(ref)
    if not is_hub_ref(ref):
        if not path.is_dir():
            return None, f"vision.captioner folder {path} does not exist (a folder, or a Hugging Face id owner/name)"
        model_type, problem = model_type_of(path)
        problem = problem or _missing_files(path)
        return (CaptionerFiles(ref, path, model_type, f"folder {path}"), "") if not problem else (None, problem)
    cache = cache_dir or hf_cache_dir()
    snapshot = _cached_snapshot(ref, cache)
    if snapshot is None:
        return None, f"{ref} is not downloaded (not in the Hugging Face cache {cache}); {FETCH_HINT}"
    model_type, problem = model_type_of(snapshot)
    if problem:
        return None, f"vision.captioner {ref}: {problem}"
    problem = _missing_files(snapshot)
    if problem:
        return None, f"{ref} is only partly in the Hugging Face cache: {problem}; {FETCH_HINT} again"
    return CaptionerFiles(ref, snapshot, model_type, "the Hugging Face cache"), ""


# --- fetching (python run.py fetch-models) ---------------------------------------------------


def fetch_captioner(hf_id: str, cache_dir: Path | None = None) -> Path:
    """Downloads a BLIP or GIT captioner from the hub into the Hugging Face cache and returns its
    snapshot folder. Its config is read first, so a model of another kind is refused before
    its weights are downloaded. Raises with a one-line reason."""
    if not looks_like_hf_id(hf_id):
        raise ValueError(f"{hf_id} is not a Hugging Face id (owner/name); a local folder is the show's own")
    if hub_offline_by_env():
        raise RuntimeError(f"cannot fetch {hf_id}: HF_HUB_OFFLINE is set; unset it to download")
    from huggingface_hub import hf_hub_download, snapshot_download

    cache = str(cache_dir or hf_cache_dir())
    config = json.loads(Path(hf_hub_download(hf_id, "config.json", cache_dir=cache)).read_text(encoding="utf-8"))
    model_type = str(config.get("model_type", ""))
    if model_type not in FAMILIES:
        raise ValueError(f"{hf_id} is a {model_type or 'unnamed'!r} model; the captioner runs BLIP or GIT models")
    folder = Path(snapshot_download(hf_id, cache_dir=cache, allow_patterns=_FETCH_PATTERNS))
    if not any((folder / n).is_file() for n in _WEIGHTS):
        folder = Path(snapshot_download(hf_id, cache_dir=cache, allow_patterns=[*_FETCH_PATTERNS, "*.bin"]))
    problem = _missing_files(folder)
    if problem:
        raise RuntimeError(problem)
    return folder


# --- captions ----------------------------------------------------------------------------

# BLIP's training captions left it a made-up word ("arafed", "araffe", ...) for a blurry subject;
# its article goes with it and is put back to suit the next word ("an arafed man" → "a man").
_NONSENSE = re.compile(r"\b(?:(an?)\s+)?ar+af+\w*(?:\s+|$)(?=(\w)?)")
_LEAD_INS = re.compile(r"^(?:there\s+(?:is|are)|this\s+is|it\s+is|here\s+is|"
                       r"(?:an?\s+)?(?:image|picture|photo|photograph|photography)\s+of)\s+")
_BRACKETED = re.compile(r"\[[^\]]*\]|<[^>]*>")
_NOT_WORDS = re.compile(r"[^\w\s,'-]|_")
_REPEATS = re.compile(r"\b((?:\w+\s+){0,2}?\w+)(?:\s+\1\b)+")
# A phrase cut short should not end on a word that waits for another.
_DANGLING = {"a", "an", "the", "of", "in", "on", "at", "to", "for", "with", "and", "or", "by", "from", "into",
             "its", "his", "her", "their", "is", "are"}


def _without_nonsense(match: re.Match[str]) -> str:
    article, next_letter = match.group(1), match.group(2) or ""
    if not article or not next_letter:
        return ""
    return ("an " if next_letter in "aeiou" else "a ")


def clean_caption(text: str, max_chars: int = MAX_CAPTION_CHARS) -> str:
    """A model's caption as a prompt phrase: lowercase, no special tokens, no BLIP nonsense word,
    no "there is a" / "a picture of" lead-in, no stutter ("on a bench on a bench"), at most
    `max_chars` characters cut at a word, never ending on "a" or "of". Cleaning a clean phrase
    changes nothing (one pass can uncover another lead-in, so it repeats until nothing changes;
    every pass that changes something shortens the text, so it ends)."""
    text = " ".join(_NOT_WORDS.sub(" ", _BRACKETED.sub(" ", text.lower())).split())
    while True:
        cleaner = _clean_once(text, max_chars)
        if cleaner == text:
            return text
        text = cleaner


def _clean_once(text: str, max_chars: int) -> str:
    text = " ".join(_NONSENSE.sub(_without_nonsense, text).split()).strip(" ,'-")
    text = _REPEATS.sub(r"\1", _LEAD_INS.sub("", text))
    words = text.replace(" ,", ",").strip(" ,'-").split()
    while words and (sum(map(len, words)) + len(words) - 1 > max_chars or words[-1].strip(",'-") in _DANGLING):
        words.pop()
    return " ".join(words).strip(" ,'-")


class _DropTorchvisionNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _TORCHVISION_FALLBACK not in record.getMessage()


_DROP_NOTE = _DropTorchvisionNote()


def quiet_transformers() -> None:
    """transformers says, once per image processor, that torchvision is missing and it uses the
    PIL backend: true, harmless here, and nothing gallery staff can act on."""
    logger = logging.getLogger("transformers.utils.import_utils")  # a logger's filters see only its own records
    if _DROP_NOTE not in logger.filters:
        logger.addFilter(_DROP_NOTE)
    from transformers.utils import logging as transformers_logging

    # "Loading weights" bars say nothing gallery staff can act on; the load is logged in one line.
    # (Process-wide, as the diffusion engine does too; a show that may download keeps the hub's.)
    transformers_logging.disable_progress_bar()
    if download_allowed():
        from huggingface_hub.utils import enable_progress_bars

        enable_progress_bars()


@dataclass
class Captioner:
    """A loaded captioning model. `caption` blocks for the model's time (about a second on a
    CPU for GIT-base, three for BLIP-base; on a GPU in half precision, not measured yet): call
    it from the vision worker, one call at a time."""

    ref: str
    family: str  # "BLIP" or "GIT"
    device: str  # "cpu" or "cuda"
    parameters: int
    model: Any
    processor: Any
    max_new_tokens: int = MAX_NEW_TOKENS

    def caption(self, image_bgr: np.ndarray) -> str:
        """A short, cleaned English phrase for a BGR uint8 frame (OpenCV's layout, as the camera
        gives it); "" when the model says nothing usable."""
        import torch

        rgb = _to_rgb(image_bgr)
        with torch.inference_mode():
            inputs = self.processor(images=rgb, return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(self.device, dtype=self.model.dtype)
            ids = self.model.generate(pixel_values=pixel_values, max_new_tokens=self.max_new_tokens,
                                      num_beams=1, do_sample=False)
        return clean_caption(self.processor.batch_decode(ids, skip_special_tokens=True)[0])

    def describe(self) -> str:
        size = f"{self.parameters / 1e6:.0f} M" if self.parameters >= 1e6 else f"{self.parameters / 1e3:.0f} k"
        return f"{self.ref} ({self.family}, {size} parameters) on {self.device}"


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """The frame as contiguous RGB uint8, shrunk to MAX_INPUT_SIDE; a clear error for anything
    that is not an image."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0 \
            or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"caption: expected a BGR image (height x width x 3, uint8), got {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"caption: expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2 or image.shape[2] == 1:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    else:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    side = max(rgb.shape[:2])
    if side > MAX_INPUT_SIDE:
        scale = MAX_INPUT_SIDE / side
        rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    return rgb


def load_captioner(ref: str, device: str = "auto", cache_dir: Path | None = None) -> tuple[Captioner | None, str]:
    """(the loaded captioner, what was loaded and where) or (None, why not, in one line: not
    configured / not downloaded: run fetch-models / folder missing / not a BLIP or GIT model /
    transformers missing / the files would not load). Never raises for a missing or broken
    model: the show then runs on the scene words alone. Downloads only when core/downloads.py
    allows it (JADONG_ALLOW_DOWNLOAD=1) and the show names a hub id not fetched yet."""
    files, reason = locate_captioner(ref, cache_dir)
    source: str | Path
    if files is not None:
        source, model_type, local_only = files.folder, files.model_type, True
    elif is_hub_ref(ref) and download_allowed():  # not here (or partly): from_pretrained fetches what is missing
        source, model_type, local_only = ref.strip(), "", False
    else:
        return None, reason
    try:
        import torch
        import transformers
    except ImportError as exc:
        return None, f"the captioner needs torch and transformers, which are not installed ({exc}); make setup"
    quiet_transformers()
    started = time.perf_counter()
    try:
        captioner = _load(ref.strip(), source, model_type, local_only, device, cache_dir, torch, transformers)
    except Exception as exc:  # broken files, a refused download: one line, the show goes on without it
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if files is None:  # it had to come from the hub now, and did not
            return None, f"{reason}; downloading it now failed too ({type(exc).__name__}: {first})"
        return None, f"vision.captioner {ref.strip()} could not be loaded ({type(exc).__name__}: {first})"
    return captioner, f"{captioner.describe()}, loaded in {time.perf_counter() - started:.1f} s"


def _load(ref: str, source: str | Path, model_type: str, local_only: bool, device: str, cache_dir: Path | None,
          torch: Any, transformers: Any) -> Captioner:
    hub = {} if local_only else {"cache_dir": str(cache_dir or hf_cache_dir())}
    if not model_type:  # a hub id being downloaded now (JADONG_ALLOW_DOWNLOAD=1): its config says
        model_type = transformers.AutoConfig.from_pretrained(source, **hub).model_type
        if model_type not in FAMILIES:
            raise ValueError(f"a {model_type!r} model; the captioner runs BLIP or GIT models")
    model_class = (transformers.BlipForConditionalGeneration if model_type == "blip"
                   else transformers.GitForCausalLM)
    where = choose_device(device, torch.cuda.device_count(), setting="vision captioner device",
                          seen_by=f"torch {torch.__version__}")
    # Half precision on a GPU (twice as fast, half the memory); a CPU computes in float32.
    dtype = torch.float16 if where == "cuda" else torch.float32
    processor = transformers.AutoProcessor.from_pretrained(source, local_files_only=local_only, **hub)
    model = model_class.from_pretrained(source, local_files_only=local_only, **hub)
    model.eval().to(device=where, dtype=dtype)
    parameters = sum(p.numel() for p in model.parameters())
    return Captioner(ref, FAMILIES[model_type], where, parameters, model, processor)
