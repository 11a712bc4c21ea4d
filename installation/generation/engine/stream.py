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

Several streams (`frames`): each stream (FrameRequest.stream, a number the caller keeps from
call to call) has its own prompt blend, noise walk and seed drift, strength, camera image,
feedback frame and similarity filter. Streams whose requests share a program key (steps,
txt2img or not, guidance on or off) are painted together: one frame program over B streams,
one UNet call over B rows (B × stages with a stream batch), every row with its own timestep
and schedule coefficients, embeddings and noise. Streams with other keys in the same call are
painted in turns, one batched call per key. One engine has one size: streams of another size
(or model) need another engine, called in turn by whoever holds both. A stream moving between
programs (the set of streams changed, 3 → 2) takes its rows (frames in flight, the previous
frame) with it, so its pictures go on as if it had been painted alone.
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
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
    streams: int = 1  # B: the streams painted together by one run of the program


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
    stream: int = 0  # which stream: its blend, noise, feedback frame and filter are kept under this number


@dataclass
class EngineStats:
    frames: int = 0
    skipped: int = 0
    eager_frames: int = 0
    graph_frames: int = 0
    text_encodes: int = 0
    prepared: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class _Slot:
    """Host-side memory of what one stream's rows of a program's buffers hold, so unchanged
    ones are not rewritten; `owner` is the stream whose rows they are."""

    def __init__(self) -> None:
        self.owner: _StreamState | None = None
        self.forget()

    def forget(self) -> None:
        self.schedule_key: tuple | None = None
        self.cond_version = -1
        self.cond_final = False  # the last embeddings written were the blend's end value
        self.noise_version = -1
        self.primed = False  # the stream batch's stages hold this stream's frames; `prev` is its last frame

    def take(self, other: _Slot) -> None:
        self.owner = other.owner
        self.schedule_key, self.cond_version, self.cond_final = other.schedule_key, other.cond_version, other.cond_final
        self.noise_version, self.primed = other.noise_version, other.primed


class _StreamState:
    """One stream's state, which no other stream may see: its prompt blend, noise walk, last
    output, similarity filter and feedback loop."""

    def __init__(self, draw_noise: Callable[[int], torch.Tensor]) -> None:
        self.cond = TensorBlend()
        self.noise = NoiseWalk(draw_noise)
        self.last: tuple[_Program, int] | None = None  # (program, row) of its last frame
        self.last_out: np.ndarray | None = None
        self.last_sig: np.ndarray | None = None
        self.skips_in_row = 0
        self.flush_left = 0  # stream-batch calls still owed to the last new camera frame
        self.still: torch.Tensor | None = None  # its own feedback start image (else the engine's)
        self.fed = False  # a feedback loop runs: the next feedback frame repaints last_out


