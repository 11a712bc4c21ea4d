"""Attract mode and opening hours through the real App (issue #11): a headless show with the
preview generator on a background thread (SDL's dummy driver), real street footage, real
images and OSC over loopback UDP.

- Nobody there: after `after_s` the still (a real photograph) fills the screen with its caption
  and the generator rests; a transcript ends it and the pictures come back.
- The prompt cycle paints attract's prompts; an operator's control ends it and the show's own
  prompt is painted again, exactly.
- A camera on an empty street: attract starts; a walker comes in, presence turns on and ends it.
- `/jadong/hours/override closed` over OSC: the generator stops painting, the screen fades to
  black, words heard are dropped, the status says closed; `auto` opens it again.
- A show closed all week with a real microphone (a spoken wish, tiny.en): nothing is transcribed
  until staff open it.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from installation.app import App, RunOptions
from installation.core.messages import Transcript
from installation.display.presenter import fit_cover
from installation.harness import start_show_thread, stop_show_thread
from installation.show import PROJECT_ROOT, parse_show
from peers import Peer, read_events, wait_for, wait_until

pytestmark = pytest.mark.slow

STILL = PROJECT_ROOT / "tests" / "data" / "vision" / "vtest_empty.jpg"  # the empty street, a real photograph
SCREEN = (320, 180)


def show(**sections) -> dict:
    base = {
        "show": {"name": "attract-e2e"},
        "camera": {"source": "none"},
        "microphone": {"source": "none"},
        "speech": {"enabled": False},
        "prompt": {"initial": "a quiet garden at dawn"},
        "generator": {"kind": "preview", "width": 128, "height": 128, "max_fps": 15},
        "display": {"mode": "headless", "width": SCREEN[0], "height": SCREEN[1], "fps": 30, "crossfade_s": 0.1},
        "osc": {"enabled": False},
    }
    return {**base, **sections}


def painted(app: App) -> int:
    """Frames the generator has painted so far."""
    return app.generator_worker.rate_meter.count


def top(image: np.ndarray) -> np.ndarray:
    """The screen above the caption band."""
    return image[: int(image.shape[0] * 0.55)].astype(np.int16)


def start(tmp_path: Path, sections: dict) -> tuple[App, object, Path]:
    log = tmp_path / "events.jsonl"
    app, thread = start_show_thread(parse_show(show(**sections), tmp_path / "attract-e2e.toml"),
                                    RunOptions(log_path=log, seconds=60))
    return app, thread, log


def test_a_still_shows_while_nobody_is_there_and_a_transcript_ends_it(tmp_path, no_thread_leak):
    app, thread, log = start(tmp_path, {"attract": {"enabled": True, "after_s": 1.0, "behaviour": "still",
                                                    "image": str(STILL), "caption": "Say a wish", "fade_s": 0.3}})
    try:
        on = wait_for(log, lambda r: r["event"] == "attract" and r["state"] == "on", 10, "attract on")
        assert on["why"] == "nobody for 1 s" and on["behaviour"] == "still"
        time.sleep(0.8)  # the fade (0.3 s) and the presenter's crossfade are over
        still = fit_cover(cv2.cvtColor(cv2.imread(str(STILL)), cv2.COLOR_BGR2RGB), SCREEN)
        shown = app.presenter.screenshot()
        assert np.abs(top(shown) - top(still)).mean() < 3.0  # the photograph itself, not a generated frame
        band = slice(int(SCREEN[1] * 0.8), SCREEN[1])  # the caption darkens the bottom and writes on it
        assert np.abs(shown[band].astype(int) - still[band].astype(int)).mean() > 5
        resting = painted(app)
        time.sleep(0.6)
        assert painted(app) - resting <= 1  # the generator rests while the still shows (one may be in flight)
        assert app.generator_worker.paused.is_set()

        app.transcripts.put(Transcript(text="a red fox in the snow"))  # as the speech stage hands it over
        off = wait_for(log, lambda r: r["event"] == "attract" and r["state"] == "off", 5, "attract off")
        assert off["why"] == "speech" and off["lasted_s"] > 0.5
        wait_until(lambda: painted(app) > resting + 3, 5, "painting again")
        time.sleep(0.5)
        assert np.abs(top(app.presenter.screenshot()) - top(still)).mean() > 10  # the pictures are back
        assert app.state.prompt.text == "a red fox in the snow"
    finally:
        assert stop_show_thread(app, thread)


def test_the_prompt_cycle_ends_with_an_operators_control_and_the_shows_prompt_comes_back(tmp_path, no_thread_leak):
    attract = {"enabled": True, "after_s": 1.0, "prompts": ["a lantern in the fog", "a door left ajar"],
               "prompt_s": 1.0, "caption": "Say a wish"}
    # Two streams on two outputs: attract invites people in on both.
    streams = {"streams": [{"name": "one"}, {"name": "two", "template": "{speech}, in ink"}],
               "outputs": [{"stream": 1}, {"stream": 2}]}
    app, thread, log = start(tmp_path, {"attract": attract, "osc": {"enabled": True, "port": 0}, **streams})
    second = app.streams.slots[1]
    try:
        before = app.state.prompt
        own = second.prompt.get().text  # stream 2's own words before attract
        wait_for(log, lambda r: r["event"] == "attract" and r["state"] == "on", 10, "attract on")
        wait_until(lambda: app.frame_slot.get().prompt.text == "a door left ajar", 6, "the cycle's second prompt")
        wait_until(lambda: second.frame.get().prompt.text == "a door left ajar", 6, "stream 2 invites people too")
        on_screen = app.presenter.current_frame  # the generated frame with attract's caption over it
        assert on_screen.image.shape == (SCREEN[1], SCREEN[0], 3) and on_screen.prompt.source == "attract"
        assert not app.generator_worker.paused.is_set()  # prompts are painted: the generator works
        assert app.state.prompt is before  # the show's state never held attract's prompts
        peer = Peer(app.osc.port, recv_timeout=5.0)
        peer.send("/jadong/strength", 0.6)  # an operator is at the controls
        peer.close()
        off = wait_for(log, lambda r: r["event"] == "attract" and r["state"] == "off", 5, "attract off")
        assert off["why"] == "operator /jadong/strength"
        wait_until(lambda: app.frame_slot.get().prompt.text == before.text, 5, "the show's prompt painted again")
        wait_until(lambda: second.frame.get().prompt.text == own, 5, f"stream 2's own words again ({own!r})")
        assert app.state.prompt is before and app.state.params.strength == pytest.approx(0.6)
        prompts = [r for r in read_events(log) if r["event"] == "prompt"]
        assert {p["text"] for p in prompts if p["source"] == "attract"} == set(attract["prompts"])
        assert (prompts[-1]["text"], prompts[-1]["source"]) == (before.text, before.source)
    finally:
        assert stop_show_thread(app, thread)


def street_visit(path: Path) -> Path:
    """2 s of the empty street, then a walker comes in (tests/vision/vision_footage.py: the real
    street and a real walker cut out of it), 5 fps."""
    from vision.vision_footage import visit

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (640, 360))
    for frame, _ in visit(empty=10, walk_in=45, step=6):
        writer.write(frame)
    writer.release()
    return path


def test_nobody_on_camera_starts_attract_and_a_visitor_walking_in_ends_it(tmp_path, no_thread_leak):
    camera = street_visit(tmp_path / "visit.mp4")
    sections = {"camera": {"source": str(camera), "loop": False},
                "vision": {"enabled": True, "faces": "off", "presence_on_s": 0.3, "presence_hold_s": 5},
                "attract": {"enabled": True, "after_s": 1.0, "prompts": ["an empty street at night"],
                            "caption": "Come closer"}}
    app, thread, log = start(tmp_path, sections)
    try:
        on = wait_for(log, lambda r: r["event"] == "attract" and r["state"] == "on", 10, "attract on")
        off = wait_for(log, lambda r: r["event"] == "attract" and r["state"] == "off", 15, "attract off")
        assert off["why"] == "presence" and off["mono"] > on["mono"]
        seen = wait_for(log, lambda r: r["event"] == "scene" and r["presence"], 1, "presence")
        assert seen["mono"] <= off["mono"] + 0.1  # ended by the scene turning present, within a frame or so
        assert not app.control.unattended.attracting
    finally:
        assert stop_show_thread(app, thread)


def test_the_hours_override_over_osc_closes_the_show_and_auto_opens_it(tmp_path, no_thread_leak):
    sections = {"osc": {"enabled": True, "port": 0},
                "hours": {"closed": "black", "fade_s": 0.3, "caption": ""}}
    app, thread, log = start(tmp_path, sections)
    peer = Peer(app.osc.port, recv_timeout=5.0)
    try:
        wait_until(lambda: painted(app) > 3, 5, "painting")
        assert peer.status()["/jadong/status/open"] == [1]
        peer.send("/jadong/hours/override", "closed")
        closed = wait_for(log, lambda r: r["event"] == "hours", 5, "the hours event")
        assert closed["state"] == "closed" and closed["override"] == "closed" and closed["by"].startswith("osc ")
        time.sleep(0.6)  # the fade to black is over
        resting = painted(app)
        assert app.presenter.screenshot().max() <= 2  # black
        app.transcripts.put(Transcript(text="a wish nobody should keep"))
        time.sleep(1.6)  # past the rate meter's 2 s window since closing
        assert painted(app) - resting <= 1 and app.generator_worker.status().rate == 0.0
        assert app.state.prompt.text == "a quiet garden at dawn"  # the words heard while closed were dropped
        assert not any(r["event"] == "transcript" for r in read_events(log))
        values = peer.status()
        assert values["/jadong/status/open"] == [0] and values["/jadong/status/attract"] == [0]
        assert values["/jadong/status/fps/generator"] == [0.0]  # the GPU idles

        peer.send("/jadong/hours/override", "auto")
        wait_until(lambda: painted(app) > resting + 3, 5, "painting again")
        time.sleep(0.6)
        assert app.presenter.screenshot().mean() > 20
        opened = [r for r in read_events(log) if r["event"] == "hours"][-1]
        assert opened["state"] == "open" and opened["override"] == "auto"
        assert peer.status()["/jadong/status/open"] == [1]
    finally:
        peer.close()
        assert stop_show_thread(app, thread)


def test_nothing_heard_is_transcribed_while_closed_and_the_ear_opens_with_the_show(tmp_path):
    """Real speech (espeak-ng through the microphone's WAV stand-in, looped) and tiny.en: a show
    closed all week hears nothing; opened by staff, the same wish is transcribed. (No thread-leak
    check: faster-whisper's download progress leaves tqdm's monitor thread behind.)"""
    from media import wishes_wav

    wav = wishes_wav(["a red fox in the snow"], tmp_path, pause_s=1.0)
    sections = {"microphone": {"source": str(wav), "loop": True},
                "speech": {"model": "tiny.en", "language": "en", "vad": "energy", "end_silence_ms": 400},
                "osc": {"enabled": True, "port": 0},
                "hours": {"default": "closed", "closed": "black", "fade_s": 0.2}}
    app, thread, log = start(tmp_path, sections)
    peer = Peer(app.osc.port, recv_timeout=5.0)
    try:
        closed = wait_for(log, lambda r: r["event"] == "hours", 5, "the hours event")
        assert closed["state"] == "closed" and closed["why"] == "start" and closed["until"] is None  # never opens
        wait_until(lambda: app.speech_worker is not None and app.speech_worker.ready, 20, "speech loaded")
        assert not app.speech_worker.listening and app.state.listening  # the show would listen; the hours do not
        time.sleep(3.5)  # the wish (about 2 s) plays through at least once
        assert not [r for r in read_events(log) if r["event"] in ("heard", "partial", "transcript")]
        peer.send("/jadong/hours/override", "open")
        # The ear may open in the middle of the looped wish: that fragment ("No.") is heard as it
        # is; the next whole wish is transcribed.
        wait_for(log, lambda r: r["event"] == "transcript" and "snow" in r["text"].lower(), 20,
                 "the wish transcribed once open")
        assert app.speech_worker.listening
    finally:
        peer.close()
        assert stop_show_thread(app, thread)
