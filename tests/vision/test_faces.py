"""Faces counted on real portraits (scikit-image's astronaut, matplotlib's Grace Hopper), as
they come and letterboxed into a 640x360 camera frame, by both detectors; none on the empty
street. mediapipe is optional: its tests are skipped where it is not installed, and the Haar
path is always tested."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from vision_footage import PHOTO_BOXES, empty_street, letterboxed, photo

from installation.vision.faces import HaarFaces, load_face_detector, mediapipe_solutions

HAS_MEDIAPIPE = mediapipe_solutions() is not None
needs_mediapipe = pytest.mark.skipif(not HAS_MEDIAPIPE, reason="mediapipe is not installed (optional)")
KINDS = ["haar", pytest.param("mediapipe", marks=needs_mediapipe)]


@pytest.fixture(scope="module", params=KINDS)
def detector(request):
    found, note = load_face_detector(request.param)
    assert found is not None and found.name == request.param and note == ""
    if isinstance(found, HaarFaces):
        found = HaarFaces(every=1)  # look at every frame here
    yield found
    found.close()


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
@pytest.mark.parametrize("framed", [False, True], ids=["photo", "640x360"])
def test_one_face_is_counted_and_placed_on_the_head(detector, name, framed):
    image = photo(name)
    scale, x_offset = 1.0, 0
    if framed:
        image, scale, x_offset = letterboxed(image)
    faces = detector.detect(image)
    assert faces is not None and len(faces) == 1, faces
    x, y, w, h = faces[0]
    hx0, hy0, hx1, hy1 = PHOTO_BOXES[name][0]  # the head's rough box
    cx, cy = x + w / 2, y + h / 2
    assert hx0 * scale + x_offset <= cx <= hx1 * scale + x_offset and hy0 * scale <= cy <= hy1 * scale


def test_no_face_on_the_empty_street(detector):
    assert detector.detect(np.ascontiguousarray(empty_street())) == []


def test_haar_looks_at_every_other_frame_by_default():
    haar = HaarFaces()
    image = letterboxed(photo("astronaut"))[0]
    results = [haar.detect(image) for _ in range(4)]
    assert [r is None for r in results] == [False, True, False, True]
    assert results[0] == results[2] and len(results[0] or []) == 1


def test_off_is_no_detector():
    assert load_face_detector("off") == (None, "")


def test_an_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[vision\] faces = 'eyes' is not one of auto, mediapipe, haar, off"):
        load_face_detector("eyes")


@pytest.mark.parametrize("kind", ["auto", "mediapipe"])
def test_without_mediapipe_faces_fall_back_to_haar_with_a_note(monkeypatch, kind):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # what Python does when a package is absent
    found, note = load_face_detector(kind)
    assert isinstance(found, HaarFaces)
    assert "mediapipe is not installed" in note and "scripts/setup.sh" in note


@needs_mediapipe
def test_auto_is_mediapipe_when_installed():
    found, note = load_face_detector("auto")
    assert found is not None and found.name == "mediapipe" and note == ""
    found.close()


@needs_mediapipe
def test_mediapipe_says_nothing_on_stderr_once_loaded(capfd):
    """Its native threads log on the first frame; the loader spends that frame (warm_up), so the
    running installation's stderr stays clean."""
    found, _ = load_face_detector("mediapipe")
    assert found is not None
    capfd.readouterr()
    image = letterboxed(photo("grace_hopper"))[0]
    for _ in range(5):
        found.detect(image)
    found.close()
    assert capfd.readouterr().err == ""
