"""Where model weights live (a diffusers folder, a Hugging Face id or a single checkpoint
file), whether they are here, and how to fetch them.

No torch or diffusers here (stdlib and huggingface_hub only), so the choice of generator
(generation/choice.py) is made before paying for those imports. Nothing in this module
downloads except `fetch_model` and `fetch_checkpoint_config`, which the `fetch-models` command
calls on purpose; whether anything else may is core/downloads.py's rule.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from installation.core.downloads import FETCH_COMMAND, download_allowed, hf_cache_dir, hub_offline_by_env
from installation.core.licences import MODEL_LICENCES as _MODEL_LICENCES
from installation.show import resolve_path

from .checkpoint_file import (
    CONFIG_PATTERNS,
    check_config_folder,
    check_file,
    checkpoint_is_sdxl,
    guess_config,
    is_checkpoint_path,
    pipeline_class_name,
    pipeline_components,
)

log = logging.getLogger(__name__)

# The fast autoencoders the streaming engine takes when they are here (generator.autoencoder = "auto").
TAESD = "madebyollin/taesd"
TAESDXL = "madebyollin/taesdxl"

DEFAULT_MODELS = ("stabilityai/sd-turbo", "stabilityai/sdxl-turbo", TAESD)

# What a gallery agrees to by running these weights: the table lives in core/ (captures name the
# licence too, and the control room may not import the engine).
MODEL_LICENCES = _MODEL_LICENCES

# An "owner/name" Hugging Face repo id (what is not a folder on disk and looks like this).
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
# Formats and variants we never need: the diffusers folders in fp32 safetensors load on both
# CPU and CUDA (cast to fp16 there), so the rest is gigabytes of duplicates.
_FETCH_IGNORE = ["*.bin", "*.ckpt", "*.onnx", "*.onnx_data", "*.msgpack", "*.h5", "*.pb", "*.fp16.safetensors"]


def _tilde(path: Path) -> str:
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def looks_like_hf_id(model: str) -> bool:
    return bool(_HF_ID.match(model)) and not model.startswith((".", "~"))


@dataclass(frozen=True)
class ModelLocation:
    """Where a model from a show file points: a local folder, a Hugging Face id, or a single
    checkpoint file."""

    model: str
    folder: Path | None  # set when `model` names a folder on disk (existing or not)
    hf_id: str | None  # set when `model` is a Hugging Face repo id
    file: Path | None = None  # set when `model` names a .safetensors/.ckpt file (existing or not)


def locate(model: str) -> ModelLocation:
    """A folder that exists wins; a name ending in .safetensors/.ckpt is a checkpoint file
    (no hub id looks like that); otherwise "owner/name" is a Hugging Face id and anything
    else is a folder that is not there (reported as such)."""
    model = model.strip()
    if not model:
        return ModelLocation(model, None, None)
    path = resolve_path(model)
    if not path.is_dir() and is_checkpoint_path(path):
        return ModelLocation(model, None, None, path)
    if path.is_dir() or not looks_like_hf_id(model):
        return ModelLocation(model, path, None)
    return ModelLocation(model, None, model)


def _check_folder(folder: Path) -> str:
    """'' if `folder` is a complete diffusers pipeline folder, else what is wrong with it."""
    names, problem = pipeline_components(folder, "a diffusers model folder")
    if problem:
        return problem
    for name in names:
        sub = folder / name
        if not sub.is_dir():
            return f"{folder} lacks the {name}/ folder that model_index.json lists (incomplete download?)"
        # Model components (a config.json) need their weights; tokenizers and schedulers do not.
        if (sub / "config.json").is_file() and not any(
            p.name.endswith(_WEIGHT_SUFFIXES) for p in sub.iterdir()
        ):
            return f"{sub} has no weights (*.safetensors or *.bin; incomplete download?)"
    return ""


def hf_snapshot_folder(hf_id: str, cache_dir: Path | None = None) -> Path | None:
    """The cached snapshot folder holding `hf_id`'s model_index.json, or None."""
    from huggingface_hub import try_to_load_from_cache

    cache = cache_dir or hf_cache_dir()
    found = try_to_load_from_cache(hf_id, "model_index.json", cache_dir=str(cache))
    return Path(found).parent if isinstance(found, str) else None


