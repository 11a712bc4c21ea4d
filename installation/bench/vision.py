"""python -m installation.bench vision [--json] [--seconds N] [--frames N] [--clip PATH] [--rate-hz N]
                                     [--faces KIND] [--silhouette KIND]

Two measurements in one run:

1. What the vision stage costs: `SceneAnalyzer.analyze` on `--frames` frames of a clip at
   640x360 (sampled at the stage's rate, on one OpenCV thread as the vision worker runs it), with
   p50, p95 and mean milliseconds per part (motion, people, faces, silhouette, colours, light) and
   in all, and the CPU time per frame.
2. What it costs the picture: the show's pipeline headless (the camera playing the clip, the
   preview generator painting from it, the display presenting at 60 fps) for `--seconds`, in
   phases that take turns with the vision stage off and on (off, on, off, on, ...: the other
   load on the machine drifts, taking turns spreads it over both sides; on the shared 2-core
   machine one 5 s phase still moves by ±2 %, so the default is 8 phases of 4 s). Each phase
   starts with a settle time that is not counted (the vision worker loading its detectors: the
   first load imports mediapipe, ~1 s, during which the display stalls up to ~75 ms at a time).

With --json: exactly one JSON object on stdout (analysis_p50_ms, display_fps_off, display_fps_on,
per-part numbers, and the generator's rate and CPU use in both states)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from installation.core.channels import LatestSlot
from installation.core.messages import CameraFrame, GeneratedFrame, Prompt, Scene
from installation.core.worker import stop_all
from installation.show import CameraConfig, DisplayConfig, GeneratorConfig, VisionConfig

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CLIP = ROOT / "assets" / "demo_loop.mp4"  # the default show's camera: a moving figure
FRAME_SIZE = (640, 360)  # the vision stage's reference size
SCREEN = (1280, 720)  # the default show's display
SCREEN_FPS = 60.0
SETTLE_S = 0.5  # each phase: not counted until the stage switched on or off has settled
READY_TIMEOUT_S = 20.0  # the vision worker's setup (detectors, mediapipe's import) must finish by then
MAX_DROP_PERCENT = 5.0  # the issue's limit for the display's rate with the vision stage on
PARTS = ("motion", "people", "faces", "silhouette", "colours", "light")


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _clip_frames(clip: Path, count: int, rate_hz: float) -> list[np.ndarray]:
    """`count` BGR frames of `clip` at 640x360, sampled `rate_hz` a second of its time (looped)."""
    cap = cv2.VideoCapture(str(clip))
    if not cap.isOpened():
        raise SystemExit(f"bench vision: cannot read the clip {clip} (--clip: a video file OpenCV can open)")
    step = max(1, round((cap.get(cv2.CAP_PROP_FPS) or rate_hz) / rate_hz))
    frames: list[np.ndarray] = []
    i = read_since_rewind = 0
    try:
        while len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                if read_since_rewind == 0:  # nothing since the start (or the last rewind): unreadable
                    raise SystemExit(f"bench vision: no frames could be read from the clip {clip}")
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop
                read_since_rewind = 0
                continue
            read_since_rewind += 1
            if i % step == 0:
                if frame.shape[1::-1] != FRAME_SIZE:
                    frame = cv2.resize(frame, FRAME_SIZE, interpolation=cv2.INTER_AREA)
                frames.append(frame)
            i += 1
    finally:
        cap.release()
    return frames


def analysis_cost(clip: Path, count: int, cfg: VisionConfig) -> dict[str, Any]:
    """The analyzer's own cost per frame, per part, as the vision worker runs it (one thread)."""
    from installation.core.native_stderr import quiet_native_stderr
    from installation.vision.analyzer import SceneAnalyzer

    frames = _clip_frames(clip, count, cfg.rate_hz)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # as VisionWorker.setup does
    analyzer = SceneAnalyzer(cfg)
    try:
        with quiet_native_stderr():  # TensorFlow Lite's set-up lines come with the first inference
            analyzer.analyze(frames[0], t=-1.0, source_t=-1.0)
        cpu0 = sum(os.times()[:2])
        wall = []
        for i, frame in enumerate(frames):
            t0 = time.perf_counter()
            analyzer.analyze(frame, t=i / cfg.rate_hz, source_t=i / cfg.rate_hz)
            wall.append((time.perf_counter() - t0) * 1000.0)
        cpu_ms = 1000.0 * (sum(os.times()[:2]) - cpu0) / len(frames)
        timings = analyzer.timings()
        notes = analyzer.notes()
        kinds = {"faces": analyzer.faces_kind, "silhouette": analyzer.silhouette_kind}
    finally:
        analyzer.close()
        cv2.setNumThreads(threads)
    parts = {part: {"p50_ms": round(_percentile(timings.get(part, []), 50), 3),
                    "p95_ms": round(_percentile(timings.get(part, []), 95), 3),
                    "mean_ms": round(statistics.fmean(timings[part]), 3) if timings.get(part) else 0.0}
             for part in PARTS}
    total = timings.get("total") or wall
    return {"frames": len(frames), "clip": str(clip), "size": f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]}",
            "analysis_p50_ms": round(_percentile(total, 50), 3), "analysis_p95_ms": round(_percentile(total, 95), 3),
            "analysis_mean_ms": round(statistics.fmean(total), 3), "analysis_cpu_ms": round(cpu_ms, 3),
            "parts": parts, "notes": notes, **kinds}


