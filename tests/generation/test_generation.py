"""Choosing a generator and running it in the GeneratorWorker: the tiny diffusers model on the
CPU behind real LatestSlots, the preview standing in while it loads or when it fails."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from installation.core.channels import LatestSlot
from installation.core.downloads import FETCH_COMMAND
from installation.core.messages import CameraFrame, GeneratedFrame, GenerationParams, Prompt
from installation.generation.choice import choose_generator, params_from_config
from installation.generation.engine.tiny_model import ensure_tiny_model
from installation.generation.preview import PreviewGenerator
from installation.generation.worker import GeneratorWorker
from installation.show import GeneratorConfig

WAIT_S = 30.0  # generous: the machine is shared; tests wait for behaviour, never time it


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    # Shared by name with test_engine.py: whichever runs first writes it.
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-sd")


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("JADONG_ALLOW_DOWNLOAD", raising=False)
    return cache


def wait_for(predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Rig:
    """The slots and handlers a GeneratorWorker talks to, as the app wires them."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        self.cfg = cfg
        self.prompt: LatestSlot[Prompt] = LatestSlot("prompt", Prompt("a quiet garden at dawn"))
        self.params: LatestSlot[GenerationParams] = LatestSlot("params", params_from_config(cfg))
        self.camera: LatestSlot[CameraFrame] = LatestSlot("camera")
        self.out: LatestSlot[GeneratedFrame] = LatestSlot("frames")
        self.events: list[dict] = []
        self.errors: list[tuple[str, BaseException]] = []
        self._lock = threading.Lock()

    def on_event(self, event: str, **fields) -> None:
        with self._lock:
            self.events.append({"event": event, **fields})

    def on_error(self, name: str, exc: BaseException) -> None:
        with self._lock:
            self.errors.append((name, exc))

    def worker(self, generator, fallback=None, reason="test") -> GeneratorWorker:
        fallback = fallback or PreviewGenerator(self.cfg.width, self.cfg.height)
        w = GeneratorWorker(generator, fallback, self.prompt, self.params, self.camera, self.out, self.cfg,
                            on_error=self.on_error, on_event=self.on_event, reason=reason)
        w.backoff_s = (0.01,)  # retry at once: these tests are about behaviour, not pacing
        return w

    def states(self) -> list[str]:
        with self._lock:
            return [e.get("state", "") for e in self.events]

    def next_frame(self, after_version: int, where=lambda f: True) -> tuple[GeneratedFrame, int]:
        deadline = time.monotonic() + WAIT_S
        version = after_version
        while time.monotonic() < deadline:
            frame, version = self.out.wait_newer(version, timeout=0.5)
            if frame is not None and version > after_version and where(frame):
                return frame, version
        raise AssertionError("no matching frame came")


def camera_frame(index: int = 0) -> CameraFrame:
    img = np.zeros((120, 160, 3), np.uint8)
    img[..., 1] = np.linspace(0, 255, 160, dtype=np.uint8)[None, :]
    img[30 + index % 20 : 90, 40:120, 0] = 220
    return CameraFrame(image=img, index=index, source="test")


