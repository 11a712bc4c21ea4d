"""Image safety: diffusers' real StableDiffusionSafetyChecker, as a tiny random-weight checker
(a tiny CLIPConfig) saved with save_pretrained beside a CLIPImageProcessor config and loaded
through the real loader. The test decides the verdict through the checker's own weights: one
concept embedding is set to the embedding of the picture to flag, with a threshold between that
picture's similarity (1) and the safe picture's."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from installation.core.channels import LatestSlot
from installation.core.messages import CameraFrame, GeneratedFrame, GenerationParams, Prompt
from installation.generation.choice import params_from_config
from installation.generation.engine.diffusers_generator import DiffusersGenerator
from installation.generation.engine.safety_checker import (
    DEFAULT_SAFETY_CHECKER,
    load_safety_checker,
    locate_safety_checker,
)
from installation.generation.engine.tiny_model import ensure_tiny_model
from installation.generation.preview import PreviewGenerator
from installation.generation.safety import SafetyGate
from installation.generation.worker import GeneratorWorker
from installation.show import GeneratorConfig, SafetyConfig, Show

WAIT_S = 30.0
SIZE = 64


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    # Shared by name with test_generation.py and test_engine.py: whichever runs first writes it.
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-sd")


def picture(kind: str) -> np.ndarray:
    """The test's two pictures: "flag" (a red ramp with a bright block) and "safe" (blue noise)."""
    if kind == "flag":
        img = np.zeros((SIZE, SIZE, 3), np.uint8)
        img[..., 0] = np.linspace(0, 255, SIZE, dtype=np.uint8)[None, :]
        img[20:40, 20:40] = (250, 240, 10)
        return img
    rng = np.random.default_rng(7)
    img = rng.integers(0, 90, (SIZE, SIZE, 3), dtype=np.uint8)
    img[..., 2] = 200
    return img


def _embedding(checker, image: np.ndarray):
    import torch

    model = checker.model
    with torch.inference_mode():
        pixels = checker.processor(images=image, return_tensors="pt")["pixel_values"]
        emb = model.visual_projection(model.vision_model(pixels)[1])[0]
    return torch.nn.functional.normalize(emb, dim=0)


