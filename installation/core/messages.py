"""Typed, timestamped messages that flow between the stages.

Every message carries `t`, a `time.monotonic()` stamp taken where the data was born, so
latency from input to photon can be measured at the display.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def now() -> float:
    return time.monotonic()


@dataclass(frozen=True)
class AudioChunk:
    """Mono float32 samples in [-1, 1]; `t` is when the first sample was captured."""

    samples: np.ndarray
    sample_rate: int
    t: float = field(default_factory=now)

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sample_rate)


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech cut out by endpointing; `t_end` is its last voiced sample."""

    samples: np.ndarray
    sample_rate: int
    t_start: float
    t_end: float
    t: float = field(default_factory=now)

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sample_rate)


@dataclass(frozen=True)
class Transcript:
    """Text heard in an utterance. `text` is the visitor's own words; `english` is the
    English rendering used for the prompt (equal to `text` for English speech)."""

    text: str
    language: str = "en"
    english: str = ""
    final: bool = True
    utterance_end_t: float = 0.0
    t: float = field(default_factory=now)

    @property
    def prompt_text(self) -> str:
        return self.english or self.text


@dataclass(frozen=True)
class Decoded:
    """A transcriber's detailed answer: the words, and how sure Whisper was of them."""

    text: str
    language: str = "en"
    english: str = ""
    no_speech_prob: float = 0.0  # Whisper's estimate that the audio held no speech (max over segments)
    avg_logprob: float = 0.0  # mean token log-probability (duration-weighted over segments)
    compression_ratio: float = 1.0  # gzip ratio of the text; high = repetitive
    decode_s: float = 0.0

    def metrics(self) -> dict[str, float]:
        return {"no_speech_prob": round(self.no_speech_prob, 3), "avg_logprob": round(self.avg_logprob, 3),
                "compression_ratio": round(self.compression_ratio, 3)}


@dataclass(frozen=True)
class CaptionRetraction:
    """The speech stage takes back the partial caption it showed for an utterance that the
    guards then refused (noise, a hallucination): the caption from before it comes back."""

    utterance_end_t: float = 0.0
    t: float = field(default_factory=now)


@dataclass(frozen=True)
class CameraFrame:
    """An RGB uint8 image (H, W, 3) from a camera source."""

    image: np.ndarray
    index: int
    source: str
    t: float = field(default_factory=now)


@dataclass(frozen=True)
class Prompt:
    """The words the generator paints, and where they came from."""

    text: str
    negative: str = ""
    source: str = "show"  # "show", "speech", "osc"
    caption: str = ""  # what the visitor said, in their own language, for the screen
    approved_by: str = ""  # [curation]: the decision that let the words be painted ("approve by web")
    t: float = field(default_factory=now)


@dataclass(frozen=True)
class GenerationParams:
    """Everything besides the prompt that shapes a generated frame; changed by cues and OSC."""

    strength: float = 0.5
    steps: int = 1
    seed: int = 42
    guidance_scale: float = 0.0
    mode: str = "img2img"  # "img2img", "txt2img" (see GeneratorConfig.mode)
    prompt_blend_s: float = 0.0  # a new prompt (or seed) blends in over this many seconds
    seed_drift: float = 0.0  # 0-1: how fast the noise walks when nothing else moves the picture
    lora_scale: float | None = None  # a cue's weight for the show's LoRA (None: the show's)
    mask: str = ""  # a cue's mask mode, "off", "inside" or "outside" ("": the show's)
    t: float = field(default_factory=now)


@dataclass(frozen=True)
class StreamRequest:
    """One stream's frame in a several-stream call (`Generator.generate_many`): its words,
    settings and camera image (or its crop of the camera; None: no camera). `stream` names the
    stream: a generator keeps each stream's state (prompt blend, noise walk, feedback frame,
    similarity filter) under that number, so a stream keeps its number from call to call;
    calls may add or drop streams. Stream 0 is the one `Generator.generate` paints."""

    stream: int
    prompt: Prompt
    params: GenerationParams
    image: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class GeneratedFrame:
    """An RGB uint8 image made by a generator, traceable to the words and settings that made it."""

    image: np.ndarray
    prompt: Prompt
    params: GenerationParams
    generator: str
    model: str
    source_t: float | None = None  # stamp of the camera frame it restyled, if any
    t: float = field(default_factory=now)


@dataclass(frozen=True)
class ControlOutcome:
    """What became of a Control, for a sender that waits for the answer (the web page): done,
    or refused with the reason; a query's values."""

    ok: bool
    reason: str = ""
    values: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Control:
    """A command from outside (OSC, keyboard): address and arguments, and who sent it."""

    address: str
    args: tuple[Any, ...] = ()
    sender: tuple[str, int] | None = None
    query: bool = False  # a value address sent with no argument: answer with the current value
    t: float = field(default_factory=now)
    # Settled with a ControlOutcome by the show control (main thread) for a sender that waits
    # (the web page's POST /api/control); None for OSC, whose answers are datagrams.
    outcome: Future[ControlOutcome] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Person:
    """One person the vision stage found: where in the frame, and roughly how near."""

    box: tuple[int, int, int, int]  # x, y, width, height in the camera frame's pixels
    where: str  # "left", "centre" or "right" (thirds of the frame)
    distance: str  # "near" or "far" (by the figure's size in the frame)
    kind: str = "body"  # "body" (a whole figure) or "face"


@dataclass(frozen=True)
class Scene:
    """What the camera sees, as the vision stage reads it from one frame: published into a
    latest-value slot a few times a second. Faces are counted, never identified."""

    presence: bool  # someone is there (with hysteresis and a hold time)
    people: int  # a stable count: it does not flicker between frames
    persons: tuple[Person, ...] = ()
    colours: tuple[str, ...] = ()  # dominant colour names in English, most dominant first
    light: str = ""  # "dark", "dim" or "bright"
    motion: str = ""  # "still", "calm" or "restless"
    brightness: float = 0.0  # mean luminance, 0-1
    motion_energy: float = 0.0  # 0-1: how much of the picture moves, and how fast
    silhouette: np.ndarray | None = None  # uint8 person mask (255 = person) at the frame's size
    caption: str = ""  # from the optional captioning model ("" without one)
    source_t: float = 0.0  # the camera frame's stamp
    t: float = field(default_factory=now)
