"""The generator thread: paints frames with the chosen generator (choice.py), the preview
standing in while it loads and whenever it fails.

No torch at import: the generator it is handed brings its own imports.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any, cast

from installation.core.channels import LatestSlot
from installation.core.events import EventHook, emit
from installation.core.interfaces import Generator
from installation.core.messages import CameraFrame, GeneratedFrame, GenerationParams, Prompt, Scene
from installation.core.worker import ErrorHandler, Worker
from installation.show import GeneratorConfig

from .choice import failed_model_label, params_from_config
from .mask import CameraHistory, Masker, MaskMode, MaskSettings
from .preview import PreviewGenerator

log = logging.getLogger(__name__)

# Painting from noise (txt2img, or img2img without a camera), the noise walks at least this
# many seeds a second: a picture made from words alone is never a still (text → video). A show's
# or cue's larger `seed_drift` walks faster.
MIN_NOISE_DRIFT = 0.05


class GeneratorWorker(Worker):
    """Paints frames: newest prompt, params and camera frame in, GeneratedFrame out. In the
    mask mode (`generator.mask`) each frame is composited over the camera frame it was made
    from, through the newest scene's silhouette or the show's mask image (mask.py).

    The primary generator loads in a side thread; until then (and if it fails to load) the
    fallback preview paints, so the screen is never black or frozen. A generate() that raises
    is reported and retried with the worker's backoff while the display keeps the last good
    frame; after `degrade_after` failures in a row the preview stands in, and the primary is
    tried again every `retry_primary_s` seconds.
    """

    degrade_after = 3
    retry_primary_s = 30.0
    load_join_s = 3.0  # how long stop() waits for a load in progress (it cannot be interrupted)
    mask_camera_wait_s = 5.0  # mask mode: how long the first frame waits for the camera image

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
        scene: LatestSlot[Scene] | None = None,
        may_mask: bool = False,
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
        self.reason = reason or generator.reason
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
        # The mask mode: the vision stage's newest scene holds the visitor's silhouette.
        self.scene = scene
        # Built whenever the show or a cue may mask (a cue's `mask` switches it per frame).
        self.masker = Masker(MaskSettings.from_config(cfg), on_event) if cfg.mask != "off" or may_mask else None
        self._lora_scales: dict[int, float] = {}  # per generator: the LoRA weight it paints with now
        self._history = CameraHistory()
        self._set_up_t = time.monotonic()

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
        self._set_up_t = time.monotonic()
        if self.masker is not None and self.camera is None:
            self.masker.no_camera()
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

        # Preparation can take minutes on a GPU (torch.compile): the preview says what is happening.
        def progress(msg: str) -> None:
            if not self._primary_failed:
                self.fallback.label = f"Preview while {self.primary.model} loads: {msg}"[:160]

        self.primary.progress_callback = progress
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
        self.primary.progress_callback = None
        self.fallback.label = ""  # shown again only when the primary degrades, with its own label
        if not self.stopping:
            emit(self._on_event, "generator", name=self.primary.name, model=self.primary.model, state="loaded",
                        reason=self.reason, device=self.primary.device,
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
                    reason=f"{self.primary.name} failed {self.degrade_after} times in a row: "
                           f"{type(exc).__name__}: {exc}",
                    retry_s=self.retry_primary_s, label=self.fallback.label)

    def _masking(self, params: GenerationParams | None) -> bool:
        """Whether this frame is masked: a cue's mask mode, else the show's."""
        mode = (params.mask if params is not None and params.mask else "") or self.cfg.mask
        return self.masker is not None and mode != "off"

    def _scene_for_mask(self, masking: bool) -> tuple[Scene | None, int]:
        """The newest scene and its version while masking (a new silhouette repaints), else nothing."""
        if not masking or self.scene is None:
            return None, 0
        return self.scene.get_with_version()

    def _set_lora_scale(self, gen: Generator, params: GenerationParams) -> None:
        """A cue's LoRA weight (else the show's), applied once per change and generator."""
        if not self.cfg.lora and params.lora_scale is None:
            return  # no LoRA in the show and no cue asking: nothing to weigh
        scale = params.lora_scale if params.lora_scale is not None else self.cfg.lora_scale
        if self._lora_scales.get(id(gen)) != scale:
            gen.set_lora_scale(scale)
            self._lora_scales[id(gen)] = scale

    def _waiting_for_camera(self, cam: CameraFrame | None, masking: bool) -> bool:
        """Mask mode before the first camera image: nothing to show around the mask, so the
        screen keeps its card for a moment rather than flashing a whole painted frame (a camera
        that never comes: the frame is painted after all)."""
        return (masking and self.camera is not None and cam is None
                and time.monotonic() - self._set_up_t < self.mask_camera_wait_s)

    def step(self) -> None:
        t0 = time.monotonic()
        gen = self._pick()
        prompt, prompt_v = self.prompt.get_with_version()
        params, params_v = self.params.get_with_version()
        cam, cam_v = self.camera.get_with_version() if self.camera is not None else (None, 0)
        masking = self._masking(params)
        scene, scene_v = self._scene_for_mask(masking)
        if self._waiting_for_camera(cam, masking):
            self.sleep(1.0 / self.cfg.max_fps)
            return
        if masking and cam is not None:
            # Paint the frame the silhouette was read from: the visitor stays inside their mask.
            self._history.add(cam)
            cam = self._history.matching(scene, cam)
        prompt = prompt if prompt is not None else Prompt(text="")
        params = params if params is not None else self._default_params
        # The mode cues and OSC set wins over the show file's.
        mode = params.mode or self.cfg.mode
        image = cam.image if cam is not None and mode in ("img2img", "feedback") else None
        if image is None and mode != "feedback" and params.seed_drift < MIN_NOISE_DRIFT:
            params = replace(params, seed_drift=MIN_NOISE_DRIFT)

        # Same inputs, same generator: a deterministic generator would paint the same frame
        # again, so wait for news instead of burning the GPU, unless it is animating (a
        # prompt blend, drifting noise, the preview's drifting canvas without a camera).
        inputs = (id(gen), prompt_v, params_v, cam_v if cam is None else cam.t, scene_v)
        if inputs == self._last_inputs and not gen.animating:
            self.sleep(1.0 / self.cfg.max_fps)
            return

        try:
            self._set_lora_scale(gen, params)
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
                    emit(self._on_event, "generator", name=gen.name, model=gen.model, state="recovered",
                         reason="generate() works again")
                self._failures = 0
                self._degraded_until = 0.0
        self._last_inputs = inputs
        source_t = cam.t if image is not None and cam is not None else None
        if masking and self.masker is not None:
            mode = cast(MaskMode, params.mask) if params.mask else None
            frame = self.masker.apply(frame, cam.image if cam is not None else None, scene, mode)
            if cam is not None and self.masker.source != "none":
                source_t = cam.t  # the camera shows through: the frame is as old as the camera's
        self.out.put(
            GeneratedFrame(
                image=frame,
                prompt=prompt,
                params=params,
                generator=gen.name,
                model=gen.model,
                source_t=source_t,
            )
        )
        self.rate_meter.tick()
        wait = 1.0 / self.cfg.max_fps - (time.monotonic() - t0)
        if wait > 0:
            self.sleep(wait)
