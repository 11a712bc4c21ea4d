"""Nothing black, nothing frozen: a generator that raises, paints NaN or a constant frame, or runs
out of memory never puts that frame on screen; the last good frame stays, and the primary paints
again soon (the soak harness asks for 2 s). The tiny diffusers model on the CPU, through the real
GeneratorWorker, with the soak harness's real FaultInjector; model state poisoned in memory for
the real NaN and constant frames."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import psutil
import pytest

from installation.core.channels import LatestSlot
from installation.core.faults import FaultInjector
from installation.core.messages import CameraFrame, GeneratedFrame, GenerationParams, Prompt
from installation.generation.choice import params_from_config
from installation.generation.engine.diffusers_generator import DiffusersGenerator
from installation.generation.engine.stream_generator import StreamGenerator
from installation.generation.engine.tiny_model import ensure_tiny_model
from installation.generation.frame_check import frame_problem
from installation.generation.preview import PreviewGenerator
from installation.generation.worker import GeneratorWorker, is_out_of_memory
from installation.show import GeneratorConfig

WAIT_S = 30.0  # generous: the machine is shared
RECOVERY_BOUND_S = 2.0  # the soak harness's bound for each generator fault


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    # Shared by name with test_generation.py and test_engine.py: whichever runs first writes it.
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-sd")


def wait_for(predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


class RecordingSlot(LatestSlot[GeneratedFrame]):
    """The real frame slot, also keeping every frame ever put in it (with when), so a test sees
    frames the display would have picked up, not just the newest."""

    def __init__(self) -> None:
        super().__init__("frames")
        self.history: list[tuple[float, GeneratedFrame]] = []
        self._lock2 = threading.Lock()

    def put(self, value: GeneratedFrame) -> None:
        with self._lock2:
            self.history.append((time.monotonic(), value))
        super().put(value)

    def frames(self) -> list[tuple[float, GeneratedFrame]]:
        with self._lock2:
            return list(self.history)


class Rig:
    def __init__(self, cfg: GeneratorConfig, faults: FaultInjector | None = None) -> None:
        self.cfg = cfg
        self.prompt: LatestSlot[Prompt] = LatestSlot("prompt", Prompt("a quiet garden at dawn"))
        self.params: LatestSlot[GenerationParams] = LatestSlot("params", params_from_config(cfg))
        self.camera: LatestSlot[CameraFrame] = LatestSlot("camera")
        self.out = RecordingSlot()
        self.faults = faults or FaultInjector(enabled=True)
        self.events: list[dict] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def on_event(self, event: str, **fields) -> None:
        with self._lock:
            self.events.append({"event": event, "t": time.monotonic(), **fields})

    def on_error(self, name: str, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def worker(self, generator) -> GeneratorWorker:
        fallback = PreviewGenerator(self.cfg.width, self.cfg.height)
        return GeneratorWorker(generator, fallback, self.prompt, self.params, self.camera, self.out, self.cfg,
                               on_error=self.on_error, on_event=self.on_event, reason="test", faults=self.faults)

    def states(self, event: str = "generator") -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["event"] == event]

    def primary_frames_after(self, t: float, name: str) -> list[tuple[float, GeneratedFrame]]:
        return [(ft, f) for ft, f in self.out.frames() if ft > t and f.generator == name]


def txt2img_cfg(model: Path, engine: str = "pipeline") -> GeneratorConfig:
    # txt2img's noise drifts (the worker's MIN_NOISE_DRIFT): the primary paints all the time.
    return GeneratorConfig(kind="diffusers", model=str(model), engine=engine, mode="txt2img", width=64, height=64,
                           device="cpu", max_fps=60)


def assert_every_shown_frame_is_good(rig: Rig) -> None:
    bad = [(f.generator, frame_problem(f.image)) for _, f in rig.out.frames() if frame_problem(f.image)]
    assert not bad, f"frames unfit for the screen reached the frame slot: {bad[:3]}"


# --- the check itself ----------------------------------------------------------------------


def test_broken_frames_are_refused_and_dark_real_pictures_pass():
    black = np.zeros((64, 64, 3), np.uint8)
    grey = np.full((64, 64, 3), 37, np.uint8)
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255  # channels differ, pixels do not: still one flat colour
    assert frame_problem(black).startswith("constant frame: every pixel is (0, 0, 0)")
    assert "(37, 37, 37)" in frame_problem(grey)
    assert frame_problem(red).startswith("constant frame")
    nan = np.full((64, 64, 3), np.nan, np.float32)
    assert frame_problem(nan) == "non-finite values: 12288 of 12288 are NaN or infinite"
    some_inf = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    some_inf[5, 7, 1] = np.inf
    assert "1 of 12288" in frame_problem(some_inf)
    assert frame_problem(some_inf.clip(0, 1)) == "not a uint8 image: dtype float32"  # (still has the inf)
    assert frame_problem(np.zeros((64, 64), np.uint8)).startswith("not an RGB image")
    assert frame_problem(None) == "not an image: got NoneType"

    # A night scene: almost black, one faint detail where the subsample does not look.
    night = np.zeros((64, 64, 3), np.uint8)
    night[13, 21] = (1, 0, 0)
    assert frame_problem(night) == ""
    # Dark noise and a dark gradient: real pictures, however dim.
    assert frame_problem(np.random.default_rng(1).integers(0, 4, (64, 64, 3), dtype=np.uint8)) == ""
    ramp = np.zeros((64, 64, 3), np.uint8)
    ramp[..., 2] = np.arange(64, dtype=np.uint8)[:, None] // 16
    assert frame_problem(ramp) == ""
    # The preview asked for darkness paints paper grain: never flat.
    preview = PreviewGenerator(64, 64, clock=lambda: 0.0)
    dark = preview.generate(Prompt("black night, darkness, nothing"), GenerationParams(), None)
    assert frame_problem(dark) == ""


def test_out_of_memory_is_recognised_without_torch_in_the_worker():
    import torch

    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. (injected fault)"))
    assert is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
    assert is_out_of_memory(MemoryError())
    try:
        try:
            raise torch.OutOfMemoryError("out of memory")
        except torch.OutOfMemoryError as inner:
            raise ValueError("the pipeline failed") from inner
    except ValueError as outer:
        assert is_out_of_memory(outer)
    assert not is_out_of_memory(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not is_out_of_memory(ValueError("steps: expected 1 to 8, got 9"))


@pytest.mark.parametrize("cls,engine", [(DiffusersGenerator, "pipeline"), (StreamGenerator, "stream")])
def test_a_nan_in_the_engine_reaches_the_worker_as_a_refused_frame_and_leaves_no_trace(tiny_model, cls, engine):
    """What a NaN (an fp16 overflow) really becomes: both engines turn it into black, which the
    check refuses; and the next frame after the NaN is gone is a real picture again (the
    streaming engine's feedback buffer must not keep the NaN)."""
    import torch

    cfg = txt2img_cfg(tiny_model, engine)
    gen = cls(cfg)
    gen.load()
    unet = gen._img2img.unet if engine == "pipeline" else gen.engine.unet
    params = params_from_config(cfg)
    assert frame_problem(gen.generate(Prompt("a garden"), params, None)) == ""
    kept = unet.conv_out.weight.detach().clone()
    with torch.no_grad():
        unet.conv_out.weight.fill_(float("nan"))
    poisoned = gen.generate(Prompt("a garden"), params, None)
    assert poisoned.dtype == np.uint8 and frame_problem(poisoned) == "constant frame: every pixel is (0, 0, 0)"
    with torch.no_grad():
        unet.conv_out.weight.copy_(kept)
    assert frame_problem(gen.generate(Prompt("a garden"), params, None)) == ""


# --- through the worker: each generator fault ------------------------------------------------


def _run_until_painting(rig: Rig, worker: GeneratorWorker, name: str) -> None:
    worker.start()
    wait_for(lambda: len(rig.primary_frames_after(0.0, name)) >= 3, f"{name} painting")


def _recovery(rig: Rig, worker: GeneratorWorker, kind: str, name: str) -> float:
    """Arms `kind`, waits for the primary's recovery; returns seconds from arming to its first
    good frame in the slot. The slot's newest frame meanwhile is always a good one."""
    before = len(rig.states())
    rig.faults.take_reports()
    rig.faults.arm(kind)
    wait_for(lambda: any(e.get("state") == "recovered" for e in rig.states()[before:]), f"recovery from {kind}")
    armed, fired = next((r.armed_mono, r.fired_mono) for r in rig.faults.take_reports() if r.state == "fired")
    # A frame painted before the fault fired may land in the slot just after it was armed.
    first = rig.primary_frames_after(fired, name)[0][0]
    assert_every_shown_frame_is_good(rig)
    return first - armed


@pytest.mark.parametrize("kind", ["generator_raise", "generator_nan", "generator_oom"])
def test_each_generator_fault_is_never_shown_and_recovers_within_two_seconds(tiny_model, no_thread_leak, kind):
    rig = Rig(txt2img_cfg(tiny_model))
    gen = DiffusersGenerator(rig.cfg)
    worker = rig.worker(gen)  # the Worker's real backoff (0.5 s after an error)
    try:
        _run_until_painting(rig, worker, gen.name)
        seconds = _recovery(rig, worker, kind, gen.name)
        print(f"{kind}: primary painting again {seconds:.3f} s after the fault")  # noqa: T201 (measured)
        assert seconds < RECOVERY_BOUND_S
        recovered = [e for e in rig.states() if e.get("state") == "recovered"]
        assert recovered[-1]["after"] == {"generator_raise": "raise", "generator_nan": "bad_frame",
                                          "generator_oom": "oom"}[kind]
        states = [e.get("state") for e in rig.states()]
        assert "degraded" not in states  # one failure never pushes the primary out for retry_primary_s
        if kind == "generator_raise":
            assert rig.errors == ["RuntimeError: injected fault: generator_raise"]
        elif kind == "generator_nan":
            bad = [e for e in rig.states() if e.get("state") == "bad_frame"]
            assert len(bad) == 1 and bad[0]["reason"].startswith("non-finite values")
        else:
            assert "out of memory" in rig.errors[0] and states.count("rebuilding") == 1
            assert states[-3:] == ["rebuilding", "loaded", "recovered"]
            # The preview stood in while the model was loaded again; the screen never went without.
            assert any(f.generator == "preview" for _, f in rig.out.frames()[-20:]) or seconds < 0.2
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_real_constant_frames_rebuild_the_model_from_disk(tiny_model, no_thread_leak):
    """A model whose autoencoder paints one flat colour (its weights broken in memory): three
    refused frames in a row, then it is loaded again from disk and paints real pictures."""
    import torch

    rig = Rig(txt2img_cfg(tiny_model))
    gen = DiffusersGenerator(rig.cfg)
    worker = rig.worker(gen)
    try:
        _run_until_painting(rig, worker, gen.name)
        broken_at = time.monotonic()
        with torch.no_grad():
            out = gen._img2img.vae.decoder.conv_out
            out.weight.zero_()
            out.bias.fill_(-0.5)  # decoded to (-0.5 / 2 + 0.5) * 255: one grey everywhere
        wait_for(lambda: any(e.get("state") == "recovered" for e in rig.states()), "recovery from the rebuild")
        states = [e.get("state") for e in rig.states()]
        bad = [e for e in rig.states() if e.get("state") == "bad_frame"]
        assert len(bad) >= worker.degrade_after and bad[-1]["reason"].startswith("constant frame")
        assert states[-3:] == ["rebuilding", "loaded", "recovered"]
        assert_every_shown_frame_is_good(rig)
        fresh = rig.primary_frames_after(broken_at, gen.name)
        assert fresh and frame_problem(fresh[-1][1].image) == ""
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_a_dark_real_picture_is_shown(tiny_model, no_thread_leak):
    """img2img at strength 0 hands back the camera's own picture (schedulers.MIN_STRENGTH): a
    nearly black room is a picture the display must show, not a fault."""
    cfg = GeneratorConfig(kind="diffusers", model=str(tiny_model), engine="pipeline", mode="img2img", width=64,
                          height=64, device="cpu", strength=0.0, max_fps=60)
    rig = Rig(cfg)
    gen = DiffusersGenerator(cfg)
    worker = rig.worker(gen)
    dark = np.zeros((64, 64, 3), np.uint8)
    dark[40:44, 10:30] = (3, 2, 2)  # a dim lamp in a dark room
    rig.camera.put(CameraFrame(image=dark, index=1, source="test"))
    try:
        worker.start()
        shown = wait_for(lambda: rig.primary_frames_after(0.0, gen.name), "the dark frame")
        assert np.array_equal(shown[0][1].image, dark)
        assert not [e for e in rig.states() if e.get("state") == "bad_frame"]
    finally:
        worker.stop()
        worker.join(WAIT_S)


# --- memory over rebuilds --------------------------------------------------------------------


def test_rebuilds_free_the_old_model_and_memory_does_not_grow(tiny_model, no_thread_leak):
    rig = Rig(txt2img_cfg(tiny_model))
    gen = DiffusersGenerator(rig.cfg)
    worker = rig.worker(gen)
    worker.rebuild_window_s = 0.0  # every injected OOM rebuilds at once (the backoff is not under test)
    proc = psutil.Process()
    rss: list[float] = []
    try:
        _run_until_painting(rig, worker, gen.name)
        for i in range(10):
            old = weakref.ref(gen._img2img)
            before = len([e for e in rig.states() if e.get("state") == "recovered"])
            rig.faults.arm("generator_oom")
            wait_for(lambda n=before: len([e for e in rig.states() if e.get("state") == "recovered"]) > n,
                     f"recovery {i + 1}")
            # Freed by reference counting, without a full collection (which would stall the display).
            assert old() is None, f"rebuild {i + 1}: the old pipeline is still referenced"
            rss.append(proc.memory_info().rss / 1e6)
        assert_every_shown_frame_is_good(rig)
    finally:
        worker.stop()
        worker.join(WAIT_S)
    growth = rss[-1] - rss[1]
    print(f"RSS over 10 rebuilds (MB): {[round(r) for r in rss]}; growth after the second: {growth:+.1f}")  # noqa: T201
    # The tiny model's weights are ~10 MB: one leaked model per rebuild would add ~80 MB here.
    assert growth < 25, rss


def test_the_streaming_generator_lets_go_of_its_engine(tiny_model):
    gen = StreamGenerator(txt2img_cfg(tiny_model, "stream"))
    gen.load()
    engine, unet = weakref.ref(gen.engine), weakref.ref(gen.engine.unet)
    gc.collect()
    gc.disable()  # the engine's own cycles must not wait for the collector
    try:
        gen.release()
        assert not gen.loaded and gen.device == ""
        assert engine() is None and unet() is None
    finally:
        gc.enable()
    gen.load()  # and it builds again
    assert frame_problem(gen.generate(Prompt("a garden"), params_from_config(gen.cfg), None)) == ""


def _out_of_memory_until_recovery(rig: Rig, n: int) -> None:
    """An injected OOM, then wait for the `n`th recovery of the rig's life."""
    rig.faults.arm("generator_oom")
    wait_for(lambda: len([e for e in rig.states() if e.get("state") == "recovered"]) >= n, f"recovery {n}")


def test_a_rebuild_soon_after_another_waits_so_a_model_that_cannot_fit_does_not_loop(tiny_model, no_thread_leak):
    rig = Rig(txt2img_cfg(tiny_model))
    gen = DiffusersGenerator(rig.cfg)
    worker = rig.worker(gen)
    worker.reload_backoff_s = (0.3, 0.6)  # the real ones are 30 s and more
    try:
        _run_until_painting(rig, worker, gen.name)
        for n in (1, 2):
            _out_of_memory_until_recovery(rig, n)
        waits = [e["retry_s"] for e in rig.states() if e.get("state") == "rebuilding"]
        assert waits == [0.0, 0.3]  # the first at once, the second (within rebuild_window_s) after a wait
        assert_every_shown_frame_is_good(rig)
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_a_model_that_proved_itself_since_the_last_rebuild_is_rebuilt_at_once(tiny_model, no_thread_leak):
    """Out of memory again after the reloaded model painted well for a while is a passing event
    (the soak repeats the fault every minute or so): no backoff, the model paints again at once."""
    rig = Rig(txt2img_cfg(tiny_model))
    gen = DiffusersGenerator(rig.cfg)
    worker = rig.worker(gen)
    worker.reload_backoff_s = (30.0, 60.0)  # a backoff would show as a recovery this test cannot wait for
    worker.proven_frames, worker.proven_s = 5, 0.5
    try:
        _run_until_painting(rig, worker, gen.name)
        for n in (1, 2):
            _out_of_memory_until_recovery(rig, n)
            wait_for(lambda: worker._good_since_rebuild >= 5 and time.monotonic() - worker._first_good_t >= 0.5,
                     "the reloaded model proving itself")
        waits = [e["retry_s"] for e in rig.states() if e.get("state") == "rebuilding"]
        assert waits == [0.0, 0.0]
        assert_every_shown_frame_is_good(rig)
    finally:
        worker.stop()
        worker.join(WAIT_S)
