"""Captures and their archive: what fires one (OSC, the keyboard, a cue, every Nth prompt),
what the sidecar keeps (and, for a show that keeps no visitor's words, what it leaves out), the
index, the quota, the clip, and a write that fails. Real files, real PNG and MP4 encoders, real
signing (control/provenance.py has its own tests of the credentials themselves)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pygame
import pytest

from control.test_control import PEER, RecordingHost, send
from installation.control import show_control
from installation.control.archive import INDEX, Archive, CaptureJob, read_index
from installation.control.capture import WITHHELD, Captures, Trigger, describe
from installation.control.show_control import ShowControl
from installation.core.messages import GeneratedFrame, GenerationParams, Prompt
from installation.show import DisplayConfig, parse_show

VISITOR = "a lighthouse made of glass"  # what a visitor said (English, for the prompt)
VISITOR_OWN = "유리로 만든 등대"  # and in their own words


def show_with(tmp_path: Path, **sections: Any):
    data: dict[str, Any] = {"show": {"name": "harbour", "title": "Harbour"}, "osc": {"enabled": False},
                            "display": {"crossfade_s": 0.5}, "provenance": {"artist": "Kim Jadong"}}
    data.update(sections)
    return parse_show(data, tmp_path / "harbour.toml")


def frame(text: str = "a red square", source: str = "osc", t: float = 1.0, params_t: float = 1.0,
          colour: int = 0, caption: str = "", blend: float = 0.0, size: int = 32) -> GeneratedFrame:
    image = np.zeros((size, size, 3), np.uint8)
    image[..., colour % 3] = 200
    image[0, 0] = (colour * 7) % 256  # each frame its own bytes
    return GeneratedFrame(image, Prompt(text, negative="blurry", source=source, caption=caption, t=t),
                          GenerationParams(seed=11, prompt_blend_s=blend, t=params_t), "preview",
                          "stabilityai/sd-turbo")


def captures_for(tmp_path: Path, events: list | None = None, **sections: Any) -> Captures:
    hook = (lambda event, **fields: events.append((event, fields))) if events is not None else None
    return Captures(show_with(tmp_path, **sections), hook, tmp_path / "captures",
                    credentials_dir=tmp_path / "credentials")


def sidecar(path: Path) -> dict[str, Any]:
    return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


# --- the sidecar -----------------------------------------------------------------------------


def test_a_capture_keeps_the_picture_and_everything_that_made_it(tmp_path):
    events: list = []
    caps = captures_for(tmp_path, events)
    shown = frame("a lighthouse, woodcut", source="speech", caption=VISITOR_OWN)
    path = caps.take(shown, Trigger("osc", "osc 10.0.0.5:53000"), cue="harbour lights", style="woodcut")
    assert caps.flush()
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(rgb, shown.image)  # lossless: the picture as it was on screen
    meta = sidecar(path)
    assert meta["image"] == path.name and meta["prompt"] == "a lighthouse, woodcut" and meta["caption"] == VISITOR_OWN
    assert (meta["negative"], meta["seed"], meta["source"]) == ("blurry", 11, "speech")
    assert meta["model"] == "stabilityai/sd-turbo" and "Stability AI" in meta["model_licence"]
    assert (meta["show"], meta["artist"], meta["cue"], meta["style"]) == ("harbour", "Kim Jadong", "harbour lights",
                                                                          "woodcut")
    assert (meta["trigger"], meta["fired_by"]) == ("osc", "osc 10.0.0.5:53000")
    assert meta["signed"] is True and meta["software"].startswith("Jadong ") and meta["time"][:2] == "20"
    assert meta["params"]["seed"] == 11 and "t" not in meta["params"] and meta["lora"] == ""
    (capture,) = [f for e, f in events if e == "capture"]
    assert capture["path"] == path and capture["trigger"] == "osc" and capture["signed"] is True


def test_a_show_that_keeps_no_visitor_words_writes_none_in_the_sidecar_index_or_event(tmp_path):
    events: list = []
    caps = captures_for(tmp_path, events, capture={"keep_words": False})
    spoken = caps.take(frame(f"{VISITOR}, woodcut", source="speech", caption=VISITOR_OWN), Trigger("key", "keyboard"))
    # /jadong/prompt/append adds to the visitor's words under source "osc": withheld too.
    appended = caps.take(frame(f"{VISITOR}, at night", source="osc", t=2.0), Trigger("key", "keyboard"))
    cued = caps.take(frame("a quiet harbour at dawn", source="cue", t=3.0), Trigger("cue", "clock"))
    assert caps.flush()
    for path in (spoken, appended):
        meta = sidecar(path)
        assert meta["prompt"] == WITHHELD and "caption" not in meta and meta["words_kept"] is False
        assert meta["source"] in ("speech", "osc") and meta["seed"] == 11  # the rest is kept
    assert sidecar(cued)["prompt"] == "a quiet harbour at dawn"  # the artist's own words are
    every_file = b"".join(p.read_bytes() for p in (tmp_path / "captures").iterdir())
    for words in (VISITOR, VISITOR_OWN, "lighthouse", "유리"):
        assert words.encode("utf-8") not in every_file  # sidecars, index and the manifests in the PNGs
        assert words not in json.dumps([f for e, f in events], ensure_ascii=False, default=str)


def test_describe_names_the_shows_own_model_licence_and_lora(tmp_path):
    show = show_with(tmp_path, generator={"model": "/models/mine", "lora": "/models/ink.safetensors",
                                          "lora_scale": 0.7},
                     provenance={"artist": "A", "model_licence": "CC-BY-4.0, the artist's own"})
    meta = describe(frame(), show, Trigger("key", "keyboard"))
    assert meta["model_licence"] == "CC-BY-4.0, the artist's own"
    assert (meta["lora"], meta["lora_scale"]) == ("/models/ink.safetensors", 0.7)


# --- the index and the quota -------------------------------------------------------------------


def test_the_index_lists_every_capture_in_order(tmp_path):
    caps = captures_for(tmp_path)
    paths = [caps.take(frame(colour=i, t=float(i)), Trigger("key", "keyboard"), cue=f"c{i}") for i in range(3)]
    assert caps.flush()
    index = read_index(tmp_path / "captures")
    assert [e["image"] for e in index] == [p.name for p in paths]
    assert [e["cue"] for e in index] == ["c0", "c1", "c2"] and all(e["signed"] for e in index)
    assert all(e["sidecar"] == Path(e["image"]).with_suffix(".json").name and e["bytes"] > 0 for e in index)
    assert len(set(paths)) == 3  # three captures in one millisecond still get three names


def test_the_quota_removes_the_oldest_captures_first(tmp_path):
    folder = tmp_path / "captures"
    folder.mkdir()
    # Captures from an earlier day, oldest first by name, and a file that is not a capture.
    for stamp in ("20240101-100000-000", "20240101-110000-000", "20240102-090000-000"):
        (folder / f"{stamp}.png").write_bytes(b"x" * 600_000)
        (folder / f"{stamp}.json").write_text("{}")
        with open(folder / INDEX, "a") as f:
            f.write(json.dumps({"image": f"{stamp}.png"}) + "\n")
    (folder / "notes.txt").write_bytes(b"y" * 2_000_000)
    events: list = []
    caps = captures_for(tmp_path, events, capture={"quota_mb": 1})
    new = caps.take(frame(size=64), Trigger("key", "keyboard"))
    assert caps.flush()
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(["20240102-090000-000.png", "20240102-090000-000.json", new.name,
                           new.with_suffix(".json").name, INDEX, "notes.txt"])
    assert [e["image"] for e in read_index(folder)] == ["20240102-090000-000.png", new.name]
    (capture,) = [f for e, f in events if e == "capture"]
    assert capture["removed"] == ["20240101-100000-000.png", "20240101-110000-000.png"]


def test_the_capture_just_taken_is_kept_even_alone_over_the_quota(tmp_path):
    archive = Archive(tmp_path, quota_bytes=10)
    path = archive.submit(CaptureJob(archive.reserve(), frame().image, {"show": "x"}))
    assert archive.flush()
    assert path.exists() and sidecar(path)["signed"] is False  # no signer given: kept, and says so


# --- what fires one ----------------------------------------------------------------------------


def test_every_nth_new_prompt_is_captured_once_its_picture_has_settled(tmp_path):
    events: list = []
    caps = captures_for(tmp_path, events, capture={"every_n_prompts": 2})  # crossfade 0.5 s
    now = 100.0
    taken: list[tuple[float, Path]] = []
    first_frame_at: dict[int, float] = {}
    caps.tick(frame("the show's opening words", source="show", t=0.0), now)  # the opening prompt is not new
    for i, source in enumerate(["speech", "osc", "scene", "speech"], start=1):
        for step in range(40):  # one frame every 50 ms for 2 s, as the screen shows them
            now += 0.05
            first_frame_at.setdefault(i, now)
            paths = caps.tick(frame(f"prompt {i}", source=source, t=float(i), params_t=0.5, colour=i * 100 + step,
                                    blend=0.5), now)
            taken += [(now, p) for p in paths]
    assert caps.flush()
    metas = [sidecar(p) for _, p in taken]
    assert [m["prompt"] for m in metas] == ["prompt 2", "prompt 4"] and caps.prompts_seen == 4
    assert [m["trigger"] for m in metas] == ["every_n_prompts"] * 2
    assert metas[0]["fired_by"] == "osc (prompt 2, every 2)" and metas[1]["fired_by"] == "visitor (prompt 4, every 2)"
    # Taken once the blend (0.5 s) and the crossfade (0.5 s) are over, not on the prompt's first frame.
    for (at, _), i in zip(taken, (2, 4)):
        assert 1.0 <= at - first_frame_at[i] < 1.0 + 0.05 + 1e-6


def test_attract_modes_invitations_are_not_counted_as_new_prompts(tmp_path):
    events: list = []
    caps = captures_for(tmp_path, events, capture={"every_n_prompts": 1})
    now = 100.0
    taken: list[Path] = []
    caps.tick(frame("the show's opening words", source="show", t=0.0), now)
    for i, source in enumerate(["attract", "attract", "speech"], start=1):
        for step in range(30):
            now += 0.05
            taken += caps.tick(frame(f"prompt {i}", source=source, t=float(i), colour=i * 100 + step), now)
    assert caps.flush()
    assert [sidecar(p)["trigger"] for p in taken] == ["every_n_prompts"] and caps.prompts_seen == 1


def test_a_cue_with_capture_takes_its_own_picture_and_says_who_fired_it(tmp_path, monkeypatch):
    monkeypatch.setattr(show_control, "CAPTURES_DIR", tmp_path / "captures")
    show = show_with(tmp_path, cues=[{"name": "harbour", "prompt": "a harbour at night", "capture": True},
                                     {"name": "quiet", "caption": "…"}])
    host = RecordingHost()
    ctl = ShowControl(show, host, GenerationParams())
    before = frame("an empty stage", source="show", t=0.0, params_t=0.0)
    host.screen.current_frame = before
    ctl.tick(10.0)
    send(ctl, "/jadong/cue/go", "harbour")
    cue_prompt = host.prompts[-1]
    for k in range(20):  # the old picture stays on screen a while: never captured for the cue
        ctl.tick(10.0 + k * 0.01)
    assert ctl.captures.flush() and not (tmp_path / "captures").exists()
    made = GeneratedFrame(frame().image, cue_prompt, ctl.state.params, "preview", "m")
    host.screen.current_frame = made
    ctl.tick(11.0)  # first seen: settles for the crossfade (0.5 s) first
    ctl.tick(11.4)
    assert ctl.captures.flush() and not (tmp_path / "captures").exists()
    ctl.tick(11.6)
    assert ctl.captures.flush()
    (entry,) = read_index(tmp_path / "captures")
    meta = sidecar(tmp_path / "captures" / entry["image"])
    assert (meta["trigger"], meta["fired_by"], meta["cue"]) == ("cue", f"osc {PEER[0]}:{PEER[1]}", "harbour")
    assert meta["prompt"] == "a harbour at night"
    send(ctl, "/jadong/cue/go", "quiet")  # no capture = true: nothing taken
    for k in range(50):
        ctl.tick(12.0 + k * 0.1)
    assert ctl.captures.flush() and len(read_index(tmp_path / "captures")) == 1


def test_osc_hears_the_path_once_the_file_is_there_and_the_keyboard_captures_too(tmp_path, monkeypatch):
    monkeypatch.setattr(show_control, "CAPTURES_DIR", tmp_path / "captures")
    host = RecordingHost()
    ctl = ShowControl(show_with(tmp_path), host, GenerationParams())
    ctl.capture_key()  # nothing on screen yet: refused in the log, nothing else
    assert host.events[-1][1]["reason"] == "no generated frame on screen yet" and not host.replies
    host.screen.current_frame = frame()
    send(ctl, "/jadong/capture")
    ctl.capture_key()
    assert ctl.captures.flush()
    assert not [r for r in host.replies if r[1] == "/jadong/capture"]  # not before the main thread's next tick
    ctl.tick()
    (reply,) = [r for r in host.replies if r[1] == "/jadong/capture"]
    assert Path(reply[2]).is_file() and sidecar(Path(reply[2]))["trigger"] == "osc"
    assert [e["trigger"] for e in read_index(tmp_path / "captures")] == ["osc", "key"]
    assert [e["fired_by"] for e in read_index(tmp_path / "captures")][1] == "keyboard (p)"


def test_the_presenter_turns_p_into_a_capture_unless_the_keyboard_is_locked():
    from installation.display.presenter import Presenter

    assert Presenter(DisplayConfig(mode="headless"))._key_action(pygame.K_p) == "capture"
    assert Presenter(DisplayConfig(mode="headless", lock_keyboard=True))._key_action(pygame.K_p) is None
    assert Presenter(DisplayConfig(mode="headless"))._key_action(pygame.K_c) == "toggle_caption"  # c stays the caption


def test_a_clip_keeps_the_last_seconds_of_presented_frames(tmp_path):
    caps = captures_for(tmp_path, capture={"clip_s": 1.0})
    now = 0.0
    for i in range(60):  # 3 s at 20 frames per second: the clip keeps the last second
        now += 0.05
        caps.tick(frame(colour=i, size=64), now)
    path = caps.take(caps._last_frame, Trigger("key", "keyboard"))  # type: ignore[arg-type]
    assert caps.flush()
    meta = sidecar(path)
    clip = path.with_suffix(".mp4")
    assert meta["clip"] == clip.name and meta["clip_signed"] is True
    video = cv2.VideoCapture(str(clip))
    count = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = video.get(cv2.CAP_PROP_FPS)
    video.release()
    assert count == 21 and fps == pytest.approx(20, abs=0.5)
    assert read_index(tmp_path / "captures")[0]["clip"] == clip.name


# --- failures --------------------------------------------------------------------------------


def test_a_capture_that_cannot_be_written_leaves_nothing_and_the_sender_hears_why(tmp_path, monkeypatch):
    blocked = tmp_path / "captures"
    blocked.write_text("a file where the folder should be")
    monkeypatch.setattr(show_control, "CAPTURES_DIR", blocked)
    host = RecordingHost()
    ctl = ShowControl(show_with(tmp_path), host, GenerationParams())
    host.screen.current_frame = frame()
    send(ctl, "/jadong/capture")
    assert ctl.captures.flush()
    ctl.tick()
    (error,) = host.errors()
    assert error[2] == "/jadong/capture" and "could not write" in error[3] and str(blocked) in error[3]
    assert any(e == "error" and f.get("stage") == "capture" for e, f in host.events)
    assert "could not write" in ctl.state.last_error and blocked.read_text().startswith("a file")


def test_a_show_whose_certificate_cannot_be_used_keeps_its_captures_unsigned_and_says_why(tmp_path):
    events: list = []
    caps = captures_for(tmp_path, events, provenance={"certificate": str(tmp_path / "none.pem"),
                                                      "key": str(tmp_path / "none.key")})
    first = caps.take(frame(), Trigger("key", "keyboard"))
    second = caps.take(frame(t=2.0), Trigger("key", "keyboard"))
    assert caps.flush()
    assert sidecar(first)["signed"] is False and sidecar(second)["signed"] is False
    (error,) = [f for e, f in events if e == "error"]  # said once, not per capture
    assert error["stage"] == "capture" and "none.pem does not exist" in error["reason"]
    assert "credentials DIR" in error["reason"]


# --- in a running show -----------------------------------------------------------------------


def test_a_running_show_captures_every_nth_prompt_and_its_cue_and_logs_each_with_its_path(tmp_path, monkeypatch):
    """The whole way: the app's main loop ticks the captures, the writer thread writes and signs,
    the event log gets a `capture` event with the image's path, and shutdown waits for them."""
    from installation.app import RunOptions
    from installation.control.provenance import verify
    from installation.core.messages import Control
    from installation.harness import start_show_thread, stop_show_thread

    monkeypatch.setattr(show_control, "CAPTURES_DIR", tmp_path / "captures")
    show = parse_show({
        "show": {"name": "running"}, "camera": {"source": "none"}, "microphone": {"source": "none"},
        "generator": {"kind": "preview", "width": 64, "height": 64, "max_fps": 30, "prompt_blend_s": 0.0},
        "display": {"mode": "headless", "width": 320, "height": 180, "fps": 30, "crossfade_s": 0.0},
        "osc": {"enabled": False}, "capture": {"every_n_prompts": 2},
        "provenance": {"artist": "Kim"},
        "cues": [{"name": "harbour", "prompt": "a harbour at night", "capture": True}],
    }, tmp_path / "running.toml")
    log = tmp_path / "events.jsonl"
    app, thread = start_show_thread(show, RunOptions(log_path=log))
    try:
        for words in ("a red fox", "a blue whale"):  # the second new prompt is captured
            app.controls.put(Control("/jadong/prompt", (words,)))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and getattr(app.current_frame(), "prompt", Prompt("")).text != words:
                time.sleep(0.02)  # each prompt on screen before the next: none is skipped
        for n, control in enumerate([None, Control("/jadong/cue/go", ("harbour",))], start=1):
            if control is not None:
                app.controls.put(control)  # the cue's picture is captured too
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(read_index(tmp_path / "captures")) < n:
                time.sleep(0.02)
    finally:
        assert stop_show_thread(app, thread)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    captures = [e for e in events if e["event"] == "capture"]
    assert [(c["trigger"], c.get("cue", "")) for c in captures] == [("every_n_prompts", ""), ("cue", "harbour")]
    for c in captures:
        assert verify(Path(c["path"]), (tmp_path / "credentials" / "ca.pem").read_bytes()).ok
    assert [sidecar(Path(c["path"]))["prompt"] for c in captures] == ["a blue whale", "a harbour at night"]
