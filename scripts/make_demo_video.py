#!/usr/bin/env python3
"""Makes assets/demo_loop.mp4: the stand-in camera for shows without one. A real person stands
close before the camera, head and shoulders, swaying gently left and right and bobbing, in
front of a warm wall while a band of window light sweeps across it, with a little sensor grain:
enough shape and motion for img2img to restyle, a face the vision stage's detectors find (so
presence reads "somebody", as a visitor would), and a seamless loop (every motion is periodic
over the clip length, so frame 0 follows the last frame without a jump).

The person is the astronaut portrait scikit-image ships (`skimage.data.astronaut()`: Eileen
Collins, NASA photograph, public domain), cut out of its studio backdrop with mediapipe's selfie
segmentation when mediapipe is installed, else with a soft mask drawn from the portrait's
known layout (head and shoulders as ellipses).

    .venv/bin/python scripts/make_demo_video.py [OUTPUT] [--mask auto|segmentation|drawn] [--still PNG]

OUTPUT defaults to assets/demo_loop.mp4; needs ffmpeg with libx264. `--still` also writes
frame 0 as a picture to look at. Rendering takes a few seconds; the result is committed, so
only run this to change the clip.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "assets" / "demo_loop.mp4"

WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 30, 5  # SECONDS is the loop period of every motion below
FRAMES = FPS * SECONDS

# The portrait (512x512): the face (mediapipe's box) is ~104 px at x 174-278, y 68-172; the top
# of the hair is at y ~15. Scaled by PORTRAIT_SCALE the face is ~115 px tall, and with the hair
# HEAD_TOP px below the frame's top the frame shows head and shoulders, cut at the chest.
PORTRAIT_SCALE = 1.1
HAIR_TOP = 15  # portrait pixels
FACE_CENTRE_X = 226  # portrait pixels
HEAD_TOP = 22  # frame pixels
PIVOT_Y = 330  # portrait pixels: the figure leans about its chest, not its nose

# Motion, each periodic over SECONDS (phase p runs 0..2pi over the clip). The figure sways
# with `swing`: a quick pass through the middle, a slow turn at each end, while the window
# light sweeps the other way; so the vision stage's motion word reads "restless" while they
# pass and "calm" while the figure lingers at each side, still bobbing (motion energy ~0.5-1.0
# and ~0.1-0.3 at 5 Hz, never "still"; tests/vision/test_light.py holds it to that).
SWAY_PX = 40  # left and right of the centre, once per loop
EASE = 2.0  # the larger, the longer the sway lingers at its ends (near 0: a plain sine)
BOB_PX = 4  # up and down, twice per loop (the weight shifting from foot to foot)
LEAN_DEG = 1.5  # a lean with the sway
START_PHASE = math.pi / 2 + 0.5  # frame 0: the figure at its right, about to turn back

GRAIN = 3.0  # sensor noise, grey levels (sigma), fresh every frame
SEED = 20240510  # the grain is the same every time the clip is made
CRF = 27  # libx264 quality: the clip is about 110 KB


@dataclass(frozen=True)
class Cutout:
    """The portrait as float BGR, and its soft person mask (0-1), both 512x512."""

    bgr: np.ndarray
    alpha: np.ndarray
    source: str  # how the mask was made, for the summary line


def portrait() -> np.ndarray:
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def segmented_mask(bgr: np.ndarray) -> np.ndarray | None:
    """mediapipe's selfie segmentation (general model) as a 0-1 mask, or None without mediapipe."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import mediapipe as mp  # optional: only to make the clip
    except ImportError:
        return None
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as graph:
        probability = graph.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).segmentation_mask
    # The model's 256x256 output blurs the hair into the studio backdrop: harden its edge, and in
    # a band along the edge drop what has the backdrop's colour (a pale fringe on a warm wall).
    # The drawn mask, a little grown, bounds it: a sliver of the shuttle model's stand goes.
    hard = (probability > 0.5).astype(np.uint8)
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB).astype(np.float32)
    near = cv2.dilate(hard, np.ones((61, 61), np.uint8)).astype(bool) & (probability < 0.05)
    near[250:] = False  # around the head: below it the flag is as near as the backdrop
    backdrop = np.median(lab[near], axis=0)
    unlike = np.clip((np.linalg.norm(lab - backdrop, axis=2) - 10.0) / 20.0, 0.0, 1.0)
    edge = cv2.distanceTransform(hard, cv2.DIST_L2, 5) < 12
    cv2.ellipse(edge.view(np.uint8), (226, 122), (56, 66), 0, 0, 360, 0, -1)  # skin is as pale: the face stays
    mask = np.clip((probability - 0.5) / 0.4, 0.0, 1.0)
    mask = np.where(edge, mask * unlike, mask)
    mask *= cv2.dilate((drawn_mask() > 0.5).astype(np.uint8), np.ones((9, 9), np.uint8))
    mask = cv2.erode(mask.astype(np.float32), np.ones((3, 3), np.uint8))
    return cv2.GaussianBlur(mask, (0, 0), 1.0)  # feathered by a pixel, so the figure does not look pasted


def drawn_mask() -> np.ndarray:
    """Head and shoulders from the portrait's layout: an ellipse for the head (hair included),
    a wider one for the shoulders and chest, softened."""
    mask = np.zeros((512, 512), np.float32)
    cv2.ellipse(mask, (226, 100), (74, 88), 0, 0, 360, 1.0, -1)
    cv2.ellipse(mask, (200, 480), (190, 325), 0, 0, 360, 1.0, -1)
    cv2.rectangle(mask, (190, 150), (270, 200), 1.0, -1)  # the neck and the suit's collar ring
    return cv2.GaussianBlur(mask, (0, 0), 5.0)


