#!/usr/bin/env python3
"""Derives the vision tests' real footage from OpenCV's sample video `vtest.avi` (a campus road
seen from above, 3-10 walkers), which Debian ships in the `opencv-doc` package:

    tests/data/vision/vtest_street.mp4   30 s at 5 fps, 640x360 (H.264): real walkers 50-80 px tall
    tests/data/vision/vtest_empty.jpg    the same place with nobody in it (per-pixel median)
    tests/data/vision/vtest_walker.png   one walker cut out of the first frame (BGRA, alpha = figure)
    tests/data/vision/vtest_visit.mp4    40 s at 5 fps: the empty street, that walker walks in,
                                         stands still, walks out; empty again (a camera for
                                         headless runs: presence on, then off)

    .venv/bin/python scripts/make_vision_data.py [--vtest PATH/vtest.avi]

Without --vtest it fetches the package with `apt-get download opencv-doc` (96 MB, no root
needed, nothing installed) into a temporary folder and extracts only vtest.avi. Needs ffmpeg
with libx264. The results are committed; run this only to change them (see the README there).
"""

from __future__ import annotations

import argparse
import glob
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "vision"
MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
SIZE = (640, 360)  # the vision stage's reference size
SOURCE_STEP = 2  # vtest is 10 fps; every 2nd frame gives the stage's default 5 Hz
CLIP_FRAMES = 150  # 30 s at 5 fps (about 1 MB)
MEDIAN_STEP = 20  # frames between the samples of the empty-place median
WALKER_DIFF = 25  # grey levels from the empty place that count as the walker
WALKER_MIN_AREA = 150  # pixels: the cut-out is the tallest blob at least this big
# The visit: seconds empty, walking in, standing, walking out, empty; the walker's feet and pace.
VISIT_S = (8, 8, 8, 8, 8)
VISIT_FEET = 300
VISIT_STEP = 8  # px a frame at 5 fps: a slow walk across the picture


def fetch_vtest(folder: Path) -> Path:
    subprocess.run(["apt-get", "download", "opencv-doc"], cwd=folder, check=True)
    deb = sorted(glob.glob(str(folder / "opencv-doc_*_all.deb")))[-1]
    print(f"make_vision_data: extracting vtest.avi from {Path(deb).name}")
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(folder), MEMBER], stdin=tar.stdout, check=True)
    tar.wait()
    return folder / MEMBER


def read_frames(path: Path) -> list[np.ndarray]:
    """Every frame, resized to 640x480 (its 4:3 shape) and cropped to the middle 640x360."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frame = cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA)
        frames.append(frame[60:420])
    capture.release()
    if not frames:
        sys.exit(f"make_vision_data: could not read any frame from {path}")
    return frames


def write_clip(frames: list[np.ndarray], path: Path) -> None:
    command = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
               "-s", f"{SIZE[0]}x{SIZE[1]}", "-r", "5", "-i", "-", "-c:v", "libx264", "-preset", "slow",
               "-crf", "23", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
               "-metadata", "title=vtest.avi (OpenCV samples), 640x360 5 fps", str(path)]
    with subprocess.Popen(command, stdin=subprocess.PIPE) as ffmpeg:
        assert ffmpeg.stdin is not None
        for frame in frames:
            ffmpeg.stdin.write(np.ascontiguousarray(frame).tobytes())
        ffmpeg.stdin.close()
    if ffmpeg.returncode:
        sys.exit("make_vision_data: ffmpeg failed (does it have libx264?)")


def cut_walker(frame: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """The tallest figure in `frame` (where it differs from the empty place), as BGRA."""
    grey = cv2.absdiff(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.cvtColor(empty, cv2.COLOR_BGR2GRAY))
    mask = cv2.morphologyEx((grey > WALKER_DIFF).astype(np.uint8) * 255, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    blobs = [i for i in range(1, count) if stats[i][4] >= WALKER_MIN_AREA]
    i = max(blobs, key=lambda j: stats[j][3])
    x, y, w, h = (int(v) for v in stats[i][:4])
    alpha = cv2.GaussianBlur((labels[y:y + h, x:x + w] == i).astype(np.float32), (3, 3), 0)
    return np.dstack([frame[y:y + h, x:x + w], (alpha * 255).astype(np.uint8)])


def paste(image: np.ndarray, walker: np.ndarray, cx: int, feet: int) -> np.ndarray:
    """`image` with the BGRA `walker` standing at (`cx`, `feet`), the part inside the frame."""
    h, w = walker.shape[:2]
    x, y = cx - w // 2, feet - h
    x0, x1 = max(0, x), min(image.shape[1], x + w)
    out = image.copy()
    if x0 >= x1:
        return out
    part = walker[:, x0 - x:x1 - x]
    alpha = part[..., 3:].astype(np.float32) / 255.0
    region = out[y:feet, x0:x1].astype(np.float32)
    out[y:feet, x0:x1] = (alpha * part[..., :3] + (1 - alpha) * region).astype(np.uint8)
    return out


def visit(empty: np.ndarray, walker: np.ndarray) -> list[np.ndarray]:
    fps = 5
    before, walk_in, still, walk_out, after = (s * fps for s in VISIT_S)
    frames = [empty] * before
    x = -walker.shape[1]
    for _ in range(walk_in):
        frames.append(paste(empty, walker, x, VISIT_FEET))
        x += VISIT_STEP
    frames += [paste(empty, walker, x, VISIT_FEET)] * still
    for _ in range(walk_out):
        x += VISIT_STEP * 3  # leaves faster: out of the picture within the time
        frames.append(paste(empty, walker, x, VISIT_FEET))
    return frames + [empty] * after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vtest", type=Path, help="vtest.avi (default: fetch Debian's opencv-doc)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        frames = read_frames(args.vtest or fetch_vtest(Path(folder)))
    empty = np.median(np.stack(frames[::MEDIAN_STEP]), axis=0).astype(np.uint8)
    cv2.imwrite(str(OUT / "vtest_empty.jpg"), empty, [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.imwrite(str(OUT / "vtest_walker.png"), cut_walker(frames[0], empty))
    write_clip(frames[::SOURCE_STEP][:CLIP_FRAMES], OUT / "vtest_street.mp4")
    walker = cv2.imread(str(OUT / "vtest_walker.png"), cv2.IMREAD_UNCHANGED)
    write_clip(visit(cv2.imread(str(OUT / "vtest_empty.jpg")), walker), OUT / "vtest_visit.mp4")
    for name in ("vtest_street.mp4", "vtest_empty.jpg", "vtest_walker.png", "vtest_visit.mp4"):
        print(f"make_vision_data: wrote {OUT / name} ({(OUT / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
