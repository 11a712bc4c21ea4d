"""Which generator a show runs, and the worker thread that runs it.

No torch at import: `DiffusersGenerator` is imported only when a show asks for it and its
model is here, so a show on the preview starts in a second.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from typing import Any

from installation.core.channels import LatestSlot
from installation.core.events import EventHook, emit
from .engine.checkpoint_file import check_file
from .engine.models import FETCH_COMMAND, download_allowed, locate, model_available_locally
from installation.core.interfaces import Generator
from installation.core.messages import CameraFrame, GeneratedFrame, GenerationParams, Prompt
from .preview import PreviewGenerator
from installation.show import GeneratorConfig
from installation.core.worker import ErrorHandler, Worker

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
    short = error if len(error) <= 90 else error[:87] + "..."
    return f"Preview: {model} failed to load — {short}"


def _missing_engine_packages() -> list[str]:
    return [m for m in ("torch", "diffusers", "transformers") if importlib.util.find_spec(m) is None]


def choose_generator(cfg: GeneratorConfig, model_override: str | None = None) -> tuple[Generator, str]:
    """The generator to run and why. Never raises for a missing model or engine: the show runs
    on the preview instead and its label says why and how to fix it."""
    try:
        gen, reason = _choose(cfg, model_override)
    except Exception as exc:  # e.g. a model id the hub's validator refuses ("org/name.")
        model = (model_override or cfg.model).strip()
        reason = f"model {model!r} cannot be used: {type(exc).__name__}: {exc}"
        label = f"Preview: generator.model {model!r} is not a usable model id or folder — check the show file"
        gen = PreviewGenerator(cfg.width, cfg.height, reason=label[:160])
    try:
        gen.reason = reason  # type: ignore[attr-defined]  (read by GeneratorWorker's start event)
    except AttributeError:
        pass
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
    if not ok and download_allowed() and (loc.hf_id is not None or (loc.file is not None and check_file(loc.file) == "")):
        ok, why = True, f"{why}; JADONG_ALLOW_DOWNLOAD=1, so it will be downloaded now"
    if not ok:
        if cfg.kind == "diffusers":
            log.warning("generator kind=diffusers, but %s; running the preview", why)
        return PreviewGenerator(cfg.width, cfg.height, reason=missing_model_label(model)), f"model {model} not found: {why}"

    if cfg.engine == "stream":
        from .engine.stream_generator import StreamGenerator

        return StreamGenerator(cfg), f"model {why}; streaming engine"
    from .engine.diffusers_generator import DiffusersGenerator

    return DiffusersGenerator(cfg), f"model {why}; diffusers pipeline per frame (generator.engine = \"pipeline\")"


class GeneratorWorker(Worker):
    """Paints frames: newest prompt, params and camera frame in, GeneratedFrame out.

    The primary generator loads in a side thread; until then (and if it fails to load) the
    fallback preview paints, so the screen is never black or frozen. A generate() that raises
    is reported and retried with the worker's backoff while the display keeps the last good
    frame; after `degrade_after` failures in a row the preview stands in, and the primary is
    tried again every `retry_primary_s` seconds.
    """

    degrade_after = 3
    retry_primary_s = 30.0
    load_join_s = 3.0  # how long stop() waits for a load in progress (it cannot be interrupted)

    def __init__(
        self,
        generator: Generator,
        fallback: PreviewGenerator,
        prompt: LatestSlot[Prompt],
        params: LatestSlot[GenerationParams],
        camera: LatestSlot[CameraFrame] | None,
        out: LatestSlot[GeneratedFrame],
        cfg: GeneratorConfig,
        on_error: ErrorHandler | None = None,
        on_event: EventHook | None = None,
        reason: str = "",
    ) -> None:
        super().__init__("generator", on_error)
        self.primary = generator
        self.fallback = fallback
        self.prompt = prompt
        self.params = params
        self.camera = camera
        self.out = out
        self.cfg = cfg
        # choose_generator leaves its reason on the generator, so the start event says why
        # even when the caller does not pass it on.
        self.reason = reason or getattr(generator, "reason", "")
        self._on_event = on_event
        self._needs_load = generator is not fallback and not isinstance(generator, PreviewGenerator)
        self._active: Generator = fallback if self._needs_load else generator
        self._primary_ready = threading.Event()
        self._primary_failed = False
        self._loader: threading.Thread | None = None
        self._failures = 0  # consecutive generate() failures of the primary
        self._degraded_until = 0.0  # while monotonic() is below this, the fallback paints
        self._last_inputs: tuple | None = None
        self._default_params = params_from_config(cfg)

    # --- status ---------------------------------------------------------------------------
    @property
    def active(self) -> Generator:
        """The generator painting now (read from other threads for the HUD; a plain read)."""
        return self._active

    @property
    def active_name(self) -> str:
        return self._active.name

    @property
    def active_model(self) -> str:
        return self._active.model

    @property
    def label(self) -> str:
        """What the screen should say about the generator ("" when the real model paints)."""
        return self._active.label

    def _event(self, **fields: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event("generator", **fields)
        except Exception:  # an event handler must never stop the frames
            log.exception("generator: event handler failed")

    # --- loading --------------------------------------------------------------------------
    def setup(self) -> None:
        if self._needs_load:
            if self._loader is None:
                emit(self._on_event, "generator", name=self.primary.name, model=self.primary.model, state="loading",
                            reason=self.reason, painting=self.fallback.name)
                self._loader = threading.Thread(target=self._load_primary, name="generator-load", daemon=True)
                self._loader.start()
        else:
            self.primary.load()
            emit(self._on_event, "generator", name=self.primary.name, model=self.primary.model, state="ready",
                        reason=self.reason, label=self.primary.label)

    reload_backoff_s = (30.0, 60.0, 120.0, 300.0, 600.0)

    def _load_primary(self) -> None:
        t0 = time.monotonic()
        if hasattr(self.primary, "progress_callback"):
            # Preparation can take minutes on a GPU (torch.compile): the preview says what is happening.
            def progress(msg: str) -> None:
                if not self._primary_failed:
                    self.fallback.label = f"Preview while {self.primary.model} loads: {msg}"[:160]

            self.primary.progress_callback = progress  # type: ignore[attr-defined]
        attempt = 0
        while True:
            try:
                self.primary.load()
                break
            except BaseException as exc:  # anything, even a SystemExit from a native library
                error = f"{type(exc).__name__}: {exc}"
                self._primary_failed = True
                self.fallback.label = failed_model_label(self.primary.model, error)
                if self.stopping:
                    return
                # A load can fail for a passing reason (GPU memory still held by a process that
                # is shutting down, a driver hiccup): try again, less and less often.
                retry_s = self.reload_backoff_s[min(attempt, len(self.reload_backoff_s) - 1)]
                attempt += 1
                self.report(exc if isinstance(exc, Exception) else RuntimeError(error))
                emit(self._on_event, "generator", name=self.fallback.name, model="", state="load_failed",
                            reason=f"{self.primary.model} failed to load: {error}", label=self.fallback.label,
                            retry_s=retry_s)
                if self.stop_event.wait(retry_s):
                    return
        self._primary_failed = False
        if hasattr(self.primary, "progress_callback"):
            self.primary.progress_callback = None  # type: ignore[attr-defined]
            self.fallback.label = ""
        if not self.stopping:
            emit(self._on_event, "generator", name=self.primary.name, model=self.primary.model, state="loaded",
                        reason=self.reason, device=getattr(self.primary, "device", ""),
                        seconds=round(time.monotonic() - t0, 2))
        self._primary_ready.set()

    def teardown(self) -> None:
        if self._loader is not None and self._loader.is_alive():
            self._loader.join(self.load_join_s)
            if self._loader.is_alive():
                log.warning("generator: model still loading at stop; left to finish in the background")

    # --- painting -------------------------------------------------------------------------
    def _pick(self) -> Generator:
        if self._needs_load and self._primary_ready.is_set() and self._active is not self.primary:
            if time.monotonic() >= self._degraded_until:
                self._active = self.primary
                if self._degraded_until:
                    # A retry after degrading: one more failure is enough to step back.
                    self._failures = self.degrade_after - 1
        return self._active

    def _degrade(self, exc: BaseException) -> None:
        self._failures = 0
        self._degraded_until = time.monotonic() + self.retry_primary_s
        self.fallback.label = f"Preview: {self.primary.model} keeps failing — {type(exc).__name__}: {exc}"[:160]
        self._active = self.fallback
        emit(self._on_event, "generator", name=self.fallback.name, model="", state="degraded",
                    reason=f"{self.primary.name} failed {self.degrade_after} times in a row: {type(exc).__name__}: {exc}",
                    retry_s=self.retry_primary_s, label=self.fallback.label)

    def step(self) -> None:
        t0 = time.monotonic()
        gen = self._pick()
        prompt, prompt_v = self.prompt.get_with_version()
        params, params_v = self.params.get_with_version()
        cam, cam_v = self.camera.get_with_version() if self.camera is not None else (None, 0)
        prompt = prompt if prompt is not None else Prompt(text="")
        params = params if params is not None else self._default_params
        # The mode cues and OSC set wins over the show file's.
        mode = params.mode or self.cfg.mode
        image = cam.image if cam is not None and mode in ("img2img", "feedback") else None

        # Same inputs, same generator: a deterministic generator would paint the same frame
        # again, so wait for news instead of burning the GPU (the preview's noise drifts, so
        # it always paints).
        inputs = (id(gen), prompt_v, params_v, cam_v)
        drifting = (isinstance(gen, PreviewGenerator) and image is None) or bool(getattr(gen, "animating", False))
        if inputs == self._last_inputs and not drifting:
            self.sleep(1.0 / self.cfg.max_fps)
            return

        try:
            frame = gen.generate(prompt, params, image)
        except Exception as exc:
            if gen is self.primary and self._needs_load:
                self._failures += 1
                if self._failures >= self.degrade_after:
                    self._degrade(exc)
            raise  # the Worker reports it and backs off; the display keeps the last frame
        if gen is self.primary:
            if self._failures or self._degraded_until:
                if self._degraded_until:
                    emit(self._on_event, "generator", name=gen.name, model=gen.model, state="recovered", reason="generate() works again")
                self._failures = 0
                self._degraded_until = 0.0
        self._last_inputs = inputs
        self.out.put(
            GeneratedFrame(
                image=frame,
                prompt=prompt,
                params=params,
                generator=gen.name,
                model=gen.model,
                source_t=cam.t if image is not None and cam is not None else None,
            )
        )
        self.rate_meter.tick()
        wait = 1.0 / self.cfg.max_fps - (time.monotonic() - t0)
        if wait > 0:
            self.sleep(wait)
