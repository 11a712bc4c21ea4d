"""The streaming engine on the CPU with the tiny random-weight model: its frames equal the
diffusers pipelines' (the contract), and its stream-only behaviour (blends, drift, stream batch,
similarity filter, feedback) does what it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from installation.core.messages import GenerationParams, Prompt
from installation.generation.engine.tiny_model import ensure_tiny_model
from installation.show import GeneratorConfig

SIZE = 64


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
def camera() -> np.ndarray:
    import cv2

    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, SIZE, dtype=np.uint8)[None, :]
    img[..., 2] = np.linspace(255, 0, SIZE, dtype=np.uint8)[:, None]
    cv2.circle(img, (32, 32), 14, (250, 240, 30), -1)
    return img


def make_pipes(base_pipe, scheduler: str, autoencoder: str):
    from diffusers import LCMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    from installation.generation.engine.arch import tiny_taesd

    comps = dict(base_pipe.components)
    if scheduler == "lcm":
        comps["scheduler"] = LCMScheduler.from_config(base_pipe.scheduler.config)
    if autoencoder == "tiny":
        comps["vae"] = tiny_taesd(seed=1)
    img2img = StableDiffusionImg2ImgPipeline(**comps)
    txt2img = StableDiffusionPipeline(**comps)
    for p in (img2img, txt2img):
        p.set_progress_bar_config(disable=True)
    return img2img, txt2img


def make_engine(pipe, loud_prompts: bool = False, **options):
    from installation.generation.engine.parts import parts_from_pipeline
    from installation.generation.engine.stream import Conditioning, EngineOptions, StreamEngine

    parts = parts_from_pipeline(pipe)
    if loud_prompts:
        # The tiny random text encoder barely moves the picture; scaled embeddings make a prompt
        # change visible, so blends between prompts can be told apart.
        encode = parts.encode_prompt
        parts.encode_prompt = lambda t, n, cfg: Conditioning(encode(t, n, cfg).embeds * 40.0)
    return StreamEngine(parts, SIZE, SIZE, EngineOptions(**options))


def to_u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# --- the contract: the same frames as diffusers ---------------------------------------------


@pytest.mark.parametrize("scheduler", ["euler", "lcm"])
@pytest.mark.parametrize("autoencoder", ["tiny", "kl"])
def test_one_step_frames_equal_the_diffusers_pipelines(base_pipe, camera, scheduler, autoencoder):
    from PIL import Image

    from installation.generation.engine.schedulers import img2img_steps
    from installation.generation.engine.stream import FrameRequest

    img2img, txt2img = make_pipes(base_pipe, scheduler, autoencoder)
    # Loud embeddings on both sides: the tiny random text encoder barely moves the picture, so
    # without them a miswired conditioning could still match.
    engine = make_engine(img2img, loud_prompts=True)  # similarity filter and feedback blend off (the defaults)
    prompt = "a red tree in the snow"
    embeds = img2img.encode_prompt(prompt, "cpu", 1, False)[0] * 40.0
    for strength in (0.5, 0.3):
        ref = img2img(prompt_embeds=embeds, image=Image.fromarray(camera), strength=strength,
                      num_inference_steps=img2img_steps(1, strength), guidance_scale=0.0,
                      generator=torch.Generator().manual_seed(7), output_type="np").images[0]
        out = engine.frame(FrameRequest(prompt, steps=1, strength=strength, seed=7), camera)
        assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.uint8
        assert out.std() > 1  # a picture, not a flat field the two could trivially agree on
        assert max_diff(out, to_u8(ref)) <= 2, (scheduler, autoencoder, strength)
    # The comparison can fail: the pipeline with other embeddings (the plain ones) differs.
    # (Through the tiny 8-channel TAESD the prompt moves the picture by about 2 levels only.)
    quiet = img2img(prompt=prompt, image=Image.fromarray(camera), strength=0.3,
                    num_inference_steps=img2img_steps(1, 0.3), guidance_scale=0.0,
                    generator=torch.Generator().manual_seed(7), output_type="np").images[0]
    assert max_diff(out, to_u8(quiet)) > (2 if autoencoder == "kl" else 0), (scheduler, autoencoder, "conditioning")

    ref = txt2img(prompt_embeds=embeds, num_inference_steps=1, guidance_scale=0.0, height=SIZE, width=SIZE,
                  generator=torch.Generator().manual_seed(7), output_type="np").images[0]
    out = engine.frame(FrameRequest(prompt, steps=1, seed=7, txt2img=True), None)
    assert max_diff(out, to_u8(ref)) <= 2, (scheduler, autoencoder, "txt2img")
    # And the comparison can fail: another seed is another picture.
    other = engine.frame(FrameRequest(prompt, steps=1, seed=8, txt2img=True), None)
    assert max_diff(other, to_u8(ref)) > 2


def test_cpu_compiled_frames_equal_the_diffusers_pipeline(base_pipe, camera):
    """The CPU acceleration the benchmark uses (acceleration="compile": the whole frame program
    as one inductor graph) keeps the contract. The first run compiles for about a minute; later
    runs read the inductor cache."""
    from PIL import Image

    from installation.generation.engine.schedulers import img2img_steps
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "tiny")  # the bench's kind: Euler, TAESD-shaped
    engine = make_engine(img2img, loud_prompts=True, acceleration="compile")
    messages: list[str] = []
    engine.prepare([1], [False], progress=messages.append)
    assert engine.accel_label == "compile" and not engine.stats.failed, engine.stats.failed
    assert any("torch.compile" in m for m in messages)
    assert any("convolutions channels-last (timed on this machine; kept in" in m for m in messages)
    # The per-layer layout hooks lived only for the trace: the shared modules are as they were.
    assert not any(m._forward_pre_hooks for m in [*engine.unet.modules(), *engine.vae.modules()])
    prompt = "a red tree in the snow"
    embeds = img2img.encode_prompt(prompt, "cpu", 1, False)[0] * 40.0
    before = engine.stats.graph_frames
    for strength in (0.5, 0.3):  # a strength change moves only buffer values: no recompile
        ref = img2img(prompt_embeds=embeds, image=Image.fromarray(camera), strength=strength,
                      num_inference_steps=img2img_steps(1, strength), guidance_scale=0.0,
                      generator=torch.Generator().manual_seed(7), output_type="np").images[0]
        out = engine.frame(FrameRequest(prompt, steps=1, strength=strength, seed=7), camera)
        assert out.std() > 1
        assert max_diff(out, to_u8(ref)) <= 2, strength
    assert engine.stats.graph_frames == before + 2  # both frames ran the compiled program
    # It can fail: another seed's noise is another picture.
    other = engine.frame(FrameRequest(prompt, steps=1, strength=0.3, seed=8), camera)
    assert max_diff(other, to_u8(ref)) > 0


def test_a_compiled_cpu_engine_lets_its_model_go(tiny_model, camera):
    """A show switch or a restarted stage builds a new engine: the old one's weights must be
    freed, not kept by the compiled program (as they would be with Inductor's frozen weights)."""
    import gc
    import weakref

    from diffusers import StableDiffusionImg2ImgPipeline

    from installation.generation.engine.arch import tiny_taesd
    from installation.generation.engine.stream import FrameRequest

    def build_and_paint() -> list:
        pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_model, vae=tiny_taesd(seed=1), safety_checker=None,
                                                              requires_safety_checker=False)
        engine = make_engine(pipe, acceleration="compile")
        engine.prepare([1], [False], progress=lambda m: None)
        assert engine.accel_label == "compile"
        engine.frame(FrameRequest("a garden", steps=1, strength=0.5, seed=1), camera)
        return [weakref.ref(p) for p in (*engine.unet.parameters(), *engine.vae.parameters())]

    weights = build_and_paint()
    gc.collect()
    assert weights and sum(w() is not None for w in weights) == 0