def model_is_sdxl(model: str, checkpoint_config: str = "", cache_dir: Path | None = None) -> bool:
    """Whether a show's model is SDXL (it then wants TAESDXL), from what is on disk: a
    checkpoint file's keys or configs, a folder's pipeline class, a cached hub model's; for a
    hub id not fetched yet, its name."""
    loc = locate(model)
    if loc.file is not None:
        ref, folder, _ = config_for_checkpoint(loc.file, checkpoint_config, cache_dir) \
            if loc.file.is_file() else (checkpoint_config, None, "")
        return checkpoint_is_sdxl(loc.file, folder, ref or "")
    folder = loc.folder or hf_snapshot_folder(model, cache_dir)
    if folder is not None and (folder / "model_index.json").is_file():
        return "XL" in pipeline_class_name(folder)
    return "xl" in model.lower()


def config_for_checkpoint(file: Path, checkpoint_config: str = "",
                          cache_dir: Path | None = None) -> tuple[str, Path | None, str]:
    """For a single-file checkpoint: (the config it needs, that config's folder on disk or
    None, what is wrong or ''). `checkpoint_config` is the show's generator.checkpoint_config; empty
    takes diffusers' guess from the checkpoint's keys. Never downloads."""
    ref = checkpoint_config.strip() or guess_config(file)
    named = f"generator.checkpoint_config {ref}" if checkpoint_config.strip() else (
        f"{ref} (the configs diffusers would pick for {file.name}; set generator.checkpoint_config for another)")
    loc = locate(ref)
    if loc.folder is not None:
        if not loc.folder.is_dir():
            return ref, None, f"{named}: folder {loc.folder} does not exist"
        problem = check_config_folder(loc.folder)
        return ref, (None if problem else loc.folder), problem
    if loc.hf_id is None:
        return ref, None, f"{named} is neither a folder nor a Hugging Face id"
    cache = cache_dir or hf_cache_dir()
    snapshot = hf_snapshot_folder(loc.hf_id, cache)
    if snapshot is None or check_config_folder(snapshot):
        return ref, None, (f"{file.name} needs the configs of {named}, which are not in the Hugging Face "
                           f"cache ({_tilde(cache)}); fetch them (configs only, no weights) with: {FETCH_COMMAND}")
    return ref, snapshot, ""


def model_available_locally(model: str, cache_dir: Path | None = None, checkpoint_config: str = "") -> tuple[bool, str]:
    """(True, where) if the model can be loaded without the network, else (False, why and
    how to get it). Never downloads. `checkpoint_config` matters only for a single file."""
    loc = locate(model)
    if loc.file is not None:
        problem = check_file(loc.file)
        if not problem:
            ref, _, problem = config_for_checkpoint(loc.file, checkpoint_config, cache_dir)
        if problem:
            return False, problem
        return True, f"{model} found locally (single-file checkpoint, configs from {ref})"
    if loc.folder is None and loc.hf_id is None:
        return False, "no model given (generator.model is empty)"
    if loc.folder is not None:
        if not loc.folder.exists():
            return False, f"model folder {loc.folder} does not exist"
        problem = _check_folder(loc.folder)
        if problem:
            return False, problem
        where = "" if str(loc.folder) == model else f" ({loc.folder})"
        return True, f"{model} found locally{where}"
    cache = cache_dir or hf_cache_dir()
    snapshot = hf_snapshot_folder(loc.hf_id, cache)
    if snapshot is None:
        # "models/x" reads as an id too; where its parent folder exists, a folder was probably
        # meant, so say where we looked on disk.
        on_disk = resolve_path(model)
        also = f" and there is no folder {on_disk}" if on_disk.parent.is_dir() else ""
        return False, (
            f"{loc.hf_id} is not in the Hugging Face cache ({_tilde(cache)}){also}; "
            f"fetch it with: {FETCH_COMMAND}"
        )
    problem = _check_folder(snapshot)
    if problem:
        return False, (f"{loc.hf_id} is only partly in the Hugging Face cache: {problem}; "
                       f"fetch it again with: {FETCH_COMMAND}")
    return True, f"{loc.hf_id} found locally in the Hugging Face cache ({_tilde(cache)})"


