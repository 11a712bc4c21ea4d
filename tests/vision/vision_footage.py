"""Real pictures for the vision tests: the street footage derived from OpenCV's vtest.avi (see
tests/data/vision/README.md), a walker cut out of it that can be placed anywhere on the empty
street (moving, then standing still: the ground truth is known), and the portraits that
scikit-image and matplotlib ship."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data" / "vision"
W, H = 640, 360
NOISE_SIGMA = 2.0  # grey levels: a camera's sensor noise, so no two frames are the same

# Rough person outlines in the portraits' own pixels (x0, y0, x1, y1): head, then shoulders and
# body (and the helmet the astronaut holds: segmentation rightly takes it with her).
PHOTO_BOXES = {
    "astronaut": [(150, 15, 300, 175), (20, 175, 380, 512), (280, 330, 512, 512)],
    "grace_hopper": [(150, 20, 375, 330), (15, 320, 512, 600)],
}


@functools.cache
def empty_street() -> np.ndarray:
    image = cv2.imread(str(DATA / "vtest_empty.jpg"))
    assert image is not None and image.shape == (H, W, 3), "tests/data/vision/vtest_empty.jpg is missing"
    image.flags.writeable = False
    return image


@functools.cache
def street_frames() -> tuple[np.ndarray, ...]:
    """The 150 frames of the street clip (5 fps, 3-10 real walkers 50-80 px tall)."""
    capture = cv2.VideoCapture(str(DATA / "vtest_street.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frame.flags.writeable = False
        frames.append(frame)
    capture.release()
    assert len(frames) == 150, f"tests/data/vision/vtest_street.mp4: expected 150 frames, read {len(frames)}"
    return tuple(frames)


@functools.cache
def _walker() -> tuple[np.ndarray, np.ndarray]:
    bgra = cv2.imread(str(DATA / "vtest_walker.png"), cv2.IMREAD_UNCHANGED)
    assert bgra is not None and bgra.shape[2] == 4, "tests/data/vision/vtest_walker.png is missing"
    return bgra[..., :3], bgra[..., 3]


def paste_walker(image: np.ndarray, height: int, cx: int, feet: int) -> tuple[np.ndarray, tuple[int, int, int, int],
                                                                               np.ndarray]:
    """`image` with the walker scaled to `height` px standing at (`cx`, `feet`); returns the new
    frame, the walker's box (x, y, w, h) and its mask (bool, frame size)."""
    colour, alpha = _walker()
    scale = height / colour.shape[0]
    size = (max(1, round(colour.shape[1] * scale)), height)
    colour = cv2.resize(colour, size, interpolation=cv2.INTER_AREA)
    weight = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR).astype(np.float32)[..., None] / 255.0
    x, y = cx - size[0] // 2, feet - height
    # The part inside the frame (a walker may be half out of the picture, entering or leaving).
    x0, x1, y0, y1 = max(0, x), min(image.shape[1], x + size[0]), max(0, y), min(image.shape[0], feet)
    out = image.astype(np.float32)
    mask = np.zeros(image.shape[:2], bool)
    if x0 < x1 and y0 < y1:
        part = weight[y0 - y:y1 - y, x0 - x:x1 - x]
        out[y0:y1, x0:x1] = part * colour[y0 - y:y1 - y, x0 - x:x1 - x] + (1 - part) * out[y0:y1, x0:x1]
        mask[y0:y1, x0:x1] = part[..., 0] > 0.5
    return out.astype(np.uint8), (x0, y0, max(0, x1 - x0), max(0, y1 - y0)), mask


NOISE_FRAMES = 24  # a bank of noise patterns, drawn once: adding one costs 0.2 ms, drawing one 8 ms


@functools.cache
def _noise_bank(seed: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    rng = np.random.default_rng(seed)
    bank = []
    for _ in range(NOISE_FRAMES):
        noise = np.round(rng.normal(0.0, NOISE_SIGMA, (H, W, 3)))
        bank.append((np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)))
    return tuple(bank)


class Sensor:
    """A camera's sensor noise (Gaussian, NOISE_SIGMA grey levels) on 640x360 frames: every
    frame gets another pattern, as no two real frames are the same."""

    def __init__(self, seed: int = 0) -> None:
        self._bank = _noise_bank(seed)
        self._i = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        up, down = self._bank[self._i % len(self._bank)]
        self._i += 1
        return cv2.subtract(cv2.add(image, up), down)  # saturating, like a sensor


def photo(name: str) -> np.ndarray:
    """A portrait as BGR: "astronaut" (scikit-image) or "grace_hopper" (matplotlib)."""
    if name == "astronaut":
        import skimage.data
        return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    from matplotlib import cbook
    image = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    assert image is not None
    return image


def letterboxed(image: np.ndarray, grey: int = 90) -> tuple[np.ndarray, float, int]:
    """`image` scaled to 360 px tall in the middle of a 640x360 grey frame; returns the frame,
    the scale and the x offset (to move boxes from the photo into the frame)."""
    scale = H / image.shape[0]
    small = cv2.resize(image, (round(image.shape[1] * scale), H), interpolation=cv2.INTER_AREA)
    frame = np.full((H, W, 3), grey, np.uint8)
    x = (W - small.shape[1]) // 2
    frame[:, x:x + small.shape[1]] = small
    return frame, scale, x


def photo_mask(name: str, shape: tuple[int, ...], scale: float = 1.0, x_offset: int = 0) -> np.ndarray:
    """The portrait's rough person outline (bool) in a frame of `shape`."""
    mask = np.zeros(shape[:2], bool)
    for x0, y0, x1, y1 in PHOTO_BOXES[name]:
        mask[round(y0 * scale):round(y1 * scale), round(x0 * scale) + x_offset:round(x1 * scale) + x_offset] = True
    return mask


def visit(empty: int = 10, walk_in: int = 25, still: int = 0, walk_out: int = 0, after: int = 0, height: int = 75,
          start_x: int = 60, feet: int = 300, step: int = 8, seed: int = 0):
    """A visit to the empty street with sensor noise: `empty` frames of nobody, the walker
    walking in from `start_x` (`step` px a frame), standing still, walking on and out of the
    picture, then `after` frames of nobody. Yields (frame, walker box or None)."""
    sensor = Sensor(seed)
    street = empty_street()
    for _ in range(empty):
        yield sensor(street), None
    x = start_x
    for _ in range(walk_in):
        frame, box, _ = paste_walker(street, height, x, feet)
        yield sensor(frame), box
        x += step
    if still:
        frame, box, _ = paste_walker(street, height, x, feet)
        for _ in range(still):
            yield sensor(frame), box
    for _ in range(walk_out):
        x += step
        frame, box, _ = paste_walker(street, height, x, feet)
        yield sensor(frame), box if box[2] else None
    for _ in range(after):
        yield sensor(street), None