@pytest.fixture(scope="module")
def checker_folder(tmp_path_factory) -> Path:
    """A tiny checker whose concept 0 is the "flag" picture: flagged above the midpoint between
    its similarity to itself (1) and the safe picture's; no other concept and no special-care
    concept can fire (thresholds above any cosine similarity)."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    folder = tmp_path_factory.mktemp("tiny-safety-checker")
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "vocab_size": 99, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": 32, "patch_size": 4},
        projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = StableDiffusionSafetyChecker(config).eval()
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    model.save_pretrained(folder)
    # Tune its weights with what the real loader sees.
    checker = load_safety_checker(str(folder), "cpu")
    flag, safe = _embedding(checker, picture("flag")), _embedding(checker, picture("safe"))
    similarity = float(flag @ safe)
    assert similarity < 0.99, "the two pictures must look different to the tiny encoder"
    with torch.no_grad():
        m = checker.model
        m.concept_embeds[0] = flag
        m.concept_embeds_weights.fill_(2.0)
        m.concept_embeds_weights[0] = (1.0 + similarity) / 2
        m.special_care_embeds_weights.fill_(2.0)
    m.save_pretrained(folder)
    return folder


class Rig:
    def __init__(self, cfg: GeneratorConfig) -> None:
        self.cfg = cfg
        self.prompt: LatestSlot[Prompt] = LatestSlot("prompt", Prompt("a quiet garden"))
        self.params: LatestSlot[GenerationParams] = LatestSlot("params", params_from_config(cfg))
        self.camera: LatestSlot[CameraFrame] = LatestSlot("camera")
        self.out: LatestSlot[GeneratedFrame] = LatestSlot("frames")
        self.shown: list[GeneratedFrame] = []
        self.events: list[dict] = []
        self._lock = threading.Lock()
        put = self.out.put

        def recording_put(frame: GeneratedFrame) -> None:  # every frame the display could show
            with self._lock:
                self.shown.append(frame)
            put(frame)

        self.out.put = recording_put  # type: ignore[method-assign]

    def on_event(self, event: str, **fields) -> None:
        with self._lock:
            self.events.append({"event": event, **fields})

    def of(self, event: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["event"] == event]

    def worker(self, safety: SafetyConfig) -> GeneratorWorker:
        return GeneratorWorker(DiffusersGenerator(self.cfg), PreviewGenerator(SIZE, SIZE), self.prompt, self.params,
                               self.camera, self.out, self.cfg, on_event=self.on_event, reason="test", safety=safety)


def camera_cfg(model: Path) -> GeneratorConfig:
    # img2img at strength 0 hands back the camera's picture (schedulers.MIN_STRENGTH): the real
    # generator path, with the picture the test chose.
    return GeneratorConfig(kind="diffusers", model=str(model), engine="pipeline", mode="img2img", width=SIZE,
                           height=SIZE, device="cpu", strength=0.0, max_fps=100)


def wait_for(predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


# --- the checker ------------------------------------------------------------------------------


def test_the_shows_default_is_the_checker_the_engine_knows():
    assert SafetyConfig().model == DEFAULT_SAFETY_CHECKER and not Show().safety.enabled


def test_where_the_checker_is_or_why_not(tmp_path, checker_folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    files, reason = locate_safety_checker(str(checker_folder))
    assert files is not None and reason == "" and files.where.startswith("folder")
    files, reason = locate_safety_checker(DEFAULT_SAFETY_CHECKER)
    assert files is None and "is not downloaded" in reason and "fetch-models" in reason
    files, reason = locate_safety_checker(str(tmp_path / "nowhere"))
    assert files is None and "does not exist" in reason
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((checker_folder / "config.json").read_text())
    assert "lacks its weights" in locate_safety_checker(str(partial))[1]
    (partial / "config.json").write_text('{"model_type": "bert"}')
    assert "holds a 'bert' model" in locate_safety_checker(str(partial))[1]
    with pytest.raises(FileNotFoundError, match="is not downloaded"):
        load_safety_checker(DEFAULT_SAFETY_CHECKER, "cpu")


def test_the_verdict_is_the_librarys_and_the_adjustment_moves_it(checker_folder):
    """At adjustment 0 the verdict is diffusers' own forward's; the adjustment is added to every
    score, as the checker's source describes its knob."""
    import torch

    checker = load_safety_checker(str(checker_folder), "cpu")
    rng = np.random.default_rng(3)
    images = [picture("flag"), picture("safe"), *(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
                                                  for _ in range(3))]
    ours = [checker.check(img).flagged for img in images]
    pixels = checker.processor(images=images, return_tensors="pt")["pixel_values"]
    _, theirs = checker.model(clip_input=pixels, images=[img.copy() for img in images])
    assert ours == [bool(x) for x in theirs]
    assert ours[:2] == [True, False]

    flag, safe = checker.check(picture("flag")), checker.check(picture("safe"))
    assert flag.score > 0 >= safe.score
    stricter = load_safety_checker(str(checker_folder), "cpu", adjustment=-safe.score + 0.01)
    assert stricter.check(picture("safe")).flagged  # a stricter checker flags the safe picture too
    laxer = load_safety_checker(str(checker_folder), "cpu", adjustment=-flag.score - 0.01)
    assert not laxer.check(picture("flag")).flagged

    # A special-care match adds 0.01 to every concept score, in the library and here alike.
    with torch.no_grad():
        checker.model.special_care_embeds[0] = _embedding(checker, picture("safe"))
        checker.model.special_care_embeds_weights[0] = 0.5
        checker.model.concept_embeds_weights[0] = float(_embedding(checker, picture("flag"))
                                                        @ _embedding(checker, picture("safe"))) + 0.005
    verdict = checker.check(picture("safe"))
    assert verdict.special_care and verdict.flagged
    _, theirs = checker.model(clip_input=checker.processor(images=picture("safe"), return_tensors="pt")["pixel_values"],
                              images=[picture("safe")])
    assert theirs == [True]


def test_the_streak_rule():
    events: list[dict] = []
    gate = SafetyGate(3, lambda event, **f: events.append({"event": event, **f}), model="checker")
    verdicts = [False, True, True, True, True, False, True, False]
    shown = [gate.admit(flagged, 0.2 if flagged else -0.1) for flagged in verdicts]
    # A lone flag and the first two of a run are shown; the third and later are held; a safe
    # frame releases and starts the count afresh.
    assert shown == [True, True, True, False, False, True, True, True]
    assert [e["state"] for e in events] == ["held", "released"]
    assert events[0]["streak"] == 3 and events[0]["score"] == 0.2
    assert events[1]["held_frames"] == 2 and events[1]["held_total"] == 2
    assert gate.counts.checked == 8 and gate.counts.flagged == 5 and gate.counts.held == 2
    strict = SafetyGate(1)
    assert [strict.admit(f) for f in (True, False, True)] == [False, True, False]
    with pytest.raises(ValueError, match="safety.streak"):
        SafetyGate(0)


