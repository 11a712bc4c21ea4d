"""The generator thread: paints frames with the chosen generator (choice.py), the preview
standing in while it loads and whenever it fails.

Nothing black, nothing frozen: a frame goes into the frame slot only when it is fit for the
screen (frame_check.py) and, with [safety], when the checker lets it through (safety.py); the
display keeps the last good frame otherwise. A primary that runs out of GPU memory lets go of
its model and is loaded again while the preview paints.

No torch at import: the generator it is handed brings its own imports (and so does the safety
checker, loaded from engine/ only when a show asks for it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

import numpy as np

from installation.core.channels import LatestSlot
from installation.core.events import EventHook, emit
from installation.core.faults import NO_FAULTS, FaultInjector
from installation.core.interfaces import Generator
from installation.core.messages import CameraFrame, GeneratedFrame, GenerationParams, Prompt, Scene, StreamRequest
from installation.core.streams import StreamSlots
from installation.core.worker import ErrorHandler, Worker
from installation.show import GeneratorConfig, SafetyConfig

from .choice import failed_model_label, params_from_config
from .frame_check import frame_problem
from .mask import CameraHistory, Masker, MaskMode, MaskSettings
from .preview import PreviewGenerator
from .safety import SafetyGate

log = logging.getLogger(__name__)

# Painting from noise (txt2img, or img2img without a camera), the noise walks at least this
# many seeds a second: a picture made from words alone is never a still (text → video). A show's
# or cue's larger `seed_drift` walks faster.
MIN_NOISE_DRIFT = 0.05

# What an out-of-memory error says, whichever library raised it: torch's OutOfMemoryError
# ("CUDA out of memory"), a RuntimeError from an older torch or a kernel library, the CPU
# allocator. Matched on the message so that this module never imports torch.
_OOM_MARKS = ("out of memory", "cudnn_status_alloc_failed", "cublas_status_alloc_failed", "can't allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) is running out of GPU (or host) memory."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, MemoryError) or any(c.__name__ == "OutOfMemoryError" for c in type(cause).__mro__):
            return True
        if isinstance(cause, RuntimeError) and any(mark in str(cause).lower() for mark in _OOM_MARKS):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class ImageChecker(Protocol):
    """The safety checker as the worker uses it (engine/safety_checker.py's SafetyChecker)."""

    def check(self, frame: np.ndarray) -> Any: ...  # a Verdict: .flagged, .score


CheckerLoader = Callable[[SafetyConfig, str], ImageChecker]


def load_checker(cfg: SafetyConfig, device: str) -> ImageChecker:
    """[safety]'s checker on the generator's device (torch is imported here, not at import)."""
    from .engine.safety_checker import load_safety_checker

    return load_safety_checker(cfg.model, device, cfg.adjustment)


@dataclass(frozen=True)
class _StreamPlan:
    """One stream's next frame, as the worker worked it out from the stream's slots."""

    slots: StreamSlots
    prompt: Prompt
    params: GenerationParams
    image: np.ndarray | None  # what the generator restyles (the stream's crop), None from noise
    camera: CameraFrame | None  # the stream's crop of the camera frame, for the mask and the stamp
    masking: bool
    scene: Scene | None  # masking: the scene with the stream's part of the silhouette
    key: tuple  # the inputs: the same key again paints the same frame


class GeneratorWorker(Worker):
    """Paints frames: newest prompt, params and camera frame in, GeneratedFrame out, for each
    stream (core/streams.py: its own words, settings and crop of the camera; several streams
    are painted in one `generate_many` call, which the engine batches). In the
    mask mode (`generator.mask`) each frame is composited over the camera frame it was made
    from, through the newest scene's silhouette or the show's mask image (mask.py).

    The primary generator loads in a side thread; until then (and if it fails to load) the
    fallback preview paints, so the screen is never black or frozen. A generate() that raises
    is reported and retried with the worker's backoff while the display keeps the last good
    frame; so is a frame unfit for the screen (NaN, constant: frame_check.py), which is never
    put in the frame slot. After `degrade_after` failures in a row the preview stands in, and
    the primary is tried again every `retry_primary_s` seconds (after bad frames, from a model
    loaded afresh: its state may hold the NaN). Out of GPU memory, the primary lets go of its
    model at once (`release`), the preview paints, and the model is loaded again in the
    background; a rebuild within `rebuild_window_s` of the last waits longer each time. The
    first good frame after any failure is a `recovered` event saying how long it took.

    With [safety] enabled, the checker loads before the model; the model's frames are judged
    after the frame check and held by the streak rule (safety.py). A checker that cannot load
    keeps the model off the screen (`if_missing = "preview"`) or lets it paint unchecked.
    """

    degrade_after = 3
    retry_primary_s = 30.0
    load_join_s = 3.0  # how long stop() waits for a load in progress (it cannot be interrupted)
    rebuild_window_s = 60.0  # a rebuild this soon after the last waits (reload_backoff_s), not loads at once
    # ... unless the reloaded model proved itself in between: it painted this many good frames
    # over at least this long, so running out of memory again is a passing event (another
    # process's memory, fragmentation), not a model that cannot fit. The time says it fits; the
    # few frames say it was painting then. (100 frames was too many: a slow machine, or a still
    # room whose camera frames seldom change, took 20 s or more to prove a model that fitted, and
    # a soak with an OOM every 15 s found each rebuild waiting the 30 s backoff.)
    proven_frames = 10
    proven_s = 10.0
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
        faults: FaultInjector = NO_FAULTS,
        safety: SafetyConfig | None = None,
        checker_loader: CheckerLoader = load_checker,
        streams: Sequence[StreamSlots] = (),
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
        self._last_inputs: dict[int, tuple] = {}  # per stream: the inputs of its last frame
        # Several streams ([[streams]]) are painted in one generate_many() call; without them the
        # one stream is these slots.
        self.streams: tuple[StreamSlots, ...] = tuple(streams) or (StreamSlots(1, "", prompt, params, out),)
        self._default_params = params_from_config(cfg)
        # The mask mode: the vision stage's newest scene holds the visitor's silhouette.
        self.scene = scene
        # Built whenever the show or a cue may mask (a cue's `mask` switches it per frame).
        self.masker = Masker(MaskSettings.from_config(cfg), on_event) if cfg.mask != "off" or may_mask else None
        self._lora_scales: dict[int, float] = {}  # per generator: the LoRA weight it paints with now
        self._history = CameraHistory()
        self._set_up_t = time.monotonic()
        # Set by the app while the show is closed ([hours]) or attract shows a clip or a still:
        # nothing is painted, so the GPU idles (the model stays loaded for the morning).
        self.paused = threading.Event()
        self.faults = faults
        # Failures of the primary since its last good frame: when the first came, and what it was.
        self._failing_since: float | None = None
        self._failed_with = ""
        self._rebuilds_in_row = 0
        self._last_rebuild_t = -1e9
        self._good_since_rebuild = 0  # the primary's good frames since the last rebuild
        self._first_good_t: float | None = None  # ... and when the first of them came
        # Image safety: only for a model's frames (the preview paints nothing a checker could flag).
        self.safety = safety if safety is not None and safety.enabled and self._needs_load else None
        self._checker_loader = checker_loader
        self._checker: ImageChecker | None = None
        self._checker_error, self._checker_error_t = "", -1e9  # the same failure again is not logged again
        self.gate = SafetyGate(self.safety.streak, on_event, self.safety.model) if self.safety is not None else None
        self._gates: dict[int, SafetyGate] = {}  # streams beyond the first: each its own streak

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
                self._start_loader()
        else:
            self.primary.load()
            emit(self._on_event, "generator", name=self.primary.name, model=self.primary.model, state="ready",
                        reason=self.reason, label=self.primary.label)

    reload_backoff_s = (30.0, 60.0, 120.0, 300.0, 600.0)

    def _load_checker(self) -> bool:
        """Loads [safety]'s checker, retrying with the load backoff while it cannot (the model's
        frames must not be shown unchecked); False if the worker stopped meanwhile. With
        `if_missing = "unchecked"` a failure is logged once and the model paints unchecked."""
        cfg = self.safety
        if cfg is None or self._checker is not None:
            return True
        attempt = 0
        while True:
            t0 = time.monotonic()
            try:
                self._checker = self._checker_loader(cfg, self.cfg.device)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                unchecked = cfg.if_missing == "unchecked"
                retry_s = self.reload_backoff_s[min(attempt, len(self.reload_backoff_s) - 1)]
                attempt += 1
                emit(self._on_event, "error", stage="safety",
                     reason=f"the safety checker {cfg.model} cannot load: {error}; "
                            + ("the model paints UNCHECKED (safety.if_missing = \"unchecked\")" if unchecked
                               else f"the preview paints instead of the model (retried in {retry_s:g} s)"))
                if unchecked:
                    emit(self._on_event, "safety", state="unchecked", model=cfg.model, reason=error)
                    self.safety = self.gate = None
                    return True
                self._primary_failed = True
                short = error if len(error) <= 90 else error[:87] + "..."
                self.fallback.label = f"Preview: safety checker {cfg.model} not loaded — {short}"[:160]
                if self.stop_event.wait(retry_s):
                    return False
                continue
            emit(self._on_event, "safety", state="ready", model=cfg.model, streak=cfg.streak,
                 adjustment=cfg.adjustment, seconds=round(time.monotonic() - t0, 2))
            return True

    def _load_primary(self, delay_s: float = 0.0) -> None:
        if delay_s > 0 and self.stop_event.wait(delay_s):
            return
        if not self._load_checker():
            return
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

    def _start_loader(self, delay_s: float = 0.0) -> None:
        self._loader = threading.Thread(target=self._load_primary, args=(delay_s,), name="generator-load",
                                        daemon=True)
        self._loader.start()

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

    def _degrade(self, error: str) -> None:
        self._failures = 0
        self._degraded_until = time.monotonic() + self.retry_primary_s
        self.fallback.label = f"Preview: {self.primary.model} keeps failing — {error}"[:160]
        self._active = self.fallback
        emit(self._on_event, "generator", name=self.fallback.name, model="", state="degraded",
                    reason=f"{self.primary.name} failed {self.degrade_after} times in a row: {error}",
                    retry_s=self.retry_primary_s, label=self.fallback.label)

    def _failed(self, kind: str) -> bool:
        """Counts one failure of the primary ("raise", "bad_frame"); True at `degrade_after` in a row."""
        if self._failing_since is None:
            self._failing_since, self._failed_with = time.monotonic(), kind
        self._last_inputs.clear() # whatever comes next is painted, even with unchanged inputs
        self._failures += 1
        return self._failures >= self.degrade_after

    def _rebuild(self, reason: str) -> None:
        """Out of memory (or a primary whose frames stay bad): the preview paints, the primary
        lets go of its model and frees the memory, and the model is loaded again in the
        background, at once unless the last rebuild was within `rebuild_window_s` and the model
        has not proved itself since (`proven_frames` over `proven_s`)."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since, self._failed_with = now, "oom"
        proven = (self._good_since_rebuild >= self.proven_frames and self._first_good_t is not None
                  and now - self._first_good_t >= self.proven_s)
        soon = now - self._last_rebuild_t < self.rebuild_window_s
        self._rebuilds_in_row = self._rebuilds_in_row + 1 if soon and not proven else 0
        self._last_rebuild_t = now
        self._good_since_rebuild, self._first_good_t = 0, None
        delay_s = 0.0 if self._rebuilds_in_row == 0 else \
            self.reload_backoff_s[min(self._rebuilds_in_row - 1, len(self.reload_backoff_s) - 1)]
        self._active = self.fallback
        self._primary_ready.clear()
        self._failures = 0
        self._degraded_until = 0.0
        self._last_inputs.clear()
        self._lora_scales.pop(id(self.primary), None)  # a reloaded model has the show's weight again
        loader = self._loader
        if loader is not None and loader.is_alive():  # only its last lines can be left: ready was set
            loader.join(self.load_join_s)
        try:
            self.primary.release()
        except Exception as exc:  # the reload below is the remedy either way
            self.report(exc)
        self.fallback.label = f"Preview while {self.primary.model} is loaded again: {reason}"[:160]
        emit(self._on_event, "generator", name=self.fallback.name, model=self.primary.model, state="rebuilding",
             reason=reason, retry_s=delay_s, label=self.fallback.label)
        self._start_loader(delay_s)

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
        if self.paused.is_set():
            self.sleep(0.05)  # still beating: the supervisor sees a resting stage, not a stalled one
            return
        t0 = time.monotonic()
        gen = self._pick()
        cam, cam_v = self.camera.get_with_version() if self.camera is not None else (None, 0)
        masking_any = any(self._masking(s.params.get()) for s in self.streams)
        scene, scene_v = self._scene_for_mask(masking_any)
        if self._waiting_for_camera(cam, masking_any):
            self.sleep(1.0 / self.cfg.max_fps)
            return
        if masking_any and cam is not None:
            # Paint the frame the silhouette was read from: the visitor stays inside their mask.
            self._history.add(cam)
            cam = self._history.matching(scene, cam)
        # Every stream reads the same camera moment; streams whose inputs did not change wait
        # for news (a deterministic generator would paint the same frame again) unless the
        # generator is animating (a prompt blend, drifting noise, the preview's canvas).
        plans = [plan for slots in self.streams
                 if (plan := self._plan(slots, gen, cam, cam_v, scene, scene_v)) is not None]
        if not plans:
            self.sleep(1.0 / self.cfg.max_fps)
            return

        model_paints = gen is self.primary and self._needs_load
        out_of_memory = ""
        try:
            frames = self._paint(gen, plans)
        except Exception as exc:
            if not model_paints:
                raise  # the preview: the Worker reports it and backs off
            if not is_out_of_memory(exc):
                if self._failed("raise"):
                    self._degrade(f"{type(exc).__name__}: {exc}")
                raise  # the Worker reports it and backs off; the display keeps the last frame
            self.report(exc)
            out_of_memory = f"{type(exc).__name__}: {exc}"
        if out_of_memory:
            # Outside the except block: the traceback, and the tensors its frames hold, are gone.
            self._rebuild(f"out of memory: {out_of_memory}"[:300])
            return
        problems = [frame_problem(frame, constant_ok=not model_paints) for frame in frames]
        bad = next((p for p in problems if p), "")
        if bad:
            self._refuse(gen, bad, model_paints)  # one failure per call, whichever stream painted it
        elif model_paints:
            self._recovered(gen)
        painted = False
        for plan, frame, problem in zip(plans, frames, problems, strict=True):
            if problem:
                continue
            self._last_inputs[plan.slots.index] = plan.key
            if model_paints and not self._safe(frame, plan.slots.index):
                continue
            self._put(gen, plan, frame)
            painted = True
        if painted:
            self.rate_meter.tick()
        if painted or not bad:
            self._pace(t0)

    def _plan(self, slots: StreamSlots, gen: Generator, cam: CameraFrame | None, cam_v: int,
              scene: Scene | None, scene_v: int) -> _StreamPlan | None:
        """What one stream paints next, or None when its inputs are those of its last frame."""
        inputs = slots.read(cam)
        prompt = inputs.prompt if inputs.prompt is not None else Prompt(text="")
        params = inputs.params if inputs.params is not None else self._default_params
        masking = self._masking(params)
        # The mode cues and OSC set wins over the show file's.
        mode = params.mode or self.cfg.mode
        image = inputs.image if mode in ("img2img", "feedback") else None
        if image is None and mode != "feedback" and params.seed_drift < MIN_NOISE_DRIFT:
            params = replace(params, seed_drift=MIN_NOISE_DRIFT)
        stream_cam = inputs.camera
        key = (id(gen), inputs.prompt_version, inputs.params_version,
               cam_v if stream_cam is None else stream_cam.t, scene_v if masking else 0)
        if key == self._last_inputs.get(slots.index) and not gen.animating:
            return None
        if masking and scene is not None and scene.silhouette is not None and not slots.crop.full:
            scene = replace(scene, silhouette=slots.crop.apply(scene.silhouette))  # the stream's part of the outline
        return _StreamPlan(slots, prompt, params, image, stream_cam, masking, scene if masking else None, key)

    def _put(self, gen: Generator, plan: _StreamPlan, frame: np.ndarray) -> None:
        cam, params = plan.camera, plan.params
        source_t = cam.t if plan.image is not None and cam is not None else None
        if plan.masking and self.masker is not None:
            mode = cast(MaskMode, params.mask) if params.mask else None
            frame = self.masker.apply(frame, cam.image if cam is not None else None, plan.scene, mode)
            if cam is not None and self.masker.source != "none":
                source_t = cam.t  # the camera shows through: the frame is as old as the camera's
        plan.slots.frame.put(GeneratedFrame(image=frame, prompt=plan.prompt, params=params, generator=gen.name,
                                            model=gen.model, source_t=source_t))

    def _pace(self, t0: float) -> None:
        wait = 1.0 / self.cfg.max_fps - (time.monotonic() - t0)
        if wait > 0:
            self.sleep(wait)

    def _paint(self, gen: Generator, plans: list[_StreamPlan]) -> list[Any]:
        """One frame per planned stream: one generate() for stream 1 alone, else one
        generate_many() (the engine batches streams that share steps and mode). The soak
        harness's faults (`--faults` only) fail it here, the way the real failure would,
        through the same recovery."""
        primary = gen is self.primary
        if primary and self.faults.take("generator_raise"):
            raise RuntimeError("injected fault: generator_raise")
        if primary and self.faults.take("generator_oom"):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (injected fault: generator_oom)")
        self._set_lora_scale(gen, plans[0].params)  # one LoRA weight for the model: the streams share it
        if len(plans) == 1 and plans[0].slots.index == 1:
            frames: list[Any] = [gen.generate(plans[0].prompt, plans[0].params, plans[0].image)]
        else:
            frames = list(gen.generate_many([StreamRequest(p.slots.index - 1, p.prompt, p.params, p.image)
                                             for p in plans]))
        if primary and self.faults.take("generator_nan"):
            # The model's float output before its conversion to uint8, all NaN (an fp16 overflow).
            frames[0] = np.full(np.shape(frames[0]), np.nan, np.float32)
        return frames

    def _refuse(self, gen: Generator, problem: str, model_paints: bool) -> None:
        """A frame unfit for the screen: never shown; from the primary, a failure like a raise."""
        if not model_paints:
            log.warning("generator: %s painted a frame unfit for the screen (%s); not shown", gen.name, problem)
            self.sleep(1.0 / self.cfg.max_fps)
            return
        emit(self._on_event, "generator", name=gen.name, model=gen.model, state="bad_frame", reason=problem,
             failures=self._failures + 1)
        if self._failed("bad_frame"):
            # A model whose frames stay bad may hold the NaN in its state (a feedback buffer,
            # weights): the retry gets a model loaded afresh.
            self._rebuild(f"{self.degrade_after} bad frames in a row: {problem}"[:300])

    def _recovered(self, gen: Generator) -> None:
        """The primary painted a good frame: the end of any run of failures."""
        if self._failing_since is not None:
            emit(self._on_event, "generator", name=gen.name, model=gen.model, state="recovered",
                 reason=f"generate() works again after {self._failed_with}", after=self._failed_with,
                 seconds=round(time.monotonic() - self._failing_since, 3))
        self._failing_since = None
        self._failures = 0
        self._degraded_until = 0.0
        self._good_since_rebuild += 1
        if self._first_good_t is None:
            self._first_good_t = time.monotonic()

    def _safe(self, frame: np.ndarray, stream: int = 1) -> bool:
        """[safety]: whether the checker lets this model frame through (streak rule). A checker
        that fails on a frame holds it: a frame nobody judged is not shown."""
        if self.gate is None:
            return True
        gate = self.gate if stream == 1 else self._gates.setdefault(
            stream, SafetyGate(self.gate.streak, self._on_event, self.gate.model))  # a streak per stream
        if self._checker is None:
            return False  # never the case while the model paints; if it were, nothing unjudged is shown
        out_of_memory = False
        try:
            verdict = self._checker.check(frame)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            out_of_memory = is_out_of_memory(exc)
            now = time.monotonic()
            if error != self._checker_error or now - self._checker_error_t > self.repeat_report_s:
                emit(self._on_event, "error", stage="safety", reason=f"the safety checker failed on a frame "
                                                                     f"(held): {error}"[:300])
                self._checker_error, self._checker_error_t = error, now
        else:
            return gate.admit(bool(verdict.flagged), float(verdict.score))
        if out_of_memory:  # the checker shares the GPU with the model: the model's memory is what to free
            self._rebuild(f"out of memory in the safety checker: {self._checker_error}"[:300])
        return False
