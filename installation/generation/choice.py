"""Which generator a show runs, and why: the streaming engine, the diffusers pipeline, or the
preview standing in for a model or engine that is not here (its label says which, and the fix).
Also the show's starting generation settings, and the preview's labels for a missing or failed
model.

No torch at import: a generator's module is imported only when a show asks for it and its
model is here, so a show on the preview starts in a second.
"""

from __future__ import annotations

import importlib.util
import logging

from installation.core.downloads import ALLOW_DOWNLOAD_ENV, FETCH_COMMAND, download_allowed
from installation.core.interfaces import Generator
from installation.core.messages import GenerationParams
from installation.show import GeneratorConfig

from .engine.checkpoint_file import check_file
from .engine.models import locate, model_available_locally
from .preview import PreviewGenerator

log = logging.getLogger(__name__)


def params_from_config(cfg: GeneratorConfig) -> GenerationParams:
    """The show's starting generation settings (cues and OSC replace them later)."""
    return GenerationParams(
        strength=cfg.strength, steps=cfg.steps, seed=cfg.seed, guidance_scale=cfg.guidance_scale,
        mode=cfg.mode, prompt_blend_s=cfg.prompt_blend_s, seed_drift=cfg.seed_drift,
    )


def missing_model_label(model: str) -> str:
    """The short line the screen shows while the preview stands in for a missing model."""
    loc = locate(model)
    if loc.hf_id is not None:
        return f"Preview: {model} is not downloaded — run: {FETCH_COMMAND}"
    if loc.file is not None:
        if not loc.file.is_file():
            return f"Preview: checkpoint file {model} is missing — check generator.model"
        return f"Preview: {model} needs its configs — run: {FETCH_COMMAND}"
    return f"Preview: model folder {model} is missing or incomplete — check generator.model"


def failed_model_label(model: str, error: str) -> str:
    """The short line the screen shows while the preview stands in for a model that failed to load."""
    short = error if len(error) <= 90 else error[:87] + "..."
    return f"Preview: {model} failed to load — {short}"


def _missing_engine_packages() -> list[str]:
    return [m for m in ("torch", "diffusers", "transformers") if importlib.util.find_spec(m) is None]


def choose_generator(cfg: GeneratorConfig, model_override: str | None = None) -> tuple[Generator, str]:
    """The generator to run (not loaded yet) and why; the reason is also left on the generator
    (`reason`), so the worker's events say it. Never raises for a missing model or engine: the
    show runs on the preview instead and its label says why and how to fix it."""
    try:
        gen, reason = _choose(cfg, model_override)
    except Exception as exc:  # e.g. a model id the hub's validator refuses ("org/name.")
        model = (model_override or cfg.model).strip()
        reason = f"model {model!r} cannot be used: {type(exc).__name__}: {exc}"
        label = f"Preview: generator.model {model!r} is not a usable model id or folder — check the show file"
        gen = PreviewGenerator(cfg.width, cfg.height, reason=label[:160])
    gen.reason = reason
    return gen, reason


def _choose(cfg: GeneratorConfig, model_override: str | None) -> tuple[Generator, str]:
    model = (model_override or cfg.model).strip()
    if model != cfg.model:
        cfg = cfg.model_copy(update={"model": model})
    if cfg.kind == "preview":
        return PreviewGenerator(cfg.width, cfg.height), "kind=preview in show"

    missing = _missing_engine_packages()
    if missing:
        reason = f"kind={cfg.kind} but {', '.join(missing)} not installed; see the README's setup section"
        return PreviewGenerator(cfg.width, cfg.height, reason="Preview: " + reason), reason

    ok, why = model_available_locally(model, checkpoint_config=cfg.checkpoint_config)
    loc = locate(model)
    # Downloads at show time fetch a hub model, or a checkpoint file's configs, never the file.
    fetchable = loc.hf_id is not None or (loc.file is not None and check_file(loc.file) == "")
    if not ok and download_allowed() and fetchable:
        ok, why = True, f"{why}; {ALLOW_DOWNLOAD_ENV}=1, so it will be downloaded now"
    if not ok:
        if cfg.kind == "diffusers":
            log.warning("generator kind=diffusers, but %s; running the preview", why)
        preview = PreviewGenerator(cfg.width, cfg.height, reason=missing_model_label(model))
        return preview, f"model {model} not found: {why}"

    if cfg.engine == "stream":
        from .engine.stream_generator import StreamGenerator

        return StreamGenerator(cfg), f"model {why}; streaming engine"
    from .engine.diffusers_generator import DiffusersGenerator

    return DiffusersGenerator(cfg), f"model {why}; diffusers pipeline per frame (generator.engine = \"pipeline\")"