def cutout(kind: str) -> Cutout:
    bgr = portrait()
    if kind in ("auto", "segmentation"):
        mask = segmented_mask(bgr)
        if mask is not None:
            return Cutout(bgr.astype(np.float32), mask, "mediapipe selfie segmentation")
        if kind == "segmentation":
            sys.exit("make_demo_video: --mask segmentation needs mediapipe (scripts/setup.sh installs it); "
                     "use --mask drawn or auto")
    return Cutout(bgr.astype(np.float32), drawn_mask(), "a drawn head-and-shoulders mask")


def phase(i: int) -> float:
    """Frame i's phase. The clip starts with the figure lingering at its right: the loop's seam
    falls in a slow moment, and a player that samples from frame 0 sees whole runs of motion
    words at both ends."""
    return 2.0 * math.pi * i / FRAMES + START_PHASE


def swing(p: float) -> float:
    """-1..1 over a period: a quick pass through the middle, a slow turn at each end."""
    return math.tanh(EASE * math.sin(p)) / math.tanh(EASE)


def wall(p: float) -> np.ndarray:
    """The warm wall, darker towards the floor, with a band of window light sweeping across it
    (float BGR)."""
    y = np.arange(HEIGHT, dtype=np.float32)[:, None] / HEIGHT
    x = np.arange(WIDTH, dtype=np.float32)[None, :]
    light = 40.0 * np.exp(-(((x - WIDTH * (0.5 - 0.45 * swing(p))) / 90.0) ** 2))
    red = 180 - 50 * y + light
    green = 150 - 40 * y + light * 0.9
    blue = 110 + 20 * y + light * 0.6
    return np.dstack(np.broadcast_arrays(blue, green, red)).astype(np.float32)


def placement(p: float) -> np.ndarray:
    """The 2x3 affine from portrait to frame pixels at phase p: scaled, leaning about the chest,
    swayed and bobbed."""
    s = PORTRAIT_SCALE
    pivot = (FACE_CENTRE_X, PIVOT_Y)
    lean = LEAN_DEG * swing(p)
    matrix = cv2.getRotationMatrix2D(pivot, lean, s)
    # where the pivot lands: the face centred, the hair HEAD_TOP below the top, then the motion
    target_x = WIDTH / 2 + SWAY_PX * swing(p)
    target_y = HEAD_TOP + (PIVOT_Y - HAIR_TOP) * s + BOB_PX * math.sin(2 * p)
    matrix[:, 2] += (target_x - pivot[0], target_y - pivot[1])
    return matrix


def frame(cut: Cutout, i: int, rng: np.random.Generator) -> np.ndarray:
    p = phase(i)
    background = wall(p)
    matrix = placement(p)
    size = (WIDTH, HEIGHT)
    person = cv2.warpAffine(cut.bgr, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(cut.alpha, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
    # The figure stands a step before the wall: its soft shadow falls on the wall, down and to the right.
    shadow = cv2.GaussianBlur(cv2.warpAffine(alpha, np.float32([[1, 0, 24], [0, 1, 10]]), size), (0, 0), 14)
    background *= (1.0 - 0.3 * shadow)[:, :, None]
    # The studio portrait takes a little of the room's warm light, and some of the window's.
    person *= np.float32([0.93, 0.98, 1.03])
    person += 0.35 * (background - background.mean(axis=(0, 1)))
    a = alpha[:, :, None]
    picture = background * (1.0 - a) + person * a
    grain = rng.standard_normal((HEIGHT, WIDTH, 1), dtype=np.float32) * GRAIN  # mostly luma, as a sensor
    grain = grain + rng.standard_normal((HEIGHT, WIDTH, 3), dtype=np.float32) * (GRAIN / 3)
    return np.clip(picture + grain, 0, 255).astype(np.uint8)


def encode(frames: list[np.ndarray], output: Path) -> None:
    """H.264 (yuv420p, a keyframe a second, faststart) through ffmpeg, written beside `output` and
    moved over it at the end: a show or a test reading the clip meanwhile never sees half a file."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("make_demo_video: ffmpeg not found (apt-get install ffmpeg)")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial{output.suffix}")
    command = [ffmpeg, "-y", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-",
               "-c:v", "libx264", "-preset", "slow", "-crf", str(CRF), "-pix_fmt", "yuv420p", "-g", str(FPS),
               "-movflags", "+faststart", "-metadata", "title=Jadong demo camera loop", str(partial)]
    proc = subprocess.run(command, input=b"".join(f.tobytes() for f in frames), capture_output=True)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        sys.exit(f"make_demo_video: ffmpeg failed: {proc.stderr.decode(errors='replace').strip()}")
    os.replace(partial, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--mask", choices=("auto", "segmentation", "drawn"), default="auto",
                        help="how the portrait is cut out (auto: segmentation when mediapipe is installed)")
    parser.add_argument("--still", type=Path, help="also write frame 0 here (PNG)")
    args = parser.parse_args()
    cut = cutout(args.mask)
    rng = np.random.default_rng(SEED)
    frames = [frame(cut, i, rng) for i in range(FRAMES)]
    if args.still:
        cv2.imwrite(str(args.still), frames[0])
    encode(frames, args.output)
    print(f"make_demo_video: wrote {args.output} ({args.output.stat().st_size} bytes, "
          f"{FRAMES} frames, cut out with {cut.source})")


if __name__ == "__main__":
    main()
