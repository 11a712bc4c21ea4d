"""python -m installation.bench display [--seconds N] [--size WxH] [--fps N] [--gen-fps N] [--record PATH]

The display loop headless, with new frames arriving at the generator's rate, a Korean and
English caption, the HUD and (optionally) recording: prints the loop rate it keeps, its CPU
use and the recorder's counts, as one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from installation.core.messages import GeneratedFrame, GenerationParams, Prompt
from installation.display.presenter import Presenter, Size
from installation.show import DisplayConfig


def bench_display(seconds: float, size: Size, fps: float, gen_fps: float, record: Path | None) -> dict:
    """The display loop headless with new frames arriving at `gen_fps`, a caption, the HUD
    and (optionally) recording: returns loop rate, CPU use and recorder counts."""
    cfg = DisplayConfig(mode="headless", width=size[0], height=size[1], fps=fps, hud=True)
    # A few distinct 512x512 images, made up front so the loop measures the display only.
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
    images = [np.stack([(xx + 40 * i) % 256, (yy + 25 * i) % 256, np.full_like(xx, 30 * i % 256)],
                       axis=2).astype(np.uint8) for i in range(8)]
    presenter = Presenter(cfg, record_path=record, title="bench").open()
    presenter.set_caption("안녕하세요, the garden listens; 정원이 듣고 있어요")
    presenter.set_label("bench: headless display loop")
    t0 = time.monotonic()
    cpu0 = sum(os.times()[:2])
    next_gen, i, loops = t0, 0, 0
    try:
        while (now := time.monotonic()) - t0 < seconds:
            if now >= next_gen:
                presenter.show_frame(GeneratedFrame(images[i % len(images)], Prompt("bench"),
                                                    GenerationParams(), "bench", "none", source_t=now))
                i += 1
                next_gen += 1.0 / gen_fps
            presenter.set_hud([f"frames {presenter.presented_frames}"])
            presenter.poll_events()
            presenter.render()
            loops += 1
    finally:
        presenter.close()
    elapsed = time.monotonic() - t0
    result = {"size": f"{size[0]}x{size[1]}", "target_fps": fps, "gen_fps": gen_fps,
              "loop_fps": round(loops / elapsed, 1),
              "cpu_percent_of_one_core": round(100 * (sum(os.times()[:2]) - cpu0) / elapsed, 1),
              "presented_frames": presenter.presented_frames}
    if presenter.recorder is not None:
        st = presenter.recorder.stats()
        result.update(recorded=st.written, record_dropped=st.dropped)
    return result



def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m installation.bench display",
                                     description="Measure the display loop headless.")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run the loop (default 10)")
    parser.add_argument("--size", default="1280x720", help="screen size (default 1280x720)")
    parser.add_argument("--fps", type=float, default=60.0, help="display rate (default 60)")
    parser.add_argument("--gen-fps", type=float, default=30.0, help="new frames per second (default 30)")
    parser.add_argument("--record", type=Path, help="record to this file meanwhile (.mp4 or .avi)")
    args = parser.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size: expected WIDTHxHEIGHT such as 1280x720, got {args.size!r}")
    if not (args.seconds > 0 and args.fps > 0 and args.gen_fps > 0):
        parser.error("--seconds, --fps and --gen-fps must be positive")
    print(json.dumps(bench_display(args.seconds, (w, h), args.fps, args.gen_fps, args.record)))
    return 0