class _Program:
    """Static buffers of one ProgramKey (each with a leading row per stream), and its CUDA
    graph once captured."""

    # Buffers holding one stream's state in row i: what moves with a stream to another program.
    ROWS = ("image", "noise", "enc_noise", "coef", "init_sigma", "cond", "neg", "pooled", "neg_pooled", "guidance",
            "queue", "prev", "out")

    def __init__(self, key: ProgramKey, eng: StreamEngine) -> None:
        dev, H, W = eng.device, eng.height, eng.width
        C, h, w = eng.latent_channels, H // 8, W // 8
        S, B = key.stages, key.streams
        f32 = torch.float32
        self.key = key
        self.image = torch.zeros((B, H, W, 3), dtype=torch.uint8, device=dev)
        self.noise = torch.zeros((B, S, C, h, w), dtype=f32, device=dev)
        self.enc_noise = torch.zeros((B, C, h, w), dtype=f32, device=dev)
        self.coef = torch.zeros((B, S, len(_COL)), dtype=f32, device=dev)
        self.init_sigma = torch.ones((B,), dtype=f32, device=dev)
        L, D = eng.embed_shape
        self.cond = torch.zeros((B, L, D), dtype=eng.dtype, device=dev)
        self.neg = torch.zeros((B, L, D), dtype=eng.dtype, device=dev)
        self.pooled = self.neg_pooled = self.time_ids = None
        if eng.pooled_dim:
            self.pooled = torch.zeros((B, eng.pooled_dim), dtype=eng.dtype, device=dev)
            self.neg_pooled = torch.zeros_like(self.pooled)
            self.time_ids = torch.tensor([[H, W, 0, 0, H, W]], dtype=eng.dtype, device=dev)
        self.guidance = torch.zeros((B,), dtype=f32, device=dev)
        self.feedback = torch.zeros((B,), dtype=f32, device=dev)
        # Rows that paint in this run; the others (a stream whose camera stood still, or one
        # already primed while another fills its stream batch) keep their state untouched.
        self.active = torch.ones((B,), dtype=torch.bool, device=dev)
        self.active_host: tuple[bool, ...] = (True,) * B
        self.feedback_host: tuple[float, ...] = (0.0,) * B
        self.queue = torch.zeros((B, max(S - 1, 0), C, h, w), dtype=f32, device=dev)
        self.prev = torch.zeros((B, 3, H, W), dtype=f32, device=dev)
        self.out = torch.zeros((B, H, W, 3), dtype=torch.uint8, device=dev)
        self.slots = [_Slot() for _ in range(B)]
        self.graph: Any = None
        # Whether this program's eager runs and capture go through torch.compile. Only programs
        # prepared at start-up are compiled: a new shape compiles for minutes, which at run
        # time would freeze the screen.
        self.compiled = False
        # CPU: the whole frame program as one torch.compile'd graph (acceleration="compile").
        self.cpu_fn: Callable[[], None] | None = None
        self.failed = False  # capture failed once: paint eagerly, do not retry every frame
        self.eager_runs = 0

    def rows(self, i: int, clone: bool) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.ROWS:
            t = getattr(self, name)
            if t is not None:
                out[name] = t[i].clone() if clone else t[i]
        return out

    def put_rows(self, i: int, rows: dict[str, torch.Tensor]) -> None:
        for name, src in rows.items():
            getattr(self, name)[i].copy_(src)

    def set_active(self, mask: tuple[bool, ...]) -> None:
        if mask != self.active_host:
            self.active.copy_(torch.tensor(mask, dtype=torch.bool))
            self.active_host = mask


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
    """Paints frames from loaded components. One thread calls `frame` (or `frames`, for several
    streams); `prepare` runs first (it may take minutes on CUDA the first time, with progress
    messages)."""

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

        self._embeds = EmbeddingCache(self._encode_key, size=32)  # shared: one encoding per prompt, any stream
        # Each stream's own state, by its number; the least recently painted go beyond 32.
        self._streams: OrderedDict[int, _StreamState] = OrderedDict()
        self._recent: tuple[int, ...] = (0,)  # the streams of the last call
        # LRU: a strength knob swept over weeks must not grow this without bound.
        self._schedules: OrderedDict[tuple, Schedule] = OrderedDict()
        self._programs: dict[ProgramKey, _Program] = {}
        self._programs_lock = threading.Lock()
        self.progress: Progress = lambda msg: log.info("%s", msg)  # run-time preparation messages
        self._still: torch.Tensor | None = None  # the feedback loop's start image for every stream
        # CUDA: pinned host buffers, one per row uploaded in a call, one per download shape.
        self._host_in: dict[int, torch.Tensor] = {}
        self._host_out: dict[tuple[int, ...], torch.Tensor] = {}
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
        # contiguous(): the HWC frames permuted to CHW are channels-last in memory, which sends
        # the autoencoder's first (3-channel) convolution down a path ~10x slower on the CPU.
        img = (P.image.permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0).contiguous()
        enc = encode_fn(img)
        if self.tiny_vae:
            z = enc.to(torch.float32)
        else:  # the posterior sample, with the seed's first draw (as diffusers' retrieve_latents)
            z = enc.mean.to(torch.float32) + enc.std.to(torch.float32) * P.enc_noise
        return z * self.scaling_factor

    @staticmethod
    def _per_row(t: torch.Tensor, B: int, rows: int) -> torch.Tensor:
        """A per-stream tensor (B, ...) repeated for each stream's rows (rows = B × k, stream-major)."""
        k = rows // B
        if B == 1:
            return t.expand(rows, *t.shape[1:])
        return t if k == 1 else t.repeat_interleave(k, dim=0)

    def _guidance_embedding(self, P: _Program, rows: int) -> torch.Tensor | None:
        if self.time_cond_dim is None:
            return None
        # diffusers' get_guidance_scale_embedding(w = guidance - 1), from the buffer, per stream.
        half = self.time_cond_dim // 2
        w = (P.guidance - 1.0) * 1000.0
        freqs = torch.exp(torch.arange(half, device=P.guidance.device, dtype=torch.float32)
                          * -(math.log(10000.0) / (half - 1)))
        emb = w[:, None] * freqs[None, :]
        emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
        if self.time_cond_dim % 2 == 1:
            emb = F.pad(emb, (0, 1))
        return self._per_row(emb, P.key.streams, rows).to(self.dtype)

    def _denoise(self, P: _Program, x: torch.Tensor, coef: torch.Tensor, unet_fn: Callable[..., Any]) -> torch.Tensor:
        """One UNet call over rows of latents, stream-major (each stream's rows together, each row
        its own stage and coefficients); returns the denoised rows."""
        R, B = x.shape[0], P.key.streams
        col = lambda name: coef[:, _COL[name]].view(R, 1, 1, 1)  # noqa: E731
        model_in = (x * col("c_in")).to(self.dtype)
        t = coef[:, _COL["t"]]  # a timestep per row: each stream its own strength
        cond = self._per_row(P.cond, B, R)
        added = None
        if P.pooled is not None:
            added = {"text_embeds": self._per_row(P.pooled, B, R), "time_ids": P.time_ids.expand(R, -1)}
        tcond = self._guidance_embedding(P, R)
        if P.key.cfg:
            model_in = torch.cat([model_in, model_in])
            t = torch.cat([t, t])
            cond = torch.cat([self._per_row(P.neg, B, R), cond])
            if added is not None:
                added = {"text_embeds": torch.cat([self._per_row(P.neg_pooled, B, R), added["text_embeds"]]),
                         "time_ids": torch.cat([added["time_ids"], added["time_ids"]])}
            if tcond is not None:
                tcond = torch.cat([tcond, tcond])
        out = unet_fn(model_in, t, encoder_hidden_states=cond, added_cond_kwargs=added,
                      timestep_cond=tcond, return_dict=False)[0]
        out = out.to(torch.float32)
        if P.key.cfg:
            uncond, text = out.chunk(2)
            out = uncond + self._per_row(P.guidance, B, R).view(R, 1, 1, 1) * (text - uncond)
        x0 = col("p") * x + col("q") * out
        return col("c_skip") * x + col("c_out") * x0

    def _next_stage(self, x: torch.Tensor, d: torch.Tensor, coef: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        R = x.shape[0]
        col = lambda name: coef[:, _COL[name]].view(R, 1, 1, 1)  # noqa: E731
        if self._schedule_deterministic:
            eps = (x - col("a") * d) / col("b")
        else:
            eps = noise
        return col("a_next") * d + col("b_next") * eps

    def _forward(self, P: _Program) -> None:
        """The frame program, over all of P's streams at once. Runs eagerly or under capture: it
        reads only P's static buffers and writes its results into them with copy_ (never
        rebinding one), and has no host sync. Rows not `active` keep their state."""
        S, B = P.key.stages, P.key.streams
        unet_fn, encode_fn, decode_fn = self._fns(P)
        if P.key.txt2img:
            x = P.init_sigma.view(B, 1, 1, 1) * P.noise[:, 0]
        else:
            z = self._latents_from_image(P, encode_fn)
            x = P.coef[:, 0, _COL["a"]].view(B, 1, 1, 1) * z + P.coef[:, 0, _COL["b"]].view(B, 1, 1, 1) * P.noise[:, 0]
        if S == 1:
            final = self._denoise(P, x, P.coef[:, 0], unet_fn)
        elif P.key.batched:
            batch = torch.cat([x.unsqueeze(1), P.queue], dim=1)  # (B, S, C, h, w): new frame, then frames in flight
            shape = batch.shape
            flat = batch.reshape(B * S, *shape[2:])
            d = self._denoise(P, flat, P.coef.reshape(B * S, -1), unet_fn).view(shape)
            R = B * (S - 1)
            nxt = self._next_stage(batch[:, :-1].reshape(R, *shape[2:]), d[:, :-1].reshape(R, *shape[2:]),
                                   P.coef[:, :-1].reshape(R, -1), P.noise[:, 1:].reshape(R, *shape[2:]))
            P.queue.copy_(self._kept(P, nxt.view(B, S - 1, *shape[2:]), P.queue))
            final = d[:, -1]
        else:
            for i in range(S):
                d = self._denoise(P, x, P.coef[:, i], unet_fn)
                if i < S - 1:
                    x = self._next_stage(x, d, P.coef[:, i], P.noise[:, i + 1])
            final = d
        img = decode_fn(final / self.scaling_factor).to(torch.float32)
        # NaN (an fp16 overflow) becomes black, as imaging.to_uint8 does for the pipeline: the
        # frame guard refuses the black frame, and P.prev stays finite (lerp with a NaN `prev`
        # is NaN even at weight 0, so one bad frame would otherwise blacken every later one).
        img = torch.nan_to_num(img / 2 + 0.5, nan=0.0).clamp(0, 1)
        img = torch.lerp(img, P.prev, P.feedback.view(B, 1, 1, 1))
        P.prev.copy_(self._kept(P, img, P.prev))
        P.out.copy_(self._kept(P, (img * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1), P.out))

    @staticmethod
    def _kept(P: _Program, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """`new` in the active rows, `old` in the others. One stream is always active when its
        program runs (a still camera skips the run), so its program has no selection at all: in
        the CPU's compiled program it cost 9-15 % of the tiny model's frame (measured A/B)."""
        if P.key.streams == 1:
            return new
        return torch.where(P.active.view(-1, *([1] * (new.dim() - 1))), new, old)

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
            for slot in P.slots:  # every other input is written again by the next frame
                slot.schedule_key = None
                slot.cond_version = slot.noise_version = -1

    def _fill_for_capture(self, P: _Program, steps: int) -> None:
        """Plausible buffer contents for warm-up and capture (values do not matter to a graph,
        but keep them finite so warm-up exercises the real kernels)."""
        schedule = self._schedule(steps, None if P.key.txt2img else 0.5)
        for i in range(P.key.streams):
            self._write_coef(P, i, schedule)
        P.set_active((True,) * P.key.streams)
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

    def program_key(self, req: FrameRequest, streams: int = 1) -> ProgramKey:
        """The program that paints `req` together with streams-1 others of the same key."""
        return ProgramKey(stages=req.steps, txt2img=req.txt2img, cfg=self._use_cfg(req.guidance_scale),
                          batched=self.options.stream_batch and req.steps > 1, streams=streams)

    def prepare(self, steps: list[int], txt2img: list[bool], guidance_scale: float = 0.0,
                progress: Progress | None = None, streams: list[int] | None = None) -> None:
        """Prepares each (steps, mode, number of streams painted together) a show allows,
        before the first frame (torch.compile is used here only: it may take minutes, while
        the preview is on screen). `streams` defaults to [1]."""
        for s in sorted(set(steps)):
            for txt in sorted(set(txt2img)):
                for b in sorted(set(streams or [1])):
                    key = self.program_key(FrameRequest("", steps=s, txt2img=txt, guidance_scale=guidance_scale), b)
                    self.prepare_program(key, progress)

    def _note_failure(self, label: str, what: str, exc: BaseException, then: str) -> None:
        log.warning("%s failed for %s (%s: %s); %s", what, label, type(exc).__name__, exc, then)
        self.stats.failed.append(f"{label} {what}: {type(exc).__name__}: {exc}"[:200])

    def _label(self, key: ProgramKey) -> str:
        return (f"{key.stages} step{'s' if key.stages > 1 else ''} {'txt2img' if key.txt2img else 'img2img'}"
                f"{' cfg' if key.cfg else ''} {self.width}x{self.height}"
                f"{f' x{key.streams} streams' if key.streams > 1 else ''}")

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
    def _write_coef(self, P: _Program, i: int, schedule: Schedule) -> None:
        rows = schedule.rows()
        table = []
        for k, row in enumerate(rows):
            nxt = rows[k + 1] if k + 1 < len(rows) else row
            table.append(row + [nxt[_COL["a"]], nxt[_COL["b"]]])
        P.coef[i].copy_(torch.tensor(table, dtype=torch.float32), non_blocking=False)
        P.init_sigma[i].fill_(schedule.init_sigma)

    def _update_inputs(self, P: _Program, i: int, st: _StreamState, req: FrameRequest, now: float) -> bool:
        """Writes the stream's changed settings into row i of P's buffers. True when anything
        moved the picture."""
        slot = P.slots[i]
        moved = False
        strength = None if req.txt2img else req.strength
        sched_key = (req.steps, strength)
        if slot.schedule_key != sched_key:  # the same stages, new strength: the queue stays valid enough
            self._write_coef(P, i, self._schedule(req.steps, strength))
            slot.schedule_key = sched_key
            moved = True
        cfg = P.key.cfg
        st.cond.set((req.prompt, req.negative, cfg),
                    self._embeds.get((req.prompt, req.negative, cfg)).tensors(), req.blend_s, now)
        blending = st.cond.blending(now)
        if slot.cond_version != st.cond.version or blending or not slot.cond_final:
            slot.cond_final = not blending
            embeds, negative, pooled, neg_pooled = st.cond.value(now)
            P.cond[i : i + 1].copy_(embeds)
            if negative is not None:
                P.neg[i : i + 1].copy_(negative)
            if P.pooled is not None and pooled is not None:
                P.pooled[i : i + 1].copy_(pooled)
                if neg_pooled is not None and P.neg_pooled is not None:
                    P.neg_pooled[i : i + 1].copy_(neg_pooled)
            slot.cond_version = st.cond.version
            moved = True
        st.noise.set_drift(req.seed_drift)
        st.noise.set_seed(req.seed, req.blend_s, now)
        if slot.noise_version != st.noise.version or st.noise.moving:
            noise = st.noise.value(now)
            # Draw order as diffusers: the KL posterior sample first, then the start noise.
            first = 0 if (self.tiny_vae or req.txt2img) else 1
            P.noise[i].copy_(noise[first : first + P.key.stages])
            P.enc_noise[i].copy_(noise[0])
            slot.noise_version = st.noise.version
            moved = True
        P.guidance[i].fill_(req.guidance_scale)
        return moved

    def _upload(self, P: _Program, i: int, image: np.ndarray) -> None:
        src = torch.from_numpy(np.ascontiguousarray(image))
        if self.device == "cuda":
            host = self._host_in.get(i)
            if host is None or host.shape != src.shape:
                host = self._host_in[i] = torch.empty(src.shape, dtype=torch.uint8, pin_memory=True)
            # Each row has its own pinned buffer, rewritten only after the previous call's
            # final sync, so the asynchronous copy out of it has finished by then.
            host.copy_(src)
            src = host
        if tuple(src.shape) == (self.height, self.width, 3):
            P.image[i].copy_(src, non_blocking=True)  # straight into the static buffer
            return
        P.image[i].copy_(fit_on_device(src.to(self.device, non_blocking=True), self.width, self.height))

    def _download(self, P: _Program, rows: list[int]) -> list[np.ndarray]:
        if self.device != "cuda":
            host = P.out.numpy()
            return [host[i].copy() for i in rows]
        shape = tuple(P.out.shape)
        buf = self._host_out.get(shape)
        if buf is None:
            buf = self._host_out[shape] = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        buf.copy_(P.out, non_blocking=True)
        torch.cuda.current_stream().synchronize()
        return [buf[i].numpy().copy() for i in rows]

    def _similar(self, st: _StreamState, image: np.ndarray, remember: bool = False) -> bool:
        """Deterministic similarity filter: cosine similarity of mean-centred 32×32 thumbnails
        against the stream's last painted camera frame; a static scene is painted once, then at
        least every similarity_max_skip frames."""
        import cv2

        thr = self.options.similarity_threshold
        if thr <= 0:
            st.last_sig = None
            return False
        sig = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        sig -= sig.mean()
        norm = float(np.linalg.norm(sig))
        sig = sig / norm if norm > 1e-6 else sig
        last = st.last_sig
        if not remember and last is not None and st.skips_in_row < self.options.similarity_max_skip:
            sim = float(sig @ last) if norm > 1e-6 and np.linalg.norm(last) > 0 else float(np.array_equal(sig, last))
            if sim >= thr:
                st.skips_in_row += 1
                return True
        st.last_sig = sig
        st.skips_in_row = 0
        return False

    def _state(self, stream: int) -> _StreamState:
        st = self._streams.get(stream)
        if st is None:
            st = self._streams[stream] = _StreamState(self._draw_noise)
            while len(self._streams) > 32:
                self._streams.popitem(last=False)
        self._streams.move_to_end(stream)
        return st

    # --- what the generator asks ------------------------------------------------------------
    def changing(self, now: float | None = None, streams: list[int] | None = None) -> bool:
        """True while frames change with unchanged requests: a prompt blend in progress, or
        noise walking to a new seed or drifting (so whoever paints must keep calling `frame`),
        in any of `streams` (default: those of the last call)."""
        now = time.monotonic() if now is None else now
        for n in self._recent if streams is None else streams:
            st = self._streams.get(n)
            if st is not None and (st.cond.blending(now) or st.noise.moving):
                return True
        return False

    def weights_changed(self, text_encoder: bool) -> None:
        """The model's weights changed in place (a LoRA's weight): the next camera frame is
        painted even if it looks like the last one (the similarity filter would hand back the
        old picture), and after a change to the text encoder every prompt is encoded again, the
        current one blending to its new encoding like any prompt change."""
        if text_encoder:
            self._embeds = EmbeddingCache(self._encode_key, size=32)
        for st in self._streams.values():
            st.last_sig = None
            if text_encoder:
                st.cond.invalidate()

    @property
    def has_still(self) -> bool:
        """Whether a feedback loop has an image to start from (`set_still`, cleared by `reset`)."""
        return self._still is not None or (0 in self._streams and self._streams[0].still is not None)

    def feedback_ready(self, stream: int = 0) -> bool:
        """Whether a feedback loop can paint `stream` without a camera image: it has a still
        to start from (its own or every stream's), or its loop already runs."""
        st = self._streams.get(stream)
        return self._still is not None or (st is not None and (st.still is not None or st.fed))

    def close(self) -> None:
        """Lets go of everything the engine holds (programs with their buffers and CUDA graphs,
        compiled functions, caches, the model's parts); the engine is unusable afterwards. Its
        bound methods and closures (the embedding cache's encoder, a compiled program's closure
        over its buffers) make reference cycles, which only a full collection would find, a
        stall of every thread for most of a second on a busy machine: emptied here, the
        memory goes back by reference counting at once (StreamGenerator.release)."""
        with self._programs_lock:
            for P in self._programs.values():
                vars(P).clear()
            self._programs.clear()
        vars(self).clear()

    def reset(self) -> None:
        """Forget the frames in flight and the feedback images, of every stream (after a cut: a
        new scene)."""
        with self._programs_lock:
            for P in self._programs.values():
                for slot in P.slots:
                    slot.primed = False
        for st in self._streams.values():
            st.fed = False
            st.still = None
            st.last_sig = None
        self._still = None

    def set_still(self, image: np.ndarray | None, stream: int | None = None) -> None:
        """The image a feedback loop starts from (None: the next camera frame): of every stream
        without one of its own, or of `stream` only."""
        still = None if image is None else torch.from_numpy(np.ascontiguousarray(image))
        if stream is None:
            self._still = still
        else:
            self._state(stream).still = still

    def frame(self, req: FrameRequest, image: np.ndarray | None, now: float | None = None) -> np.ndarray:
        """One frame of stream `req.stream`: `image` an RGB uint8 (H, W, 3) array of any size
        (ignored for txt2img; the feedback loop's first frame when there is no still image)."""
        return self.frames([(req, image)], now)[0]

    @torch.inference_mode()
    def frames(self, items: Sequence[tuple[FrameRequest, np.ndarray | None]],
               now: float | None = None) -> list[np.ndarray]:
        """One frame for each (request, image) of several streams (each stream at most once),
        in the order asked. Requests with the same program key (steps, txt2img, guidance on or
        off) are painted in one batched run; each other key takes its turn. Each stream's frame
        equals what painting it alone would give (within float rounding of a batched UNet)."""
        now = time.monotonic() if now is None else now
        seen: set[int] = set()
        for req, image in items:  # every request checked before any stream's state moves
            if req.steps < 1 or req.steps > self._noise_rows - 1:
                raise ValueError(f"steps: expected 1 to {self._noise_rows - 1}, got {req.steps}")
            if req.stream in seen:
                raise ValueError(f"stream {req.stream}: asked for twice in one call (one frame per stream)")
            seen.add(req.stream)
            if req.txt2img:
                continue
            if req.feedback_loop:
                if image is None and not self.feedback_ready(req.stream):
                    raise ValueError("feedback mode needs a still image or a camera frame to start from")
            elif image is None:
                raise ValueError("img2img needs a camera image (or use txt2img)")
        groups: dict[ProgramKey, list[int]] = {}
        for n, (req, _) in enumerate(items):
            groups.setdefault(self.program_key(req), []).append(n)
        out: list[np.ndarray] = [np.empty(0)] * len(items)
        for key, members in groups.items():
            P = self._program(replace(key, streams=len(members)))
            for n, painted in zip(members, self._paint(P, [items[n] for n in members], now)):
                out[n] = painted
        self._recent = tuple(req.stream for req, _ in items)
        return out

    def _claim_rows(self, P: _Program, states: list[_StreamState]) -> list[bool]:
        """Gives row i of P to states[i]. A stream last painted in another program of the same
        kind (the set of streams changed) brings its rows along: frames in flight, previous
        frame, inputs. Returns, per row, whether it holds the stream's own last frame."""
        B = P.key.streams
        here, moving = [], []
        for i, st in enumerate(states):
            same = st.last is not None and st.last[0] is P and st.last[1] == i and P.slots[i].owner is st
            src = None
            if not same and st.last is not None:
                Q, j = st.last
                if Q.slots[j].owner is st and replace(Q.key, streams=B) == P.key:
                    memory = _Slot()
                    memory.take(Q.slots[j])
                    src = (memory, Q.rows(j, clone=Q is P))  # copies: rows of P itself may move within it
            here.append(same)
            moving.append(src)
        for i, st in enumerate(states):
            slot = P.slots[i]
            if moving[i] is not None:
                memory, rows = moving[i]
                P.put_rows(i, rows)
                slot.take(memory)
                here[i] = True
            elif not here[i]:
                slot.owner = st
                slot.forget()
        return here

    def _paint(self, P: _Program, batch: list[tuple[FrameRequest, np.ndarray | None]], now: float) -> list[np.ndarray]:
        """One batched run of P for its streams (after priming runs for streams whose stream
        batch is empty). A stream whose camera stood still keeps its last frame and its rows."""
        key = P.key
        self._prepare_now_if_due(P)
        states = [self._state(req.stream) for req, _ in batch]
        here = self._claim_rows(P, states)
        held = [False] * key.streams
        for i, ((req, image), st) in enumerate(zip(batch, states)):
            moved = self._update_inputs(P, i, st, req, now)
            if req.txt2img:
                continue
            if req.feedback_loop:
                if st.fed and st.last_out is not None:  # the loop goes on from the stream's last frame
                    if here[i]:
                        P.image[i].copy_(P.out[i])
                    else:
                        self._upload(P, i, st.last_out)
                else:
                    start = st.still if st.still is not None else self._still
                    self._upload(P, i, start.numpy() if start is not None else image)  # type: ignore[arg-type]
                    st.fed = True
                continue
            assert image is not None  # checked in frames()
            similar = not moved and st.last_out is not None and here[i] and self._similar(st, image)
            if similar and st.flush_left <= 0:
                held[i] = True
                continue
            if moved or not similar:
                self._similar(st, image, remember=True)
                # A stream batch holds a new frame for stages-1 calls before it comes out: keep
                # painting until it has, or a cut followed by a still scene would show the old
                # picture for up to similarity_max_skip frames.
                st.flush_left = key.stages - 1 if key.batched else 0
            else:
                st.flush_left -= 1
            self._upload(P, i, image)

        active = tuple(not h for h in held)
        painted: list[np.ndarray] = []
        if any(active):
            feedback = tuple(self.options.feedback if s.primed else 0.0 for s in P.slots)
            if feedback != P.feedback_host:
                P.feedback.copy_(torch.tensor(feedback, dtype=torch.float32))
                P.feedback_host = feedback
            # Fill the stream batch's stages of streams new to it; the others wait meanwhile.
            filling = tuple(a and key.batched and not P.slots[i].primed for i, a in enumerate(active))
            if any(filling):
                P.set_active(filling)
                for _ in range(key.stages - 1):
                    self._run(P)
            P.set_active(active)
            self._run(P)
            painted = self._download(P, [i for i, a in enumerate(active) if a])
        fresh = iter(painted)
        outs = []
        for i, st in enumerate(states):
            st.last = (P, i)
            if active[i]:
                P.slots[i].primed = True
                st.last_out = next(fresh)
                self.stats.frames += 1
            else:
                self.stats.skipped += 1
            assert st.last_out is not None
            outs.append(st.last_out)
        return outs

    def _run(self, P: _Program) -> None:
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
