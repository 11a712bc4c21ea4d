"""Light and motion words: brightness on real photographs under- and over-exposed, motion energy
(motion.py's) on real clips that move and ones that do not, and words that hold still while a
value sits on a threshold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from installation.vision.light import (
    DARK_BELOW,
    DIM_BELOW,
    LIGHT,
    MOTION,
    STILL_BELOW,
    WordScale,
    WordWithHysteresis,
    brightness,
    light_word,
    light_words,
    motion_word,
    motion_words,
)
from installation.vision.motion import MotionDetector

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "assets" / "demo_loop.mp4"  # a figure that turns and sweeps, 30 fps
STREET = ROOT / "tests" / "data" / "vision" / "vtest_street.mp4"  # real walkers, 5 fps
EMPTY = ROOT / "tests" / "data" / "vision" / "vtest_empty.jpg"  # the same street, nobody there
WALKER = ROOT / "tests" / "data" / "vision" / "vtest_walker.png"  # one real walker, BGRA
RATE_HZ = 5  # the vision stage's default rate


def photo(name: str) -> np.ndarray:
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.dstack([image] * 3)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def exposed(image: np.ndarray, stops: float) -> np.ndarray:
    """The photograph as a camera would take it `stops` brighter (negative: darker): the light
    is scaled in linear space, then gamma-encoded again."""
    linear = (image / 255.0) ** 2.2 * 2.0**stops
    return (np.clip(linear, 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8)


def clip(path: Path, rate_hz: float = RATE_HZ) -> Iterator[np.ndarray]:
    """The file's frames as the vision stage samples them: `rate_hz` a second."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    step = max(1, round(cap.get(cv2.CAP_PROP_FPS) / rate_hz))
    i = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            if i % step == 0:
                yield frame
            i += 1
    finally:
        cap.release()


