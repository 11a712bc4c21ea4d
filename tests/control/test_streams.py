"""Several streams without an App: the show control and each stream's state (control/streams.py)
driven as the main thread drives them, the stream slots (core/streams.py) read as the generator
worker reads them, and the per-stream addresses through the same table OSC and the web page use.
A camera frame from the bundled demo clip (read by OpenCV) is cut into a triptych."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from installation.control.addresses import (
    ADDRESSES,
    ERROR_ADDRESS,
    STREAM_ADDRESSES,
    STREAM_STATUS_ADDRESSES,
    lookup,
    validate_args,
)
from installation.control.host import RuntimeStatus, ScreenSettings
from installation.control.show_control import ShowControl
from installation.control.streams import StreamControl
from installation.core.channels import LatestSlot
from installation.core.messages import CameraFrame, Control, GeneratedFrame, GenerationParams, Prompt
from installation.core.streams import Crop, StreamSlots
from installation.show import ASSETS_DIR, MAX_STREAMS, parse_show

PEER = ("127.0.0.1", 9001)


@dataclass
class StreamsHost:
    """A ShowHost that hands the show's prompt and params to the streams, as the app does."""

    screen: ScreenSettings = field(default_factory=ScreenSettings)
    replies: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[str, dict]] = field(default_factory=list)
    streams: StreamControl | None = None

    def publish_prompt(self, prompt: Prompt) -> None:
        if self.streams is not None:
            self.streams.show_prompt(prompt)

    def publish_params(self, params: GenerationParams) -> None:
        if self.streams is not None:
            self.streams.show_params(params)

    def set_listening(self, on: bool) -> None:
        pass

    def reply(self, sender, address: str, *args: Any) -> None:
        self.replies.append((sender, address, *args))

    def send_status(self, sender) -> None:
        pass

    def request_show(self, path: Path, sender) -> None:
        pass

    def request_quit(self, source: str, sender) -> None:
        pass

    def on_event(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    def runtime_status(self) -> RuntimeStatus:
        return RuntimeStatus()

    def errors(self) -> list[tuple[Any, ...]]:
        return [r for r in self.replies if r[1] == ERROR_ADDRESS]


TRIPTYCH = {
    "prompt": {"template": "{speech}, woodcut", "initial": "an empty stage", "negative": "blurry"},
    "styles": {"dawn": "{speech}, at dawn", "dusk": "{speech}, at dusk"},
    "generator": {"strength": 0.5, "seed": 7},
    "cues": [{"name": "storm", "prompt": "a storm at sea", "strength": 0.3}],
    "streams": [
        {"name": "left", "crop": "left", "style": "dawn", "initial": "an empty stage at dawn", "seed": 11},
        {"name": "centre", "crop": "centre"},
        {"name": "right", "crop": "right", "template": "{speech}, mosaic", "strength": 0.8, "words": False},
    ],
    "outputs": [{"stream": "left"}, {"stream": 2, "monitor": 1}, {"stream": "RIGHT", "monitor": 2}],
    "osc": {"enabled": False},
}


def build(show_data: dict[str, Any] = TRIPTYCH) -> tuple[ShowControl, StreamControl, StreamsHost]:
    show = parse_show(show_data, Path("test.toml"))
    host = StreamsHost()
    control = ShowControl(show, host, GenerationParams(strength=0.5, steps=1, seed=7))
    first = StreamSlots(1, "", LatestSlot("prompt", control.state.prompt), LatestSlot("params", control.state.params),
                        LatestSlot("frames"))
    streams = StreamControl(show, control, first, on_event=host.on_event)
    host.streams = streams
    return control, streams, host


def send(ctl: ShowControl, address: str, *args: Any) -> None:
    """A control as OSC delivers it: looked up and checked against the table first."""
    row = lookup(address)
    assert row is not None, address
    values = validate_args(row, args)
    ctl.handle(Control(address=row.path, args=values, sender=PEER, query=row.kind == "value" and not args))


def prompts(streams: StreamControl) -> list[str]:
    return [s.prompt.get().text for s in streams.slots]


def test_each_stream_starts_with_its_own_words_and_settings():
    _, streams, _ = build()
    assert prompts(streams) == ["an empty stage at dawn", "an empty stage", "an empty stage"]
    params = [s.params.get() for s in streams.slots]
    assert [(p.seed, p.strength) for p in params] == [(11, 0.5), (7, 0.5), (7, 0.8)]
    assert [s.prompt.get().negative for s in streams.slots] == ["blurry"] * 3
    assert [(s.index, s.name, s.crop) for s in streams.slots] == [
        (1, "left", Crop(0.0, 0.0, 1 / 3, 1.0)), (2, "centre", Crop(1 / 3, 0.0, 2 / 3, 1.0)),
        (3, "right", Crop(2 / 3, 0.0, 1.0, 1.0))]


def test_visitors_words_reach_the_streams_that_take_them_through_their_own_templates():
    control, streams, _ = build()
    control.from_speech("a red fox", "a red fox")
    assert prompts(streams) == ["a red fox, at dawn", "a red fox, woodcut", "an empty stage"]
    assert [s.prompt.get().source for s in streams.slots[:2]] == ["speech", "speech"]
    # The centre stream has no template of its own: it paints the show's prompt object itself.
    assert streams.slots[1].prompt.get() is control.state.prompt
    # A cue's words are a performer's: they reach the stream that keeps out visitors' words too.
    control.go_cue("storm")
    assert prompts(streams) == ["a storm at sea", "a storm at sea", "a storm at sea"]
    assert [s.params.get().strength for s in streams.slots] == [0.3, 0.3, 0.8]  # right keeps its own
    # A negative prompt changes every stream's, without new words.
    send(control, "/jadong/negative", "grey")
    assert [s.prompt.get().negative for s in streams.slots] == ["grey"] * 3
    assert prompts(streams) == ["a storm at sea"] * 3


def test_per_stream_controls_change_one_stream_and_answer_queries():
    control, streams, host = build()
    before = [s.params.version for s in streams.slots]
    send(control, "/jadong/stream/2/strength", 0.9)
    send(control, "/jadong/stream/2/seed", 1234)
    assert (streams.slots[1].params.get().strength, streams.slots[1].params.get().seed) == (0.9, 1234)
    assert [s.params.version for s in streams.slots][::2] == before[::2]  # the others were not touched
    send(control, "/jadong/stream/3/prompt", "a lighthouse")
    assert prompts(streams)[2] == "a lighthouse"  # painted as sent, like /jadong/prompt
    send(control, "/jadong/stream/1/style", "DUSK")  # names as performers type them
    control.from_speech("a red fox", "a red fox")
    assert prompts(streams) == ["a red fox, at dusk", "a red fox, woodcut", "a lighthouse"]
    send(control, "/jadong/stream/3/words", 1)  # now visitors' words reach it: the newest at once
    assert prompts(streams)[2] == "a red fox, mosaic"
    # The show's strength moves the streams without their own.
    send(control, "/jadong/strength", 0.2)
    assert [s.params.get().strength for s in streams.slots] == [0.2, 0.9, 0.8]
    for leaf, want in (("strength", 0.9), ("seed", 1234), ("prompt", "a red fox, woodcut"), ("style", ""),
                       ("words", 1)):
        send(control, f"/jadong/stream/2/{leaf}")
        assert host.replies[-1] == (PEER, f"/jadong/stream/2/{leaf}", want)
    assert not host.errors()


def test_a_stream_the_show_lacks_is_refused_with_the_streams_it_has():
    control, streams, host = build()
    send(control, "/jadong/stream/4/strength", 0.5)
    send(control, "/jadong/stream/4/prompt")
    assert [e[2:] for e in host.errors()] == [
        ("/jadong/stream/4/strength", "no stream 4 in this show (it has streams 1 to 3; [[streams]] in the show file)"),
        ("/jadong/stream/4/prompt", "no stream 4 in this show (it has streams 1 to 3; [[streams]] in the show file)")]
    send(control, "/jadong/stream/1/style", "noon")
    send(control, "/jadong/stream/2/prompt", "   ")
    assert "no style 'noon'" in host.errors()[2][3] and "expected some words" in host.errors()[3][3]
    # Past the most streams a show may have, or 0, it is no address at all (OSC answers "unknown address").
    assert lookup(f"/jadong/stream/{MAX_STREAMS + 1}/seed") is None and lookup("/jadong/stream/0/seed") is None
    assert lookup("/jadong/stream/02/SEED").path == "/jadong/stream/2/seed"
    assert lookup("/jadong/stream/1/nothing") is None
    assert not set(STREAM_ADDRESSES) & {a.rsplit("/", 1)[1] for a in ADDRESSES if "/stream/" in a}


def test_a_show_without_streams_has_one_that_takes_the_shows_own_objects():
    data = {"prompt": {"template": "{speech}, ink"}, "osc": {"enabled": False}}
    control, streams, host = build(data)
    control.from_speech("a heron", "a heron")
    send(control, "/jadong/seed", 5)
    first = streams.slots[0]
    assert first.prompt.get() is control.state.prompt and first.params.get() is control.state.params
    assert streams.status_bundles() == []  # the show's status says it all
    assert not [e for e in host.events if e[0] == "stream"]  # no per-stream events either
    send(control, "/jadong/stream/1/strength", 0.7)  # its own controls work all the same
    assert first.params.get().strength == 0.7
    send(control, "/jadong/stream/2/strength", 0.7)
    assert host.errors()[-1][3].startswith("no stream 2 in this show (it has stream 1;")


def test_status_is_one_bundle_per_stream():
    control, streams, _ = build()
    control.from_speech("a red fox", "a red fox")
    bundles = streams.status_bundles()
    assert len(bundles) == 3
    for n, bundle in enumerate(bundles, 1):
        assert [a for a, _ in bundle] == [f"/jadong/status/stream/{n}/{leaf}" for leaf in STREAM_STATUS_ADDRESSES]
    values = {a: v for bundle in bundles for a, v in bundle}
    assert values["/jadong/status/stream/1/prompt"] == ("a red fox, at dawn",)
    assert values["/jadong/status/stream/3/words"] == (0,)
    assert values["/jadong/status/stream/3/strength"] == (0.8,)
    assert values["/jadong/status/stream/2/name"] == ("centre",)
    streams.slots[1].frame.put(GeneratedFrame(np.zeros((8, 8, 3), np.uint8), Prompt("x"), GenerationParams(),
                                              "test", ""))
    assert dict(streams.status_bundles()[1])["/jadong/status/stream/2/frames"] == (1,)


def test_unchanged_words_are_not_sent_to_the_generator_again():
    control, streams, _ = build()
    control.from_speech("a red fox", "a red fox")
    versions = [s.prompt.version for s in streams.slots]
    send(control, "/jadong/stream/1/style", "dawn")  # the style it already paints in
    send(control, "/jadong/stream/3/strength", 0.8)  # the strength it already has
    assert [s.prompt.version for s in streams.slots] == versions


# --- the slots the generator reads: each stream its part of the camera ---------------------------

def demo_frame() -> CameraFrame:
    cap = cv2.VideoCapture(str(ASSETS_DIR / "demo_loop.mp4"))
    try:
        ok, bgr = cap.read()
    finally:
        cap.release()
    assert ok, "the demo clip cannot be read"
    return CameraFrame(np.ascontiguousarray(bgr[:, :, ::-1]), index=0, source="demo_loop.mp4")


def test_a_triptych_reads_three_different_thirds_of_one_camera_frame():
    _, streams, _ = build()
    camera = demo_frame()
    h, w = camera.image.shape[:2]
    parts = [s.read(camera) for s in streams.slots]
    edges = [0, round(w / 3), round(2 * w / 3), w]
    for i, inputs in enumerate(parts):
        assert inputs.index == i + 1 and inputs.engine_stream == i
        assert inputs.camera.t == camera.t and inputs.camera.index == camera.index
        assert inputs.image.flags["C_CONTIGUOUS"]
        assert np.array_equal(inputs.image, camera.image[:, edges[i]:edges[i + 1]])
    # Together they are the whole frame, side by side, and no two are the same picture.
    assert np.array_equal(np.concatenate([p.image for p in parts], axis=1), camera.image)
    assert all(not np.array_equal(a.image[:, :200], b.image[:, :200]) for a, b in zip(parts, parts[1:]))
    assert parts[0].prompt.text == "an empty stage at dawn" and parts[2].params.strength == 0.8
    assert parts[0].prompt_version >= 1 and parts[0].params_version >= 1


@pytest.mark.parametrize("crop, box", [
    ("full", (0, 0, 640, 480)), ("left", (0, 0, 213, 480)), ("centre", (213, 0, 427, 480)),
    ("right", (427, 0, 640, 480)), ([0.25, 0.5, 0.75, 1.0], (160, 240, 480, 480)),
    ([0.0, 0.0, 0.0001, 0.0001], (0, 0, 1, 1)),  # never empty: at least a pixel
])
def test_crops_in_pixels(crop, box):
    assert Crop.named(crop).box(640, 480) == box
    image = np.arange(480 * 640 * 3, dtype=np.uint32).reshape(480, 640, 3).astype(np.uint8)
    x0, y0, x1, y1 = box
    assert np.array_equal(Crop.named(crop).apply(image), image[y0:y1, x0:x1])


def test_no_camera_frame_is_no_image():
    _, streams, _ = build()
    assert streams.slots[2].read(None).image is None
    with pytest.raises(ValueError, match="0 <= x0 < x1 <= 1"):
        Crop(0.5, 0.0, 0.5, 1.0)
