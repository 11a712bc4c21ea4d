"""The streaming engine: uint8 frame in, uint8 frame out, the denoising loop written out in the
open on the device.

Per frame the host does only this: copy the camera frame into a (pinned) buffer, update the
few small device buffers that changed (blended prompt embeddings, walked noise, schedule
coefficients), run the frame program (eager, or one CUDA-graph replay), and copy the result
back. The text encoder runs only when the prompt changes; the scheduler maths is precomputed
per (steps, strength) into a coefficient table (schedulers.py).

A *frame program* is one (stages, txt2img?, guidance?, stream batch?) combination with its own
static buffers, so a CUDA graph captured over it replays with no Python in the loop. With
more than one step the stages run as a stream batch: each call advances every frame in flight
by one stage in a single UNet call (StreamDiffusion's trick), so output lags by steps-1 frames
and costs about one batched UNet call per frame.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import cpu_layout
from .blending import EmbeddingCache, NoiseWalk, TensorBlend
from .schedulers import COLUMNS, EULER, Schedule, build_schedule, scheduler_kind

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
_COL = {name: i for i, name in enumerate(COLUMNS + ("a_next", "b_next"))}


@dataclass(frozen=True)
class Conditioning:
    """What the UNet is conditioned on for one prompt (SDXL adds the pooled embeddings)."""

    embeds: torch.Tensor  # (1, L, D)
    negative: torch.Tensor | None = None  # (1, L, D); for classifier-free guidance
    pooled: torch.Tensor | None = None  # (1, P); SDXL
    negative_pooled: torch.Tensor | None = None

    def tensors(self) -> tuple[torch.Tensor | None, ...]:
        return (self.embeds, self.negative, self.pooled, self.negative_pooled)


# (text, negative, do_cfg) → Conditioning
PromptEncoder = Callable[[str, str, bool], Conditioning]


@dataclass
class EngineParts:
    """The loaded components the engine runs; `loading.py` builds them from a model folder,
    tests and benchmarks from configs."""

    unet: Any
    vae: Any  # AutoencoderKL or AutoencoderTiny
    scheduler: Any  # EulerDiscreteScheduler or LCMScheduler (the engine keeps its own copy)
    encode_prompt: PromptEncoder
    device: str = "cpu"
    dtype: torch.dtype = torch.float32


@dataclass
class EngineOptions:
    similarity_threshold: float = 0.0  # skip camera frames at least this similar to the last painted one (0: off)
    similarity_max_skip: int = 10  # ... but paint at least every this many frames
    feedback: float = 0.0  # blend this much of the previous output into each frame (against flicker)
    stream_batch: bool = True  # steps > 1: one batched UNet call per frame
    # "auto" (CUDA: compile+graph, falling back to graph; CPU: eager), "compile" (CUDA: as auto;
    # CPU: the whole frame program compiled into one inductor graph at prepare time, ~1 min the
    # first time, seconds later from the inductor cache), "graphs" (CUDA graphs, no compile), "eager".
    acceleration: str = "auto"


@dataclass(frozen=True)
class ProgramKey:
    stages: int
    txt2img: bool
    cfg: bool
    batched: bool


@dataclass
class FrameRequest:
    """One frame's settings, in the engine's terms."""

    prompt: str
    negative: str = ""
    steps: int = 1
    strength: float = 0.5
    guidance_scale: float = 0.0
    seed: int = 42
    seed_drift: float = 0.0
    blend_s: float = 0.0
    txt2img: bool = False
    feedback_loop: bool = False  # img2img on the engine's own last output (a still brought to life)


@dataclass
class EngineStats:
    frames: int = 0
    skipped: int = 0
    eager_frames: int = 0
    graph_frames: int = 0
    text_encodes: int = 0
    prepared: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class _Program:
    """Static buffers of one ProgramKey, and its CUDA graph once captured."""

    def __init__(self, key: ProgramKey, eng: StreamEngine) -> None:
        dev, H, W = eng.device, eng.height, eng.width
        C, h, w = eng.latent_channels, H // 8, W // 8
        S = key.stages
        f32 = torch.float32
        self.key = key
        self.image = torch.zeros((H, W, 3), dtype=torch.uint8, device=dev)
        self.noise = torch.zeros((S, C, h, w), dtype=f32, device=dev)
        self.enc_noise = torch.zeros((1, C, h, w), dtype=f32, device=dev)
        self.coef = torch.zeros((S, len(_COL)), dtype=f32, device=dev)
        self.init_sigma = torch.ones((), dtype=f32, device=dev)
        L, D = eng.embed_shape
        self.cond = torch.zeros((1, L, D), dtype=eng.dtype, device=dev)
        self.neg = torch.zeros((1, L, D), dtype=eng.dtype, device=dev)
        self.pooled = self.neg_pooled = self.time_ids = None
        if eng.pooled_dim:
            self.pooled = torch.zeros((1, eng.pooled_dim), dtype=eng.dtype, device=dev)
            self.neg_pooled = torch.zeros_like(self.pooled)
            self.time_ids = torch.tensor([[H, W, 0, 0, H, W]], dtype=eng.dtype, device=dev)
        self.guidance = torch.zeros((), dtype=f32, device=dev)
        self.feedback = torch.zeros((), dtype=f32, device=dev)
        self.queue = torch.zeros((max(S - 1, 0), C, h, w), dtype=f32, device=dev)
        self.prev = torch.zeros((1, 3, H, W), dtype=f32, device=dev)
        self.out = torch.zeros((H, W, 3), dtype=torch.uint8, device=dev)
        self.graph: Any = None
        # Whether this program's eager runs and capture go through torch.compile. Only programs
        # prepared at start-up are compiled: a new shape compiles for minutes, which at run
        # time would freeze the screen.
        self.compiled = False
        # CPU: the whole frame program as one torch.compile'd graph (acceleration="compile").
        self.cpu_fn: Callable[[], None] | None = None
        self.failed = False  # capture failed once: paint eagerly, do not retry every frame
        self.eager_runs = 0
        # Host-side memory of what is in the buffers, so unchanged ones are not rewritten.
        self.schedule_key: tuple | None = None
        self.cond_version = -1
        self.cond_final = False  # the last embeddings written were the blend's end value
        self.noise_version = -1
        self.primed = False
        self.fed_once = False


# Inductor settings for the CPU frame program, each measured on the tiny model (BENCHMARKS.md):
# - layout_optimization off: Inductor would make every convolution channels-last, overriding
#   the per-layer choice of cpu_layout (a 3-channel or narrow convolution is several times
#   slower that way);
# - cpp_wrapper: the program's ~150 kernel calls are made from generated C++, not Python.
# Not `freezing` (~7 % faster): the frozen weights are kept by Inductor's generated modules
# for the life of the process, so every engine rebuilt (a show switch, a restarted stage)
# would leak a whole model.
_CPU_INDUCTOR = {"layout_optimization": False, "cpp_wrapper": True}
# The Inductor settings are process-wide while patched: one CPU preparation at a time.
_CPU_PREPARE_LOCK = threading.Lock()


def _private_entry(forward: Callable[[Any], None]) -> Callable[[Any], None]:
    """A function calling `forward(prog)` with its own code object and its own globals.

    Dynamo keeps what it compiles in the traced function's globals (`__compiled_fn_N`) and its
    cache on the code object. A lambda here would use this module's globals, which live for
    the whole process, so each engine ever built would leave its compiled program behind; with
    a private code object and globals dict, it goes when the engine drops its program."""

    def entry(prog: Any) -> None:
        forward(prog)

    code = entry.__code__.replace(co_name=f"frame_program_{next(_ENTRY_IDS)}")
    return types.FunctionType(code, dict(entry.__globals__), code.co_name, None, entry.__closure__)


_ENTRY_IDS = itertools.count()


class StreamEngine:
    """Paints frames from loaded components. One thread calls `frame`; `prepare` runs first
    (it may take minutes on CUDA the first time, with progress messages)."""

    def __init__(self, parts: EngineParts, width: int, height: int, options: EngineOptions | None = None) -> None:
        if width % 8 or height % 8:
            raise ValueError(f"width and height: expected multiples of 8, got {width}x{height}")
        import copy

        self.parts = parts
        self.options = options or EngineOptions()
        self.width, self.height = width, height
        self.device = parts.device
        self.dtype = parts.dtype
        self.unet = parts.unet
        self.vae = parts.vae
        # A private scheduler copy: set_timesteps mutates it, and the pipeline may share the original.
        self._scheduler = copy.deepcopy(parts.scheduler)
        self.latent_channels = int(self.unet.config.in_channels)
        self.scaling_factor = float(getattr(self.vae.config, "scaling_factor", 1.0) or 1.0)
        self.tiny_vae = type(self.vae).__name__ == "AutoencoderTiny"
        self.vae_dtype = next(self.vae.parameters()).dtype
        self.time_cond_dim = getattr(self.unet.config, "time_cond_proj_dim", None)
        self.sdxl = getattr(self.unet.config, "addition_embed_type", None) == "text_time"
        self.stats = EngineStats()

        # (unet, encode, decode) through torch.compile, once compiled; programs opt in (P.compiled).
        self._compiled_fns: tuple[Callable[..., Any], ...] | None = None
        self._compile_failed = False
        # The scheduler family never changes, so neither does the Python branch baked into graphs.
        self._schedule_deterministic = scheduler_kind(self._scheduler) == EULER

        self._embeds = EmbeddingCache(self._encode_key, size=32)
        self._cond = TensorBlend()
        self._noise = NoiseWalk(self._draw_noise)
        # LRU: a strength knob swept over weeks must not grow this without bound.
        self._schedules: OrderedDict[tuple, Schedule] = OrderedDict()
        self._programs: dict[ProgramKey, _Program] = {}
        self._programs_lock = threading.Lock()
        self.progress: Progress = lambda msg: log.info("%s", msg)  # run-time preparation messages
        self._last_program: _Program | None = None
        self._last_out: np.ndarray | None = None
        self._last_sig: np.ndarray | None = None
        self._skips_in_row = 0
        self._flush_left = 0  # stream-batch calls still owed to the last new camera frame
        self._feedback_source: torch.Tensor | None = None
        self._host_in: torch.Tensor | None = None
        self._host_out: torch.Tensor | None = None
        self.accel_label = "eager"

        probe = parts.encode_prompt("", "", False)
        self.embed_shape = tuple(probe.embeds.shape[1:])
        self.pooled_dim = int(probe.pooled.shape[-1]) if probe.pooled is not None else 0

    # --- conditioning and noise ------------------------------------------------------------
    def _encode_key(self, key: tuple[str, str, bool]) -> Conditioning:
        self.stats.text_encodes += 1
        with torch.inference_mode():
            c = self.parts.encode_prompt(*key)
        return Conditioning(*(None if t is None else t.to(self.device, self.dtype) for t in c.tensors()))

    def _draw_noise(self, seed: int) -> torch.Tensor:
        """Per seed, the draws diffusers' pipelines make from a CPU torch.Generator in the same
        order: (KL autoencoder posterior sample,) the start noise, then one per extra stage.
        Shape (rows, C, h, w), on the device in float32."""
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        shape = (1, self.latent_channels, self.height // 8, self.width // 8)
        rows = [torch.randn(shape, generator=gen, dtype=torch.float32) for _ in range(self._noise_rows)]
        return torch.cat(rows).to(self.device)

    @property
    def _noise_rows(self) -> int:
        return 1 + 8  # posterior sample + up to 8 stages; enough for any prepared step count

    def _use_cfg(self, guidance: float) -> bool:
        # The pipelines' rule: guidance only above 1, never for guidance-distilled UNets.
        return guidance > 1.0 and self.time_cond_dim is None

    # --- the frame program (runs eager or inside a CUDA graph) ------------------------------
    def _encode(self, img: torch.Tensor) -> torch.Tensor:
        out = self.vae.encode(img.to(self.vae_dtype), return_dict=False)[0]
        return out  # AutoencoderTiny: latents; AutoencoderKL: a DiagonalGaussianDistribution

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z.to(self.vae_dtype), return_dict=False)[0]

    def _fns(self, P: _Program) -> tuple[Callable[..., Any], ...]:
        """(unet, encode, decode) for P: compiled only for programs prepared with torch.compile,
        so an eager frame of another shape never triggers minutes of compilation mid-show."""
        if P.compiled and self._compiled_fns is not None:
            return self._compiled_fns
        return (self.unet, self._encode, self._decode)

    def _latents_from_image(self, P: _Program, encode_fn: Callable[..., Any]) -> torch.Tensor:
        # contiguous(): the HWC frame permuted to CHW is channels-last in memory, which sends
        # the autoencoder's first (3-channel) convolution down a path ~10x slower on the CPU.
        img = (P.image.permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 127.5 - 1.0).contiguous()
        enc = encode_fn(img)
        if self.tiny_vae:
            z = enc.to(torch.float32)
        else:  # the posterior sample, with the seed's first draw (as diffusers' retrieve_latents)
            z = enc.mean.to(torch.float32) + enc.std.to(torch.float32) * P.enc_noise
        return z * self.scaling_factor

    def _guidance_embedding(self, P: _Program, rows: int) -> torch.Tensor | None:
        if self.time_cond_dim is None:
            return None
        # diffusers' get_guidance_scale_embedding(w = guidance - 1), from the buffer.
        half = self.time_cond_dim // 2
        w = (P.guidance - 1.0) * 1000.0
        freqs = torch.exp(torch.arange(half, device=P.guidance.device, dtype=torch.float32)
                          * -(math.log(10000.0) / (half - 1)))
        emb = w * freqs
        emb = torch.cat([torch.sin(emb), torch.cos(emb)])
        if self.time_cond_dim % 2 == 1:
            emb = F.pad(emb, (0, 1))
        return emb.unsqueeze(0).expand(rows, -1).to(self.dtype)

    def _denoise(self, P: _Program, x: torch.Tensor, coef: torch.Tensor, unet_fn: Callable[..., Any]) -> torch.Tensor:
        """One UNet call over rows of latents (each row its own stage); returns the denoised rows."""
        R = x.shape[0]
        col = lambda name: coef[:, _COL[name]].view(R, 1, 1, 1)  # noqa: E731
        model_in = (x * col("c_in")).to(self.dtype)
        t = coef[:, _COL["t"]]
        cond = P.cond.expand(R, -1, -1)
        added = None
        if P.pooled is not None:
            added = {"text_embeds": P.pooled.expand(R, -1), "time_ids": P.time_ids.expand(R, -1)}
        if P.key.cfg:
            model_in = torch.cat([model_in, model_in])
            t = torch.cat([t, t])
            cond = torch.cat([P.neg.expand(R, -1, -1), cond])
            if added is not None:
                added = {"text_embeds": torch.cat([P.neg_pooled.expand(R, -1), added["text_embeds"]]),
                         "time_ids": torch.cat([added["time_ids"], added["time_ids"]])}
        out = unet_fn(model_in, t, encoder_hidden_states=cond, added_cond_kwargs=added,
                            timestep_cond=self._guidance_embedding(P, model_in.shape[0]), return_dict=False)[0]
        out = out.to(torch.float32)
        if P.key.cfg:
            uncond, text = out.chunk(2)
            out = uncond + P.guidance * (text - uncond)
        x0 = col("p") * x + col("q") * out
        return col("c_skip") * x + col("c_out") * x0

    def _next_stage(self, P: _Program, x: torch.Tensor, d: torch.Tensor, coef: torch.Tensor,
                    noise: torch.Tensor) -> torch.Tensor:
        R = x.shape[0]
        col = lambda name: coef[:, _COL[name]].view(R, 1, 1, 1)  # noqa: E731
        if self._schedule_deterministic:
            eps = (x - col("a") * d) / col("b")
        else:
            eps = noise
        return col("a_next") * d + col("b_next") * eps

    def _forward(self, P: _Program) -> None:
        """The frame program. Runs eagerly or under capture: it reads only P's static buffers
        and writes its results into them with copy_ (never rebinding one), and has no host sync."""
        S = P.key.stages
        unet_fn, encode_fn, decode_fn = self._fns(P)
        if P.key.txt2img:
            x = P.init_sigma * P.noise[0:1]
        else:
            z = self._latents_from_image(P, encode_fn)
            x = P.coef[0:1, _COL["a"]].view(1, 1, 1, 1) * z + P.coef[0:1, _COL["b"]].view(1, 1, 1, 1) * P.noise[0:1]
        if S == 1:
            final = self._denoise(P, x, P.coef, unet_fn)
        elif P.key.batched:
            batch = torch.cat([x, P.queue])
            d = self._denoise(P, batch, P.coef, unet_fn)
            P.queue.copy_(self._next_stage(P, batch[:-1], d[:-1], P.coef[:-1], P.noise[1:]))
            final = d[-1:]
        else:
            for i in range(S):
                d = self._denoise(P, x, P.coef[i : i + 1], unet_fn)
                if i < S - 1:
                    x = self._next_stage(P, x, d, P.coef[i : i + 1], P.noise[i + 1 : i + 2])
            final = d
        img = decode_fn(final / self.scaling_factor).to(torch.float32)
        img = (img / 2 + 0.5).clamp(0, 1)
        img = torch.lerp(img, P.prev, P.feedback)
        P.prev.copy_(img)
        P.out.copy_((img[0] * 255.0).round().to(torch.uint8).permute(1, 2, 0))

    # --- preparation (CUDA graphs, torch.compile) -----------------------------------------
    def _schedule(self, steps: int, strength: float | None) -> Schedule:
        key = (steps, strength)
        s = self._schedules.get(key)
        if s is None:
            s = build_schedule(self._scheduler, steps, strength)
            self._schedules[key] = s
            while len(self._schedules) > 64:
                self._schedules.popitem(last=False)
        else:
            self._schedules.move_to_end(key)
        return s

    def _program(self, key: ProgramKey) -> _Program:
        with self._programs_lock:
            P = self._programs.get(key)
            if P is None:
                P = _Program(key, self)
                self._programs[key] = P
            return P

    @contextlib.contextmanager
    def _on_placeholders(self, P: _Program) -> Iterator[None]:
        """While inside, P's inputs hold placeholders (for warm-up, capture or compile). The
        frame state a viewer sees (the camera image, the last output, the feedback image, the
        stream batch's frames in flight) is restored afterwards, so preparing at run time shows
        no glitch, and the next frame writes every input again."""
        kept = [t.clone() for t in (P.image, P.out, P.prev, P.queue)]
        try:
            self._fill_for_capture(P, P.key.stages)
            yield
        finally:
            for dst, src in zip((P.image, P.out, P.prev, P.queue), kept):
                dst.copy_(src)
            P.schedule_key = None
            P.cond_version = P.noise_version = -1

    def _fill_for_capture(self, P: _Program, steps: int) -> None:
        """Plausible buffer contents for warm-up and capture (values do not matter to a graph,
        but keep them finite so warm-up exercises the real kernels)."""
        schedule = self._schedule(steps, None if P.key.txt2img else 0.5)
        self._write_coef(P, schedule)
        P.noise.normal_()
        P.enc_noise.normal_()
        c = self._embeds.get(("", "", P.key.cfg))
        P.cond.copy_(c.embeds)
        if c.negative is not None:
            P.neg.copy_(c.negative)
        if P.pooled is not None and c.pooled is not None:
            P.pooled.copy_(c.pooled)
            if c.negative_pooled is not None:
                P.neg_pooled.copy_(c.negative_pooled)

    def _capture(self, P: _Program, compile_too: bool) -> None:
        """Warm-up on a side stream, then capture P's frame program into a CUDA graph.

        Runs on the thread that paints frames, between two frames: capturing on one thread
        while another launches kernels on the same module and buffers would race on P's
        buffers (and on torch.compile's state). What a viewer sees is restored afterwards
        (_on_placeholders)."""
        P.compiled = compile_too
        try:
            with self._on_placeholders(P):
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                # Warm-up: cuDNN/cuBLAS choose kernels, torch.compile compiles and autotunes (a
                # program already painted eagerly needs less of it).
                warmups = 3 if (compile_too or P.eager_runs == 0) else 1
                with torch.cuda.stream(side), torch.inference_mode():
                    for _ in range(warmups):
                        self._forward(P)
                torch.cuda.current_stream().wait_stream(side)
                torch.cuda.synchronize()
                graph = torch.cuda.CUDAGraph()
                # thread_local: another thread's CUDA work (the speech model, say) neither breaks
                # this capture nor is broken by it. Intermediates live in the graph's private pool;
                # results leave only through P's static buffers, which were allocated outside it.
                with torch.inference_mode(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    self._forward(P)
                torch.cuda.synchronize()
        except BaseException:
            P.compiled = False
            raise
        P.graph = graph

    def _compile(self, progress: Progress) -> bool:
        if self._compiled_fns is not None:
            return True
        if self._compile_failed:
            return False
        try:
            import os

            os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
            import torch._inductor.config as inductor_config

            inductor_config.conv_1x1_as_mm = True
            inductor_config.fx_graph_cache = True
            progress("compiling the UNet and autoencoder with torch.compile (first start: a few minutes; "
                     "later starts read the inductor cache)")
            # Not "reduce-overhead": that captures CUDA graphs of its own (cudagraph trees),
            # which must not nest inside the engine's capture of the whole frame program.
            kw = dict(fullgraph=False, dynamic=False, mode="max-autotune-no-cudagraphs"
                      if os.environ.get("JADONG_AUTOTUNE") == "1" else "default")
            self._compiled_fns = (torch.compile(self.unet, **kw), torch.compile(self._encode, **kw),
                                  torch.compile(self._decode, **kw))
            return True
        except Exception as exc:
            log.warning("torch.compile unavailable (%s); CUDA graphs over eager kernels", exc)
            self._uncompile()
            return False

    def _uncompile(self) -> None:
        """No more torch.compile for programs prepared from now on (graphs already captured
        keep their kernels)."""
        self._compiled_fns = None
        self._compile_failed = True

    def prepare_program(self, key: ProgramKey, progress: Progress | None = None, allow_compile: bool = True) -> str:
        """Captures `key`'s CUDA graph (with torch.compile when asked and allowed). Returns how
        the program runs now: "compile+graph", "graph" or "eager". Never raises: a failure
        means eager, and the program is not tried again."""
        progress = progress or self.progress
        P = self._program(key)
        if P.graph is not None:
            return "compile+graph" if P.compiled else "graph"
        if P.cpu_fn is not None:
            return "compile"
        mode = self.options.acceleration
        if self._can_compile_on_cpu() and allow_compile and not P.failed:
            return self._prepare_cpu(P, progress)
        if not self._can_capture() or P.failed:
            return "eager"
        label = self._label(key)
        t0 = time.monotonic()
        if allow_compile and mode in ("auto", "compile") and self._compile(progress):
            try:
                progress(f"preparing {label}: torch.compile + CUDA graph")
                self._capture(P, compile_too=True)
                self.accel_label = "compile+graph"
                self.stats.prepared.append(label)
                progress(f"prepared {label} (compile+graph) in {time.monotonic() - t0:.0f} s")
                return self.accel_label
            except Exception as exc:
                self._note_failure(label, "compile+graph", exc, "trying a plain CUDA graph")
                self._uncompile()
                P.graph = None
                P.compiled = False
        try:
            progress(f"preparing {label}: CUDA graph")
            self._capture(P, compile_too=False)
            if self.accel_label == "eager":
                self.accel_label = "graph"
            self.stats.prepared.append(label)
            progress(f"prepared {label} (graph) in {time.monotonic() - t0:.0f} s")
            return "graph"
        except Exception as exc:
            self._note_failure(label, "CUDA graph capture", exc, "painting eagerly")
            P.graph = None
            P.failed = True
            return "eager"

    def program_key(self, req: FrameRequest) -> ProgramKey:
        return ProgramKey(stages=req.steps, txt2img=req.txt2img, cfg=self._use_cfg(req.guidance_scale),
                          batched=self.options.stream_batch and req.steps > 1)

    def prepare(self, steps: list[int], txt2img: list[bool], guidance_scale: float = 0.0,
                progress: Progress | None = None) -> None:
        """Prepares each (steps, mode) a show allows, before the first frame (torch.compile
        is used here only: it may take minutes, while the preview is on screen)."""
        for s in sorted(set(steps)):
            for txt in sorted(set(txt2img)):
                key = self.program_key(FrameRequest("", steps=s, txt2img=txt, guidance_scale=guidance_scale))
                self.prepare_program(key, progress)

    def _note_failure(self, label: str, what: str, exc: BaseException, then: str) -> None:
        log.warning("%s failed for %s (%s: %s); %s", what, label, type(exc).__name__, exc, then)
        self.stats.failed.append(f"{label} {what}: {type(exc).__name__}: {exc}"[:200])

    def _label(self, key: ProgramKey) -> str:
        return (f"{key.stages} step{'s' if key.stages > 1 else ''} {'txt2img' if key.txt2img else 'img2img'}"
                f"{' cfg' if key.cfg else ''} {self.width}x{self.height}")

    def _can_compile_on_cpu(self) -> bool:
        return self.device == "cpu" and self.options.acceleration == "compile"

    def _prepare_cpu(self, P: _Program, progress: Progress) -> str:
        """CPU: compiles P's whole frame program (pre-processing, encode, UNet, scheduler step,
        decode, post-processing) into one inductor graph, so a frame is one call into generated
        C++ plus the convolution/GEMM library calls, instead of ~300 module calls. Runs two
        warm-up frames on placeholder inputs (restoring the frame state afterwards). Any
        failure: eager, not retried. Never raises."""
        import os

        label = self._label(P.key)
        t0 = time.monotonic()
        try:
            os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
            import torch._inductor.config as inductor_config

            cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or "the default inductor cache"
            progress(f"preparing {label}: torch.compile on the CPU (first start under a minute; "
                     f"later starts read {cache})")
            forward = self._forward
            # No guards: checking them costs ~0.1 ms a frame (~0.7 ms with the ~300 modules'
            # attributes), and nothing they check can change. This compiled entry is private
            # (isolate_recompiles: no other engine can pick it up), it is only ever called with
            # its own program P, whose buffers never change shape, dtype or device, and always
            # inside inference_mode; weights are graph inputs, so values changed in place are
            # seen (a LoRA is fused before the engine is built).
            compiled = torch.compile(_private_entry(forward), fullgraph=True, dynamic=False,
                                     isolate_recompiles=True,
                                     options={"guard_filter_fn": lambda guards: [False] * len(guards)})
            with self._on_placeholders(P):
                with torch.inference_mode():
                    seen = cpu_layout.record_inputs([self.unet, self.vae], lambda: forward(P))
                    memo = cpu_layout.default_memo()
                    layouts = cpu_layout.choose(seen, memo=memo)
                progress(f"{label}: {cpu_layout.summary(layouts)} (timed on this machine; kept in {memo})")
                # The compile happens at the first call, so the settings and layout hooks need
                # only hold for the warm-up (see _CPU_INDUCTOR).
                with _CPU_PREPARE_LOCK, torch.inference_mode(), cpu_layout.applied(layouts), \
                        inductor_config.patch(_CPU_INDUCTOR):
                    for _ in range(2):
                        compiled(P)
            P.cpu_fn = lambda: compiled(P)
            self.accel_label = "compile"
            self.stats.prepared.append(label)
            progress(f"prepared {label} (compile) in {time.monotonic() - t0:.0f} s")
            return "compile"
        except Exception as exc:
            self._note_failure(label, "torch.compile", exc, "painting eagerly")
            progress(f"torch.compile failed for {label}; painting eagerly")
            P.cpu_fn = None
            P.failed = True
            return "eager"

    def _can_capture(self) -> bool:
        return self.device == "cuda" and self.options.acceleration != "eager"

    def _prepare_now_if_due(self, P: _Program) -> None:
        """A program nobody prepared: its first frame paints eagerly (cuDNN picks its kernels
        meanwhile), then, between that frame and the next, its plain CUDA graph is captured on
        this thread (a fraction of a second; never torch.compile, which would take minutes)."""
        if P.graph is not None or P.failed or P.eager_runs < 1 or not self._can_capture():
            return
        self.prepare_program(P.key, allow_compile=False)

    # --- per frame ---------------------------------------------------------------------
    def _write_coef(self, P: _Program, schedule: Schedule) -> None:
        rows = schedule.rows()
        table = []
        for i, row in enumerate(rows):
            nxt = rows[i + 1] if i + 1 < len(rows) else row
            table.append(row + [nxt[_COL["a"]], nxt[_COL["b"]]])
        P.coef.copy_(torch.tensor(table, dtype=torch.float32), non_blocking=False)
        P.init_sigma.fill_(schedule.init_sigma)

    def _update_inputs(self, P: _Program, req: FrameRequest, now: float) -> bool:
        """Writes changed settings into P's buffers. True when anything moved the picture."""
        moved = False
        strength = None if req.txt2img else req.strength
        sched_key = (req.steps, strength)
        if P.schedule_key != sched_key:
            self._write_coef(P, self._schedule(req.steps, strength))
            if P.schedule_key is not None and P.schedule_key[0] == req.steps:
                pass  # the same stages, new strength: the queue stays valid enough
            P.schedule_key = sched_key
            moved = True
        cfg = P.key.cfg
        self._cond.set((req.prompt, req.negative, cfg),
                       self._embeds.get((req.prompt, req.negative, cfg)).tensors(), req.blend_s, now)
        blending = self._cond.blending(now)
        if P.cond_version != self._cond.version or blending or not P.cond_final:
            P.cond_final = not blending
            embeds, negative, pooled, neg_pooled = self._cond.value(now)
            P.cond.copy_(embeds)
            if negative is not None:
                P.neg.copy_(negative)
            if P.pooled is not None and pooled is not None:
                P.pooled.copy_(pooled)
                if neg_pooled is not None:
                    P.neg_pooled.copy_(neg_pooled)
            P.cond_version = self._cond.version
            moved = True
        self._noise.set_drift(req.seed_drift)
        self._noise.set_seed(req.seed, req.blend_s, now)
        if P.noise_version != self._noise.version or self._noise.moving:
            noise = self._noise.value(now)
            # Draw order as diffusers: the KL posterior sample first, then the start noise.
            first = 0 if (self.tiny_vae or req.txt2img) else 1
            P.noise.copy_(noise[first : first + P.key.stages])
            P.enc_noise.copy_(noise[0:1])
            P.noise_version = self._noise.version
            moved = True
        P.guidance.fill_(req.guidance_scale)
        return moved

    def _upload(self, P: _Program, image: np.ndarray) -> None:
        src = torch.from_numpy(np.ascontiguousarray(image))
        if self.device == "cuda":
            if self._host_in is None or self._host_in.shape != src.shape:
                self._host_in = torch.empty(src.shape, dtype=torch.uint8, pin_memory=True)
            # The pinned buffer is rewritten only after the previous frame's final sync, so the
            # asynchronous copy out of it has finished by then.
            self._host_in.copy_(src)
            src = self._host_in
        if tuple(src.shape) == (self.height, self.width, 3):
            P.image.copy_(src, non_blocking=True)  # straight into the static buffer
            return
        P.image.copy_(fit_on_device(src.to(self.device, non_blocking=True), self.width, self.height))

    def _download(self, P: _Program) -> np.ndarray:
        if self.device != "cuda":
            return P.out.numpy().copy()
        if self._host_out is None:
            self._host_out = torch.empty((self.height, self.width, 3), dtype=torch.uint8, pin_memory=True)
        self._host_out.copy_(P.out, non_blocking=True)
        torch.cuda.current_stream().synchronize()
        return self._host_out.numpy().copy()

    def _similar(self, image: np.ndarray, remember: bool = False) -> bool:
        """Deterministic similarity filter: cosine similarity of mean-centred 32×32 thumbnails
        against the last painted camera frame; a static scene is painted once, then at least
        every similarity_max_skip frames."""
        import cv2

        thr = self.options.similarity_threshold
        if thr <= 0:
            self._last_sig = None
            return False
        sig = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        sig -= sig.mean()
        norm = float(np.linalg.norm(sig))
        sig = sig / norm if norm > 1e-6 else sig
        last = self._last_sig
        if not remember and last is not None and self._skips_in_row < self.options.similarity_max_skip:
            sim = float(sig @ last) if norm > 1e-6 and np.linalg.norm(last) > 0 else float(np.array_equal(sig, last))
            if sim >= thr:
                self._skips_in_row += 1
                return True
        self._last_sig = sig
        self._skips_in_row = 0
        return False

    # --- what the generator asks ------------------------------------------------------------
    def changing(self, now: float | None = None) -> bool:
        """True while frames change with unchanged requests: a prompt blend in progress, or
        noise walking to a new seed or drifting (so whoever paints must keep calling `frame`)."""
        now = time.monotonic() if now is None else now
        return self._cond.blending(now) or self._noise.moving

    def weights_changed(self, text_encoder: bool) -> None:
        """The model's weights changed in place (a LoRA's weight): the next camera frame is
        painted even if it looks like the last one (the similarity filter would hand back the
        old picture), and after a change to the text encoder every prompt is encoded again, the
        current one blending to its new encoding like any prompt change."""
        self._last_sig = None
        if text_encoder:
            self._embeds = EmbeddingCache(self._encode_key, size=32)
            self._cond.invalidate()

    @property
    def has_still(self) -> bool:
        """Whether a feedback loop has an image to start from (`set_still`, cleared by `reset`)."""
        return self._feedback_source is not None

    def reset(self) -> None:
        """Forget the frames in flight and the feedback image (after a cut: a new scene)."""
        with self._programs_lock:
            for P in self._programs.values():
                P.primed = False
                P.fed_once = False
        self._feedback_source = None
        self._last_sig = None

    def set_still(self, image: np.ndarray | None) -> None:
        """The image a feedback loop starts from (None: the next camera frame)."""
        self._feedback_source = None if image is None else torch.from_numpy(np.ascontiguousarray(image))

    @torch.inference_mode()
    def frame(self, req: FrameRequest, image: np.ndarray | None, now: float | None = None) -> np.ndarray:
        """One frame: `image` an RGB uint8 (H, W, 3) array of any size (ignored for txt2img;
        the feedback loop's first frame when there is no still image)."""
        now = time.monotonic() if now is None else now
        if req.steps < 1 or req.steps > self._noise_rows - 1:
            raise ValueError(f"steps: expected 1 to {self._noise_rows - 1}, got {req.steps}")
        key = self.program_key(req)
        P = self._program(key)
        self._prepare_now_if_due(P)
        if P is not self._last_program:
            P.primed = False
        moved = self._update_inputs(P, req, now)

        if req.txt2img:
            pass
        elif req.feedback_loop:
            last = self._last_program
            if last is not None and last.fed_once and last is not P:
                P.image.copy_(last.out)
                P.fed_once = True
            elif P.fed_once:
                P.image.copy_(P.out)
            else:
                start = self._feedback_source if self._feedback_source is not None else (
                    None if image is None else torch.from_numpy(np.ascontiguousarray(image)))
                if start is None:
                    raise ValueError("feedback mode needs a still image or a camera frame to start from")
                self._upload(P, start.numpy())
                P.fed_once = True
            moved = True
        else:
            if image is None:
                raise ValueError("img2img needs a camera image (or use txt2img)")
            similar = (not moved and self._last_out is not None and P is self._last_program
                       and self._similar(image))
            if similar and self._flush_left <= 0:
                self.stats.skipped += 1
                return self._last_out
            if moved or not similar:
                self._similar(image, remember=True)
                # A stream batch holds a new frame for stages-1 calls before it comes out: keep
                # painting until it has, or a cut followed by a still scene would show the old
                # picture for up to similarity_max_skip frames.
                self._flush_left = key.stages - 1 if key.batched else 0
            else:
                self._flush_left -= 1
            self._upload(P, image)

        P.feedback.fill_(self.options.feedback if P.primed else 0.0)
        runs = 1 if (P.primed or not key.batched) else key.stages  # fill the stream batch's stages
        for _ in range(runs):
            if P.graph is not None:
                P.graph.replay()
                self.stats.graph_frames += 1
            elif P.cpu_fn is not None:
                P.cpu_fn()
                self.stats.graph_frames += 1
            else:
                self._forward(P)
                P.eager_runs += 1
                self.stats.eager_frames += 1
        P.primed = True
        self._last_program = P
        self.stats.frames += 1
        out = self._download(P)
        self._last_out = out
        return out


def fit_on_device(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Centre-crop to the target aspect ratio and resize, on the device (uint8 HWC in and out),
    as imaging.fit_image does on the host."""
    h, w = image.shape[:2]
    target = width / height
    if w / h > target:
        new_w = max(1, round(h * target))
        x0 = (w - new_w) // 2
        image = image[:, x0 : x0 + new_w]
    elif w / h < target:
        new_h = max(1, round(w / target))
        y0 = (h - new_h) // 2
        image = image[y0 : y0 + new_h]
    x = image.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
    x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)