def test_cpu_compile_failure_paints_eagerly(base_pipe, camera, monkeypatch):
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "tiny")
    engine = make_engine(img2img, acceleration="compile")
    plain = make_engine(img2img)

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken)
    messages: list[str] = []
    engine.prepare([1], [False], progress=messages.append)
    assert engine.accel_label == "eager" and "no C++ compiler" in engine.stats.failed[0]
    assert any("painting eagerly" in m for m in messages)
    req = FrameRequest("moon", steps=1, strength=0.5, seed=3)
    assert np.array_equal(engine.frame(req, camera), plain.frame(req, camera))
    assert engine.stats.eager_frames == 1


@pytest.fixture(scope="module")
def sdxl_pipe(base_pipe):
    from installation.generation.engine.arch import tiny_sdxl_pipeline

    return tiny_sdxl_pipeline(base_pipe)


@pytest.mark.parametrize("scheduler", ["euler", "euler_ancestral"])
def test_sdxl_frames_equal_the_diffusers_sdxl_pipelines(sdxl_pipe, camera, scheduler):
    """SDXL-Turbo's path: two text encoders, the pooled embedding and the size/crop time ids
    conditioning the UNet. One-step img2img and txt2img equal diffusers' SDXL pipelines, also
    with the Euler ancestral scheduler SDXL-Turbo ships (the engine runs it as Euler: at one
    step the two are the same)."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline
    from PIL import Image

    from installation.generation.engine.parts import parts_from_pipeline
    from installation.generation.engine.schedulers import img2img_steps, prepare_scheduler
    from installation.generation.engine.stream import Conditioning, EngineOptions, FrameRequest, StreamEngine

    comps = dict(sdxl_pipe.components)
    if scheduler == "euler_ancestral":
        comps["scheduler"] = EulerAncestralDiscreteScheduler.from_config(comps["scheduler"].config)
    img2img, txt2img = StableDiffusionXLImg2ImgPipeline(**comps), StableDiffusionXLPipeline(**comps)
    for p in (img2img, txt2img):
        p.set_progress_bar_config(disable=True)
    parts = parts_from_pipeline(img2img, scheduler=prepare_scheduler(img2img.scheduler))
    encode = parts.encode_prompt

    def loud(text: str, negative: str, cfg: bool) -> Conditioning:  # as make_engine, pooled too
        c = encode(text, negative, cfg)
        return Conditioning(c.embeds * 40.0, c.negative, c.pooled * 40.0, c.negative_pooled)

    parts.encode_prompt = loud
    engine = StreamEngine(parts, SIZE, SIZE, EngineOptions())
    assert engine.sdxl and engine.pooled_dim == 32
    prompt = "a red tree in the snow"
    embeds, _, pooled, _ = img2img.encode_prompt(prompt, device="cpu", num_images_per_prompt=1,
                                                 do_classifier_free_guidance=False)

    def reference(pipe, pooled_scale=40.0, **kw):
        return to_u8(pipe(prompt_embeds=embeds * 40.0, pooled_prompt_embeds=pooled * pooled_scale, guidance_scale=0.0,
                          generator=torch.Generator().manual_seed(7), output_type="np", **kw).images[0])

    for strength in (0.5, 0.3):
        ref = reference(img2img, image=Image.fromarray(camera), strength=strength,
                        num_inference_steps=img2img_steps(1, strength))
        out = engine.frame(FrameRequest(prompt, steps=1, strength=strength, seed=7), camera)
        assert out.std() > 1
        assert max_diff(out, ref) <= 2, strength
    # It can fail: the pooled embedding is part of the conditioning.
    unpooled = reference(img2img, pooled_scale=1.0, image=Image.fromarray(camera), strength=0.3,
                         num_inference_steps=img2img_steps(1, 0.3))
    assert max_diff(out, unpooled) > 2

    ref = reference(txt2img, num_inference_steps=1, height=SIZE, width=SIZE)
    out = engine.frame(FrameRequest(prompt, steps=1, seed=7, txt2img=True), None)
    assert max_diff(out, ref) <= 2, "txt2img"


def test_an_sdxl_folder_loads_as_sdxl_and_paints(sdxl_pipe, tmp_path, camera, caplog, monkeypatch):
    """A saved SDXL model folder goes through the show's loading path (the pipeline class from
    its model_index.json); TAESDXL is asked for and, offline and absent, the full VAE is used
    with a warning naming the fetch command."""
    from installation.generation.engine.stream_generator import StreamGenerator

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # TAESDXL absent, even where it was fetched

    sdxl_pipe.save_pretrained(tmp_path / "tiny-sdxl", safe_serialization=True)
    gen = StreamGenerator(GeneratorConfig(model=str(tmp_path / "tiny-sdxl"), width=64, height=64,
                                          similarity_filter=0.0))
    with caplog.at_level("WARNING"):
        gen.load()
    assert gen.name == "stream" and gen.engine.sdxl
    assert any("madebyollin/taesdxl" in r.getMessage() and "fetch-models" in r.getMessage() for r in caplog.records)
    img = gen.generate(Prompt("a garden"), GenerationParams(seed=3), camera)
    txt = gen.generate(Prompt("a garden"), GenerationParams(seed=3, mode="txt2img"), camera)
    assert img.shape == txt.shape == (64, 64, 3) and max_diff(img, txt) > 2


def test_two_steps_sequential_equal_the_pipeline_and_stream_batch_lags_one_frame(base_pipe, camera):
    from PIL import Image

    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "kl")
    req = FrameRequest("blue ocean at night", steps=2, strength=0.5, seed=3)
    ref = img2img(prompt=req.prompt, image=Image.fromarray(camera), strength=0.5, num_inference_steps=4,
                  guidance_scale=0.0, generator=torch.Generator().manual_seed(3), output_type="np").images[0]
    sequential = make_engine(img2img, stream_batch=False)
    assert max_diff(sequential.frame(req, camera), to_u8(ref)) <= 2

    batched = make_engine(img2img, stream_batch=True)
    frames = [camera, camera[::-1].copy(), np.ascontiguousarray(camera[:, ::-1])]
    outs = [batched.frame(req, f) for f in frames]
    expect = [sequential.frame(req, f) for f in frames]
    assert max_diff(outs[0], expect[0]) <= 2  # primed with the first frame
    # Each later output is the frame before it, finished: one UNet call per frame, one frame late.
    assert max_diff(outs[1], expect[0]) <= 2
    assert max_diff(outs[2], expect[1]) <= 2
    assert max_diff(outs[2], expect[2]) > 2


# --- prompt and seed changes without a cut ----------------------------------------------------


def test_a_new_prompt_blends_in_and_is_encoded_once(base_pipe, camera):
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "kl")
    engine = make_engine(img2img, loud_prompts=True)
    a = FrameRequest("red fire", seed=1, txt2img=True, blend_s=2.0)
    b = FrameRequest("blue ocean", seed=1, txt2img=True, blend_s=2.0)
    pure_a = engine.frame(a, None, now=0.0)
    encodes = engine.stats.text_encodes
    start = engine.frame(b, None, now=10.0)  # the change arrives: still (almost) the old picture
    mid = engine.frame(b, None, now=11.0)
    end = engine.frame(b, None, now=12.5)
    assert max_diff(start, pure_a) <= 2
    pure_b = make_engine(img2img, loud_prompts=True).frame(b, None, now=0.0)
    assert max_diff(end, pure_b) <= 2
    assert max_diff(mid, pure_a) > 2 and max_diff(mid, pure_b) > 2
    for t in (13.0, 14.0):
        engine.frame(b, None, now=t)
    assert engine.stats.text_encodes == encodes + 1  # "blue ocean" once; "red fire" came from the cache
    engine.frame(a, None, now=20.0)
    assert engine.stats.text_encodes == encodes + 1


def test_seed_change_blends_and_drift_moves_a_still_prompt(base_pipe):
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "kl")
    engine = make_engine(img2img)
    s1 = engine.frame(FrameRequest("moon", seed=1, txt2img=True, blend_s=1.0), None, now=0.0)
    same = engine.frame(FrameRequest("moon", seed=1, txt2img=True, blend_s=1.0), None, now=5.0)
    assert np.array_equal(s1, same)  # no drift: a fixed prompt and seed stand still
    assert np.array_equal(engine.frame(FrameRequest("moon", seed=2, txt2img=True, blend_s=1.0), None, now=10.0), s1)
    half = engine.frame(FrameRequest("moon", seed=2, txt2img=True, blend_s=1.0), None, now=10.5)
    s2 = engine.frame(FrameRequest("moon", seed=2, txt2img=True, blend_s=1.0), None, now=12.0)
    assert max_diff(half, s1) > 2 and max_diff(half, s2) > 2
    assert max_diff(s2, make_engine(img2img).frame(FrameRequest("moon", seed=2, txt2img=True), None)) <= 2

    drift = FrameRequest("moon", seed=2, txt2img=True, seed_drift=0.5)
    frames = [engine.frame(drift, None, now=20.0 + 0.5 * i) for i in range(4)]
    assert all(max_diff(x, y) > 0 for x, y in zip(frames, frames[1:]))


def test_slerped_noise_keeps_its_scale():
    from installation.generation.engine.blending import NoiseWalk

    walk = NoiseWalk(lambda seed: torch.randn((4, 32, 32), generator=torch.Generator().manual_seed(seed)))
    walk.set_seed(1, 0.0, now=0.0)
    walk.set_seed(2, 2.0, now=0.0)
    mid = walk.value(1.0)
    assert 0.9 < float(mid.std()) < 1.1  # a lerp would give about 0.71


# --- stream-only behaviour ------------------------------------------------------------------


def test_similarity_filter_skips_a_still_scene_but_not_forever(base_pipe, camera):
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "kl")
    engine = make_engine(img2img, similarity_threshold=0.98, similarity_max_skip=3)
    req = FrameRequest("garden", seed=1)
    first = engine.frame(req, camera)
    noisy = np.clip(camera.astype(int) + 1, 0, 255).astype(np.uint8)  # sensor noise, not a new scene
    for _ in range(3):
        assert engine.frame(req, noisy) is first
    assert engine.stats.skipped == 3
    engine.frame(req, noisy)  # max_skip reached: painted again
    assert engine.stats.skipped == 3
    moved = engine.frame(req, camera[::-1].copy())
    assert engine.stats.skipped == 3 and max_diff(moved, first) > 2


def test_a_cut_to_a_still_scene_comes_out_of_the_stream_batch(base_pipe, camera):
    """With a stream batch (steps > 1) a new camera frame comes out stages-1 calls later: the
    similarity filter must not skip those calls, or a cut followed by a still scene shows the
    old picture for up to similarity_max_skip frames (found rendering a clip with a cut)."""
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "kl")
    engine = make_engine(img2img, similarity_threshold=0.98, similarity_max_skip=10, stream_batch=True)
    req = FrameRequest("garden", steps=2, strength=0.5, seed=1)
    for _ in range(4):
        before = engine.frame(req, camera)
    cut = camera[::-1].copy()
    after = [engine.frame(req, cut) for _ in range(3)]
    assert max_diff(after[-1], before) > 2, "the cut never came out of the stream batch"
    assert engine.stats.skipped >= 1  # the still scenes before and after are still skipped


def test_feedback_blend_mixes_in_the_previous_frame(base_pipe, camera):
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "kl")
    plain, blended = make_engine(img2img), make_engine(img2img, feedback=0.5)
    req = FrameRequest("garden", seed=1)
    flipped = camera[::-1].copy()
    a0, b0 = plain.frame(req, camera), blended.frame(req, camera)
    assert np.array_equal(a0, b0)  # the first frame has nothing to blend with
    a1, b1 = plain.frame(req, flipped), blended.frame(req, flipped)
    expect = (a1.astype(float) + a0.astype(float)) / 2
    assert np.abs(b1.astype(float) - expect).max() <= 2


def test_feedback_mode_brings_a_still_to_life(base_pipe, camera):
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "kl")
    engine = make_engine(img2img)
    engine.set_still(camera)
    req = FrameRequest("a garden", seed=1, strength=0.5, feedback_loop=True)
    frames = [engine.frame(req, None) for _ in range(3)]
    # Frame 1 restyles the still; each next one repaints the last output.
    assert max_diff(frames[0], make_engine(img2img).frame(FrameRequest("a garden", seed=1), camera)) <= 2
    assert max_diff(frames[1], make_engine(img2img).frame(FrameRequest("a garden", seed=1), frames[0])) <= 2
    assert max_diff(frames[2], frames[1]) > 0


def test_camera_frames_of_another_size_are_fitted_on_the_device(base_pipe):
    from installation.generation.engine.stream import fit_on_device
    from installation.generation.imaging import fit_image

    rng = np.random.default_rng(0)
    big = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    big = np.ascontiguousarray(np.repeat(np.repeat(big[::8, ::8], 8, 0), 8, 1))[:120, :160]  # blocky: resizers agree
    dev = fit_on_device(torch.from_numpy(big), 64, 64).numpy()
    assert dev.shape == (64, 64, 3)
    assert np.abs(dev.astype(int) - fit_image(big, 64, 64).astype(int)).mean() < 6


def test_acceleration_falls_back_to_eager_when_capture_fails(base_pipe, monkeypatch):
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "kl")
    engine = make_engine(img2img)
    key = engine.program_key(FrameRequest("x"))
    assert engine.prepare_program(key) == "eager"  # a CPU: eager, no attempt
    calls = []

    def broken_capture(P, compile_too):
        calls.append(compile_too)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(engine, "device", "cuda")
    monkeypatch.setattr(engine, "_compile", lambda progress: True)
    monkeypatch.setattr(engine, "_capture", broken_capture)
    messages: list[str] = []
    assert engine.prepare_program(key, messages.append) == "eager"
    assert calls == [True, False]  # compile+graph, then a plain graph, then eager
    assert any("torch.compile" in m for m in messages)
    assert len(engine.stats.failed) == 2 and "stream is capturing" in engine.stats.failed[0]


def test_bad_requests_are_clear_errors(base_pipe):
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "kl")
    engine = make_engine(img2img)
    with pytest.raises(ValueError, match="img2img needs a camera image"):
        engine.frame(FrameRequest("x"), None)
    with pytest.raises(ValueError, match="steps: expected 1 to 8"):
        engine.frame(FrameRequest("x", steps=9, txt2img=True), None)
    with pytest.raises(ValueError, match="feedback mode needs"):
        engine.frame(FrameRequest("x", feedback_loop=True), None)


# --- the Generator a show runs ---------------------------------------------------------------


@pytest.fixture(scope="module")
def stream_generator(tiny_model):
    from installation.generation.engine.stream_generator import StreamGenerator

    gen = StreamGenerator(GeneratorConfig(model=str(tiny_model), width=96, height=64, similarity_filter=0.0))
    gen.load()
    return gen


def test_stream_generator_paints_every_mode(stream_generator, camera):
    gen = stream_generator
    assert gen.name == "stream" and gen.device == "cpu" and gen.dtype == "float32" and gen.accel == "eager"
    cam = np.ascontiguousarray(np.repeat(camera, 2, axis=1))  # 64x128: cropped to 96x64
    img = gen.generate(Prompt("a garden"), GenerationParams(), cam)
    txt = gen.generate(Prompt("a garden"), GenerationParams(mode="txt2img"), cam)
    assert img.shape == txt.shape == (64, 96, 3) and img.dtype == np.uint8
    assert max_diff(img, txt) > 2  # txt2img ignored the camera
    none = gen.generate(Prompt("a garden"), GenerationParams(), None)  # img2img without a camera: txt2img
    assert np.array_equal(none, txt)
    fb = [gen.generate(Prompt("a garden"), GenerationParams(mode="feedback"), cam) for _ in range(2)]
    assert max_diff(fb[0], fb[1]) > 0
    from installation.generation.imaging import fit_image

    assert np.array_equal(gen.generate(Prompt("x"), GenerationParams(strength=0.0), cam), fit_image(cam, 96, 64))
    with pytest.raises(ValueError, match="camera image: expected an RGB uint8 array"):
        gen.generate(Prompt("x"), GenerationParams(), np.zeros((8, 8), np.uint8))


def test_stream_generator_is_animating_while_blending_or_drifting(stream_generator):
    gen = stream_generator
    gen.generate(Prompt("one"), GenerationParams(mode="txt2img"), None)
    assert not gen.animating
    gen.generate(Prompt("two"), GenerationParams(mode="txt2img", prompt_blend_s=30.0), None)
    assert gen.animating
    gen.generate(Prompt("two"), GenerationParams(mode="txt2img", seed_drift=0.2), None)
    assert gen.animating


def test_a_style_lora_is_fused_and_changes_the_picture(tiny_model, tmp_path, camera):
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    from installation.generation.engine.stream_generator import StreamGenerator

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model, safety_checker=None, requires_safety_checker=False)
    torch.manual_seed(0)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():  # peft starts B at zero (a no-op LoRA): give it a style
        for name, param in pipe.unet.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    StableDiffusionPipeline.save_lora_weights(tmp_path / "style", unet_lora_layers=get_peft_model_state_dict(pipe.unet))
    lora_file = next((tmp_path / "style").glob("*.safetensors"))

    params = GenerationParams(seed=5)
    plain = StreamGenerator(GeneratorConfig(model=str(tiny_model), width=64, height=64, similarity_filter=0.0))
    styled = StreamGenerator(GeneratorConfig(model=str(tiny_model), width=64, height=64, similarity_filter=0.0,
                                             lora=str(lora_file), lora_scale=1.0))
    plain.load()
    styled.load()
    assert max_diff(plain.generate(Prompt("a garden"), params, camera),
                    styled.generate(Prompt("a garden"), params, camera)) > 2


def test_a_missing_lora_names_itself(tiny_model, tmp_path):
    from installation.generation.engine.stream_generator import StreamGenerator

    gen = StreamGenerator(GeneratorConfig(model=str(tiny_model), lora=str(tmp_path / "nope.safetensors")))
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        gen.load()


# --- run-time preparation (the CUDA-graph path, with torch.cuda's graph API faked on the CPU) ---


class _FakeCuda:
    """Stands in for torch.cuda's stream and graph API, so the engine's real _capture runs on
    the CPU: a "captured" graph replays the frame program captured, reading the same static
    buffers, as a CUDA graph would (and nothing a frame sets in Python after capture)."""

    def __init__(self, engine, monkeypatch) -> None:
        import contextlib

        self.captured: list = []
        self.capturing = False
        fake = self
        forward = engine._forward

        class Graph:
            def __init__(self) -> None:
                self.program = None

            def replay(self) -> None:
                forward(self.program)

        def spy_forward(P):
            if fake.capturing:
                fake.current.program = P
                fake.captured.append(P.key)
            forward(P)

        @contextlib.contextmanager
        def graph(g, capture_error_mode="global"):
            fake.capturing, fake.current = True, g
            try:
                yield
            finally:
                fake.capturing = False

        class Stream:
            def wait_stream(self, other) -> None:
                pass

        monkeypatch.setattr(engine, "_forward", spy_forward)
        monkeypatch.setattr(engine, "_can_capture", lambda: True)
        monkeypatch.setattr(torch.cuda, "Stream", Stream)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: Stream())
        monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
        monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
        monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
        monkeypatch.setattr(torch.cuda, "graph", graph)


def test_a_step_count_prepared_at_run_time_keeps_the_picture_and_follows_strength(base_pipe, camera, monkeypatch):
    """An unprepared program paints eagerly once, is captured on the painting thread between
    two frames (warm-up and capture scribble placeholders into its buffers), and then paints
    exactly what an engine that never captured paints, through strength and prompt changes."""
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "kl")
    fast = make_engine(img2img, loud_prompts=True, feedback=0.3, acceleration="graphs")
    plain = make_engine(img2img, loud_prompts=True, feedback=0.3, acceleration="eager")
    fake = _FakeCuda(fast, monkeypatch)
    frames = [camera, camera[::-1].copy(), np.ascontiguousarray(camera[:, ::-1]), camera]
    reqs = [FrameRequest("a red tree", steps=2, seed=3),
            FrameRequest("a red tree", steps=2, seed=3),
            FrameRequest("a red tree", steps=2, seed=3, strength=0.9),  # a strength change after capture
            FrameRequest("blue ocean", steps=2, seed=5, strength=0.9)]
    for i, (req, img) in enumerate(zip(reqs, frames)):
        a, b = plain.frame(req, img, now=float(i)), fast.frame(req, img, now=float(i))
        assert max_diff(a, b) == 0, i
        assert fast.stats.graph_frames == (0 if i == 0 else i), fast.stats.failed
    assert fake.captured == [fast.program_key(reqs[0])]  # captured once, on this thread
    assert fast.stats.eager_frames == 2  # the first frame filled the stream batch eagerly
    assert max_diff(plain.frame(reqs[2], camera, now=9.0), plain.frame(reqs[0], camera, now=9.0)) > 2


def test_a_failed_capture_paints_eagerly_and_is_not_retried(base_pipe, camera, monkeypatch):
    from installation.generation.engine.stream import FrameRequest

    img2img, _ = make_pipes(base_pipe, "euler", "kl")
    engine = make_engine(img2img, acceleration="graphs")
    calls = []

    def broken_capture(P, compile_too):
        calls.append(compile_too)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(engine, "_can_capture", lambda: True)
    monkeypatch.setattr(engine, "_capture", broken_capture)
    for _ in range(4):
        engine.frame(FrameRequest("x", seed=1), camera)
    assert calls == [False]  # once, at run time without torch.compile; then eager for good
    assert engine.stats.eager_frames == 4 and len(engine.stats.failed) == 1
