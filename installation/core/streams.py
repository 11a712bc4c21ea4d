"""Streams: what the generator paints for each output. A show paints one stream, or several
([[streams]] in the show file), each with its own words, settings and part of the camera frame.

Each stream has its own channels, bundled in `StreamSlots`: latest-value slots for its prompt
and params (written by the main thread's show control, control/streams.py) and for its frames
(written by the generator worker, read by the outputs that show the stream). The camera slot
is shared: each stream reads the newest camera frame through its own `Crop` (`read`), so a
triptych is three thirds of one camera. Stream 1's slots are the app's prompt, params and frame
slots, so a show with one stream runs exactly as before streams existed.

    slots = StreamSlots(2, "left", prompt_slot, params_slot, frame_slot, Crop.named("left"))
    inputs = slots.read(camera_slot.get())   # the generator worker, once per painted frame
    slots.frame.put(GeneratedFrame(...))      # what it painted for this stream
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .channels import LatestSlot
from .messages import CameraFrame, GeneratedFrame, GenerationParams, Prompt

# The named crops a show file offers (show.py CROP_NAMES): thirds of the camera's width.
NAMED_CROPS: dict[str, tuple[float, float, float, float]] = {
    "full": (0.0, 0.0, 1.0, 1.0),
    "left": (0.0, 0.0, 1 / 3, 1.0),
    "centre": (1 / 3, 0.0, 2 / 3, 1.0),
    "right": (2 / 3, 0.0, 1.0, 1.0),
}


@dataclass(frozen=True)
class Crop:
    """A part of the camera frame, as fractions of its width and height (x0 < x1, y0 < y1)."""

    x0: float = 0.0
    y0: float = 0.0
    x1: float = 1.0
    y1: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.x0 < self.x1 <= 1.0 and 0.0 <= self.y0 < self.y1 <= 1.0):
            raise ValueError(f"a crop needs 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {self}")

    @classmethod
    def named(cls, value: str | Sequence[float]) -> Crop:
        """A crop as the show file gives it: a name ("left") or four fractions [x0, y0, x1, y1]."""
        if isinstance(value, str):
            if value not in NAMED_CROPS:
                raise ValueError(f"no crop called {value!r} (known: {', '.join(NAMED_CROPS)})")
            return cls(*NAMED_CROPS[value])
        x0, y0, x1, y1 = (float(v) for v in value)
        return cls(x0, y0, x1, y1)

    @property
    def full(self) -> bool:
        return (self.x0, self.y0, self.x1, self.y1) == (0.0, 0.0, 1.0, 1.0)

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The crop in pixels of a `width`×`height` frame: (left, top, right, bottom), at least
        one pixel each way. Rounded, so the thirds of a frame tile it with no gap or overlap."""
        left, right = round(self.x0 * width), round(self.x1 * width)
        top, bottom = round(self.y0 * height), round(self.y1 * height)
        right = min(width, max(right, left + 1))
        bottom = min(height, max(bottom, top + 1))
        return min(left, right - 1), min(top, bottom - 1), right, bottom

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The crop of an (H, W, ...) image (a camera frame, or a person mask of the frame's
        size); the image itself for the full frame. A crop is a
        contiguous copy: generators and OpenCV want contiguous rows, and the camera's array
        must not be referenced by a frame that outlives it."""
        if self.full:
            return image
        left, top, right, bottom = self.box(image.shape[1], image.shape[0])
        return np.ascontiguousarray(image[top:bottom, left:right])


FULL = Crop()


@dataclass(frozen=True)
class StreamInputs:
    """What the generator paints one stream's next frame from: its newest prompt and params
    (with the slots' versions, so a worker can tell whether anything changed) and its part of
    the newest camera frame (None without a camera or before its first frame)."""

    index: int
    prompt: Prompt | None
    prompt_version: int
    params: GenerationParams | None
    params_version: int
    camera: CameraFrame | None  # the cropped camera frame: its stamp and index are the camera's

    @property
    def image(self) -> np.ndarray | None:
        return self.camera.image if self.camera is not None else None

    @property
    def engine_stream(self) -> int:
        """The number a generator keeps this stream's state under (`StreamRequest.stream`):
        stream 1 is the generator's stream 0, the one `Generator.generate` paints."""
        return self.index - 1


@dataclass(frozen=True)
class StreamSlots:
    """One stream's channels. `index` counts from 1, as outputs and OSC addresses
    (/jadong/stream/N/...) name streams; `name` is the show's name for it ("" for none)."""

    index: int
    name: str
    prompt: LatestSlot[Prompt]
    params: LatestSlot[GenerationParams]
    frame: LatestSlot[GeneratedFrame]
    crop: Crop = FULL

    @property
    def label(self) -> str:
        return f"stream {self.index}" + (f" ({self.name})" if self.name else "")

    def camera_frame(self, frame: CameraFrame | None) -> CameraFrame | None:
        """The stream's part of a camera frame (the frame itself for the full crop)."""
        if frame is None or self.crop.full:
            return frame
        return replace(frame, image=self.crop.apply(frame.image))

    def read(self, camera: CameraFrame | None) -> StreamInputs:
        """The stream's inputs now, `camera` being the newest frame of the shared camera slot
        (read once per painted frame and handed to every stream, so all streams of one batched
        call restyle the same moment)."""
        prompt, prompt_v = self.prompt.get_with_version()
        params, params_v = self.params.get_with_version()
        return StreamInputs(self.index, prompt, prompt_v, params, params_v, self.camera_frame(camera))


def new_stream_slots(index: int, name: str, crop: Crop, prompt: Prompt, params: GenerationParams) -> StreamSlots:
    """Fresh slots for a stream beyond the first, holding its starting prompt and params."""
    tag = f"stream{index}"
    return StreamSlots(index, name, LatestSlot(f"{tag}-prompt", prompt), LatestSlot(f"{tag}-params", params),
                       LatestSlot(f"{tag}-frames"), crop)
