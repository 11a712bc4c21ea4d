"""The mask mode (generation/mask.py and the generator worker): the generator paints only inside
(or outside) the visitor's silhouette, and every pixel outside the painted part is the camera's
own. Real pictures: the empty street of OpenCV's vtest footage with its walker pasted in (the
true silhouette is known), painted by the preview generator."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from installation.core.channels import LatestSlot
from installation.core.messages import CameraFrame, GeneratedFrame, GenerationParams, Prompt, Scene
from installation.generation.imaging import fit_image
from installation.generation.mask import (
    CameraHistory,
    Masker,
    MaskImageError,
    MaskSettings,
    composite,
    feather_alpha,
    fit_mask,
    read_mask_image,
)
from installation.generation.preview import PreviewGenerator
from installation.generation.worker import GeneratorWorker
from installation.show import GeneratorConfig, ShowError, parse_show
from vision.vision_footage import empty_street, paste_walker

SIZE = 256  # the generated frame (square: the 16:9 street loses its sides, as from a camera)


def visitor(height: int = 300, cx: int = 330) -> tuple[np.ndarray, np.ndarray]:
    """An RGB camera frame (640×360) with a walker standing in it, and its true silhouette
    (uint8, 255 = person), as the vision stage publishes it."""
    bgr, _, mask = paste_walker(empty_street(), height=height, cx=cx, feet=350)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.where(mask, 255, 0).astype(np.uint8)


def painted(camera: np.ndarray, seed: int = 1) -> np.ndarray:
    """What a generator makes of the camera frame: the preview's ink painting."""
    return PreviewGenerator(SIZE, SIZE).generate(Prompt("a lantern in the rain"),
                                                 GenerationParams(strength=1.0, seed=seed), camera)


# --- the pieces -----------------------------------------------------------------------------

def test_the_mask_goes_through_the_generators_crop():
    # A mask that marks the camera's left quarter: the generator's square crop of a 640×360
    # frame starts at x=140, so a quarter (160 px) leaves 20 px of it, i.e. 20/360 of the frame.
    mask = np.zeros((360, 640), np.uint8)
    mask[:, :160] = 255
    inside = fit_mask(mask, 360, 360)
    assert inside[:, :19].all() and not inside[:, 21:].any()


def test_feathered_alpha_is_zero_outside_and_ramps_inside():
    inside = np.zeros((100, 100), bool)
    inside[20:80, 20:80] = True
    alpha = feather_alpha(inside, 10)
    assert (alpha[~inside] == 0).all()  # the soft edge never reaches outside the painted part
    assert alpha[50, 50] == 1.0  # the middle is fully painted
    ramp = alpha[50, 20:31]
    assert (np.diff(ramp) > 0).all() and 0 < ramp[0] < 0.05 and ramp[-1] == 1.0
    assert np.array_equal(feather_alpha(inside, 0), inside.astype(np.float32))  # 0: a hard edge
    assert not feather_alpha(np.zeros((8, 8), bool), 5).any()
    assert feather_alpha(np.ones((8, 8), bool), 5).all()


def test_composite_keeps_the_camera_exactly_outside_and_the_painting_inside():
    camera, silhouette = visitor()
    background = fit_image(camera, SIZE, SIZE)
    frame = painted(camera)
    inside = fit_mask(silhouette, SIZE, SIZE)
    alpha = feather_alpha(inside, 6)
    out = composite(frame, background, alpha)
    assert np.array_equal(out[~inside], background[~inside])
    assert np.array_equal(out[alpha == 1.0], frame[alpha == 1.0])
    assert (alpha == 1.0).sum() > 1000  # the walker is big enough for the test to mean something


def test_a_mask_image_is_read_from_its_alpha_or_its_brightness(tmp_path):
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[10:30, 20:40, 3] = 255  # opaque square on a transparent sheet (colour black: alpha decides)
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    grey = np.zeros((40, 60), np.uint8)
    grey[10:30, 20:40] = 250
    cv2.imwrite(str(tmp_path / "grey.jpg"), grey)
    cv2.imwrite(str(tmp_path / "deep.png"), grey.astype(np.uint16) * 257)  # 16-bit
    for name in ("alpha.png", "grey.jpg", "deep.png"):
        mask = read_mask_image(str(tmp_path / name))
        assert mask.shape == (40, 60) and set(np.unique(mask)) == {0, 255}
        assert (mask[12:28, 22:38] == 255).all() and (mask[:8] == 0).all()