# --- in the generator worker --------------------------------------------------------------------


def test_flagged_frames_are_held_by_the_streak_and_never_reach_the_screen(tiny_model, checker_folder,
                                                                         no_thread_leak):
    rig = Rig(camera_cfg(tiny_model))
    worker = rig.worker(SafetyConfig(enabled=True, model=str(checker_folder), streak=3))
    sequence = ["safe", "flag", "flag", "flag", "flag", "safe", "flag"]
    worker.start()
    try:
        for i, kind in enumerate(sequence):
            rig.camera.put(CameraFrame(image=picture(kind), index=i, source="test"))
            wait_for(lambda n=i + 1: worker.gate is not None and worker.gate.counts.checked >= n, f"frame {i} judged")
        with rig._lock:
            shown = [f for f in rig.shown if f.generator == "diffusers"]
        kinds = ["flag" if np.array_equal(f.image, picture("flag")) else "safe" for f in shown]
        # frames 4 and 5 (the third and fourth flagged in a row) were held; nothing else
        assert kinds == ["safe", "flag", "flag", "safe", "flag"]
        assert rig.out.get().image is shown[-1].image
        ready = rig.of("safety")[0]
        assert ready["state"] == "ready" and ready["streak"] == 3
        assert [e["state"] for e in rig.of("safety")[1:]] == ["held", "released"]
        released = rig.of("safety")[-1]
        assert released["held_frames"] == 2 and released["flagged"] == 4 and released["checked"] == 6
        assert all("image" not in e for e in rig.of("safety"))
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_without_its_checker_the_model_stays_off_the_screen(tiny_model, tmp_path, no_thread_leak):
    rig = Rig(camera_cfg(tiny_model))
    worker = rig.worker(SafetyConfig(enabled=True, model=str(tmp_path / "no-checker")))
    rig.camera.put(CameraFrame(image=picture("safe"), index=0, source="test"))
    worker.start()
    try:
        error = wait_for(lambda: rig.of("error"), "the error event")[0]
        assert error["stage"] == "safety" and "does not exist" in error["reason"]
        assert "preview paints instead" in error["reason"]
        for i in range(1, 4):  # new camera frames: painted, by the preview
            rig.camera.put(CameraFrame(image=picture("flag"), index=i, source="test"))
            wait_for(lambda n=i: len(rig.shown) > n, f"frame {i}")
        assert {f.generator for f in rig.shown} == {"preview"}
        assert worker.fallback.label.startswith("Preview: safety checker")
        # The loader waits to try the checker again before the model: not even loaded.
        assert not worker.primary.loaded and not [e for e in rig.of("generator") if e.get("state") == "loaded"]
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_a_show_may_choose_to_run_unchecked(tiny_model, tmp_path, no_thread_leak):
    rig = Rig(camera_cfg(tiny_model))
    worker = rig.worker(SafetyConfig(enabled=True, model=str(tmp_path / "no-checker"), if_missing="unchecked"))
    rig.camera.put(CameraFrame(image=picture("flag"), index=0, source="test"))
    worker.start()
    try:
        wait_for(lambda: [f for f in rig.shown if f.generator == "diffusers"], "the model's frame")
        assert rig.of("error")[0]["stage"] == "safety" and "UNCHECKED" in rig.of("error")[0]["reason"]
        assert rig.of("safety")[0]["state"] == "unchecked"
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_check_reports_the_checker(checker_folder, tmp_path, monkeypatch):
    from installation.tools import check_safety

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    off = check_safety(Show())
    assert not off[0].needed and "safety.enabled = false" in off[0].detail
    here = check_safety(Show(safety=SafetyConfig(enabled=True, model=str(checker_folder))))
    assert here[0].ok and here[0].needed and str(checker_folder) in here[0].detail
    missing = check_safety(Show(safety=SafetyConfig(enabled=True)))
    assert missing[0].problem and "not downloaded" in missing[0].detail
    assert "preview would paint" in missing[0].detail and "fetch-models" in missing[0].remedy