def resolve_model_source(model: str, cache_dir: Path | None = None) -> tuple[str, Path | None]:
    """What to hand `from_pretrained`: (folder or id, cache_dir to use). Raises FileNotFoundError
    with the reason when the model is not here and downloads are not allowed."""
    loc = locate(model)
    if loc.file is not None:
        raise ValueError(f"{model} is a single-file checkpoint: load it with resolve_single_file")
    ok, reason = model_available_locally(model, cache_dir)
    if loc.folder is not None:
        if not ok:
            raise FileNotFoundError(reason)
        return str(loc.folder), None
    if ok and loc.hf_id is not None:
        # A fetched hub model loads from its snapshot folder, so diffusers asks the hub
        # nothing (and huggingface_hub prints no deprecation warning about its arguments).
        snapshot = hf_snapshot_folder(loc.hf_id, cache_dir)
        if snapshot is not None:
            return str(snapshot), None
    if not ok and not download_allowed():
        raise FileNotFoundError(reason)
    return loc.hf_id or model, cache_dir or hf_cache_dir()


def autoencoder_folder(ref: str, cache_dir: Path | None = None) -> tuple[Path | None, str]:
    """(the folder holding an AutoencoderTiny's config.json and weights, '') when `ref` (a
    folder, or a hub id such as TAESD) is on disk, else (None, what is missing). Never downloads."""
    loc = locate(ref)
    if loc.folder is not None:
        if not loc.folder.is_dir():
            return None, f"folder {loc.folder} does not exist"
        folder = loc.folder
    elif loc.hf_id is not None:
        from huggingface_hub import try_to_load_from_cache

        cache = cache_dir or hf_cache_dir()
        found = try_to_load_from_cache(loc.hf_id, "config.json", cache_dir=str(cache))
        if not isinstance(found, str):
            return None, f"{ref} is not downloaded (not in the Hugging Face cache, {_tilde(cache)})"
        folder = Path(found).parent
    else:
        return None, f"{ref} is neither a folder nor a Hugging Face id"
    if not (folder / "config.json").is_file():
        return None, f"{folder} has no config.json (not an autoencoder folder?)"
    if not any(p.name.endswith(_WEIGHT_SUFFIXES) for p in folder.iterdir()):
        return None, f"{folder} has no weights (*.safetensors or *.bin; incomplete download?)"
    return folder, ""


def hub_repo_cached(repo_id: str, cache_dir: Path | None = None) -> bool:
    """Whether any snapshot of a hub repo (a LoRA, whose file names vary) is in the cache."""
    snapshots = (cache_dir or hf_cache_dir()) / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    try:
        return any(any(snap.iterdir()) for snap in snapshots.iterdir() if snap.is_dir())
    except OSError:
        return False


def single_hub_log_lines() -> None:
    """huggingface_hub gives its logger a console handler of its own, and the record also
    reaches the root logger's: every retry was printed twice. Keep the root's (it has the
    time and level) whenever the root has a handler."""
    import huggingface_hub  # noqa: F401  (its import installs the handler)

    if not logging.getLogger().handlers:
        return
    hub = logging.getLogger("huggingface_hub")
    for handler in list(hub.handlers):
        if type(handler) is logging.StreamHandler:
            hub.removeHandler(handler)


