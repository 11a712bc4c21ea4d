"""Several streams in one engine call, on the CPU with the tiny random-weight model: a batch of
streams paints each stream exactly as painting it alone would (the proof that batching is
right), in one UNet call; each stream's state (prompt blend, noise walk, feedback frame,
similarity filter, frames in flight) stays its own, also when the set of streams changes; and
the generators a show runs (stream, diffusers, preview) take the same several-stream call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from installation.core.messages import GenerationParams, Prompt, StreamRequest
from installation.generation.engine.tiny_model import ensure_tiny_model
from installation.generation.imaging import fit_image
from installation.show import GeneratorConfig

SIZE = 64
PROMPTS = ("red fire", "blue ocean at night", "a green garden in spring")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a busy 2-core box, two threads per op wait on each other (30x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-sd")


@pytest.fixture(scope="module")
def base_pipe(tiny_model):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_model, safety_checker=None,
                                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def wide_camera() -> np.ndarray:
    """One camera frame three streams wide: a triptych's left, centre and right thirds differ."""
    import cv2

    img = np.zeros((SIZE, 3 * SIZE, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, 3 * SIZE, dtype=np.uint8)[None, :]
    img[..., 2] = np.linspace(255, 0, SIZE, dtype=np.uint8)[:, None]
    cv2.circle(img, (40, 30), 16, (250, 240, 30), -1)
    cv2.rectangle(img, (80, 10), (120, 50), (20, 200, 60), -1)
    cv2.line(img, (140, 0), (190, 63), (255, 255, 255), 5)
    return img


def thirds(img: np.ndarray) -> list[np.ndarray]:
    w = img.shape[1] // 3
    return [np.ascontiguousarray(img[:, i * w : (i + 1) * w]) for i in range(3)]


def moving(img: np.ndarray, n: int) -> list[np.ndarray]:
    """n camera frames of a moving scene."""
    return [np.roll(img, 5 * k, axis=0).copy() for k in range(n)]


def pipe_with(base_pipe, scheduler: str, autoencoder: str):
    from diffusers import LCMScheduler, StableDiffusionImg2ImgPipeline

    from installation.generation.engine.arch import tiny_taesd

    comps = dict(base_pipe.components)
    if scheduler == "lcm":
        comps["scheduler"] = LCMScheduler.from_config(base_pipe.scheduler.config)
    if autoencoder == "tiny":
        comps["vae"] = tiny_taesd(seed=1)
    pipe = StableDiffusionImg2ImgPipeline(**comps)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_engine(pipe, **options):
    from installation.generation.engine.parts import parts_from_pipeline
    from installation.generation.engine.stream import Conditioning, EngineOptions, StreamEngine

    parts = parts_from_pipeline(pipe)
    # The tiny random text encoder barely moves the picture; scaled embeddings make each
    # stream's prompt visible, so a stream painted with another's prompt cannot pass.
    encode = parts.encode_prompt
    parts.encode_prompt = lambda t, n, cfg: Conditioning(encode(t, n, cfg).embeds * 40.0)
    return StreamEngine(parts, SIZE, SIZE, EngineOptions(**options))


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


class UNetCalls:
    """Counts the UNet's calls and the rows of each."""

    def __init__(self, unet) -> None:
        self.rows: list[int] = []
        self._hook = unet.register_forward_pre_hook(lambda m, args: self.rows.append(int(args[0].shape[0])))

    def close(self) -> None:
        self._hook.remove()


# --- the proof: a batch paints each stream as painting it alone does ------------------------------


@pytest.mark.parametrize(("scheduler", "autoencoder"), [("euler", "tiny"), ("lcm", "kl")])
def test_a_batch_of_streams_equals_each_stream_painted_alone_in_one_unet_call(base_pipe, wide_camera, scheduler,
                                                                              autoencoder):
    from installation.generation.engine.stream import FrameRequest

    pipe = pipe_with(base_pipe, scheduler, autoencoder)
    batched = make_engine(pipe)
    alone = [make_engine(pipe) for _ in range(3)]
    # Each stream its own prompt, seed, strength (so its own start timestep) and camera third.
    reqs = [FrameRequest(PROMPTS[i], steps=1, strength=(0.3, 0.5, 0.8)[i], seed=11 + i, stream=i) for i in range(3)]
    calls = UNetCalls(pipe.unet)
    try:
        for k, frame in enumerate(moving(wide_camera, 3)):
            crops = thirds(frame)
            calls.rows.clear()
            outs = batched.frames(list(zip(reqs, crops)), now=float(k))
            assert calls.rows == [3], calls.rows  # one UNet call over the three streams
            for i, out in enumerate(outs):
                assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.uint8 and out.std() > 1
                assert max_diff(out, alone[i].frame(reqs[i], crops[i], now=float(k))) <= 1, (k, i)
            # ... and the streams are three different pictures.
            assert min(max_diff(outs[a], outs[b]) for a, b in ((0, 1), (0, 2), (1, 2))) > 2
    finally:
        calls.close()
    assert batched.stats.frames == 9 and batched.stats.eager_frames == 3


def test_strength_seed_and_prompt_each_change_only_their_stream(base_pipe, wide_camera):
    """Per-stream timesteps and coefficients: two streams on the same image and prompt differ by
    strength alone, and one stream's new seed leaves the other's picture as it was."""
    from installation.generation.engine.stream import FrameRequest

    pipe = pipe_with(base_pipe, "euler", "kl")
    engine = make_engine(pipe)
    cam = thirds(wide_camera)[1]
    a = FrameRequest("moon", strength=0.3, seed=5, stream=0)
    b = FrameRequest("moon", strength=0.9, seed=5, stream=1)
    first = engine.frames([(a, cam), (b, cam)], now=0.0)
    assert max_diff(first[0], first[1]) > 2  # strength alone (the same noise, image and prompt)
    assert max_diff(first[1], make_engine(pipe).frame(b, cam)) <= 1
    reseeded = engine.frames([(a, cam), (FrameRequest("moon", strength=0.9, seed=6, stream=1), cam)], now=1.0)
    assert max_diff(reseeded[0], first[0]) == 0 and max_diff(reseeded[1], first[1]) > 2


def test_each_streams_blend_drift_feedback_and_filter_stay_its_own(base_pipe, wide_camera):
    """Three streams through five calls, each compared with an engine painting it alone: stream
    0 blends to a new prompt (its neighbours must not), stream 1's camera stands still (its
    similarity filter skips, stream 0's must not), stream 2 is txt2img with drifting noise (a
    group of its own, painted in turn). A stream batch (2 steps) and the feedback blend keep
    frames from earlier calls, so any leak between rows would show."""
    from installation.generation.engine.stream import FrameRequest

    pipe = pipe_with(base_pipe, "euler", "tiny")
    opts = dict(feedback=0.3, similarity_threshold=0.98, similarity_max_skip=10, stream_batch=True)
    batched = make_engine(pipe, **opts)
    alone = [make_engine(pipe, **opts) for _ in range(3)]
    frames = moving(wide_camera, 5)
    still = thirds(wide_camera)[1]
    held = 0
    last = None
    for k, frame in enumerate(frames):
        crops = thirds(frame)
        prompt0 = PROMPTS[0] if k < 2 else PROMPTS[1]
        items = [(FrameRequest(prompt0, steps=2, strength=0.5, seed=1, blend_s=2.0, stream=0), crops[0]),
                 (FrameRequest(PROMPTS[2], steps=2, strength=0.7, seed=2, stream=1), still),
                 (FrameRequest(PROMPTS[1], steps=1, seed=3, seed_drift=0.5, txt2img=True, stream=2), None)]
        outs = batched.frames(items, now=0.5 * k)
        for i, (req, img) in enumerate(items):
            assert max_diff(outs[i], alone[i].frame(req, img, now=0.5 * k)) <= 1, (k, i)
        if last is not None and outs[1] is last[1]:
            held += 1
        assert last is None or max_diff(outs[2], last[2]) > 0  # the drifting stream moves every call
        last = outs
    assert held >= 1 and batched.stats.skipped == held == alone[1].stats.skipped
    assert alone[0].stats.skipped == 0
    assert batched.changing(now=2.0)  # stream 2 drifts (and stream 0 is mid-blend)
    assert not batched.changing(now=2.0, streams=[1])


def test_the_set_of_streams_can_change_between_calls(base_pipe, wide_camera):
    """1 → 3 → 2 (the middle one dropped) → 3 streams, with a stream batch and the feedback
    blend: each stream's pictures go on exactly as if it had been painted alone; a stream that
    moves to another row of another batch takes its frames in flight along."""
    from installation.generation.engine.stream import FrameRequest

    pipe = pipe_with(base_pipe, "euler", "kl")
    opts = dict(feedback=0.3, stream_batch=True)
    batched = make_engine(pipe, **opts)
    alone = [make_engine(pipe, **opts) for _ in range(3)]
    reqs = [FrameRequest(PROMPTS[i], steps=2, strength=0.6, seed=20 + i, stream=i) for i in range(3)]
    phases = [[0], [0], [0, 1, 2], [0, 1, 2], [0, 2], [0, 2], [0, 1, 2]]
    runs_before = 0
    for k, (streams, frame) in enumerate(zip(phases, moving(wide_camera, len(phases)))):
        crops = thirds(frame)
        outs = batched.frames([(reqs[i], crops[i]) for i in streams], now=float(k))
        assert len(outs) == len(streams)
        for i, out in zip(streams, outs):
            assert max_diff(out, alone[i].frame(reqs[i], crops[i], now=float(k))) <= 1, (k, i)
        runs = batched.stats.eager_frames - runs_before
        runs_before = batched.stats.eager_frames
        # New streams fill their stream batch first (2 runs); streams that moved need no refill.
        assert runs == (2 if k in (0, 2) else 1), (k, runs)


def test_bad_several_stream_calls_are_clear_errors(base_pipe, wide_camera):
    from installation.generation.engine.stream import FrameRequest

    engine = make_engine(pipe_with(base_pipe, "euler", "tiny"))
    cam = thirds(wide_camera)[0]
    with pytest.raises(ValueError, match="stream 1: asked for twice in one call"):
        engine.frames([(FrameRequest("x", stream=1), cam), (FrameRequest("y", stream=1), cam)])
    with pytest.raises(ValueError, match="img2img needs a camera image"):
        engine.frames([(FrameRequest("x", stream=0), cam), (FrameRequest("y", stream=1), None)])
    assert engine.stats.frames == 0  # checked before any stream painted
    assert engine.frames([]) == []


# --- the generators a show runs ------------------------------------------------------------------


def stream_requests(wide_camera, modes=("img2img", "img2img", "img2img"), strengths=(0.5, 0.5, 0.5)):
    return [StreamRequest(i, Prompt(PROMPTS[i]), GenerationParams(seed=i + 1, mode=modes[i], strength=strengths[i]),
                          thirds(wide_camera)[i]) for i in range(3)]


@pytest.fixture(scope="module")
def stream_cfg(tiny_model):
    return GeneratorConfig(model=str(tiny_model), width=SIZE, height=SIZE, similarity_filter=0.0)


def test_the_stream_generator_paints_several_streams(stream_cfg, wide_camera):
    from installation.generation.engine.stream_generator import StreamGenerator

    gen, ref = StreamGenerator(stream_cfg), StreamGenerator(stream_cfg)
    gen.load()
    ref.load()
    reqs = stream_requests(wide_camera, modes=("img2img", "txt2img", "img2img"), strengths=(0.5, 0.5, 0.0))
    outs = gen.generate_many(reqs)
    assert [o.shape for o in outs] == [(SIZE, SIZE, 3)] * 3
    assert np.array_equal(outs[2], fit_image(reqs[2].image, SIZE, SIZE))  # strength 0: the camera's third
    # Stream 0 is the stream `generate` paints.
    assert max_diff(outs[0], ref.generate(reqs[0].prompt, reqs[0].params, reqs[0].image)) <= 1
    assert max_diff(outs[0], outs[1]) > 2

    # Feedback loops with neither a still nor a camera: each stream starts from its own
    # txt2img frame, then repaints its own last frame.
    fb = [StreamRequest(i, Prompt(PROMPTS[i - 3]), GenerationParams(seed=i, mode="feedback")) for i in (3, 4)]
    first = gen.generate_many(fb)
    again = gen.generate_many(fb)
    assert gen.animating and gen.engine is not None and gen.engine.feedback_ready(3)
    assert max_diff(first[0], first[1]) > 2 and max_diff(again[0], first[0]) > 0
    with pytest.raises(ValueError, match="stream 1: camera image: expected an RGB uint8 array"):
        gen.generate_many([StreamRequest(1, Prompt("x"), GenerationParams(), np.zeros((8, 8), np.uint8))])


def test_the_pipeline_generator_paints_several_streams_in_turn(tiny_model, wide_camera):
    from installation.generation.engine.diffusers_generator import DiffusersGenerator

    gen = DiffusersGenerator(GeneratorConfig(kind="diffusers", model=str(tiny_model), width=SIZE, height=SIZE))
    gen.load()
    reqs = stream_requests(wide_camera, strengths=(0.3, 0.5, 0.8))
    outs = gen.generate_many(reqs)
    for r, out in zip(reqs, outs):
        assert np.array_equal(out, gen.generate(r.prompt, r.params, r.image))  # the pipeline is deterministic
    assert max_diff(outs[0], outs[2]) > 2
    with pytest.raises(ValueError, match="each stream at most once"):
        gen.generate_many([reqs[0], reqs[0]])


def test_the_preview_paints_several_streams(wide_camera):
    from installation.generation.preview import PreviewGenerator

    gen = PreviewGenerator(SIZE, SIZE, clock=lambda: 3.0)
    reqs = stream_requests(wide_camera)
    outs = gen.generate_many(reqs)
    assert not gen.animating
    for r, out in zip(reqs, outs):
        assert np.array_equal(out, gen.generate(r.prompt, r.params, r.image))
    assert min(max_diff(outs[a], outs[b]) for a, b in ((0, 1), (0, 2), (1, 2))) > 2
    gen.generate_many([StreamRequest(0, Prompt("snow"), GenerationParams(seed=1)),
                       StreamRequest(1, Prompt("fire"), GenerationParams(seed=2), reqs[1].image)])
    assert gen.animating  # a stream without a camera paints the drifting canvas


# --- CUDA: the batched program through a CUDA graph (scripts/gpu_check.sh runs -m gpu) -------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_batch_through_a_cuda_graph_equals_streams_painted_alone(tiny_model, wide_camera):
    from diffusers import StableDiffusionImg2ImgPipeline

    from installation.generation.engine.arch import tiny_taesd
    from installation.generation.engine.parts import parts_from_pipeline
    from installation.generation.engine.stream import EngineOptions, FrameRequest, StreamEngine

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_model, safety_checker=None,
                                                          requires_safety_checker=False, torch_dtype=torch.float16)
    pipe.vae = tiny_taesd(1).to(torch.float16)
    pipe.to("cuda")
    parts = parts_from_pipeline(pipe, device="cuda", dtype=torch.float16)
    fast = StreamEngine(parts, SIZE, SIZE, EngineOptions(acceleration="graphs"))
    fast.prepare([2], [False], streams=[3])
    assert not fast.stats.failed, fast.stats.failed
    eager = [StreamEngine(parts, SIZE, SIZE, EngineOptions(acceleration="eager")) for _ in range(3)]
    reqs = [FrameRequest(PROMPTS[i], steps=2, strength=(0.3, 0.5, 0.8)[i], seed=i, stream=i) for i in range(3)]
    for k, frame in enumerate(moving(wide_camera, 3)):
        crops = thirds(frame)
        outs = fast.frames(list(zip(reqs, crops)), now=float(k))
        for i in range(3):
            assert max_diff(outs[i], eager[i].frame(reqs[i], crops[i], now=float(k))) <= 3, (k, i)
    assert fast.stats.graph_frames >= 3 and fast.stats.eager_frames == 0