def still_clip(frame: np.ndarray, n: int, sigma: float = 2.0, seed: int = 0) -> Iterator[np.ndarray]:
    """One real frame repeated, with fresh sensor noise each time: a camera on an empty room."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        noise = rng.standard_normal(frame.shape, dtype=np.float32) * sigma
        yield np.clip(frame + noise, 0, 255).astype(np.uint8)


def walking(n: int, dx: int = 8) -> Iterator[np.ndarray]:
    """The real walker cut out of vtest, crossing the empty street `dx` px per analysed frame."""
    walker = cv2.imread(str(WALKER), cv2.IMREAD_UNCHANGED)
    background = cv2.imread(str(EMPTY)).astype(np.float32)
    alpha = walker[:, :, 3:4] / 255.0
    h, w = walker.shape[:2]
    rng = np.random.default_rng(3)
    for i in range(n):
        frame = background.copy()
        x, y = 100 + dx * i, 200
        frame[y : y + h, x : x + w] = frame[y : y + h, x : x + w] * (1 - alpha) + walker[:, :, :3] * alpha
        yield np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)


def energies(frames: Iterator[np.ndarray]) -> list[float]:
    detector = MotionDetector()
    return [detector.update(frame, i / RATE_HZ).energy for i, frame in enumerate(frames)]


# --- brightness --------------------------------------------------------------------------------

def test_brightness_spans_black_to_white():
    assert brightness(np.zeros((360, 640, 3), np.uint8)) == 0.0
    assert brightness(np.full((360, 640, 3), 255, np.uint8)) == 1.0
    assert brightness(np.full((360, 640, 3), 128, np.uint8)) == pytest.approx(128 / 255)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "camera"])
def test_a_photograph_reads_bright_then_dim_then_dark_as_its_exposure_falls(name):
    image = photo(name)
    levels = [brightness(exposed(image, stops)) for stops in (1, 0, -1, -2, -3, -4, -5)]
    assert levels == sorted(levels, reverse=True)
    assert light_word(brightness(exposed(image, 1))) == "bright"
    assert light_word(brightness(image)) == "bright"
    assert light_word(brightness(exposed(image, -2.5))) == "dim"
    assert light_word(brightness(exposed(image, -5))) == "dark"


def test_a_dusk_photograph_is_dim_and_the_night_sky_dark():
    assert light_word(brightness(photo("rocket"))) == "dim"  # a launch pad at dusk
    assert light_word(brightness(photo("hubble_deep_field"))) == "dark"


def test_the_thresholds_name_their_words():
    assert [light_word(v) for v in (0.0, DARK_BELOW - 1e-6, DARK_BELOW, DIM_BELOW - 1e-6, DIM_BELOW, 1.0)] == [
        "dark", "dark", "dim", "dim", "bright", "bright"]
    assert [motion_word(v) for v in (0.0, STILL_BELOW - 1e-6, STILL_BELOW, 1.0)] == [
        "still", "still", "calm", "restless"]


def test_light_sitting_on_a_threshold_keeps_one_word():
    # A real photograph exposed to sit right on the dim/bright line, with sensor noise and a 2 %
    # flicker of the light from frame to frame: the plain word flips, the steadied one does not.
    image = photo("astronaut").astype(np.float32)
    image *= DIM_BELOW / brightness(image.astype(np.uint8))
    rng = np.random.default_rng(7)
    tracker = light_words()
    plain, steady = [], []
    for _ in range(100):
        frame = image * rng.uniform(0.98, 1.02) + rng.normal(0, 3, image.shape)
        value = brightness(np.clip(frame, 0, 255).astype(np.uint8))
        plain.append(light_word(value))
        steady.append(tracker.update(value))
    assert len(set(plain)) == 2
    assert len(set(steady)) == 1


def test_light_that_really_changes_changes_the_word():
    tracker = light_words()
    image = photo("coffee")
    words = [tracker.update(brightness(exposed(image, stops))) for stops in (0, 0, -2.5, -2.5, -5, -5, 0)]
    assert words == ["bright", "bright", "dim", "dim", "dark", "dark", "bright"]


# --- motion ------------------------------------------------------------------------------------

def test_a_still_room_is_still():
    # An empty street and the demo's first frame, each repeated with sensor noise for 12 s.
    for frame in (cv2.imread(str(EMPTY)), next(clip(DEMO))):
        values = energies(still_clip(frame, 60, sigma=3.0))
        assert {motion_word(v) for v in values} == {"still"}
        tracker = motion_words()
        assert {tracker.update(v) for v in values} == {"still"}


def test_one_walker_crossing_the_street_is_calm():
    values = energies(walking(40))[1:]  # the first frame has nothing to compare with
    assert {motion_word(v) for v in values} == {"calm"}


def test_a_street_with_walkers_is_calm():
    values = energies(clip(STREET))[1:]
    assert len(values) > 100
    tracker = motion_words()
    assert {tracker.update(v) for v in values} == {"calm"}


def test_the_demo_figure_moves_calmly_then_restlessly_and_never_reads_still():
    values = energies(clip(DEMO))[1:]
    tracker = motion_words()
    words = [tracker.update(v) for v in values]
    assert "still" not in words[1:]
    assert {"calm", "restless"} <= set(words)  # it turns slowly, then sweeps across


def test_motion_words_do_not_flicker_on_a_real_clip():
    # Over the demo clip looped three times, the steadied word changes only when the figure
    # changes pace (four times a 5 s loop: it turns slowly, sweeps, turns, sweeps), never for a
    # single frame.
    values = energies(frame for _ in range(3) for frame in clip(DEMO))[1:]
    tracker = motion_words()
    words = [tracker.update(v) for v in values]
    changes = [i for i in range(1, len(words)) if words[i] != words[i - 1]]
    assert len(changes) <= 4 * 3
    runs = np.diff([0, *changes, len(words)])
    assert runs.min() >= 2
    plain_changes = sum(motion_word(a) != motion_word(b) for a, b in zip(values, values[1:]))
    assert len(changes) <= plain_changes


# --- the steadying helper -----------------------------------------------------------------------

def test_hysteresis_needs_the_value_past_the_band():
    tracker = WordWithHysteresis(LIGHT, margin=0.1)
    assert tracker.word == ""
    assert tracker.update(0.5) == "bright"
    assert tracker.update(DIM_BELOW * 0.95) == "bright"  # inside the band: holds
    assert tracker.update(DIM_BELOW * 0.89) == "dim"
    assert tracker.update(DIM_BELOW * 1.05) == "dim"
    assert tracker.update(DIM_BELOW * 1.11) == "bright"
    assert tracker.update(0.0) == "dark"  # across two thresholds at once
    assert tracker.update(float("nan")) == "dark"
    tracker.reset()
    assert tracker.word == ""


def test_confirm_needs_the_new_word_several_times_in_a_row():
    tracker = WordWithHysteresis(MOTION, margin=0.0, confirm=2)
    assert tracker.update(0.0) == "still"
    assert tracker.update(1.0) == "still"  # once: not yet
    assert tracker.update(0.0) == "still"  # and back: the count starts again
    assert tracker.update(1.0) == "still"
    assert tracker.update(1.0) == "restless"


def test_a_bad_scale_or_setting_is_refused_clearly():
    with pytest.raises(ValueError, match="a scale of 3 words needs 2 thresholds"):
        WordScale(("a", "b", "c"), (0.5,))
    with pytest.raises(ValueError, match="thresholds must rise"):
        WordScale(("a", "b", "c"), (0.5, 0.2))
    with pytest.raises(ValueError, match="margin"):
        WordWithHysteresis(LIGHT, margin=1.5)
    with pytest.raises(ValueError, match="confirm"):
        WordWithHysteresis(LIGHT, confirm=0)
