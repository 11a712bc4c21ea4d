"""The figure detector on crops, and where/how near a person is. Counting and tracking over
frames are tested end to end in test_analyzer.py."""

from __future__ import annotations

import pytest
from vision_footage import empty_street, paste_walker

from installation.vision.people import TENTATIVE_S, FigureDetector, PeopleTracker, Track, describe, figure_box, overlap

PLACES = [(450, 230), (120, 200), (500, 300), (230, 350), (560, 180)]  # (x, feet), clear of the tripod


@pytest.fixture(scope="module")
def detector():
    return FigureDetector()


@pytest.mark.parametrize("height", [50, 60, 75, 100])
def test_a_walker_is_found_from_its_box_its_blob_or_half_a_blob(detector, height):
    """A track's box, a motion blob (a few px larger) or a blob of the legs alone (the torso
    still): the crop is scaled so the figure fits the detector's window in all three."""
    found = looked = 0
    for cx, feet in PLACES:
        image, box, _ = paste_walker(empty_street(), height, cx, feet)
        x, y, w, h = box
        for region in (box, (x - 4, y - 4, w + 8, h + 8), (x, y + h // 3, w, h - h // 3)):
            hits = detector.in_region(image, region)
            looked += 1
            found += any(overlap(hit, box) > 0.3 for hit, _ in hits)
            assert all(overlap(hit, box) > 0.3 for hit, _ in hits), hits  # nothing else on the street
    assert found >= looked - 1


def test_nobody_on_the_empty_street_even_enlarged(detector):
    assert detector.whole_frame(empty_street().copy()) == []


def test_a_figure_box_is_the_figure_inside_the_detectors_box():
    assert figure_box((100, 100, 64, 128)) == (116, 118, 32, 88)


def test_overlap_is_over_the_smaller_box():
    assert overlap((0, 0, 10, 10), (0, 0, 100, 100)) == 1.0
    assert overlap((0, 0, 10, 10), (5, 0, 10, 10)) == 0.5
    assert overlap((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


@pytest.mark.parametrize("box,kind,where,distance", [
    ((10, 100, 30, 80), "body", "left", "far"),
    ((300, 20, 60, 200), "body", "centre", "near"),
    ((600, 100, 30, 80), "body", "right", "far"),
    ((280, 80, 80, 90), "face", "centre", "near"),
    ((500, 80, 30, 30), "face", "right", "far"),
])
def test_where_and_how_near(box, kind, where, distance):
    person = describe(Track(box, kind, 0.0, 0.0, 0.0, 0.0), 640, 360)
    assert (person.box, person.kind, person.where, person.distance) == (box, kind, where, distance)


def test_one_stray_detection_is_never_a_person_two_are():
    """A face (or figure) seen once, then never again, is not counted; seen on the next look
    too, it is."""
    street = empty_street()
    face = (300, 100, 40, 40)
    stray = PeopleTracker(sweep=False)
    results = [stray.update(street, 0.0, (), [face])]
    results += [stray.update(street, 0.2 * i, (), []) for i in range(1, round(TENTATIVE_S / 0.2) + 3)]
    assert all(r.raw_count == 0 and not r.seen for r in results) and stray.tracks == []
    twice = PeopleTracker(sweep=False)
    assert twice.update(street, 0.0, (), [face]).raw_count == 0
    second = twice.update(street, 0.2, (), [face])
    assert second.raw_count == 1 and second.seen and second.persons[0].kind == "face"
