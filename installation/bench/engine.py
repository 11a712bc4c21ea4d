"""Engine benchmark: the diffusers img2img pipeline called per frame (what a user would write,
as SD-Turbo's docs do: 2 steps at strength 0.5 = 1 denoising step) against the streaming
engine, on the same components, device and inputs, in one process.

    python -m installation.bench engine [--device cpu|cuda] [--json]
    python -m installation.bench engine --streams [1,2,4] [--device cpu|cuda] [--json]

Both sides: uint8 RGB frame in, uint8 RGB frame out, host transfers included. On CPU one fixed
tiny config: the tiny random-weight model at 64x64 in fp32, one CPU thread for both sides, the
engine compiled with torch.compile (acceleration="compile", ~40 s the first time, ~6 s from
the inductor cache), the two sides timed turn about in blocks. On CUDA the real SD-Turbo
architecture (random weights: a frame's cost does not depend on the values) at 512x512 in fp16.

With --streams, for each number of streams N: N streams (each its own prompt, seed, strength
and third of one wide camera frame) painted in one batched engine call, against the same N
streams painted in turns (N single-stream calls in a row), on the same components; frames per
second per stream and in total, side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROUNDS = 8  # CPU: blocks of frames each side takes in turn


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _frames(size: int, n: int = 8):
    import numpy as np

    rng = np.random.default_rng(0)
    base = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    # Different frames each time (a moving camera), so no side skips work.
    return [np.roll(base, 7 * i, axis=1).copy() for i in range(n)]


def _rotated(frames: list, start: int) -> list:
    k = start % len(frames)
    return frames[k:] + frames[:k]


def _time(fn, frames, count: int, sync) -> list[float]:
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        fn(frames[i % len(frames)])
        sync()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


PROMPTS = ("a quiet garden at dawn, ink wash painting, soft light", "a red fox in the snow, woodcut print",
           "blue ocean at night, oil painting", "a city of glass, neon light")


@dataclass
class _Bench:
    """What both benchmarks run on: the components, a pipeline over them (its encode_prompt is
    the engine's text path), and the device's details."""

    comps: Any
    pipe: Any
    device: str
    dtype: Any
    size: int
    sync: Callable[[], None]
    name: str


def _setup(device: str, size: int | None, threads: int | None) -> _Bench:
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    from installation.generation.engine.arch import sd_turbo_components, tiny_components
    from installation.generation.engine.tiny_model import ensure_tiny_model

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device cuda: torch {torch.__version__} sees no CUDA GPU")
    if device == "cuda":
        dtype, size = torch.float16, size or 512
        comps = sd_turbo_components("cuda", dtype)
        torch.backends.cudnn.benchmark = True
        comps.unet.to(memory_format=torch.channels_last)
        comps.vae.to(memory_format=torch.channels_last)
        sync: Callable[[], None] = torch.cuda.synchronize
        name = torch.cuda.get_device_name(0)
    else:
        dtype, size = torch.float32, size or 64
        # One thread for both sides: on a 2-core box shared with other jobs a second thread
        # mostly waits for a core, and these tiny ops do not parallelise anyway.
        torch.set_num_threads(threads or 1)
        folder = ensure_tiny_model(Path(tempfile.gettempdir()) / "jadong-bench-tiny-sd")
        comps = tiny_components(folder)
        sync = lambda: None  # noqa: E731
        import platform

        name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    pipe = StableDiffusionImg2ImgPipeline(vae=comps.vae, text_encoder=comps.text_encoder, tokenizer=comps.tokenizer,
                                          unet=comps.unet, scheduler=comps.scheduler, safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return _Bench(comps, pipe, device, dtype, size, sync, name)


def _fuse_qkv(b: _Bench, log) -> None:
    if b.device == "cuda":  # as the StreamGenerator does on CUDA
        try:
            b.comps.unet.fuse_qkv_projections()
        except Exception as exc:
            log(f"fuse_qkv_projections: {exc}")


def run(device: str, pipeline_frames: int, engine_frames: int, log=print,
        acceleration: str | None = None, size: int | None = None, threads: int | None = None) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from installation.generation.engine.parts import parts_from_pipeline
    from installation.generation.engine.stream import EngineOptions, FrameRequest, StreamEngine

    b = _setup(device, size, threads)
    comps, dtype, size, sync, name, pipe = b.comps, b.dtype, b.size, b.sync, b.name, b.pipe
    accel = acceleration or ("auto" if device == "cuda" else "compile")
    config = (f"{comps.description}, {size}x{size}, {str(dtype).removeprefix('torch.')}, 1 step at strength 0.5"
              + (f", {torch.get_num_threads()} CPU thread(s) for both sides" if device == "cpu" else ""))
    log(f"engine bench on {device} ({name}): {config}")

    frames = _frames(size)
    prompt = PROMPTS[0]

    def pipeline_frame(img):
        # Called as SD-Turbo's docs call it: no inference_mode around it (the pipeline runs
        # under its own no_grad); inference_mode would make it ~4 % faster than users see it.
        gen = torch.Generator("cpu").manual_seed(42)
        out = pipe(prompt=prompt, image=Image.fromarray(img), num_inference_steps=2, strength=0.5,
                   guidance_scale=0.0, generator=gen, output_type="pil").images[0]
        return np.asarray(out)

    for f in frames[:2]:
        pipeline_frame(f)
    sync()
    # On the GPU the pipeline is timed before the engine fuses the UNet's projections; on a
    # shared CPU the two are timed turn about (below), so a busy neighbour slows both alike.
    pipe_times = _time(pipeline_frame, frames, pipeline_frames, sync) if device == "cuda" else []

    # The engine fuses q/k/v (the pipeline then shares the fused UNet; it was timed first).
    _fuse_qkv(b, log)
    parts = parts_from_pipeline(pipe, device=device, dtype=dtype)
    opts = EngineOptions(similarity_threshold=0.0, acceleration=accel)
    engine = StreamEngine(parts, size, size, opts)
    t0 = time.perf_counter()
    engine.prepare([1], [False], progress=lambda m: log(f"  {m}"))
    prepare_s = time.perf_counter() - t0
    req = FrameRequest(prompt, steps=1, strength=0.5, seed=42)

    def engine_frame(img):
        return engine.frame(req, img)

    for f in frames[:3]:
        engine_frame(f)
    sync()
    if device == "cuda":
        eng_times = _time(engine_frame, frames, engine_frames, sync)
    else:
        # Turn about in blocks (ROUNDS of them): a busy neighbour slows both sides alike, and
        # each side runs a few frames back to back, as it would in a show, rather than every
        # frame starting in caches the other side has just filled with its own data.
        eng_times = []
        for r in range(ROUNDS):
            p_lo, p_hi = pipeline_frames * r // ROUNDS, pipeline_frames * (r + 1) // ROUNDS
            e_lo, e_hi = engine_frames * r // ROUNDS, engine_frames * (r + 1) // ROUNDS
            pipe_times += _time(pipeline_frame, _rotated(frames, p_lo), p_hi - p_lo, sync)
            eng_times += _time(engine_frame, _rotated(frames, e_lo), e_hi - e_lo, sync)
    log(f"pipeline: p50 {statistics.median(pipe_times):.2f} ms over {len(pipe_times)} frames")
    p50_p, p50_e = statistics.median(pipe_times), statistics.median(eng_times)
    result = {
        "device": device,
        "device_name": name,
        "config": config,
        "pipeline_p50_ms": round(p50_p, 3),
        "pipeline_p95_ms": round(_percentile(pipe_times, 0.95), 3),
        "pipeline_fps": round(1000.0 / p50_p, 1),
        "engine_p50_ms": round(p50_e, 3),
        "engine_p95_ms": round(_percentile(eng_times, 0.95), 3),
        "engine_fps": round(1000.0 / p50_e, 1),
        "ratio": round(p50_p / p50_e, 2),
        "engine_accel": engine.accel_label,
        "engine_acceleration_option": accel,
        "engine_prepare_s": round(prepare_s, 1),
        "engine_prepare_failures": engine.stats.failed,
        "frames": {"pipeline": pipeline_frames, "engine": engine_frames},
        "torch": torch.__version__,
    }
    return result


def _stream_inputs(size: int, n: int, count: int = 8) -> list[list]:
    """`count` rounds of camera images for n streams: each stream its own 1/n of one wide
    moving frame (a triptych's thirds for n = 3)."""
    wide = _frames(size * n, count)  # square frames n·size wide: crop the top size rows
    return [[f[:size, i * size : (i + 1) * size].copy() for i in range(n)] for f in wide]


def run_streams(device: str, counts: list[int], rounds: int, log=print, acceleration: str | None = None,
                size: int | None = None, threads: int | None = None) -> dict:
    """For each N in `counts`: N streams painted in one batched call per frame (StreamEngine.frames)
    against the same N streams in turns (N StreamEngine.frame calls in a row), on the same
    components and inputs; each stream with its own prompt, seed and strength (1 step)."""
    import numpy as np
    import torch

    from installation.generation.engine.parts import parts_from_pipeline
    from installation.generation.engine.stream import EngineOptions, FrameRequest, StreamEngine

    b = _setup(device, size, threads)
    size = b.size
    accel = acceleration or ("auto" if device == "cuda" else "compile")
    config = (f"{b.comps.description}, {size}x{size} per stream, {str(b.dtype).removeprefix('torch.')}, 1 step, "
              "each stream its own prompt, seed, strength (0.4-0.7) and camera crop"
              + (f", {torch.get_num_threads()} CPU thread(s)" if device == "cpu" else ""))
    log(f"engine streams bench on {device} ({b.name}): {config}")
    _fuse_qkv(b, log)
    parts = parts_from_pipeline(b.pipe, device=device, dtype=b.dtype)
    opts = EngineOptions(similarity_threshold=0.0, acceleration=accel)
    # Two engines on the same components: the batched side's streams live in programs of N
    # rows, the side taking turns keeps each stream in a program of one row.
    batched, turns = StreamEngine(parts, size, size, opts), StreamEngine(parts, size, size, opts)
    t0 = time.perf_counter()
    turns.prepare([1], [False], progress=lambda m: log(f"  {m}"))
    batched.prepare([1], [False], progress=lambda m: log(f"  {m}"), streams=counts)
    prepare_s = time.perf_counter() - t0

    rows = []
    for n in counts:
        reqs = [FrameRequest(PROMPTS[i % len(PROMPTS)], steps=1, strength=0.4 + 0.1 * (i % 4), seed=42 + i, stream=i)
                for i in range(n)]
        inputs = _stream_inputs(size, n)

        def batched_round(images, reqs=reqs):
            return batched.frames(list(zip(reqs, images)))

        def turns_round(images, reqs=reqs):
            return [turns.frame(r, img) for r, img in zip(reqs, images)]

        for images in inputs[:3]:  # warm-up (and CUDA graphs captured for programs not prepared)
            a, t = batched_round(images), turns_round(images)
        b.sync()
        # The two sides paint the same streams: their frames agree up to a batched UNet's rounding.
        agree = max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, t))
        b_times: list[float] = []
        t_times: list[float] = []
        blocks = ROUNDS if device == "cpu" else 1  # CPU: turn about, so a busy neighbour slows both alike
        for r in range(blocks):
            lo, hi = rounds * r // blocks, rounds * (r + 1) // blocks
            b_times += _time(batched_round, _rotated(inputs, lo), hi - lo, b.sync)
            t_times += _time(turns_round, _rotated(inputs, lo), hi - lo, b.sync)
        pb, pt = statistics.median(b_times), statistics.median(t_times)
        row = {
            "streams": n,
            "batched_p50_ms": round(pb, 3), "batched_p95_ms": round(_percentile(b_times, 0.95), 3),
            "batched_fps_per_stream": round(1000.0 / pb, 1), "batched_fps_total": round(n * 1000.0 / pb, 1),
            "turns_p50_ms": round(pt, 3), "turns_p95_ms": round(_percentile(t_times, 0.95), 3),
            "turns_fps_per_stream": round(1000.0 / pt, 1), "turns_fps_total": round(n * 1000.0 / pt, 1),
            "speedup": round(pt / pb, 2),
            "max_diff_batched_vs_turns": agree,
        }
        log(f"  {n} stream(s): batched {pb:.2f} ms a round, in turns {pt:.2f} ms ({row['speedup']}x)")
        rows.append(row)
    return {
        "device": device,
        "device_name": b.name,
        "config": config,
        "rounds": rounds,
        "streams": rows,
        "engine_accel": batched.accel_label,
        "engine_acceleration_option": accel,
        "engine_prepare_s": round(prepare_s, 1),
        "engine_prepare_failures": batched.stats.failed + turns.stats.failed,
        "torch": torch.__version__,
    }


