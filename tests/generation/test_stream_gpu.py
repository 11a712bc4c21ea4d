"""The streaming engine on a CUDA GPU: fp16, CUDA graphs (and torch.compile), preparation of a
step count at run time. Skipped without CUDA; run by scripts/gpu_check.sh (pytest -m gpu)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from installation.generation.engine.tiny_model import ensure_tiny_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory):
    from diffusers import StableDiffusionImg2ImgPipeline

    from installation.generation.engine.arch import tiny_taesd

    folder = ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-sd")
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False,
                                                          torch_dtype=torch.float16)
    pipe.vae = tiny_taesd(1).to(torch.float16)
    pipe.to("cuda")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def engine(pipe, size=64, **opts):
    from installation.generation.engine.parts import parts_from_pipeline
    from installation.generation.engine.stream import EngineOptions, StreamEngine

    parts = parts_from_pipeline(pipe, device="cuda", dtype=torch.float16)
    return StreamEngine(parts, size, size, EngineOptions(**opts))


def camera(size=64):
    rng = np.random.default_rng(0)
    return (rng.random((size, size, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("accel", ["graphs", "auto"])
def test_graph_frames_equal_eager_frames(tiny_pipe, accel):
    from installation.generation.engine.stream import FrameRequest

    eager, fast = engine(tiny_pipe, acceleration="eager"), engine(tiny_pipe, acceleration=accel)
    fast.prepare([1], [False, True])
    assert fast.accel_label in (("graph",) if accel == "graphs" else ("compile+graph", "graph")), fast.stats.failed
    for txt in (False, True):
        req = FrameRequest("a red tree", seed=3, txt2img=txt)
        a, b = eager.frame(req, camera()), fast.frame(req, camera())
        assert a.shape == b.shape == (64, 64, 3) and a.dtype == np.uint8
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 3
    assert fast.stats.graph_frames >= 2 and fast.stats.eager_frames == 0
    # Inputs flow through the static buffers: a new prompt and seed change the graph's frame.
    c = fast.frame(FrameRequest("blue ocean", seed=4), camera())
    assert not np.array_equal(c, b)


def test_a_step_count_not_prepared_runs_eager_until_prepared(tiny_pipe):
    from installation.generation.engine.stream import FrameRequest

    eng = engine(tiny_pipe, acceleration="graphs")
    eng.prepare([1], [False])
    req = FrameRequest("a red tree", steps=2, seed=3)
    first = eng.frame(req, camera())  # eager (a stream batch of 2 fills with 2 runs)
    assert eng.stats.eager_frames == 2 and eng.stats.graph_frames == 0
    second = eng.frame(req, camera())  # captured between the frames, on this thread, then replayed
    assert eng.stats.graph_frames == 1, eng.stats.failed
    assert np.abs(first.astype(int) - second.astype(int)).max() <= 3  # no glitch at the switch
    # A strength change reaches the captured graph through its coefficient buffer.
    third = eng.frame(FrameRequest("a red tree", steps=2, seed=3, strength=0.9), camera())
    assert eng.stats.graph_frames == 2 and not np.array_equal(third, second)


def test_sd_turbo_architecture_runs_at_512_with_a_graph():
    from diffusers import StableDiffusionImg2ImgPipeline

    from installation.generation.engine.arch import sd_turbo_components
    from installation.generation.engine.stream import FrameRequest

    c = sd_turbo_components("cuda", torch.float16)
    pipe = StableDiffusionImg2ImgPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet,
                                          scheduler=c.scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    eng = engine(pipe, size=512, acceleration="graphs")
    eng.prepare([1], [False])
    assert eng.accel_label == "graph", eng.stats.failed
    cam = (np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8)  # a 4:3 camera: fitted on the GPU
    out = eng.frame(FrameRequest("a quiet garden", seed=1), cam)
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8 and eng.stats.graph_frames == 1
