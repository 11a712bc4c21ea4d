"""The scene analyser end to end on real footage: a walker cut from OpenCV's vtest street
(see tests/data/vision/README.md) placed on the empty street with sensor noise, so the truth is
known (empty → person → empty, standing still, 50-100 px tall, two at once), and the real
street clip with 3-10 walkers. Both paths: mediapipe (where installed) and without it."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
from vision_footage import DATA, H, Sensor, W, empty_street, letterboxed, paste_walker, photo, street_frames, visit

from installation.core.messages import Scene
from installation.show import VisionConfig
from installation.vision import people as people_module
from installation.vision.analyzer import PARTS, SceneAnalyzer
from installation.vision.faces import mediapipe_solutions

HAS_MEDIAPIPE = mediapipe_solutions() is not None
DT = 0.2  # 5 Hz, the default rate
ON_S, HOLD_S = 0.5, 5.0  # the defaults


def analyzer(**kwargs) -> SceneAnalyzer:
    sweep = kwargs.pop("sweep", True)
    options = {"enabled": True, "faces": "off", "silhouette": "background", **kwargs}
    return SceneAnalyzer(VisionConfig(**options), sweep=sweep)


def scenes(a: SceneAnalyzer, frames, t0: float = 0.0) -> list[tuple[Scene, tuple | None]]:
    out = []
    for i, (frame, box) in enumerate(frames):
        out.append((a.analyze(frame, t=t0 + i * DT, source_t=t0 + i * DT), box))
    return out


def first(flags: list[bool], value: bool = True) -> int:
    return flags.index(value)


def test_empty_then_a_visitor_then_empty_turns_presence_on_and_off():
    a = analyzer()
    run = scenes(a, visit(empty=15, walk_in=35, walk_out=40, after=50))
    present = [s.presence for s, _ in run]
    visible = [box is not None for _, box in run]
    assert not any(present[:15])
    entered, left = first(visible), len(visible) - first(visible[::-1])
    turned_on = first(present)
    # on within a second or two of the walker stepping in (blob, HOG, presence_on_s)
    assert entered * DT + ON_S <= turned_on * DT <= entered * DT + ON_S + 2.0
    turned_off = first(present[turned_on:], False) + turned_on
    assert all(present[turned_on:turned_off])
    # off once it has been gone for presence_hold_s (plus the track's own sighting window)
    assert left * DT + HOLD_S <= turned_off * DT <= left * DT + HOLD_S + people_module.SIGHTING_S + 1.0
    assert not any(present[turned_off:])
    assert {s.people for s, _ in run if s.presence} == {1}
    assert all(s.people == 0 and s.persons == () for s, _ in run if not s.presence)


def test_a_still_empty_place_stays_nobody_for_the_whole_run():
    """600 frames (2 minutes at 5 Hz) of the empty street with sensor noise, the full-frame
    sweep on: never a person, and the slow sweep finds nobody either."""
    a = analyzer()
    sensor = Sensor(5)
    for i in range(600):
        scene = a.analyze(sensor(empty_street()), t=i * DT)
        assert not scene.presence and scene.people == 0 and scene.persons == ()
        assert scene.silhouette is not None and not scene.silhouette.any()
    assert scene.motion == "still"


@pytest.fixture(scope="module")
def still_visitor():
    """The walker walks in and stands still for 2 minutes."""
    return scenes(analyzer(), visit(empty=10, walk_in=20, still=600, seed=6))


def test_a_still_visitor_stays_somebody(still_visitor):
    present = [s.presence for s, _ in still_visitor]
    on = first(present)
    assert on * DT < 10 * DT + 2.5
    assert all(present[on:])
    assert all(s.people == 1 for s, _ in still_visitor[on + 10:])
    assert still_visitor[-1][0].motion == "still"


def test_the_background_silhouette_covers_the_still_visitor_and_not_the_street(still_visitor):
    _, _, truth = paste_walker(empty_street(), 75, 60 + 8 * 20, 300)
    for scene, box in still_visitor[-300::50]:
        mask = scene.silhouette
        assert mask is not None and mask.shape == (H, W) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        person = mask > 0
        x, y, w, h = box
        grown = np.zeros_like(person)
        grown[max(0, y - 8):y + h + 8, max(0, x - 8):x + w + 8] = True
        assert (person & truth).sum() / truth.sum() > 0.8  # covers the person
        assert (person & ~grown).sum() == 0  # and nothing of the street beyond its outline
        assert person.sum() < 2.5 * truth.sum()


@pytest.mark.parametrize("height,start_x,feet,where", [
    (50, 450, 230, "right"), (60, 60, 200, "left"), (75, 470, 300, "right"), (100, 230, 350, "centre")])
def test_people_50_to_100_px_tall_are_counted(height, start_x, feet, where):
    a = analyzer(sweep=False)
    run = scenes(a, visit(empty=10, walk_in=30, height=height, start_x=start_x, feet=feet, step=4, seed=height))
    settled = run[22:]
    assert all(s.presence and s.people == 1 for s, _ in settled)
    for scene, box in settled:
        assert len(scene.persons) == 1
        person = scene.persons[0]
        assert person.kind == "body" and person.distance == "far"
        px, py, pw, ph = person.box
        assert abs(px + pw / 2 - (box[0] + box[2] / 2)) < box[2] and abs(py + ph - (box[1] + box[3])) < 0.3 * height
        assert 0.7 * height < ph < 1.4 * height
    assert run[-1][0].persons[0].where == where


def test_two_visitors_are_counted_as_two_without_flicker():
    """One walks in and stands still, another walks on further off; the stable count goes up
    once or twice and never back and forth."""
    a = analyzer(sweep=False)
    sensor = Sensor(7)
    street = empty_street()
    frames = [sensor(street) for _ in range(10)]
    for i in range(60):
        frame, _, _ = paste_walker(street, 75, 120 + 4 * min(i, 20), 300)
        frame, _, _ = paste_walker(frame, 60, 600 - 5 * i, 200)
        frames.append(sensor(frame))
    counts = [s.people for s, _ in scenes(a, [(f, None) for f in frames])]
    assert counts[-20:] == [2] * 20
    changes = [(x, y) for x, y in zip(counts, counts[1:], strict=False) if x != y]
    assert changes in ([(0, 2)], [(0, 1), (1, 2)]), changes


def test_someone_standing_still_from_the_start_is_found_by_the_sweep():
    a = analyzer()
    sensor = Sensor(8)
    frame, _, _ = paste_walker(empty_street(), 75, 250, 300)
    present = [a.analyze(sensor(frame), t=i * DT).presence for i in range(80)]
    on = first(present)
    assert on * DT <= people_module.SWEEP_FIRST_S + 1.5
    assert all(present[on:])


@pytest.mark.parametrize("picture", ["figure", "face"])
def test_a_figure_or_face_that_never_moves_is_taken_for_a_picture(monkeypatch, picture):
    """A figure found by the sweep, or a face on the wall, that never moves for
    NEVER_MOVED_MAX_S: dropped, and not taken for a visitor again at that place."""
    monkeypatch.setattr(people_module, "NEVER_MOVED_MAX_S", 6.0)
    monkeypatch.setattr(people_module, "SWEEP_EVERY_S", 4.0)
    sensor = Sensor(9)
    if picture == "figure":
        a = analyzer(presence_hold_s=1.0)
        frame, _, _ = paste_walker(empty_street(), 75, 250, 300)
    else:
        a = analyzer(presence_hold_s=1.0, faces="haar")
        frame = letterboxed(photo("astronaut"))[0]
    present = [a.analyze(sensor(frame), t=i * DT).presence for i in range(100)]
    assert any(present[:40])
    assert not any(present[50:])


def test_the_street_clip_counts_its_walkers_and_moves():
    """The real street: 3-10 walkers 50-80 px tall. The count follows the crowd, slowly."""
    a = analyzer()
    run = [a.analyze(frame, t=i * DT) for i, frame in enumerate(street_frames())]
    assert all(s.presence for s in run[10:])
    counts = [s.people for s in run[25:]]
    assert 3 <= np.median(counts) <= 9 and min(counts) >= 2 and max(counts) <= 10
    changes = sum(x != y for x, y in zip(counts, counts[1:], strict=False))
    assert changes <= len(counts) / 8  # a change every ~2 s at most, on average
    assert all(s.motion == "calm" for s in run[5:])
    assert all(p.distance == "far" and p.kind == "body" for s in run for p in s.persons)
    assert {p.where for s in run for p in s.persons} == {"left", "centre", "right"}


def test_scene_fields_and_timings():
    a = analyzer()
    frames = list(visit(empty=5, walk_in=10))
    run = scenes(a, frames)
    scene = run[-1][0]
    assert scene.colours and scene.colours[0] in ("green", "grey")
    assert scene.light == "bright" and 0.3 < scene.brightness < 0.7
    assert scene.source_t == scene.t == (len(frames) - 1) * DT
    timings = a.timings()
    assert tuple(timings) == PARTS
    assert all(len(v) == len(frames) and all(ms >= 0 for ms in v) for v in timings.values())
    assert all(timings["total"][i] >= timings["motion"][i] + timings["people"][i] for i in range(len(frames)))


def test_frames_larger_than_640_come_back_in_their_own_pixels():
    a = analyzer(sweep=False)
    big = []
    for frame, box in visit(empty=10, walk_in=25, still=5):
        big.append((np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1), box))
    scene, box = scenes(a, big)[-1]
    assert scene.silhouette is not None and scene.silhouette.shape == (2 * H, 2 * W)
    px, py, pw, ph = scene.persons[0].box
    assert abs(px + pw / 2 - 2 * (box[0] + box[2] / 2)) < 2 * box[2] and 1.4 * 75 < ph < 2.8 * 75


def test_a_camera_that_changes_size_does_not_stop_the_stage():
    a = analyzer(sweep=False)
    a.analyze(empty_street().copy(), t=0.0)
    scene = a.analyze(np.zeros((480, 640, 3), np.uint8), t=0.2)
    assert scene.silhouette is not None and scene.silhouette.shape == (480, 640)


def test_a_frame_that_is_not_bgr_is_a_clear_error():
    with pytest.raises(ValueError, match=r"vision: expected a BGR uint8 frame \(H, W, 3\), got float32"):
        analyzer().analyze(np.zeros((H, W, 3), np.float32), t=0.0)


def test_off_means_no_faces_and_no_silhouette():
    a = analyzer(silhouette="off")
    assert a.faces_kind == "off" and a.silhouette_kind == "off" and a.notes() == []
    assert a.analyze(empty_street().copy(), t=0.0).silhouette is None


def test_without_mediapipe_the_stage_uses_haar_and_background(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    a = SceneAnalyzer(VisionConfig(enabled=True, faces="auto", silhouette="segmentation"))
    assert a.faces_kind == "haar" and a.silhouette_kind == "background"
    assert len(a.notes()) == 2 and all("mediapipe is not installed" in n for n in a.notes())
    auto = SceneAnalyzer(VisionConfig(enabled=True, faces="haar", silhouette="auto"))
    assert auto.notes() == [] and auto.silhouette_kind == "background"


@pytest.mark.parametrize("faces,silhouette", [
    ("haar", "background"),
    pytest.param("auto", "auto", marks=pytest.mark.skipif(not HAS_MEDIAPIPE, reason="mediapipe not installed"))])
def test_a_visitor_close_to_the_lens_is_a_near_face(faces, silhouette):
    """The astronaut's portrait filling a 640x360 frame: a face, near, in the centre."""
    a = SceneAnalyzer(VisionConfig(enabled=True, faces=faces, silhouette=silhouette))
    image = letterboxed(photo("astronaut"))[0]
    sensor = Sensor(10)
    run = [a.analyze(sensor(image), t=i * DT) for i in range(8)]
    assert run[-1].presence and run[-1].people == 1
    person = run[-1].persons[0]
    assert (person.kind, person.where, person.distance) == ("face", "centre", "near")


def test_the_visit_clip_for_headless_runs_turns_presence_on_then_off():
    """tests/data/vision/vtest_visit.mp4: empty, the walker walks in, stands, walks out, empty."""

    capture = cv2.VideoCapture(str(DATA / "vtest_visit.mp4"))
    a = analyzer()
    present = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        present.append(a.analyze(frame, t=len(present) * DT).presence)
    assert len(present) == 200
    on = first(present)
    off = first(present[on:], False) + on
    assert 40 < on < 60 and 130 < off < 190 and all(present[on:off]) and not any(present[off:])