def _checkpoint_and_config(model: str, checkpoint_config: str,
                           cache_dir: Path | None) -> tuple[Path, str, Path | None, str]:
    """(the checkpoint file, its config reference, the config folder on disk or None, what is
    missing). Raises when the file itself is not there or not a checkpoint."""
    file = locate(model).file
    if file is None:
        raise ValueError(f"{model} is not a .safetensors/.ckpt file")
    problem = check_file(file)
    if problem:
        raise FileNotFoundError(problem)
    return (file, *config_for_checkpoint(file, checkpoint_config, cache_dir))


def resolve_single_file(model: str, checkpoint_config: str = "",
                        cache_dir: Path | None = None) -> tuple[Path, str, Path | None]:
    """What to hand `from_single_file`: (the checkpoint file, `config` = a folder of configs,
    or a hub id when downloads are allowed, cache_dir for that download or None). Raises
    FileNotFoundError naming the file or config, and the fetch command."""
    file, ref, folder, problem = _checkpoint_and_config(model, checkpoint_config, cache_dir)
    if folder is not None:
        return file, str(folder), None
    if download_allowed() and locate(ref).hf_id is not None:
        return file, ref, cache_dir or hf_cache_dir()
    raise FileNotFoundError(problem)


def _refuse_offline(what: str) -> None:
    if hub_offline_by_env():
        raise RuntimeError(f"cannot fetch {what}: HF_HUB_OFFLINE is set; unset it to download")


def fetch_checkpoint_config(model: str, checkpoint_config: str = "", cache_dir: Path | None = None) -> Path:
    """For a single-file checkpoint: fetches the config files (no weights) of the architecture
    it needs into the Hugging Face cache and returns their folder. The file itself is the
    show's own and is never downloaded or touched."""
    file, ref, folder, problem = _checkpoint_and_config(model, checkpoint_config, cache_dir)
    if folder is not None:
        return folder
    if locate(ref).hf_id is None:  # a local config folder that is missing or incomplete
        raise FileNotFoundError(problem)
    _refuse_offline(f"the {ref} configs")
    single_hub_log_lines()
    from huggingface_hub import snapshot_download

    cache = str(cache_dir or hf_cache_dir())
    return Path(snapshot_download(ref, cache_dir=cache, allow_patterns=CONFIG_PATTERNS))


def fetch_model(model_id: str, cache_dir: Path | None = None) -> Path:
    """Downloads a diffusers model into the Hugging Face cache (with tqdm progress bars) and
    returns its snapshot folder. Only the pipeline folders that model_index.json lists, as
    fp32 safetensors. A local folder is returned as it is. (A single file: see
    `fetch_checkpoint_config`.)"""
    loc = locate(model_id)
    if loc.file is not None:
        raise ValueError(f"{model_id} is a single-file checkpoint: fetch its configs with fetch_checkpoint_config")
    if loc.folder is not None:
        ok, reason = model_available_locally(model_id)
        if not ok:
            raise FileNotFoundError(reason)
        return loc.folder
    _refuse_offline(model_id)
    from huggingface_hub import hf_hub_download, snapshot_download

    single_hub_log_lines()
    cache = str(cache_dir or hf_cache_dir())
    # The licence is information, not a warning: the fetch-models command prints it.
    allow = ["model_index.json", "*.md", "*.txt", "*.TXT"]
    try:
        index_path = hf_hub_download(model_id, "model_index.json", cache_dir=cache)
        index = json.loads(Path(index_path).read_text(encoding="utf-8"))
        allow += [f"{name}/*" for name, spec in index.items() if isinstance(spec, list) and spec[0]]
    except Exception as exc:  # not a pipeline repo (e.g. TAESD, a single autoencoder): take its root
        log.info("%s has no model_index.json (%s); fetching its top-level files", model_id, exc)
        allow += ["*.json", "*.safetensors"]
    folder = Path(snapshot_download(model_id, cache_dir=cache, allow_patterns=allow, ignore_patterns=_FETCH_IGNORE))
    return folder
