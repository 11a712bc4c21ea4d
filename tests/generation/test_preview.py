"""The preview generator: a frame from a real video file, painted after the prompt's words."""

from __future__ import annotations

import numpy as np
import pytest

from installation.core.messages import GenerationParams, Prompt
from installation.generation.preview import PreviewGenerator, hashed_palette, style_for


@pytest.fixture(scope="module")
def camera_image(project_root, tmp_path_factory) -> np.ndarray:
    """A frame read through OpenCV as a camera's would be: the bundled demo clip, or a clip
    written here when the asset is absent."""
    import cv2

    clip = project_root / "assets" / "demo_loop.mp4"
    if not clip.is_file():
        clip = tmp_path_factory.mktemp("clip") / "clip.mp4"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
        for i in range(5):
            frame = np.full((240, 320, 3), 40 + 30 * i, np.uint8)
            cv2.circle(frame, (160, 120), 60, (30, 200, 240), -1)
            writer.write(frame)
        writer.release()
    cap = cv2.VideoCapture(str(clip))
    ok, bgr = cap.read()
    cap.release()
    assert ok, f"{clip} could not be read through cv2.VideoCapture"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def make(width=160, height=120, reason="", t=100.0) -> PreviewGenerator:
    return PreviewGenerator(width, height, reason=reason, clock=lambda: t)


def test_frame_has_the_configured_size_with_and_without_a_camera(camera_image):
    gen = make(160, 120)
    for image in (camera_image, None):
        frame = gen.generate(Prompt("a garden"), GenerationParams(), image)
        assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
        assert frame.std() > 2  # painted, not flat


def test_same_input_same_frame(camera_image):
    p, params = Prompt("ink wash mountain at dawn"), GenerationParams(strength=0.7, seed=5)
    a = make().generate(p, params, camera_image)
    b = make().generate(p, params, camera_image)  # another instance: nothing per-process
    assert np.array_equal(a, b)
    assert np.array_equal(make().generate(p, params, None), make().generate(p, params, None))


@pytest.mark.parametrize("other", ["blue ocean at night", "a quiet garden at dawn, zebra", "zebra xylophone"])
def test_a_new_prompt_changes_the_frame(camera_image, other):
    gen = make()
    params = GenerationParams(strength=0.8)
    a = gen.generate(Prompt("a quiet garden at dawn"), params, camera_image)
    b = gen.generate(Prompt(other), params, camera_image)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0


def test_colour_words_pick_their_colours():
    gen = make()
    params = GenerationParams(strength=1.0)
    red = gen.generate(Prompt("red fire"), params, None).reshape(-1, 3).mean(axis=0)
    blue = gen.generate(Prompt("deep blue ocean"), params, None).reshape(-1, 3).mean(axis=0)
    assert red[0] > red[2] + 20
    assert blue[2] > blue[0] + 20
    assert style_for("Red FIRE!").palettes == ("red", "fire")


def test_unknown_words_hash_to_a_stable_palette():
    assert hashed_palette("xylophone") == hashed_palette("xylophone")
    assert hashed_palette("xylophone") != hashed_palette("zebra")
    assert style_for("a zebra").palettes == ("#zebra",)
    pal = hashed_palette("zebra")
    lightness = [sum(c) for c in pal]
    assert lightness == sorted(lightness)  # dark to light, so shadows stay shadows


def test_strength_mixes_painting_and_camera(camera_image):
    from installation.generation.imaging import fit_image

    gen = make()
    original = fit_image(camera_image, 160, 120).astype(int)
    diffs = []
    for s in (0.0, 0.3, 0.7, 1.0):
        frame = gen.generate(Prompt("gold"), GenerationParams(strength=s), camera_image)
        diffs.append(np.abs(frame.astype(int) - original).mean())
    assert diffs[0] == 0
    assert diffs == sorted(diffs) and diffs[-1] > diffs[1] + 5


def test_without_a_camera_the_noise_drifts_with_time_and_seed():
    p = Prompt("night")
    at0 = make(t=0.0).generate(p, GenerationParams(seed=1), None)
    at20 = make(t=20.0).generate(p, GenerationParams(seed=1), None)
    other_seed = make(t=0.0).generate(p, GenerationParams(seed=2), None)
    assert not np.array_equal(at0, at20)
    assert not np.array_equal(at0, other_seed)


def test_camera_aspect_is_cropped_not_squashed():
    from installation.generation.imaging import fit_image

    wide = np.zeros((100, 400, 3), np.uint8)
    wide[:, 150:250] = 255  # a white square band in the middle
    square = fit_image(wide, 50, 50)
    assert square.shape == (50, 50, 3)
    assert square[:, 20:30].min() == 255  # the middle survives; the dark sides were cut


def test_label_and_identity():
    gen = PreviewGenerator(64, 64, reason="Preview: x is not downloaded")
    assert (gen.name, gen.model, gen.label) == ("preview", "", "Preview: x is not downloaded")
    gen.load()  # nothing to load, must not fail


def test_bad_input_is_a_clear_error():
    gen = make()
    with pytest.raises(ValueError, match="camera image: expected an RGB uint8"):
        gen.generate(Prompt("x"), GenerationParams(), np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ValueError, match="at least 8"):
        PreviewGenerator(4, 64)