@dataclass
class _Side:
    """What one side (vision off or on) counted over its phases."""

    seconds: float = 0.0
    loops: int = 0
    generated: int = 0
    analysed: int = 0
    cpu_s: float = 0.0
    threads: set[int] = field(default_factory=set)
    frame_ms: list[float] = field(default_factory=list)  # display loop periods

    def add(self, other: _Side) -> None:
        self.seconds += other.seconds
        self.loops += other.loops
        self.generated += other.generated
        self.analysed += other.analysed
        self.cpu_s += other.cpu_s
        self.threads |= other.threads
        self.frame_ms += other.frame_ms


class _Pipeline:
    """Camera → preview generator → headless display, as the default show runs them."""

    def __init__(self, clip: Path, size: tuple[int, int], fps: float) -> None:
        from installation.display.presenter import Presenter
        from installation.generation.choice import params_from_config
        from installation.generation.preview import PreviewGenerator
        from installation.generation.worker import GeneratorWorker
        from installation.inputs.camera import CameraWorker, OpenCVSource

        gen_cfg = GeneratorConfig(kind="preview")
        self.camera: LatestSlot[CameraFrame] = LatestSlot("camera")
        self.frames: LatestSlot[GeneratedFrame] = LatestSlot("frames")
        prompt = LatestSlot("prompt", Prompt("a quiet garden at dawn, ink wash painting, soft light"))
        params = LatestSlot("params", params_from_config(gen_cfg))
        preview = PreviewGenerator(gen_cfg.width, gen_cfg.height)
        self.workers = [
            CameraWorker(OpenCVSource(CameraConfig(source=str(clip), loop=True, paced=True)), self.camera),
            GeneratorWorker(preview, preview, prompt, params, self.camera, self.frames, gen_cfg),
        ]
        self.presenter = Presenter(DisplayConfig(mode="headless", width=size[0], height=size[1], fps=fps),
                                   title="bench vision")

    def start(self) -> None:
        self.presenter.open()
        self.presenter.set_caption("안녕하세요, the garden listens; 정원이 듣고 있어요")
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        stop_all(self.workers)
        self.presenter.close()

    def present(self, seconds: float, until: Any = None) -> list[float]:
        """Runs the display loop (as App.loop does: newest frame, render, paced) for `seconds`
        or until `until()` is true; returns each loop's period in milliseconds."""
        t0 = last = time.monotonic()
        periods = []
        while last - t0 < seconds and not (until is not None and until()):
            self.presenter.show_frame(self.frames.get())
            self.presenter.poll_events()
            self.presenter.render()
            now = time.monotonic()
            periods.append((now - last) * 1000.0)
            last = now
        return periods

    def measure(self, seconds: float, vision: Any = None) -> _Side:
        t0, cpu0, gen0 = time.monotonic(), sum(os.times()[:2]), self.frames.version
        seen0 = vision.rate_meter.count if vision is not None else 0
        periods = self.present(seconds)
        return _Side(seconds=time.monotonic() - t0, loops=len(periods), generated=self.frames.version - gen0,
                     analysed=(vision.rate_meter.count - seen0) if vision is not None else 0,
                     cpu_s=sum(os.times()[:2]) - cpu0, threads={cv2.getNumThreads()}, frame_ms=periods)


