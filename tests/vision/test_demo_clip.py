"""The bundled stand-in camera, assets/demo_loop.mp4 (scripts/make_demo_video.py: scikit-image's
astronaut portrait swaying before a warm wall), counts as somebody: played as the vision stage
samples a camera (5 analyses a second of clip time, looping), presence turns on within a second
and a half and stays on, with one person. And the clip loops without a jump."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from installation.show import PROJECT_ROOT, VisionConfig
from installation.vision.analyzer import SceneAnalyzer
from installation.vision.faces import mediapipe_solutions

DEMO = PROJECT_ROOT / "assets" / "demo_loop.mp4"
FPS, FRAMES = 30, 150  # 5 s at 640x360
RATE_HZ = 5  # the vision stage's default rate: every 6th frame
LOOPS = 2
PRESENCE_BY_S = 1.5  # clip time: presence_on_s (0.5) plus a face detected twice, with room to spare
SEAM_SLACK = 1.5  # the seam may differ this much more than neighbouring frames do


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(DEMO))
    assert cap.isOpened(), f"{DEMO} does not open: run scripts/make_demo_video.py"
    try:
        assert cap.get(cv2.CAP_PROP_FPS) == FPS
        out = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            out.append(frame)
    finally:
        cap.release()
    assert len(out) == FRAMES and out[0].shape == (360, 640, 3)
    return out


@pytest.mark.parametrize("faces", ["haar", "auto"])
def test_the_demo_visitor_is_present_from_the_first_second_and_a_half(frames, faces):
    if faces == "auto" and mediapipe_solutions() is None:
        pytest.skip("mediapipe is not installed: the default face detector is the Haar cascade, tested above")
    analyzer = SceneAnalyzer(VisionConfig(enabled=True, faces=faces))
    try:
        assert analyzer.faces_kind == ("haar" if faces == "haar" else "mediapipe")
        step = FPS // RATE_HZ
        sampled = [frame for _ in range(LOOPS) for frame in frames[::step]]
        times = [i / RATE_HZ for i in range(len(sampled))]
        scenes = [analyzer.analyze(frame, t=t, source_t=t) for frame, t in zip(sampled, times, strict=True)]
    finally:
        analyzer.close()
    present = [s.presence for s in scenes]
    assert True in present, f"presence never turned on over {LOOPS} loops of {DEMO.name} (faces={faces})"
    on = present.index(True)
    assert times[on] <= PRESENCE_BY_S, f"presence turned on only at {times[on]:.1f} s of clip time"
    assert all(present[on:]), f"presence dropped at {times[present.index(False, on)]:.1f} s"
    assert {s.people for s in scenes[on:]} == {1}
    # one visitor, close to the lens (a face ~110-125 px tall at 640x360)
    assert all(len(s.persons) == 1 and s.persons[0].distance == "near" for s in scenes[on:])


def suit_x(frame: np.ndarray) -> float:
    """Where the figure is: the mean column of its orange suit (hue <= 15, saturated), a measure
    neither the sensor grain nor the codec moves."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    columns = np.nonzero((hsv[..., 0] <= 15) & (hsv[..., 1] >= 150) & (hsv[..., 2] >= 100))[1]
    assert columns.size > 0.02 * frame.shape[0] * frame.shape[1], "the figure's orange suit is not in the frame"
    return float(columns.mean())


def test_the_demo_clip_loops_without_a_jump(frames):
    # Frame 0 must follow the last frame as any frame follows the one before it. The yardstick is
    # the clip's mean step, not the steps beside the seam: the seam falls in a slow moment, and
    # frame 0 is a keyframe, where the codec refreshes what it let drift (~2 grey levels, as at
    # every keyframe in the clip) even where nothing moves.
    def mad(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())

    steps = [mad(a, b) for a, b in zip(frames, frames[1:])]
    seam = mad(frames[-1], frames[0])
    assert seam <= SEAM_SLACK * float(np.mean(steps)), (seam, float(np.mean(steps)))
    # ...and the figure does not jump: its step across the seam is like its steps within the clip.
    xs = [suit_x(frame) for frame in frames]
    moves = np.abs(np.diff(xs))
    assert moves.max() > 2.0  # it does sway
    assert abs(xs[0] - xs[-1]) <= SEAM_SLACK * float(moves.mean()), (abs(xs[0] - xs[-1]), float(moves.mean()))
