"""The person mask on real portraits (segmentation, where mediapipe is installed) checked
against a rough outline of the person; the background-subtraction mask on the street is
tested with the analyser (test_analyzer.py), where the walker's true outline is known."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from vision_footage import Sensor, letterboxed, photo, photo_mask

from installation.core.messages import Person
from installation.show import VisionConfig
from installation.vision.analyzer import SceneAnalyzer
from installation.vision.faces import mediapipe_solutions
from installation.vision.silhouette import background_mask, load_segmenter

needs_mediapipe = pytest.mark.skipif(mediapipe_solutions() is None, reason="mediapipe is not installed (optional)")
MIN_IOU = 0.65  # against a two-box outline: the boxes themselves are rough (measured 0.73-0.85)
MIN_COVER = 0.75  # of the rough outline inside the mask (the boxes hold background corners too)
MAX_OUTSIDE = 0.05  # of the frame outside the outline (grown a little) marked as person


def check(mask: np.ndarray, truth: np.ndarray) -> None:
    assert mask.dtype == np.uint8 and mask.shape == truth.shape and set(np.unique(mask)) <= {0, 255}
    person = mask > 0
    iou = (person & truth).sum() / (person | truth).sum()
    cover = (person & truth).sum() / truth.sum()
    grown = np.zeros_like(truth)
    ys, xs = np.nonzero(truth)
    pad = truth.shape[0] // 20
    grown[max(0, ys.min() - pad):ys.max() + pad, max(0, xs.min() - pad):xs.max() + pad] = True
    outside = (person & ~grown).sum() / person.size
    assert iou >= MIN_IOU and cover >= MIN_COVER and outside <= MAX_OUTSIDE, (iou, cover, outside)


@needs_mediapipe
@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_segmentation_covers_the_person_and_not_the_background(name):
    segmenter, note = load_segmenter("segmentation")
    assert segmenter is not None and note == ""
    image = photo(name)
    check(segmenter.mask(image), photo_mask(name, image.shape))
    framed, scale, x = letterboxed(image)
    check(segmenter.mask(framed), photo_mask(name, framed.shape, scale, x))
    segmenter.close()


@needs_mediapipe
def test_the_analyser_segments_a_near_visitor():
    a = SceneAnalyzer(VisionConfig(enabled=True, faces="auto", silhouette="auto"))
    assert a.silhouette_kind == "segmentation"
    framed, scale, x = letterboxed(photo("grace_hopper"))
    sensor = Sensor(11)
    for i in range(6):
        scene = a.analyze(sensor(framed), t=i * 0.2)
    assert scene.persons and scene.persons[0].distance == "near"
    assert scene.silhouette is not None
    check(scene.silhouette, photo_mask("grace_hopper", framed.shape, scale, x))
    a.close()


def test_without_mediapipe_segmentation_is_background_subtraction(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    assert load_segmenter("auto") == (None, load_segmenter("auto")[1])
    segmenter, note = load_segmenter("segmentation")
    assert segmenter is None and "mediapipe is not installed, using background subtraction" in note
    assert load_segmenter("background") == (None, "") and load_segmenter("off") == (None, "")


def test_background_mask_keeps_only_foreground_that_touches_a_person():
    foreground = np.zeros((180, 320), np.uint8)
    foreground[50:90, 100:110] = 255  # a figure (work pixels)
    foreground[10:20, 250:300] = 255  # a moving shadow far from anyone
    person = Person(box=(200, 100, 20, 80), where="centre", distance="far")
    mask = background_mask(foreground, (person,), 640, 360)
    assert mask.shape == (360, 640) and mask.dtype == np.uint8
    assert mask[100:180, 200:220].all() and not mask[20:40, 500:600].any()
    assert not background_mask(foreground, (), 640, 360).any()