def display_with_and_without_vision(clip: Path, seconds: float, phases: int, cfg: VisionConfig,
                                    size: tuple[int, int] = SCREEN, fps: float = SCREEN_FPS) -> dict[str, Any]:
    """The display's rate with the vision stage off and on, phases taking turns, in one run."""
    from installation.vision.worker import VisionWorker

    pipeline = _Pipeline(clip, size, fps)
    sides = {"off": _Side(), "on": _Side()}
    notes: list[str] = []
    errors: list[str] = []
    phase_s = seconds / phases
    threads = cv2.getNumThreads()
    pipeline.start()
    try:
        pipeline.present(max(1.0, phase_s / 2))  # the camera and the generator get going, uncounted
        for i in range(phases):
            if i % 2 == 0:
                pipeline.present(SETTLE_S)
                sides["off"].add(pipeline.measure(phase_s))
                continue
            scenes: LatestSlot[Scene] = LatestSlot("scene")
            worker = VisionWorker(pipeline.camera, scenes, cfg,
                                  on_error=lambda stage, exc: errors.append(f"{stage}: {exc}"),
                                  on_event=lambda _event, **f: notes.append(str(f.get("reason", ""))))
            worker.start()
            pipeline.present(READY_TIMEOUT_S, until=lambda w=worker: w.ready)
            pipeline.present(SETTLE_S)
            sides["on"].add(pipeline.measure(phase_s, worker))
            stop_all([worker])
            # VisionWorker.setup sets OpenCV to one thread for the whole process (cv2's thread
            # pool is global, not per thread); a show without vision keeps OpenCV's default.
            cv2.setNumThreads(threads)
    finally:
        pipeline.stop()

    def rate(count: float, side: _Side) -> float:
        return round(count / side.seconds, 2) if side.seconds > 0 else 0.0

    off, on = sides["off"], sides["on"]
    fps_off, fps_on = rate(off.loops, off), rate(on.loops, on)
    drop = round(100.0 * (fps_off - fps_on) / fps_off, 2) if fps_off > 0 else 0.0
    return {"display_size": f"{size[0]}x{size[1]}", "display_target_fps": fps,
            "display_fps_off": fps_off, "display_fps_on": fps_on, "display_drop_percent": drop,
            "display_drop_ok": drop <= MAX_DROP_PERCENT,
            # A stall (the vision thread holding the GIL, or taking a core) shows as a long period.
            "display_frame_p95_ms_off": round(_percentile(off.frame_ms, 95), 2),
            "display_frame_p95_ms_on": round(_percentile(on.frame_ms, 95), 2),
            "display_frame_max_ms_off": round(max(off.frame_ms, default=0.0), 2),
            "display_frame_max_ms_on": round(max(on.frame_ms, default=0.0), 2),
            "generator_fps_off": rate(off.generated, off), "generator_fps_on": rate(on.generated, on),
            "vision_hz_on": rate(on.analysed, on), "vision_rate_hz": cfg.rate_hz,
            "cpu_percent_off": round(100 * off.cpu_s / off.seconds, 1) if off.seconds else 0.0,
            "cpu_percent_on": round(100 * on.cpu_s / on.seconds, 1) if on.seconds else 0.0,
            "opencv_threads_off": sorted(off.threads), "opencv_threads_on": sorted(on.threads),
            "phases": phases, "seconds_counted_off": round(off.seconds, 2), "seconds_counted_on": round(on.seconds, 2),
            "vision_errors": sorted(set(errors)), "vision_notes": sorted({n for n in notes if n})}