class GatedLoad:
    """Wraps a real generator so its load() waits for the test's word: makes "frames come
    from the fallback while the model loads" observable without racing the loader."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.go = threading.Event()
        self.name, self.model, self.label, self.reason = inner.name, inner.model, inner.label, inner.reason
        self.progress_callback = None

    @property
    def device(self) -> str:
        return self.inner.device

    @property
    def animating(self) -> bool:
        return self.inner.animating

    def load(self) -> None:
        assert self.go.wait(WAIT_S), "the test never released the load"
        self.inner.load()

    def generate(self, prompt, params, image):
        return self.inner.generate(prompt, params, image)


class Flaky:
    """A generator whose generate() raises on chosen calls, like a CUDA error mid-show."""

    name, model, label, reason, device, animating = "flaky", "flaky-model", "", "", "cpu", False

    def __init__(self, fail_calls: set[int] | None = None, always: bool = False) -> None:
        self.progress_callback = None
        self.inner = PreviewGenerator(64, 64, clock=lambda: 0.0)
        self.fail_calls = fail_calls or set()
        self.always = always
        self.calls = 0

    def load(self) -> None:
        pass

    def generate(self, prompt, params, image):
        self.calls += 1
        if self.always or self.calls in self.fail_calls:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.inner.generate(prompt, params, image)


# --- choose_generator ----------------------------------------------------------------------


def test_kind_preview_runs_the_preview():
    gen, reason = choose_generator(GeneratorConfig(kind="preview", width=128, height=96))
    assert isinstance(gen, PreviewGenerator) and gen.label == ""
    assert reason == "kind=preview in show"
    assert gen.generate(Prompt("x"), GenerationParams(), None).shape == (96, 128, 3)


@pytest.mark.parametrize("kind", ["auto", "diffusers"])
def test_a_missing_hf_model_falls_back_to_the_preview_with_the_fix(kind, empty_hf_cache):
    gen, reason = choose_generator(GeneratorConfig(kind=kind, model="stabilityai/sd-turbo"))
    assert isinstance(gen, PreviewGenerator)
    assert reason.startswith("model stabilityai/sd-turbo not found: ")
    assert "not in the Hugging Face cache" in reason and str(empty_hf_cache) in reason
    assert gen.label == f"Preview: stabilityai/sd-turbo is not downloaded — run: {FETCH_COMMAND}"


def test_a_missing_model_folder_falls_back_to_the_preview(tmp_path):
    gen, reason = choose_generator(GeneratorConfig(kind="diffusers", model=str(tmp_path / "gone")))
    assert isinstance(gen, PreviewGenerator)
    assert "does not exist" in reason and "check generator.model" in gen.label


def test_a_local_model_is_chosen_and_the_override_wins(tiny_model, empty_hf_cache):
    cfg = GeneratorConfig(kind="auto", model="stabilityai/sd-turbo")
    gen, reason = choose_generator(cfg, model_override=str(tiny_model))
    assert type(gen).__name__ == "StreamGenerator"
    assert gen.model == str(tiny_model) and reason.startswith(f"model {tiny_model} found locally")
    assert "streaming engine" in reason
    pipe, reason = choose_generator(cfg.model_copy(update={"engine": "pipeline"}), model_override=str(tiny_model))
    assert type(pipe).__name__ == "DiffusersGenerator" and "per frame" in reason


def test_allowed_download_chooses_diffusers_for_a_missing_id(empty_hf_cache, monkeypatch):
    monkeypatch.setenv("JADONG_ALLOW_DOWNLOAD", "1")
    gen, reason = choose_generator(GeneratorConfig(kind="auto", model="stabilityai/sd-turbo"))
    assert type(gen).__name__ == "StreamGenerator"  # not loaded here: that would download
    assert "will be downloaded" in reason


# --- GeneratorWorker ------------------------------------------------------------------------


@pytest.mark.parametrize("engine,name", [("stream", "stream"), ("pipeline", "diffusers")])
def test_worker_paints_with_the_preview_while_the_model_loads_then_switches(tiny_model, no_thread_leak, engine, name):
    cfg = GeneratorConfig(kind="diffusers", model=str(tiny_model), width=64, height=64, max_fps=50, engine=engine)
    rig = Rig(cfg)
    chosen, reason = choose_generator(cfg)
    gated = GatedLoad(chosen)
    worker = rig.worker(gated, reason=reason)
    worker.start()
    try:
        rig.camera.put(camera_frame(0))
        first, v = rig.next_frame(0)
        assert first.generator == "preview" and first.image.shape == (64, 64, 3)
        assert rig.events[0]["state"] == "loading" and rig.events[0]["reason"] == reason
        assert worker.active.name == "preview"

        gated.go.set()
        cam = camera_frame(1)
        rig.camera.put(cam)
        frame, v = rig.next_frame(v, where=lambda f: f.generator == name and f.source_t == cam.t)
        assert frame.model == str(tiny_model)
        assert frame.image.shape == (64, 64, 3) and frame.image.dtype == np.uint8
        assert frame.prompt.text == "a quiet garden at dawn"
        loaded = [e for e in rig.events if e.get("state") == "loaded"]
        assert loaded and loaded[0]["name"] == name and loaded[0]["device"] == "cpu"

        # A new prompt reaches the next frame.
        rig.prompt.put(Prompt("red fire"))
        rig.camera.put(camera_frame(2))
        frame, v = rig.next_frame(v, where=lambda f: f.prompt.text == "red fire")
        assert frame.generator == name
        assert not rig.errors
    finally:
        worker.stop()
        worker.join(WAIT_S)
    assert not worker.is_alive()


@pytest.mark.parametrize("engine,name", [("stream", "stream"), ("pipeline", "diffusers")])
def test_img2img_without_a_camera_frame_paints_txt2img(tiny_model, no_thread_leak, engine, name):
    cfg = GeneratorConfig(kind="diffusers", model=str(tiny_model), width=64, height=64, max_fps=50, engine=engine)
    rig = Rig(cfg)
    chosen, reason = choose_generator(cfg)
    worker = rig.worker(chosen, reason=reason)
    worker.start()
    try:
        frame, v = rig.next_frame(0, where=lambda f: f.generator == name)
        assert frame.source_t is None and frame.image.shape == (64, 64, 3)
        cam = camera_frame(3)
        rig.camera.put(cam)
        frame, v = rig.next_frame(v, where=lambda f: f.source_t == cam.t)
        assert frame.generator == name
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_a_model_that_fails_to_load_leaves_the_preview_painting_with_the_reason(tiny_model, tmp_path, no_thread_leak):
    import shutil

    from installation.generation.engine.diffusers_generator import DiffusersGenerator

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    cfg = GeneratorConfig(kind="diffusers", model=str(broken), width=64, height=64, max_fps=50)
    rig = Rig(cfg)
    fallback = PreviewGenerator(64, 64)
    worker = rig.worker(DiffusersGenerator(cfg), fallback=fallback)
    worker.start()
    try:
        wait_for(lambda: "load_failed" in rig.states(), "the load_failed event")
        failed = [e for e in rig.events if e.get("state") == "load_failed"][0]
        assert failed["name"] == "preview" and "has no weights" in failed["reason"]
        assert fallback.label.startswith(f"Preview: {broken} failed to load")
        assert rig.errors and isinstance(rig.errors[0][1], FileNotFoundError)
        v = rig.out.version
        frame, _ = rig.next_frame(v)
        assert frame.generator == "preview"
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_a_generate_that_raises_is_reported_and_the_worker_goes_on(no_thread_leak):
    cfg = GeneratorConfig(kind="preview", width=64, height=64, max_fps=200)
    rig = Rig(cfg)
    flaky = Flaky(fail_calls={2, 3})
    worker = rig.worker(flaky)
    worker.start()
    try:
        v = 0
        for i in range(5):  # new camera frames keep it painting
            rig.camera.put(camera_frame(i))
            _, v = rig.next_frame(v, where=lambda f: f.generator == "flaky")
        assert flaky.calls == 7  # five frames and the two failed tries
        # The same error twice is counted twice but reported once (an error repeating every
        # few seconds must not fill the event log).
        assert len(rig.errors) == 1
        assert all("illegal memory access" in str(exc) for _, exc in rig.errors)
        assert worker.status().errors == 2 and worker.is_alive()
        assert "degraded" not in rig.states()  # two in a row is below degrade_after
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_a_primary_that_keeps_failing_gives_way_to_the_preview(no_thread_leak):
    cfg = GeneratorConfig(kind="diffusers", width=64, height=64, max_fps=200)
    rig = Rig(cfg)
    fallback = PreviewGenerator(64, 64)
    worker = rig.worker(Flaky(always=True), fallback=fallback)
    worker.retry_primary_s = 3600.0
    worker.start()
    try:
        wait_for(lambda: "degraded" in rig.states(), "the degraded event")
        assert len(rig.errors) == 1 and worker.status().errors == worker.degrade_after
        assert "keeps failing" in fallback.label
        rig.camera.put(camera_frame(5))
        frame, _ = rig.next_frame(rig.out.version, where=lambda f: f.generator == "preview")
        assert frame.image.shape == (64, 64, 3)
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_unchanged_inputs_are_not_painted_again(no_thread_leak):
    """A deterministic generator with nothing new to paint waits for news."""
    cfg = GeneratorConfig(kind="preview", width=64, height=64, max_fps=200)
    rig = Rig(cfg)
    counting = Flaky()
    worker = rig.worker(counting)
    rig.camera.put(camera_frame(0))
    worker.start()
    try:
        _, v = rig.next_frame(0, where=lambda f: f.generator == "flaky")
        time.sleep(0.2)  # many loop turns at 200 fps, none of which may paint
        assert counting.calls == 1
        rig.prompt.put(Prompt("blue"))
        frame, _ = rig.next_frame(v)
        assert frame.prompt.text == "blue" and counting.calls == 2
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_worker_reports_what_the_app_shows(tiny_model, no_thread_leak, empty_hf_cache):
    """The app wires the worker without a reason and reads active_name/active_model/label."""
    cfg = GeneratorConfig(kind="auto", model="stabilityai/sd-turbo", width=64, height=64, max_fps=50)
    rig = Rig(cfg)
    chosen, reason = choose_generator(cfg)
    worker = GeneratorWorker(chosen, chosen, rig.prompt, rig.params, rig.camera, rig.out, cfg,
                             on_error=rig.on_error, on_event=rig.on_event)
    worker.start()
    try:
        frame, _ = rig.next_frame(0)
        assert frame.generator == "preview"
        assert (worker.active_name, worker.active_model) == ("preview", "")
        assert worker.label == chosen.label and "not downloaded" in worker.label
        assert rig.events[0]["state"] == "ready" and rig.events[0]["reason"] == reason
    finally:
        worker.stop()
        worker.join(WAIT_S)