def _counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected stream counts like 1,2,4 (each at least 1), got {text!r}")
    return sorted(set(counts))


def _print_streams(res: dict) -> None:
    print(f"{res['device_name']}: {res['config']}; engine {res['engine_accel']}, p50 over {res['rounds']} rounds")
    print(f"{'streams':>7} | {'batched ms':>10} {'fps/stream':>10} {'fps total':>9} | "
          f"{'turns ms':>8} {'fps/stream':>10} {'fps total':>9} | {'speedup':>7}")
    for r in res["streams"]:
        print(f"{r['streams']:>7} | {r['batched_p50_ms']:>10.2f} {r['batched_fps_per_stream']:>10} "
              f"{r['batched_fps_total']:>9} | {r['turns_p50_ms']:>8.2f} {r['turns_fps_per_stream']:>10} "
              f"{r['turns_fps_total']:>9} | {r['speedup']:>6}x")
    worst = max(r["max_diff_batched_vs_turns"] for r in res["streams"])
    print(f"batched and in-turns frames agree within {worst} uint8 level(s)")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m installation.bench engine", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    p.add_argument("--streams", type=_counts, nargs="?", const="1,2,4", default=None, metavar="N[,N...]",
                   help="several streams: batched against taking turns, for each count (alone: 1,2,4)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--pipeline-frames", type=int, default=None)
    p.add_argument("--engine-frames", type=int, default=None)
    p.add_argument("--acceleration", choices=["auto", "compile", "graphs", "eager"], default=None,
                   help="the engine's acceleration (default: auto on cuda, compile on cpu)")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default: 512 cuda, 64 cpu)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for both sides (default 1)")
    args = p.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pf = args.pipeline_frames or (30 if device == "cuda" else 40)
    ef = args.engine_frames or (200 if device == "cuda" else 80)
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    if args.size is not None and (args.size < 8 or args.size % 8):
        p.error(f"--size: expected a multiple of 8, got {args.size}")
    if args.streams is not None:
        # --engine-frames: rounds (one frame of every stream) per side and count.
        res = run_streams(device, args.streams, args.engine_frames or (200 if device == "cuda" else 40), log=log,
                          acceleration=args.acceleration, size=args.size, threads=args.threads)
        if args.json:
            print(json.dumps(res))
        else:
            _print_streams(res)
        return 0
    res = run(device, pf, ef, log=log, acceleration=args.acceleration, size=args.size, threads=args.threads)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"pipeline (diffusers img2img per frame): p50 {res['pipeline_p50_ms']:.2f} ms, "
              f"p95 {res['pipeline_p95_ms']:.2f} ms, {res['pipeline_fps']} fps")
        print(f"engine ({res['engine_accel']}): p50 {res['engine_p50_ms']:.2f} ms, "
              f"p95 {res['engine_p95_ms']:.2f} ms, {res['engine_fps']} fps")
        print(f"ratio (pipeline p50 / engine p50): {res['ratio']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