def report_text(result: dict[str, Any]) -> str:
    lines = [f"vision analysis at {result['size']}, {result['frames']} frames of {Path(result['clip']).name} "
             f"(faces: {result['faces']}, silhouette: {result['silhouette']}); ms per frame:",
             f"  {'part':<11}{'p50':>8}{'p95':>8}{'mean':>8}"]
    for part, numbers in result["parts"].items():
        lines.append(f"  {part:<11}{numbers['p50_ms']:>8.2f}{numbers['p95_ms']:>8.2f}{numbers['mean_ms']:>8.2f}")
    lines.append(f"  {'all':<11}{result['analysis_p50_ms']:>8.2f}{result['analysis_p95_ms']:>8.2f}"
                 f"{result['analysis_mean_ms']:>8.2f}   cpu {result['analysis_cpu_ms']:.2f} ms/frame")
    lines += [f"  note: {note}" for note in result["notes"]]
    lines += [f"display {result['display_size']} at {result['display_target_fps']:g} fps with the preview generator, "
              f"vision {result['vision_rate_hz']:g} Hz ({result['phases']} phases, off/on in turn):",
              f"  {'':<14}{'off':>8}{'on':>8}",
              f"  {'display fps':<14}{result['display_fps_off']:>8.2f}{result['display_fps_on']:>8.2f}"
              f"   drop {result['display_drop_percent']:.1f} % (limit {MAX_DROP_PERCENT:g} %: "
              f"{'ok' if result['display_drop_ok'] else 'OVER'})",
              f"  {'frame p95 ms':<14}{result['display_frame_p95_ms_off']:>8.2f}"
              f"{result['display_frame_p95_ms_on']:>8.2f}",
              f"  {'frame max ms':<14}{result['display_frame_max_ms_off']:>8.2f}"
              f"{result['display_frame_max_ms_on']:>8.2f}",
              f"  {'generator fps':<14}{result['generator_fps_off']:>8.2f}{result['generator_fps_on']:>8.2f}",
              f"  {'process cpu %':<14}{result['cpu_percent_off']:>8.1f}{result['cpu_percent_on']:>8.1f}",
              f"  {'vision Hz':<14}{0:>8.2f}{result['vision_hz_on']:>8.2f}"]
    lines += [f"  vision error: {e}" for e in result["vision_errors"]]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m installation.bench vision",
        description="Measure the vision stage's cost, and the display's rate with it off and on.")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=32.0,
                        help="display measurement, counted, both sides together (default 32)")
    parser.add_argument("--phases", type=int, default=8, help="off/on phases taking turns (default 8, even)")
    parser.add_argument("--frames", type=int, default=150, help="frames for the analysis cost (default 150)")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="video to analyse (default the demo loop)")
    parser.add_argument("--rate-hz", type=float, default=VisionConfig().rate_hz,
                        help="vision frames per second (default the show default, 5)")
    parser.add_argument("--faces", choices=("auto", "mediapipe", "haar", "off"), default="auto",
                        help="face detector, as [vision] faces (default auto)")
    parser.add_argument("--silhouette", choices=("auto", "segmentation", "background", "off"), default="auto",
                        help="person mask, as [vision] silhouette (default auto)")
    args = parser.parse_args(argv)
    if not (args.seconds > 0 and args.frames > 0 and args.rate_hz > 0):
        parser.error("--seconds, --frames and --rate-hz must be positive")
    if args.phases < 2 or args.phases % 2:
        parser.error(f"--phases: expected an even number of at least 2 (off and on take turns), got {args.phases}")
    if not args.clip.is_file():
        parser.error(f"--clip: no such file: {args.clip}")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless: never open a window
    cfg = VisionConfig(enabled=True, rate_hz=args.rate_hz, faces=args.faces, silhouette=args.silhouette)
    result = analysis_cost(args.clip, args.frames, cfg)
    result.update(display_with_and_without_vision(args.clip, args.seconds, args.phases, cfg))
    print(json.dumps(result) if args.json else report_text(result))
    sys.stdout.flush()
    return 0
