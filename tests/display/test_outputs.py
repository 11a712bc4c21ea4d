"""The outputs of a show with [[outputs]] (display/outputs.py), headless: each output presents its
own stream through a presenter of its own, at its own size and rate, with the show's caption,
HUD and blackout where it has them; a record output writes its stream to a file (read back with
OpenCV). Windows on real screens are tested under Xvfb (test_windows_xvfb.py)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from installation.core.messages import GeneratedFrame, GenerationParams, Prompt
from installation.display.outputs import NDI_AND_RECORD_FPS, Output, build_outputs, plan_outputs
from installation.display.presenter import fit_cover
from installation.show import DisplayConfig, parse_show

RED, BLUE = (220, 30, 30), (30, 40, 220)


def frame(colour: tuple[int, int, int], size: tuple[int, int] = (512, 512)) -> GeneratedFrame:
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[:] = colour
    img[: size[1] // 2, : size[0] // 2] = (250, 250, 250)  # a white quarter: where the picture is placed
    return GeneratedFrame(img, Prompt("x"), GenerationParams(), "test", "")


def show_with(outputs: list[dict[str, Any]], **display: Any) -> Any:
    return parse_show({"display": {"crossfade_s": 0, "fps": 30, **display},
                       "streams": [{"name": "one"}, {"name": "two"}], "outputs": outputs})


def test_unset_keys_follow_display_and_headless_makes_every_screen_headless(tmp_path):
    show = show_with([{"stream": "two", "monitor": 1, "mode": "windowed", "width": 800, "height": 600, "hud": True},
                      {"stream": 1},
                      {"kind": "record", "path": str(tmp_path / "a.mp4"), "stream": 2, "caption": False},
                      {"kind": "ndi", "name": " Jadong left ", "alpha": True, "fps": 25}],
                     width=1024, height=576, caption=True, monitor=0)
    plans = plan_outputs(show)
    assert [(p.kind, p.stream, p.display.mode, p.display.monitor) for p in plans] == [
        ("screen", 2, "windowed", 1), ("screen", 1, "fullscreen", 0), ("record", 2, "headless", 0),
        ("ndi", 1, "headless", 0)]
    assert [(p.display.width, p.display.height) for p in plans] == [(800, 600), (1024, 576), (1024, 576),
                                                                    (1024, 576)]
    assert [p.display.fps for p in plans] == [30, 30, NDI_AND_RECORD_FPS, 25]
    assert [p.display.caption for p in plans] == [True, True, False, True]
    assert [p.display.hud for p in plans] == [True, False, False, False]
    assert plans[2].record_path == tmp_path / "a.mp4" and plans[3].ndi_name == "Jadong left" and plans[3].ndi_alpha
    assert plans[0].label == "output 1 (windowed on monitor 1, stream 2)"
    # What --headless does: [display] mode = "headless" for a rehearsal without screens.
    show.display.mode = "headless"
    assert [p.display.mode for p in plan_outputs(show)][:2] == ["headless", "headless"]
    assert show.outputs[0].mode == "windowed"  # the show itself is not changed


def test_each_output_presents_its_own_stream_at_its_own_size(tmp_path):
    record = tmp_path / "two.avi"
    show = show_with([{"stream": 1, "mode": "headless", "width": 640, "height": 360},
                      {"stream": 2, "mode": "headless", "width": 320, "height": 240, "caption": False},
                      {"kind": "record", "stream": 2, "path": str(record), "width": 320, "height": 240, "fps": 15}])
    events: list[tuple[str, dict]] = []
    outputs = build_outputs(show, "outputs test", on_event=lambda e, **f: events.append((e, f))).open()
    try:
        frames = {1: frame(RED), 2: frame(BLUE)}
        outputs.show_frames(frames)
        outputs.set_caption("hello, garden")
        for _ in range(20):
            outputs.render()
        shots = [o.presenter.screenshot() for o in outputs.outputs]
        assert [s.shape[:2] for s in shots] == [(360, 640), (240, 320), (240, 320)]
        for shot, stream in zip(shots, (1, 2, 2)):
            want = fit_cover(frames[stream].image, (shot.shape[1], shot.shape[0]))
            assert np.array_equal(shot[: shot.shape[0] // 2], want[: shot.shape[0] // 2]), stream  # above the caption
        # The caption band shows on output 1 only (output 2 says caption = false; the record output follows it).
        assert not np.array_equal(shots[0][-60:], fit_cover(frames[1].image, (640, 360))[-60:])
        assert np.array_equal(shots[1], fit_cover(frames[2].image, (320, 240)))
        assert [o.presenter.current_frame for o in outputs.outputs] == [frames[1], frames[2], frames[2]]
        assert outputs.current_frame is frames[1] and outputs.primary is outputs.outputs[0].presenter
        assert [f["number"] for e, f in events if e == "output"] == [1, 2, 3]
        assert events[2][1] | {"size": [320, 240]} == events[2][1]
        assert events[2][1]["path"] == str(record)
    finally:
        outputs.close()
    cap = cv2.VideoCapture(str(record))
    try:
        ok, bgr = cap.read()
    finally:
        cap.release()
    assert ok and bgr.shape == (240, 320, 3)
    assert np.abs(bgr[200, 280].astype(int) - BLUE[::-1]).max() < 30  # stream 2's colour, as BGR


def test_the_screen_controls_reach_every_output_where_the_show_has_them(tmp_path):
    show = show_with([{"stream": 1, "mode": "headless"}, {"stream": 2, "mode": "headless", "caption": False},
                      {"kind": "record", "path": str(tmp_path / "r.avi")}], hud=False)
    outputs = build_outputs(show, "screen test").open()
    try:
        outputs.set_caption_visible(False)
        assert [p.caption_visible for p in outputs.presenters] == [False, False, False]
        outputs.set_caption_visible(True)
        assert outputs.caption_visible and [p.caption_visible for p in outputs.presenters] == [True, False, True]
        outputs.set_hud_visible(True)  # the staff's view: screens, not a recording that does not ask for it
        assert outputs.hud_visible and [p.hud_visible for p in outputs.presenters] == [True, True, False]
        outputs.set_crossfade(2.5)
        assert outputs.crossfade_s == 2.5 and all(p.crossfade_s == 2.5 for p in outputs.presenters)
        outputs.set_blackout(True)
        assert all(p.blackout_level() == 1.0 for p in outputs.presenters)
        outputs.show_frames({1: frame(RED), 2: frame(BLUE)})
        outputs.render()
        assert all(not p.screenshot().any() for p in outputs.presenters)  # black everywhere
        outputs.take_display(DisplayConfig(crossfade_s=0.1, caption_seconds=3.0))  # another show's [display]
        assert all(p.cfg.crossfade_s == 0.1 and p.cfg.caption_seconds == 3.0 for p in outputs.presenters)
    finally:
        outputs.close()


def test_an_output_presents_at_its_own_rate_whatever_the_loops():
    show = show_with([{"stream": 1, "mode": "headless", "fps": 10}, {"stream": 2, "mode": "headless"}])
    out = Output(plan_outputs(show)[0], None, None)  # type: ignore[arg-type]
    assert [t for t in (0.0, 0.03, 0.06, 0.0995, 0.13, 0.2, 0.25, 0.3) if out.due(t)] == [0.0, 0.0995, 0.2, 0.3]
    assert out.due(5.0) and not out.due(5.05) and out.due(5.1)  # after a stall, the schedule starts again


def test_without_outputs_the_show_has_its_one_screen_as_before(tmp_path):
    show = parse_show({"display": {"mode": "headless", "width": 320, "height": 240}})
    outputs = build_outputs(show, "single", record=tmp_path / "one.avi", record_fps=10).open()
    try:
        assert outputs.single and len(outputs.outputs) == 1
        p = outputs.primary
        assert p.cfg is show.display and p.size == (320, 240) and p.record_fps == 10 and p.recorder is not None
        outputs.show_frames({1: frame(RED)})
        outputs.render()
        assert p.current_frame is not None and outputs.seen
    finally:
        outputs.close()


@pytest.mark.parametrize("path", ["out.txt"])
def test_a_record_output_that_cannot_record_says_why_and_the_others_go_on(tmp_path, path):
    show = show_with([{"stream": 1, "mode": "headless"}, {"kind": "record", "stream": 2, "path": str(tmp_path / path)}])
    events: list[tuple[str, dict]] = []
    outputs = build_outputs(show, "bad record", on_event=lambda e, **f: events.append((e, f))).open()
    try:
        reported = [f for e, f in events if e == "output" and f["kind"] == "record"]
        assert reported and "reason" in reported[0] and path in reported[0]["reason"]
        outputs.show_frames({1: frame(RED)})
        outputs.render()
        assert outputs.primary.current_frame is not None
    finally:
        outputs.close()


def test_keys_without_a_window_reach_the_first_output():
    import pygame

    show = show_with([{"stream": 1, "mode": "headless"}, {"stream": 2, "mode": "headless"}])
    outputs = build_outputs(show, "keys").open()
    try:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_SPACE))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_c))
        assert outputs.poll_events() == ["go", "toggle_caption"]
        assert [p.caption_visible for p in outputs.presenters] == [False, True]
    finally:
        outputs.close()


def test_pygame_is_stopped_once_every_output_is_closed():
    import pygame

    show = show_with([{"stream": 1, "mode": "headless"}, {"stream": 2, "mode": "headless"}])
    outputs = build_outputs(show, "stop").open()
    assert pygame.display.get_init()
    outputs.close()
    assert not pygame.display.get_init()


def test_a_show_switched_to_keeps_the_open_outputs_and_says_when_its_own_differ():
    running = show_with([{"stream": 1, "mode": "headless"}, {"stream": 2, "mode": "headless"}])
    outputs = build_outputs(running, "switch").open()
    try:
        assert outputs.kept_for(show_with([{"stream": 1, "mode": "headless"}, {"stream": 2, "mode": "headless"}])) == ""
        triptych = show_with([{"stream": 1, "mode": "headless"}, {"stream": 2, "mode": "headless"},
                              {"kind": "ndi", "name": "left"}])
        note = outputs.kept_for(triptych)
        assert "2 outputs" in note and "3 [[outputs]]" in note and "restart" in note
        assert "[[outputs]]" in outputs.kept_for(parse_show({}))  # a show without: still the two open
    finally:
        outputs.close()
    single = build_outputs(parse_show({"display": {"mode": "headless"}}), "single").open()
    try:
        assert single.kept_for(parse_show({"display": {"fps": 60}})) == ""  # [display] is taken over
        assert "1 output" in single.kept_for(triptych)
    finally:
        single.close()
