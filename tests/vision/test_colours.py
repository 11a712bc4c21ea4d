"""Colour names: synthetic frames with known colours and shares, real photographs with a clear
dominant colour (scikit-image's), and the names in the captions' languages."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from installation.vision.colours import (
    COLOUR_NAMES,
    COLOURS,
    LANGUAGES,
    MIN_SHARE,
    colour_name,
    colour_shares,
    dominant_colours,
)

W, H = 640, 360  # the vision stage's frame size


def solid(rgb: tuple[int, int, int]) -> np.ndarray:
    """A 640×360 BGR frame of one colour given as RGB (as colour references write them)."""
    frame = np.empty((H, W, 3), np.uint8)
    frame[:] = rgb[::-1]
    return frame


def split(left: tuple[int, int, int], right: tuple[int, int, int], left_share: float) -> np.ndarray:
    frame = solid(right)
    frame[:, : round(W * left_share)] = left[::-1]
    return frame


def photo(name: str) -> np.ndarray:
    return cv2.cvtColor(getattr(skimage.data, name)(), cv2.COLOR_RGB2BGR)


# CSS/X11 named colours (RGB), each with the plain word a viewer would use for it.
NAMED = [
    ((255, 0, 0), "red"), ((128, 0, 0), "red"), ((220, 20, 60), "red"),  # red, maroon, crimson
    ((255, 165, 0), "orange"), ((255, 69, 0), "orange"), ((255, 127, 80), "orange"),  # orange, orangered, coral
    ((255, 255, 0), "yellow"), ((255, 215, 0), "yellow"),  # yellow, gold
    ((0, 128, 0), "green"), ((50, 205, 50), "green"), ((128, 128, 0), "green"),  # green, limegreen, olive
    ((0, 128, 128), "teal"), ((0, 139, 139), "teal"),  # teal, darkcyan
    ((0, 255, 255), "cyan"), ((64, 224, 208), "cyan"),  # cyan, turquoise
    ((0, 0, 255), "blue"), ((0, 0, 128), "blue"), ((65, 105, 225), "blue"),  # blue, navy, royalblue
    ((128, 0, 128), "purple"), ((75, 0, 130), "purple"), ((138, 43, 226), "purple"),  # purple, indigo, blueviolet
    ((255, 192, 203), "pink"), ((255, 105, 180), "pink"), ((255, 0, 255), "pink"),  # pink, hotpink, magenta
    ((139, 69, 19), "brown"), ((160, 82, 45), "brown"), ((101, 67, 33), "brown"),  # saddlebrown, sienna, dark brown
    ((245, 222, 179), "beige"), ((210, 180, 140), "beige"),  # wheat, tan
    ((0, 0, 0), "black"), ((20, 20, 20), "black"),
    ((255, 255, 255), "white"), ((245, 245, 245), "white"),  # white, whitesmoke
    ((128, 128, 128), "grey"), ((192, 192, 192), "grey"), ((105, 105, 105), "grey"),  # grey, silver, dimgray
]


@pytest.mark.parametrize(("rgb", "name"), NAMED, ids=[f"{n}-{rgb}" for rgb, n in NAMED])
def test_a_solid_colour_is_named(rgb, name):
    assert dominant_colours(solid(rgb)) == (name,)


def test_every_colour_is_reachable():
    assert {name for _, name in NAMED} == set(COLOURS)


def test_the_frame_is_read_as_bgr():
    # OpenCV's order: the last channel is red. A camera frame given as RGB would name red blue.
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:, :, 2] = 255
    assert dominant_colours(frame) == ("red",)


def test_two_colours_come_most_dominant_first_with_their_shares():
    frame = split((0, 0, 255), (255, 255, 0), 0.7)  # 70 % blue, 30 % yellow
    assert dominant_colours(frame) == ("blue", "yellow")
    shares = colour_shares(frame)
    assert shares["blue"] == pytest.approx(0.7, abs=0.02) and shares["yellow"] == pytest.approx(0.3, abs=0.02)
    assert dominant_colours(split((0, 0, 255), (255, 255, 0), 0.3)) == ("yellow", "blue")


def test_n_limits_the_names():
    frame = solid((128, 128, 128))
    frame[:120] = (0, 0, 255)[::-1]  # a third blue, a quarter green, the rest grey
    frame[270:] = (0, 128, 0)[::-1]
    assert dominant_colours(frame, n=3) == ("grey", "blue", "green")
    assert dominant_colours(frame, n=1) == ("grey",)
    with pytest.raises(ValueError, match="n: expected at least 1"):
        dominant_colours(frame, n=0)


def test_a_tiny_share_is_not_a_colour_of_the_scene():
    frame = split((255, 0, 0), (0, 0, 255), MIN_SHARE / 2)  # a thin red stripe on blue
    assert dominant_colours(frame, n=3) == ("blue",)
    frame = split((255, 0, 0), (0, 0, 255), MIN_SHARE * 1.5)
    assert dominant_colours(frame, n=3) == ("blue", "red")


def test_pixel_noise_melts_into_its_mean_colour():
    rng = np.random.default_rng(1)
    # Uniform RGB noise averages to mid grey over the thumbnail's blocks.
    assert dominant_colours(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)) == ("grey",)
    # Sensor noise on a colour keeps the colour.
    green = solid((0, 128, 0)).astype(np.float32) + rng.normal(0, 12, (H, W, 3))
    assert dominant_colours(np.clip(green, 0, 255).astype(np.uint8)) == ("green",)
    # Scattered red specks (5 % of the pixels) on blue are not a colour of the scene.
    frame = solid((0, 0, 255))
    frame[rng.random((H, W)) < 0.05] = (0, 0, 255)  # BGR red
    assert dominant_colours(frame, n=3) == ("blue",)


@pytest.mark.parametrize(("name", "colour"), [("rocket", "blue"), ("chelsea", "brown"), ("coffee", "brown"),
                                              ("hubble_deep_field", "black")])
def test_photographs_are_named_by_what_covers_them(name, colour):
    # The rocket stands in a blue dusk sky; the cat is a brown tabby; the coffee sits on a brown
    # wooden table; the deep field is black sky.
    assert dominant_colours(photo(name))[0] == colour


def test_the_astronaut_is_orange_suited_with_a_pale_face_and_a_black_helmet():
    astronaut = photo("astronaut")
    assert dominant_colours(astronaut[300:512, 40:330])[0] == "orange"  # the suit
    assert dominant_colours(astronaut[90:200, 170:270])[0] == "beige"  # the face
    assert dominant_colours(astronaut[380:512, 360:512])[0] == "black"  # the helmet in her arm
    # The whole picture: a grey room, the black helmet and the orange suit; nothing green or blue
    # enough to count.
    whole = colour_shares(astronaut)
    assert list(whole)[0] in ("grey", "black", "white")
    assert "orange" in list(whole)[:5]
    assert not {"green", "teal", "cyan", "yellow"} & set(dominant_colours(astronaut, n=3))


def test_a_letterboxed_photograph_still_names_its_content():
    # The camera frame is 640×360; a portrait photograph arrives with side bars.
    rocket = cv2.resize(photo("rocket"), (540, 360), interpolation=cv2.INTER_AREA)
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:, 50:590] = rocket
    assert dominant_colours(frame) == ("blue", "black")


@settings(max_examples=150, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 80), st.integers(1, 80), st.just(3))), st.integers(1, 5))
def test_any_frame_gets_between_one_and_n_distinct_known_names(frame, n):
    names = dominant_colours(frame, n)
    assert 1 <= len(names) <= n and len(set(names)) == len(names) and set(names) <= set(COLOURS)
    assert sum(colour_shares(frame).values()) == pytest.approx(1.0)


def test_a_frame_that_is_not_colour_is_refused_clearly():
    with pytest.raises(ValueError, match=r"expected a colour image of shape \(H, W, 3\)"):
        dominant_colours(np.zeros((H, W), np.uint8))


# --- names in the captions' languages ---------------------------------------------------------

def test_every_colour_has_a_name_in_every_language():
    assert set(COLOUR_NAMES) == set(COLOURS)
    for colour, row in COLOUR_NAMES.items():
        assert len(row) == len(LANGUAGES) and all(row), colour
        for language in LANGUAGES:
            assert colour_name(colour, language) == row[LANGUAGES.index(language)]
        # One word per colour per language: two colours never read the same in a caption.
    for i, language in enumerate(LANGUAGES):
        names = [row[i] for row in COLOUR_NAMES.values()]
        assert len(set(names)) == len(names), language


def test_korean_names_are_the_caption_forms():
    # The noun with -색 ("빨간색과 파란색"), not the bare 빨강 or the adjective 빨간.
    expected = {"red": "빨간색", "orange": "주황색", "yellow": "노란색", "green": "초록색", "blue": "파란색",
                "purple": "보라색", "pink": "분홍색", "brown": "갈색", "black": "검은색", "white": "흰색",
                "grey": "회색", "beige": "베이지색", "cyan": "청록색", "teal": "짙은 청록색"}
    assert {c: colour_name(c, "ko") for c in COLOURS} == expected
    assert all(name.endswith("색") for name in expected.values())


@pytest.mark.parametrize(("language", "name"), [("ja", "青"), ("zh", "蓝色"), ("es", "azul"), ("fr", "bleu"),
                                                ("de", "Blau"), ("ko-KR", "파란색"), ("zh_CN", "蓝色"), ("FR", "bleu")])
def test_blue_in_other_languages_and_language_tags(language, name):
    assert colour_name("blue", language) == name


@pytest.mark.parametrize("language", ["en", "en-GB", "xx", "", "pt"])
def test_english_is_the_fallback(language):
    assert colour_name("red", language) == "red"


def test_a_name_the_table_lacks_comes_back_as_it_is():
    # A show's vocabulary may have turned "red" into "vermilion" before the caption asks.
    assert colour_name("vermilion", "ko") == "vermilion"
