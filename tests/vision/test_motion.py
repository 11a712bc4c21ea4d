"""Background subtraction and motion energy on real footage: the empty street from OpenCV's
vtest.avi with sensor noise, a real walker cut from it walking and standing still."""

from __future__ import annotations

import numpy as np
import pytest
from vision_footage import H, Sensor, W, empty_street, paste_walker, street_frames

from installation.vision.motion import LIGHTING_CHANGE_FRACTION, WORK_WIDTH, MotionDetector, mask_at

WARM_UP = 10  # frames MOG2 needs to learn a scene from scratch
DT = 0.2


def walk_then_stand(steps: int = 30, still: int = 0, height: int = 75):
    """Frames of the walker entering at x=100 (8 px a frame), then standing still; with boxes."""
    for i in range(steps):
        frame, box, _ = paste_walker(empty_street(), height, 100 + 8 * i, 260)
        yield frame, box
    frame, box, _ = paste_walker(empty_street(), height, 100 + 8 * steps, 260)
    for _ in range(still):
        yield frame, box


def near(blob_box, box, slack=30):
    return abs(blob_box[0] + blob_box[2] / 2 - (box[0] + box[2] / 2)) < slack and \
        abs(blob_box[1] + blob_box[3] / 2 - (box[1] + box[3] / 2)) < slack


def test_a_still_empty_place_with_sensor_noise_has_no_blobs_and_no_energy():
    sensor = Sensor(1)
    motion = MotionDetector()
    results = [motion.update(sensor(empty_street()), i * DT) for i in range(300)]
    assert all(not r.blobs for r in results[WARM_UP:])
    assert max(r.energy for r in results) < 0.005
    assert max(r.foreground for r in results[WARM_UP:]) < 0.001


def test_a_walker_makes_one_blob_where_it_walks_and_energy():
    sensor = Sensor(2)
    motion = MotionDetector()
    for i in range(WARM_UP):
        motion.update(sensor(empty_street()), i * DT)
    hits = 0
    for i, (frame, box) in enumerate(walk_then_stand(steps=30)):
        result = motion.update(sensor(frame), (WARM_UP + i) * DT)
        if i == 0:
            continue
        assert len(result.blobs) <= 2, result.blobs  # the walker (and, briefly, where it just was)
        hits += any(near(b.box, box) for b in result.blobs)
        assert 0.01 < result.energy < 0.2
    assert hits >= 27


def test_pausing_learning_keeps_a_still_visitor_in_the_foreground():
    """Without the pause MOG2 takes a still visitor into the background within seconds; with
    it the visitor stays foreground for the whole minute."""
    def frames_in_foreground(pause: bool, still: int) -> int:
        sensor = Sensor(3)
        motion = MotionDetector()
        for i in range(WARM_UP):
            motion.update(sensor(empty_street()), i * DT)
        kept = 0
        for i, (frame, box) in enumerate(walk_then_stand(steps=20, still=still)):
            t = (WARM_UP + i) * DT
            motion.pause_learning(pause and i > 0, t)
            result = motion.update(sensor(frame), t)
            kept += i >= 20 and any(near(b.box, box) for b in result.blobs)
        return kept

    assert frames_in_foreground(pause=True, still=300) == 300
    assert frames_in_foreground(pause=False, still=150) < 100


def test_a_lighting_change_starts_the_model_afresh():
    sensor = Sensor(4)
    motion = MotionDetector()
    for i in range(WARM_UP):
        motion.update(sensor(empty_street()), i * DT)
    brighter = np.clip(empty_street().astype(np.int16) + 60, 0, 255).astype(np.uint8)
    changed = motion.update(sensor(brighter), WARM_UP * DT)
    assert changed.relearned and changed.foreground > LIGHTING_CHANGE_FRACTION and not changed.blobs
    later = [motion.update(sensor(brighter), (WARM_UP + 1 + i) * DT) for i in range(20)]
    assert all(not r.blobs for r in later[WARM_UP:])


def test_the_street_clip_moves_and_its_blobs_are_in_frame():
    motion = MotionDetector()
    results = [motion.update(frame, i * DT) for i, frame in enumerate(street_frames()[:40])]
    assert all(r.blobs for r in results[WARM_UP:])
    assert all(0.02 < r.energy < 0.5 for r in results[1:])
    for r in results:
        for b in r.blobs:
            x, y, w, h = b.box
            assert 0 <= x and 0 <= y and x + w <= W + 2 and y + h <= H + 2


@pytest.mark.parametrize("size", [(1280, 720), (640, 480), (320, 180)])
def test_any_frame_size_and_a_size_change(size):
    motion = MotionDetector()
    width, height = size
    frame = np.zeros((height, width, 3), np.uint8)
    result = motion.update(frame, 0.0)
    assert result.mask.shape == (round(WORK_WIDTH * height / width), WORK_WIDTH)
    assert motion.update(empty_street(), 0.2).relearned  # the camera changed: a new model
    big = mask_at(result.mask, width, height)
    assert big.shape == (height, width) and big.dtype == np.uint8