def test_a_missing_mask_image_names_the_field_and_the_file(tmp_path):
    with pytest.raises(MaskImageError, match=r"generator.mask_image .*nowhere.png: cannot read an image"):
        read_mask_image(str(tmp_path / "nowhere.png"))


def test_a_show_with_a_mask_but_nothing_to_make_it_from_is_refused():
    with pytest.raises(ShowError, match=r'generator.mask: "inside" needs a mask: the visitor\'s silhouette'):
        parse_show({"generator": {"mask": "inside"}})
    with pytest.raises(ShowError, match="generator.mask"):
        parse_show({"generator": {"mask": "outside"}, "vision": {"enabled": True, "silhouette": "off"}})
    # Either source is enough.
    parse_show({"generator": {"mask": "inside"}, "vision": {"enabled": True}})
    parse_show({"generator": {"mask": "inside", "mask_image": "assets/masks/oval.png"}})


def test_the_bundled_mask_asset_is_a_figure_shaped_mask():
    mask = read_mask_image("assets/masks/oval.png")
    share = (mask > 0).mean()
    assert mask.shape == (512, 512) and 0.3 < share < 0.5 and mask[300, 256] == 255 and mask[5, 5] == 0


# --- choosing the mask ----------------------------------------------------------------------

class Events:
    def __init__(self) -> None:
        self.seen: list[dict] = []
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields) -> None:
        with self._lock:
            self.seen.append({"event": event, **fields})

    def of(self, name: str) -> list[dict]:
        with self._lock:
            return [e for e in self.seen if e["event"] == name]


def test_the_silhouette_wins_then_the_image_then_an_empty_silhouette(tmp_path):
    camera, silhouette = visitor()
    background = fit_image(camera, SIZE, SIZE)
    frame = painted(camera)
    oval = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(oval, (SIZE // 2, SIZE // 2), 40, 255, -1)
    cv2.imwrite(str(tmp_path / "disc.png"), oval)
    events = Events()
    with_image = Masker(MaskSettings("inside", 4, str(tmp_path / "disc.png")), events)

    with_image.apply(frame, camera, Scene(presence=True, people=1, silhouette=silhouette))
    assert with_image.source == "silhouette"
    nobody = Scene(presence=False, people=0, silhouette=np.zeros_like(silhouette))
    out = with_image.apply(frame, camera, nobody)
    assert with_image.source == "image"  # nobody seen: the show's mask image stands in
    disc = fit_mask(oval, SIZE, SIZE)
    assert np.array_equal(out[~disc], background[~disc]) and not np.array_equal(out[disc], background[disc])

    without_image = Masker(MaskSettings("inside", 4), events)
    out = without_image.apply(frame, camera, nobody)
    assert without_image.source == "silhouette" and np.array_equal(out, background)  # nobody: only the room
    outside = Masker(MaskSettings("outside", 4), events)
    assert not np.array_equal(outside.apply(frame, camera, nobody), background)  # the whole room painted
    assert [e["source"] for e in events.of("mask")] == ["silhouette", "image", "silhouette", "silhouette"]


def test_outside_paints_the_room_and_keeps_the_visitor():
    camera, silhouette = visitor()
    background = fit_image(camera, SIZE, SIZE)
    frame = painted(camera)
    out = Masker(MaskSettings("outside", 8)).apply(frame, camera, Scene(presence=True, people=1,
                                                                          silhouette=silhouette))
    person = fit_mask(silhouette, SIZE, SIZE)
    assert np.array_equal(out[person], background[person])
    room = feather_alpha(~person, 8) == 1.0
    assert np.array_equal(out[room], frame[room])


def test_no_mask_at_all_paints_the_full_frame_and_says_so_once():
    camera, _ = visitor()
    frame = painted(camera)
    events = Events()
    masker = Masker(MaskSettings("inside", 8), events)
    for _ in range(3):
        assert masker.apply(frame, camera, None) is frame
        assert masker.apply(frame, camera, Scene(presence=False, people=0)) is frame  # silhouette off
    said = events.of("mask")
    assert len(said) == 1 and said[0]["source"] == "none" and "painting the full frame" in said[0]["reason"]


def test_an_unreadable_mask_image_is_said_and_the_silhouette_still_works(tmp_path):
    camera, silhouette = visitor()
    events = Events()
    masker = Masker(MaskSettings("inside", 8, str(tmp_path / "gone.png")), events)
    masker.apply(painted(camera), camera, Scene(presence=True, people=1, silhouette=silhouette))
    assert masker.source == "silhouette"
    assert any("cannot read an image" in e.get("reason", "") for e in events.of("mask"))


def test_the_frame_the_silhouette_was_read_from_is_the_one_painted():
    history = CameraHistory()
    frames = [CameraFrame(image=np.zeros((4, 4, 3), np.uint8), index=i, source="test", t=100.0 + i / 30)
              for i in range(10)]
    for f in frames:
        history.add(f)
    newest = frames[-1]
    scene = Scene(presence=True, people=1, silhouette=np.zeros((4, 4), np.uint8), source_t=frames[3].t)
    assert history.matching(scene, newest) is frames[3]
    assert history.matching(Scene(presence=True, people=1, silhouette=np.zeros((4, 4), np.uint8),
                                  source_t=50.0), newest) is newest  # long gone: the newest
    assert history.matching(None, newest) is newest


# --- in the generator worker ------------------------------------------------------------------

def wait_for(predicate, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _rig(cfg: GeneratorConfig, camera: LatestSlot[CameraFrame] | None, scene: LatestSlot[Scene] | None,
         events: Events) -> tuple[GeneratorWorker, LatestSlot[GeneratedFrame]]:
    out: LatestSlot[GeneratedFrame] = LatestSlot("frames")
    gen = PreviewGenerator(cfg.width, cfg.height)
    worker = GeneratorWorker(gen, gen, LatestSlot("prompt", Prompt("a lantern in the rain")),
                             LatestSlot("params", GenerationParams(strength=1.0)), camera, out, cfg,
                             on_event=events, scene=scene)
    return worker, out


def test_the_worker_paints_inside_the_newest_silhouette_over_the_camera(no_thread_leak):
    cfg = GeneratorConfig(kind="preview", width=SIZE, height=SIZE, mask="inside", mask_feather_px=6, max_fps=60)
    first, first_mask = visitor(cx=250)
    second, second_mask = visitor(cx=420)
    camera: LatestSlot[CameraFrame] = LatestSlot("camera")
    scene: LatestSlot[Scene] = LatestSlot("scene")
    events = Events()
    worker, out = _rig(cfg, camera, scene, events)
    worker.start()
    try:
        for image, mask in ((first, first_mask), (second, second_mask)):
            frame = CameraFrame(image=image, index=0, source="test")
            camera.put(frame)
            scene.put(Scene(presence=True, people=1, silhouette=mask, source_t=frame.t))
            done = wait_for(lambda f=frame: (g := out.get()) is not None and g.source_t == f.t and g, "a masked frame")
            background = fit_image(image, SIZE, SIZE)
            inside = fit_mask(mask, SIZE, SIZE)
            assert np.array_equal(done.image[~inside], background[~inside])
            core = feather_alpha(inside, 6) == 1.0
            assert np.abs(done.image[core].astype(int) - background[core].astype(int)).mean() > 20
    finally:
        worker.stop()
        worker.join(5)
    assert [e["source"] for e in events.of("mask")] == ["silhouette"]


def test_a_mask_without_a_camera_paints_the_full_frame_and_says_why(no_thread_leak):
    cfg = GeneratorConfig(kind="preview", width=64, height=64, mask="inside", mask_image="assets/masks/oval.png")
    events = Events()
    worker, out = _rig(cfg, None, None, events)
    worker.start()
    try:
        wait_for(out.get, "a frame")
    finally:
        worker.stop()
        worker.join(5)
    said = events.of("mask")
    assert said and said[0]["source"] == "none" and 'camera.source = "none"' in said[0]["reason"]


def test_a_mask_waits_a_moment_for_the_first_camera_image_then_paints_anyway(no_thread_leak):
    cfg = GeneratorConfig(kind="preview", width=64, height=64, mask="inside", mask_image="assets/masks/oval.png")
    events = Events()
    worker, out = _rig(cfg, LatestSlot("camera"), None, events)
    worker.mask_camera_wait_s = 0.5
    worker.start()
    try:
        time.sleep(0.3)
        assert out.get() is None  # the card stays rather than a whole painted frame
        wait_for(out.get, "a frame once the wait is over")
    finally:
        worker.stop()
        worker.join(5)
    said = events.of("mask")
    assert len(said) == 1 and "no camera image has come yet" in said[0]["reason"]


def test_a_mode_given_per_frame_overrides_the_shows():
    """What a cue's mask will use: "outside" over a show's "inside", and "off"."""
    camera, silhouette = visitor()
    frame = painted(camera)
    scene = Scene(presence=True, people=1, silhouette=silhouette)
    masker = Masker(MaskSettings("inside", 8))
    person = fit_mask(silhouette, SIZE, SIZE)
    background = fit_image(camera, SIZE, SIZE)
    assert np.array_equal(masker.apply(frame, camera, scene, "outside")[person], background[person])
    assert masker.apply(frame, camera, scene, "off") is frame and masker.source == "none"
    assert np.array_equal(masker.apply(frame, camera, scene)[~person], background[~person])


def test_a_cue_turns_the_mask_on_and_off_in_a_show_that_does_not_mask(no_thread_leak):
    """Per-cue `mask` (GenerationParams.mask): off in the show, inside from a cue, off again."""
    cfg = GeneratorConfig(kind="preview", width=SIZE, height=SIZE, mask="off", mask_feather_px=6, max_fps=60)
    image, mask = visitor(cx=300)
    camera: LatestSlot[CameraFrame] = LatestSlot("camera")
    scene: LatestSlot[Scene] = LatestSlot("scene")
    params: LatestSlot[GenerationParams] = LatestSlot("params", GenerationParams(strength=1.0))
    out: LatestSlot[GeneratedFrame] = LatestSlot("frames")
    gen = PreviewGenerator(SIZE, SIZE)
    worker = GeneratorWorker(gen, gen, LatestSlot("prompt", Prompt("a lantern in the rain")), params, camera, out,
                             cfg, on_event=Events(), scene=scene, may_mask=True)
    background = fit_image(image, SIZE, SIZE)
    outside = ~fit_mask(mask, SIZE, SIZE)
    worker.start()
    try:
        for mode, kept in (("inside", True), ("", False)):
            params.put(GenerationParams(strength=1.0, mask=mode))
            frame = CameraFrame(image=image, index=0, source="test")
            camera.put(frame)
            scene.put(Scene(presence=True, people=1, silhouette=mask, source_t=frame.t))
            done = wait_for(lambda f=frame, m=mode: (g := out.get()) is not None and g.params.mask == m
                            and g.source_t == f.t and g, f"a frame with mask {mode!r}")
            assert np.array_equal(done.image[outside], background[outside]) is kept
    finally:
        worker.stop()
        worker.join(5)


def test_a_cues_lora_weight_reaches_the_generator_once_per_change(no_thread_leak):
    """Per-cue `lora_scale`: the worker sets it on the generator when it changes (the engines'
    own in-place weight change is tested in test_modes.py)."""

    class Recorded(PreviewGenerator):
        def __init__(self) -> None:
            super().__init__(64, 64)
            self.scales: list[float] = []

        def set_lora_scale(self, scale: float) -> None:
            self.scales.append(scale)

    cfg = GeneratorConfig(kind="preview", width=64, height=64, lora="artist/style-lora", lora_scale=0.8, max_fps=60)
    params: LatestSlot[GenerationParams] = LatestSlot("params", GenerationParams())
    out: LatestSlot[GeneratedFrame] = LatestSlot("frames")
    gen = Recorded()
    worker = GeneratorWorker(gen, gen, LatestSlot("prompt", Prompt("a lantern")), params, None, out, cfg)
    worker.start()
    try:
        for scale in (None, 1.5, 1.5, None):
            sent = GenerationParams(lora_scale=scale)
            params.put(sent)
            wait_for(lambda p=sent: (g := out.get()) is not None and g.params.t == p.t, "a frame with these params")
    finally:
        worker.stop()
        worker.join(5)
    assert gen.scales == [0.8, 1.5, 0.8]
