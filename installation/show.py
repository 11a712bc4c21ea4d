"""Show files: TOML in `shows/`, validated into typed config.

A broken show file fails loudly, naming the file, the field and what was expected, e.g.
`shows/x.toml: generator.steps: expected an integer from 1 to 50, got 'fast'`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The shows folder: shows/ in the project, or $JADONG_SHOWS_DIR (a gallery's own folder; the soak
# harness points it at a folder of its own, so /jadong/show can be handed a broken show safely).
SHOWS_DIR = Path(os.environ.get("JADONG_SHOWS_DIR", "").strip() or PROJECT_ROOT / "shows").expanduser()
ASSETS_DIR = PROJECT_ROOT / "assets"
DEFAULT_SHOW = SHOWS_DIR / "default.toml"

# Bounds on every string that enters the show, from a show file or over OSC. A diffusion text
# encoder reads 77 tokens (a few hundred characters), so a longer prompt paints nothing more;
# the bounds keep status replies inside one UDP datagram and the event log a sane size.
MAX_PROMPT_CHARS = 1000  # prompts, negative prompts, templates, captions
MAX_NAME_CHARS = 100  # cue, style and show names
# Every other string (paths, model ids, URLs, word lists, notes) is bounded by the longest path a
# file system takes, so that no string in a show is unbounded.
MAX_TEXT_CHARS = 4096
# A show file is a few kilobytes; reading stops here (a path to /dev/zero must not eat the memory).
MAX_SHOW_CHARS = 1 << 20
# A file with hundreds of mistakes is reported by its first few; the rest are counted.
MAX_REPORTED_ERRORS = 20


class ShowError(ValueError):
    """A show file that cannot be used; the message names file, field and reason."""


class _Section(BaseModel):
    # allow_inf_nan=False: a NaN passes every ge/le check (all comparisons with it are false), so
    # `fps = nan` would otherwise reach the presenter.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False,
                              str_max_length=MAX_TEXT_CHARS)


def _quote(text: str, limit: int = 60) -> str:
    """Text as TOML (and JSON) writes a string, cut short and with every unprintable character
    escaped (line breaks such as U+2028 included): fit for one line of an error message."""
    quoted = json.dumps(text if len(text) <= limit else text[:limit] + "…", ensure_ascii=False)
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in quoted)


def _echo(value: object) -> str:
    """A value as an error message shows it: short, and NaN and infinity said in words."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} ({'not a number' if math.isnan(value) else 'infinite'})"
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's digit limit for printing
        return "a number too long to print"
    return text if len(text) <= 60 else text[:60] + "…"


# --- templates -------------------------------------------------------------------------

# What the camera's scene adds to a prompt (the vision stage, [vision] and [scene]).
SCENE_WORDS = ("people", "colours", "light", "motion", "scene")
PLACEHOLDERS = ("speech", *SCENE_WORDS)
TEMPLATE_HELP = ("placeholders are {speech} (the visitor's words) and the scene's "
                 + ", ".join("{" + w + "}" for w in SCENE_WORDS) + " (write {{ or }} for a literal brace)")


def template_placeholders(template: str) -> set[str]:
    """The placeholders a (valid) template uses."""
    import string

    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _template_error(template: str) -> str | None:
    """What is wrong with a prompt template, or None. Stricter than str.format, whose
    placeholders can also read attributes ({speech.upper}) and items: only a bare {speech} is
    a placeholder (and the bare scene words), so a template accepted here always formats."""
    shown = _quote(template, 120)
    found = False
    i = 0
    while i < len(template):
        char = template[i]
        if char in "{}" and template[i + 1:i + 2] == char:  # {{ and }} are literal braces
            i += 2
        elif char == "}":
            return f'{shown} has a lone "}}" at character {i + 1}; {TEMPLATE_HELP}'
        elif char == "{":
            end = template.find("}", i + 1)
            reopened = template.find("{", i + 1)
            if end < 0 or 0 <= reopened < end:
                return f'{shown} has a "{{" at character {i + 1} that is never closed; {TEMPLATE_HELP}'
            name = template[i + 1:end]
            if name not in PLACEHOLDERS:
                return f"{shown} has the unknown placeholder {{{name}}}; {TEMPLATE_HELP}"
            found = found or name == "speech"
            i = end + 1
        else:
            i += 1
    if not found:
        return f"expected a template containing {{speech}}, e.g. \"{{speech}}, ink wash painting\", got {shown}"
    return None


def _check_template(template: str) -> str:
    error = _template_error(template)
    if error:
        raise ValueError(error)
    return template


def _check_name(name: str) -> str:
    """Names a performer types over OSC: surrounding spaces are stripped there, so a name
    with them could never be chosen."""
    if not name:
        raise ValueError("expected a name, got an empty string")
    if name != name.strip():
        raise ValueError(f"expected no spaces at the start or end, got {_quote(name)}")
    return name


def _check_cue_name(name: str) -> str:
    _check_name(name)
    if name.isdigit():  # /jadong/cue/go reads digits as a cue number, so this name could not be fired
        raise ValueError(f"{_quote(name)} would be read as a cue number; give the cue a name with a letter in it")
    return name


def _device_or_path(value: Any) -> int | str:
    # A plain validator rather than `int | str`: one clear message, and no union member names
    # ("int", "str") in the error's location.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"expected at most {MAX_TEXT_CHARS} characters, got {len(value)}")
        return value
    raise ValueError(f"expected a device index or a file, URL or \"none\", got {_echo(value)}")


PromptText = Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
Template = Annotated[str, Field(max_length=MAX_PROMPT_CHARS), AfterValidator(_check_template)]
StyleName = Annotated[str, Field(max_length=MAX_NAME_CHARS), AfterValidator(_check_name)]
CueName = Annotated[str, Field(max_length=MAX_NAME_CHARS), AfterValidator(_check_cue_name)]
DeviceOrPath = Annotated[int | str, PlainValidator(_device_or_path)]


class ShowInfo(_Section):
    name: str = Field("untitled", max_length=MAX_NAME_CHARS, description="Short name, shown in logs and status.")
    title: str = Field("", max_length=MAX_PROMPT_CHARS, description="Shown on the starting card.")
    description: str = Field("", description="Free text for the people who run the show.")


# --- NDI camera sources (inputs/ndi.py receives them) ---------------------------------------

_NDI_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")
NDI_SOURCE_FORMS = ('"ndi:NAME" (found by name), "ndi://HOST/NAME" (asking HOST for its sources) or '
                    '"ndi://HOST:PORT" (straight to a sender\'s address)')


@dataclass(frozen=True)
class NdiSourceName:
    """What an NDI `camera.source` names. `name`: the source's name, its stream part ("Stage")
    or the whole "MACHINE (Stage)" NDI shows ("" when connecting by address only); `host`: a
    machine to ask for its sources by unicast, where mDNS does not reach; `address`:
    "HOST:PORT" to connect to straight away, with no discovery at all."""

    name: str = ""
    host: str = ""
    address: str = ""

    @property
    def description(self) -> str:
        if self.address:
            return f"NDI {self.address}" + (f" ({self.name})" if self.name else "")
        return f"NDI {self.name!r}" + (f" at {self.host}" if self.host else "")


def _ndi_host(host: str, text: str) -> str:
    if not _NDI_HOST.match(host):
        raise ValueError(f"{_quote(text)}: {_quote(host)} is not an IP address or host name")
    return host.strip("[]")


def parse_ndi_source(text: str) -> NdiSourceName | None:
    """The NDI source a camera.source value names, or None when it is not an NDI source (no
    "ndi:" in front). A malformed one raises ValueError naming the forms that work."""
    if not text[:4].lower() == "ndi:":
        return None
    rest = text[4:].strip()
    if not rest.startswith("//"):
        if not rest or not rest.isprintable():
            raise ValueError(f"{_quote(text)}: expected an NDI source name after \"ndi:\"; use {NDI_SOURCE_FORMS}")
        return NdiSourceName(name=rest)
    where, _, name = rest[2:].partition("/")
    name = name.strip()
    if name and not name.isprintable():
        raise ValueError(f"{_quote(text)}: the source name has unprintable characters")
    host, colon, port = where.rpartition(":") if not where.endswith("]") else (where, "", "")
    if not colon:
        host = where
        if not name:
            raise ValueError(f"{_quote(text)}: give the source's name (ndi://{host or 'HOST'}/NAME) or the port it "
                             f"sends on (ndi://{host or 'HOST'}:PORT); use {NDI_SOURCE_FORMS}")
        return NdiSourceName(name=name, host=_ndi_host(host, text))
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{_quote(text)}: expected a port from 1 to 65535 after the host, got {_quote(port)}")
    host = _ndi_host(host, text)
    return NdiSourceName(name=name, address=f"{host if ':' not in host else f'[{host}]'}:{int(port)}")


def _camera_source(value: int | str) -> int | str:
    if isinstance(value, str):
        parse_ndi_source(value)  # raises for a malformed NDI source
    return value


def _ndi_ip(value: str) -> str:
    value = value.strip()
    if not _NDI_HOST.match(value):
        raise ValueError(f"expected IP addresses or host names, got {_quote(value)}")
    return value.strip("[]")


class CameraConfig(_Section):
    source: Annotated[DeviceOrPath, AfterValidator(_camera_source)] = Field(
        "none", description="Device index (0), video file (relative to the project), stream URL "
        "(rtsp://, tcp://, http://), an NDI source (`ndi:NAME`, `ndi://HOST/NAME`, `ndi://HOST:PORT`), or \"none\".")
    ndi_ips: list[str] = Field(
        [], description="NDI sources: machines to ask for their sources by address (IP or host "
        "name), for networks where NDI's mDNS discovery does not reach (no Avahi, VLANs, managed switches).")

    @field_validator("ndi_ips")
    @classmethod
    def _ndi_ips(cls, value: list[str]) -> list[str]:
        if len(value) > 64:
            raise ValueError(f"at most 64 addresses, got {len(value)}")
        return [_ndi_ip(v) for v in value]
    loop: bool = Field(True, description="Files: start again at the end.")
    paced: bool = Field(True, description="Files: play at the file's frame rate (false: as fast as read).")
    width: int = Field(0, ge=0, le=7680, description="Capture width to ask the device for (0: its default).")
    height: int = Field(0, ge=0, le=4320, description="Capture height to ask the device for (0: its default).")
    retry_s: float = Field(2.0, gt=0, le=60, description="Seconds between attempts to reopen a lost camera.")


class MicrophoneConfig(_Section):
    source: DeviceOrPath = Field(
        "none", description="Device name (part of it) or index, \"default\", a WAV file, or \"none\".")
    loop: bool = Field(False, description="WAV files: loop (false: play once, then silence).")
    sample_rate: Literal[16000] = Field(16000, description="Capture rate in Hz (Whisper's).")
    chunk_ms: int = Field(20, ge=5, le=200, description="Audio chunk length in milliseconds.")


class SpeechConfig(_Section):
    enabled: bool = Field(True, description="Listen and transcribe at all.")
    engine: Literal["faster-whisper", "openai-whisper"] = Field("faster-whisper", description="Transcription engine.")
    model: str = Field("tiny.en", description="Whisper model: a size (tiny.en, base, small), a Hugging Face id, or a local folder.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where Whisper runs (auto: the GPU if one is seen; cuda with no GPU runs on the CPU, with a warning).")
    compute_type: str = Field("auto", description="CTranslate2 compute type (auto: int8 on CPU, float16 on CUDA).")
    language: str = Field("auto", description="Language code (en, ko, ...) or \"auto\" to detect.")
    beam_size: int = Field(1, ge=1, le=10, description="Beam search width (1 is fastest).")
    energy_threshold_db: float = Field(-40.0, ge=-90, le=0, description="Loudness (dBFS) above which audio counts as voiced.")
    preroll_ms: int = Field(300, ge=0, le=2000, description="Audio kept from before speech starts.")
    min_speech_ms: int = Field(300, ge=50, le=5000, description="Shorter sounds are ignored.")
    end_silence_ms: int = Field(400, ge=100, le=5000, description="Silence that ends an utterance.")
    max_utterance_s: float = Field(10.0, gt=0.5, le=30, description="Longest utterance before it is cut.")
    vad: Literal["silero", "energy"] = Field(
        "silero", description="Voice activity: silero (the Silero ONNX model faster-whisper ships, after the "
        "energy gate) or energy alone.")
    vad_threshold: float = Field(0.5, ge=0.05, le=0.95, description="Silero speech probability that starts speech "
                                 "(it holds on down to 0.15 less).")
    listen: Literal["always", "gated", "presence"] = Field(
        "always", description="always: listen from the start; gated: deaf until a performer sends /jadong/listen 1; "
        "presence: listen while the vision stage sees somebody (needs [vision] enabled).")
    translate: bool = Field(True, description="Multilingual models: the prompt uses Whisper's English translation "
                            "(the caption keeps the visitor's own words).")
    partials: bool = Field(True, description="Transcribe while the visitor speaks: the caption follows their words "
                           "and the final transcript starts early.")
    partial_interval_s: float = Field(1.0, ge=0.3, le=10, description="Seconds of speech between two partial transcripts.")
    cpu_threads: int = Field(0, ge=0, le=64, description="CPU threads for Whisper (0: the engine's default).")
    no_speech_threshold: float = Field(0.6, ge=0, le=1, description="Reject when Whisper's no-speech probability "
                                       "is above this and its text is unsure (log-probability below the next field).")
    logprob_threshold: float = Field(-1.0, ge=-10, le=0, description="Reject when the average token log-probability is below this.")
    compression_ratio_threshold: float = Field(2.4, ge=1, le=10, description="Reject text that compresses better than "
                                               "this (Whisper repeating itself on noise).")
    hallucination_phrases: list[str] = Field(
        [], description="More phrases rejected when they are the whole transcript (besides the built-in English "
        "and Korean lists of what Whisper invents from noise).")


class ModerationConfig(_Section):
    enabled: bool = Field(True, description="Check the visitor's words against the word lists before they are painted.")
    action: Literal["flag", "replace", "drop"] = Field(
        "replace", description="flag: paint as said and log; replace: swap listed words for `replacement`; "
        "drop: paint nothing from that utterance.")
    replacement: str = Field("flowers", max_length=MAX_PROMPT_CHARS,
                             description="What a listed word becomes with action = \"replace\".")
    lists: list[str] = Field(
        ["en", "ko"], description="Word lists: a language code (assets/moderation/CODE.txt) or a file relative to the project.")
    extra_words: list[str] = Field([], description="More words and phrases to match, in any language.")
    allow_words: list[str] = Field([], description="Words the lists must not match in this show.")


class PromptConfig(_Section):
    template: Template = Field("{speech}", description="The prompt; {speech} is replaced by the visitor's words "
                               "({{ and }} are literal braces).")
    initial: PromptText = Field("a quiet garden at dawn, soft light", description="The prompt before anyone speaks.")
    negative: PromptText = Field("", description="Negative prompt (models with guidance only).")


class VisionConfig(_Section):
    enabled: bool = Field(False, description="Read the camera: people, presence, silhouette, colours, light and "
                          "motion, for scene words in prompts and for `listen = \"presence\"`.")
    rate_hz: float = Field(5.0, ge=0.2, le=30, description="Camera frames analysed per second (on its own thread).")
    faces: Literal["auto", "mediapipe", "haar", "off"] = Field(
        "auto", description="Face detector: mediapipe when installed (auto), OpenCV's Haar cascade, or none.")
    silhouette: Literal["auto", "segmentation", "background", "off"] = Field(
        "auto", description="Person mask: a segmentation model when installed and someone is near (auto), "
        "background subtraction, or none.")
    presence_on_s: float = Field(0.5, ge=0, le=10, description="Seconds someone must be seen before presence "
                                 "turns on (stops a passing shadow).")
    presence_hold_s: float = Field(5.0, ge=0, le=600, description="Seconds presence stays on after the last "
                                   "sight of anyone (a visitor who stands still stays present).")
    captioner: str = Field("", description="Optional image-to-text model for {scene} (Hugging Face id or local "
                           "folder: a GIT or BLIP model, e.g. microsoft/git-base-coco or "
                           "Salesforce/blip-image-captioning-base); \"\" for none.")
    caption_every_s: float = Field(10.0, ge=1, le=600, description="Seconds between two captions of the scene.")


class SceneWordsConfig(_Section):
    vocabulary: dict[Literal["people", "colours", "light", "motion"], dict[str, str]] = Field(
        {}, description="The show's own words for the scene's: e.g. colours = {red = \"vermilion\"}, "
        "light = {dark = \"moonlit\"}, people = {\"0\" = \"no\", \"1\" = \"a lone\"}.")
    empty: dict[Literal["speech", "people", "colours", "light", "motion", "scene"], str] = Field(
        {}, description="What an empty placeholder becomes (speech before anyone speaks, scene without a "
        "captioner); by default it is left out with its comma.")
    change_every_s: float = Field(5.0, ge=0, le=3600, description="The scene changes the prompt at most this "
                                  "often; each change blends in like any prompt change.")
    over_speech: bool = Field(False, description="false: while a visitor's words are painted, the scene words "
                              "stay as they were; true: they follow the scene under the visitor's words too.")
    max_colours: int = Field(2, ge=1, le=5, description="How many colour names {colours} holds.")
    caption: bool = Field(False, description="While no visitor's words are painted, the caption shows the scene's "
                          "colours in the caption's language ([speech] language: ko, ja, zh, es, fr, de; "
                          "English otherwise).")


class WebConfig(_Section):
    enabled: bool = Field(False, description="Serve the operator's page, /healthz and /metrics (or pass --web-port N).")
    host: str = Field("127.0.0.1", description="Address to serve on: 127.0.0.1 for this machine only, 0.0.0.0 "
                      "for the gallery's network.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0: any free port).")
    password: str = Field("", max_length=MAX_NAME_CHARS, description="The operator's password (or set "
                          "JADONG_WEB_PASSWORD); with neither, the page shows status but refuses controls.")
    show_words: bool = Field(True, description="false: the page never shows the visitors' words (privacy).")


class CurationConfig(_Section):
    enabled: bool = Field(False, description="A person approves, edits or rejects each visitor's words (on the "
                          "operator's page or over OSC) before they are painted.")
    timeout_s: float = Field(30.0, ge=1, le=3600, description="Seconds words wait for a decision.")
    on_timeout: Literal["accept", "drop"] = Field("drop", description="What happens to words nobody decided on.")
    waiting_caption: str = Field("…", max_length=MAX_NAME_CHARS, description="Shown after the visitor's words "
                                 "in the caption while they wait (they were heard).")
    max_pending: int = Field(20, ge=1, le=200, description="Words waiting at most; the oldest are dropped beyond.")


class GeneratorConfig(_Section):
    kind: Literal["auto", "diffusers", "preview"] = Field(
        "auto", description="auto: diffusers when the model is on disk, else the labelled preview.")
    model: str = Field("stabilityai/sd-turbo", description="Diffusion model: Hugging Face id, local diffusers folder, "
                       "or single-file checkpoint (.safetensors/.ckpt in the original SD layout; see `checkpoint_config`).")
    checkpoint_config: str = Field(
        "", description="Single-file `model` only: Hugging Face id or local diffusers folder whose configs (no weights "
        "needed) describe its architecture; empty: diffusers' guess from the file "
        "(SD 1.x: stable-diffusion-v1-5/stable-diffusion-v1-5). `fetch-models` gets the configs.")
    mode: Literal["img2img", "txt2img", "feedback"] = Field(
        "img2img", description="img2img restyles the camera (txt2img without one); txt2img paints from noise; "
        "feedback brings `still_image` (or the first camera frame) to life by repainting its own output.")
    steps: int = Field(1, ge=1, le=50, description="Denoising steps per frame.")
    strength: float = Field(0.5, ge=0.0, le=1.0, description="img2img: how far the picture departs from the camera.")
    guidance_scale: float = Field(0.0, ge=0.0, le=20.0, description="Classifier-free guidance (0 for Turbo models).")
    width: int = Field(512, ge=64, le=2048, multiple_of=8, description="Generated width in pixels.")
    height: int = Field(512, ge=64, le=2048, multiple_of=8, description="Generated height in pixels.")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Noise seed.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where diffusion runs (auto: the GPU if one is seen; cuda with no GPU runs on the CPU, with a warning).")
    max_fps: float = Field(30.0, gt=0, le=500, description="Upper bound on generated frames per second.")
    engine: Literal["stream", "pipeline"] = Field(
        "stream", description="stream: the streaming engine (fast); pipeline: a diffusers pipeline per frame (the reference).")
    autoencoder: str = Field(
        "auto", description="auto: TAESD/TAESDXL when fetched, else the model's VAE; full: the model's VAE; "
        "or an AutoencoderTiny id or folder.")
    lcm_lora: str = Field("", description="LCM-LoRA (id, folder or .safetensors) for SD 1.5 checkpoints; switches to the LCM scheduler.")
    lora: str = Field("", description="The show's own style LoRA (id, folder or .safetensors file), fused at load.")
    lora_scale: float = Field(1.0, ge=0.0, le=2.0, description="Weight of `lora`.")
    prepare_steps: list[int] = Field(
        [], description="Step counts to prepare (CUDA graphs) at start besides `steps`; others run eager until prepared.")
    acceleration: Literal["auto", "compile", "graphs", "eager"] = Field(
        "auto", description="CUDA: auto/compile = torch.compile + CUDA graphs, falling back to graphs, then eager. "
        "CPU: auto = eager; compile = the whole frame in one torch.compile graph (about 40 s at the first start, "
        "seconds once cached; each convolution's memory layout is timed once per machine).")
    stream_batch: bool = Field(True, description="steps > 1: every stage in one UNet call (output lags steps-1 frames).")
    similarity_filter: float = Field(
        0.98, ge=0.0, le=1.0, description="Skip camera frames this similar (cosine, 0-1) to the last painted one (0: off).")
    feedback: float = Field(0.0, ge=0.0, le=0.95, description="Blend this much of the previous frame into each new one, against flicker.")
    prompt_blend_s: float = Field(1.5, ge=0.0, le=60.0, description="Seconds over which a new prompt or seed blends in.")
    seed_drift: float = Field(0.0, ge=0.0, le=1.0, description="How fast the noise walks by itself (seeds per second); "
                              "a picture painted from noise (txt2img) walks at least 0.05, so it is never a still.")
    still_image: str = Field("", description="feedback mode: the image to bring to life (relative to the project); empty: the camera.")
    mask: Literal["off", "inside", "outside"] = Field(
        "off", description="inside: paint only inside the visitor's silhouette ([vision]) or `mask_image`; outside: "
        "only outside it; the rest of the picture is the camera image itself (off: paint the whole frame).")
    mask_feather_px: int = Field(12, ge=0, le=256, description="The mask's soft edge in generated pixels, inside "
                                 "the painted part (0: a hard edge).")
    mask_image: str = Field("", description="An image (relative to the project) whose white, or opaque, part is the "
                            "mask: used while no silhouette is seen, and always without [vision]; fitted to the "
                            "picture as the camera image is.")

    @field_validator("prepare_steps")
    @classmethod
    def _steps_in_range(cls, v: list[int]) -> list[int]:
        # Each one is prepared at start, as `steps` would be: a count past 50 (or below 1) could not run.
        wrong = [n for n in v if not 1 <= n <= 50]
        if wrong:
            raise ValueError(f"expected step counts from 1 to 50, as for `steps`, got {_echo(wrong)}")
        return v


class DisplayConfig(_Section):
    mode: Literal["fullscreen", "windowed", "headless"] = Field(
        "fullscreen", description="fullscreen on `monitor`, a window, or none (recording only).")
    monitor: int = Field(0, ge=0, le=15, description="Monitor index for fullscreen (see `python run.py devices`).")
    width: int = Field(1280, ge=160, le=7680, description="Window / headless width.")
    height: int = Field(720, ge=120, le=4320, description="Window / headless height.")
    fps: float = Field(60.0, gt=0, le=240, description="Presentation rate.")
    crossfade_s: float = Field(0.4, ge=0, le=30, description="Crossfade from one generated frame to the next (0: cut); shorter when frames come faster.")
    caption: bool = Field(True, description="Show the visitor's words.")
    caption_seconds: float = Field(12.0, gt=0, le=600, description="How long a caption stays.")
    caption_size: int = Field(40, ge=8, le=300, description="Caption font size in pixels on a 720-line screen (scaled to the screen).")
    hud: bool = Field(False, description="Overlay fps per stage, drops, generator and model.")
    silhouette: Literal["off", "outline"] = Field(
        "off", description="outline: draw the visitor's outline (the vision stage's person mask) over the picture; "
        "needs [vision] enabled.")
    lock_keyboard: bool = Field(False, description="Keys do nothing: Esc does not quit, space and the arrows fire "
                                "no cues (public spaces).")


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected \"host:port\" such as \"127.0.0.1:9001\", got {_echo(value)}")
    return host.strip("[]"), int(port)


class OscConfig(_Section):
    enabled: bool = Field(True, description="Listen for OSC.")
    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0 for the network).")
    port: int = Field(9000, ge=0, le=65535, description="UDP port (0: any free port).")
    allow: list[str] = Field(
        ["127.0.0.1", "::1"], description="Senders whose messages are obeyed: hosts and subnets "
        "(\"192.168.1.20\", \"10.0.0.0/24\"). Others get an error reply and change nothing.")
    reply_port: int = Field(0, ge=0, le=65535, description="Send replies to this port on the sender's "
                            "host (as QLab expects); 0 replies to the port the message came from.")
    status_targets: list[str] = Field([], description="Where /jadong/status/... is pushed: \"host:port\" entries.")
    status_hz: float = Field(2.0, gt=0, le=60, description="How often status is pushed to status_targets.")

    @field_validator("allow")
    @classmethod
    def _valid_networks(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError("expected IP addresses or subnets such as \"192.168.1.0/24\", "
                                 f"got {_echo(entry)}") from None
        return v

    @field_validator("status_targets")
    @classmethod
    def _valid_targets(cls, v: list[str]) -> list[str]:
        for entry in v:
            _host_port(entry)
        return v

    def status_addresses(self) -> list[tuple[str, int]]:
        return [_host_port(t) for t in self.status_targets]


class CaptureConfig(_Section):
    """What a capture keeps (control/capture.py, control/archive.py): the picture, its words and
    settings, signed with content credentials ([provenance])."""

    keep_words: bool = Field(True, description="false: no visitor's words in a capture's sidecar, index or "
                             "content credentials: their caption is left out, and so is any prompt not written by "
                             "the show, a cue or the scene (privacy).")
    every_n_prompts: int = Field(0, ge=0, le=100000, description="Capture the picture of every Nth new prompt "
                                 "that reaches the screen (visitors' words, cues, OSC, scene words alike); 0: never.")
    clip_s: float = Field(0.0, ge=0, le=10, description="Also keep the last N seconds of presented frames as a "
                          "short MP4 beside each capture (memory: N × generated frames per second × one frame); "
                          "0: no clip.")
    quota_mb: float = Field(2000.0, ge=1, le=10_000_000, description="Megabytes captures/ may hold; past this the "
                            "oldest captures are removed first.")


class PrivacyConfig(_Section):
    """What is kept of visitors, and for how long (control/retention.py, core/visitor_words.py),
    and how big the event log may grow. Expired data is deleted by a janitor thread every few
    minutes while the show runs."""

    keep_words: bool = Field(True, description="false: the show keeps no visitor's words at all: the event log "
                             "writes counts in their place (`text_words: 4` for `text`), captures keep none "
                             "([capture] keep_words is false too), and closed log files are scrubbed of words "
                             "written before. Prompts from the show, a cue, the scene or attract mode are the artist's "
                             "and stay.")
    words_days: float = Field(30.0, ge=0, le=36500, description="Days visitors' words stay in the event log: a "
                              "closed log file whose last line is older is rewritten with counts in their place "
                              "(every other field stays). 0: as long as the file.")
    captures_days: float = Field(0.0, ge=0, le=36500, description="Days a capture (picture, clip, sidecar and its "
                                 "line in captures/index.jsonl) is kept; 0: until [capture] quota_mb removes it.")
    logs_days: float = Field(90.0, ge=0, le=36500, description="Days an event-log file is kept after its last line; "
                             "0: no limit but logs_max_mb.")
    logs_max_mb: float = Field(1000.0, ge=1, le=10_000_000, description="Megabytes all event-log files may hold "
                               "together; past this the oldest go first (never the one being written).")
    log_file_mb: float = Field(100.0, ge=0.01, le=10_000_000, description="A log file past this size goes on in a "
                               "numbered part (`events-20250101.1.jsonl`): a flood of events cannot make one file "
                               "too big to open.")

    @model_validator(mode="after")
    def _file_fits(self) -> PrivacyConfig:
        if self.log_file_mb > self.logs_max_mb:
            raise ValueError(f"log_file_mb ({self.log_file_mb:g}) is more than logs_max_mb ({self.logs_max_mb:g}), "
                             "all the logs together: lower log_file_mb or raise logs_max_mb")
        return self


class ProvenanceConfig(_Section):
    """Who made the show and how its captures are signed (control/provenance.py)."""

    artist: str = Field("", max_length=MAX_PROMPT_CHARS, description="The show's artist: named in every "
                        "capture's sidecar and content credentials.")
    certificate: str = Field("", description="PEM file with the signing certificate and then its CA (`python run.py "
                             "credentials DIR` makes both); empty: Jadong's own local one in credentials/, made on "
                             "first use.")
    key: str = Field("", description="PEM file with the signing certificate's private key (PKCS#8).")
    model_licence: str = Field("", description="The licence of the show's own model, named in captures (the "
                               "models Jadong fetches are known).")

    @model_validator(mode="after")
    def _certificate_with_key(self) -> ProvenanceConfig:
        if bool(self.certificate.strip()) != bool(self.key.strip()):
            raise ValueError("certificate and key go together: name both PEM files (`python run.py credentials DIR` "
                             "makes a pair), or neither for Jadong's own local credentials")
        return self


# --- unattended: attract mode and opening hours ------------------------------------------

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
_TIME_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
HOURS_HELP = ('write hours as "10:00-18:00", several as "10:00-13:00, 14:00-20:00", past midnight as '
              '"18:00-02:00", all day as "00:00-24:00", or "closed"')


def parse_day_hours(text: str) -> tuple[tuple[int, int], ...]:
    """One day's opening hours as (start, end) minutes after midnight. An end at or before its
    start runs past midnight into the next day; "closed" is no range at all."""
    if text.strip().lower() == "closed":
        return ()
    ranges = []
    for part in (p.strip() for p in text.split(",")):
        match = _TIME_RANGE.match(part)
        if not match:
            raise ValueError(f"{_quote(part)} is not a time range; {HOURS_HELP}")
        h0, m0, h1, m1 = map(int, match.groups())
        if h0 > 23 or h1 > 24 or m0 > 59 or m1 > 59 or (h1 == 24 and m1):
            raise ValueError(f"{_quote(part)} is not a time of day (00:00 to 23:59, or 24:00 for the end of the day)")
        start, end = h0 * 60 + m0, h1 * 60 + m1
        if start == end:
            raise ValueError(f"{_quote(part)} opens and closes at the same minute; all day is \"00:00-24:00\"")
        ranges.append((start, end))
    return tuple(ranges)


def _check_day_hours(text: str) -> str:
    if text.strip():
        parse_day_hours(text)
    return text


def _check_timezone(name: str) -> str:
    if not name.strip():
        return name
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"no time zone {_quote(name)}: expected an IANA name such as \"Europe/Berlin\" or "
                         "\"America/New_York\" (empty: this machine's)") from None
    return name


def _check_file(value: str) -> str:
    """A file the show names (empty: none) must be there."""
    if value.strip() and not resolve_path(value.strip()).is_file():
        raise ValueError(f"no file {resolve_path(value.strip())} (a path relative to the project, or absolute)")
    return value


DayHours = Annotated[str, Field(max_length=MAX_NAME_CHARS), AfterValidator(_check_day_hours)]
TimeZoneName = Annotated[str, Field(max_length=MAX_NAME_CHARS), AfterValidator(_check_timezone)]
ShownFile = Annotated[str, AfterValidator(_check_file)]


class AttractConfig(_Section):
    """What the show does while nobody is there (control/attract.py): after `after_s` without
    anyone present ([vision]) and without a word heard or an operator's control, a cycle of
    prompts, a clip or a still with a caption inviting people in; back the moment someone comes."""

    enabled: bool = Field(False, description="Switch to the attract behaviour when nobody is there.")
    after_s: float = Field(120.0, ge=1, le=86400, description="Seconds with nobody present (with [vision]; without "
                           "it, nobody heard) and no operator's control before attract starts.")
    behaviour: Literal["prompts", "clip", "still"] = Field(
        "prompts", description="prompts: the generator paints `prompts` in turn; clip: `clip` plays on screen, "
        "looped; still: `image` shows. The generator rests during a clip or a still.")
    prompts: list[PromptText] = Field([], description="The attract prompts, painted in turn, `prompt_s` each.")
    prompt_s: float = Field(20.0, ge=1, le=3600, description="Seconds each attract prompt is painted.")
    clip: ShownFile = Field("", description="behaviour \"clip\": a video file (relative to the project), played looped "
                      "at its own frame rate.")
    image: ShownFile = Field("", description="behaviour \"still\": an image file (relative to the project).")
    caption: str = Field("Say a wish", max_length=MAX_PROMPT_CHARS, description="Shown over the attract picture "
                         "(\"\" for none).")
    fade_s: float = Field(1.5, ge=0, le=60, description="Seconds a clip or still fades in and out.")

    @model_validator(mode="after")
    def _has_what_it_shows(self) -> AttractConfig:
        if not self.enabled:
            return self
        if self.behaviour == "prompts" and not any(p.strip() for p in self.prompts):
            raise ValueError('behaviour "prompts" needs prompts = ["...", ...] (or behaviour "clip" or "still")')
        for behaviour, key in (("clip", "clip"), ("still", "image")):
            if self.behaviour == behaviour and not getattr(self, key).strip():
                raise ValueError(f'behaviour "{behaviour}" needs {key} = "path/to/file"')
        return self


class HoursConfig(_Section):
    """When the show is open (control/hours.py), by weekday, in the show's time zone. With no
    day and no `default` set the show is always open. While closed the generator rests (the GPU
    idles), nothing heard is transcribed, and the screen fades to the `closed` look."""

    timezone: TimeZoneName = Field("", description="IANA time zone the hours are in, e.g. "
                          "\"Europe/Berlin\" (daylight saving time followed); empty: this machine's.")
    default: DayHours = Field("", description="Hours of every day not set below; empty: those days are closed.")
    mon: DayHours = Field("", description="Monday's hours, e.g. \"10:00-18:00\" or \"10:00-13:00, 14:00-20:00\"; "
                          "\"closed\"; empty: `default`. A range past midnight (\"18:00-02:00\") ends the next day.")
    tue: DayHours = Field("", description="Tuesday's hours (as `mon`).")
    wed: DayHours = Field("", description="Wednesday's hours (as `mon`).")
    thu: DayHours = Field("", description="Thursday's hours (as `mon`).")
    fri: DayHours = Field("", description="Friday's hours (as `mon`).")
    sat: DayHours = Field("", description="Saturday's hours (as `mon`).")
    sun: DayHours = Field("", description="Sunday's hours (as `mon`).")
    closed: Literal["dim", "black", "still"] = Field(
        "dim", description="The screen while closed: the last picture dimmed to `dim`, black, or `image`.")
    dim: float = Field(0.2, ge=0, le=1, description="closed = \"dim\": the last picture's brightness (0 black, 1 as is).")
    image: ShownFile = Field("", description="closed = \"still\": the image shown (relative to the project).")
    caption: str = Field("", max_length=MAX_PROMPT_CHARS, description="Text over the closed screen, e.g. the "
                         "opening times (\"\" for none).")
    fade_s: float = Field(3.0, ge=0, le=600, description="Seconds the screen fades into and out of the closed look.")

    @property
    def scheduled(self) -> bool:
        """Whether any hours are set (else the show is always open)."""
        return any(getattr(self, key).strip() for key in ("default", *DAYS))

    def day(self, weekday: int) -> tuple[tuple[int, int], ...]:
        """The ranges of a weekday (0 = Monday), `default` for a day not set."""
        text = getattr(self, DAYS[weekday]).strip() or self.default.strip()
        return parse_day_hours(text) if text else ()

    @model_validator(mode="after")
    def _still_has_image(self) -> HoursConfig:
        if self.closed == "still" and not self.image.strip():
            raise ValueError('closed = "still" needs image = "path/to/file"')
        return self


class SafetyConfig(_Section):
    """An image checker on generated frames (generation/safety.py): diffusers'
    StableDiffusionSafetyChecker. Held frames are never shown; the last safe frame stays."""

    enabled: bool = Field(False, description="Check every frame the model paints before it is shown (costs a "
                          "CLIP ViT-L/14 pass a frame on the generator's GPU; the preview is not checked).")
    model: str = Field("CompVis/stable-diffusion-safety-checker", description="The checker: a Hugging Face id "
                       "(`fetch-models` gets it) or a local folder with config.json, weights and "
                       "preprocessor_config.json.")
    adjustment: float = Field(0.0, ge=-0.5, le=0.5, description="Added to every concept score before the \"> 0 "
                              "flags\" test (the checker's own `adjustment`): higher flags more (stricter, more false "
                              "positives), lower flags less; 0 is the checker as published, steps of 0.01 matter.")
    streak: int = Field(3, ge=1, le=60, description="Frames are held only from the Nth flagged frame in a row on "
                        "(one false positive never stutters the picture); 1 holds every flagged frame.")
    if_missing: Literal["preview", "unchecked"] = Field(
        "preview", description="If the checker cannot load (weights missing): \"preview\" keeps the model's "
        "frames off the screen and the labelled preview paints; \"unchecked\" shows them unchecked (logged).")


class Cue(_Section):
    """One cue: what changes when the performer fires it. Unset keys leave things as they are."""

    name: CueName = Field(description="What the performer calls it (/jadong/cue/go NAME); unique in the show, "
                          "ignoring case, and not only digits (those are cue numbers).")
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS, description="Paint these words.")
    style: str | None = Field(None, max_length=MAX_NAME_CHARS, description="A style from [styles].")
    negative: str | None = Field(None, max_length=MAX_PROMPT_CHARS, description="Negative prompt.")
    strength: float | None = Field(None, ge=0, le=1, description="img2img strength.")
    steps: int | None = Field(None, ge=1, le=50, description="Denoising steps.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Noise seed.")
    seed_drift: float | None = Field(None, ge=0, le=1, description="How fast the noise walks, 0-1.")
    mode: Literal["img2img", "txt2img", "feedback"] | None = Field(None, description="Generation mode.")
    blend_s: float | None = Field(None, ge=0, le=60, description="Seconds a new prompt takes to blend in.")
    crossfade_s: float | None = Field(None, ge=0, le=30, description="Display crossfade seconds.")
    caption: str | None = Field(None, max_length=MAX_PROMPT_CHARS,
                                description="Caption text to show (\"\" clears it).")
    listen: bool | None = Field(None, description="Listen to the microphone from this cue on.")
    blackout: bool | None = Field(None, description="Fade to black (true) or back (false).")
    fade_s: float | None = Field(None, ge=0, le=60, description="Blackout fade seconds for this cue.")
    lora_scale: float | None = Field(None, ge=0.0, le=2.0, description="Weight of the show's `lora` from this cue "
                                     "on (changed in place, no reload).")
    mask: Literal["off", "inside", "outside"] | None = Field(
        None, description="Mask mode from this cue on (the show's [generator] mask source: the silhouette or "
        "`mask_image`).")
    capture: bool | None = Field(None, description="Capture the picture this cue makes, once it is on screen "
                          "(see [capture]).")
    # The storyboard (control/storyboard.py): a cue's time on the clock.
    duration_s: float | None = Field(None, ge=0.1, le=86400, description="Seconds the cue holds (its time left "
                                     "is in the status); unset: until the next GO.")
    follow: bool | None = Field(None, description="true: when `duration_s` ends, fire the next cue by itself "
                                "(after the last, the first if [storyboard] loop); unset: wait for GO.")

    @model_validator(mode="after")
    def _follow_needs_a_duration(self) -> Cue:
        if self.follow and self.duration_s is None:
            raise ValueError("follow = true needs duration_s: how many seconds the cue holds before the next one")
        return self


class StoryboardConfig(_Section):
    autostart: bool = Field(False, description="Fire the first cue when the show starts (a cue with `duration_s` "
                            "and `follow` then runs the show by the clock).")
    loop: bool = Field(False, description="After the last cue comes the first again: for cues that follow, and "
                       "for GO (/jadong/cue/next, the keyboard); back from the first goes to the last.")


# --- several streams and outputs ([[streams]], [[outputs]]) -----------------------------------
# core/streams.py turns a crop into pixels and holds each stream's slots; display/outputs.py
# builds the outputs; control/streams.py holds each stream's state and its OSC controls.

MAX_STREAMS = 8
MAX_OUTPUTS = 8
CROP_NAMES = ("full", "left", "centre", "right")  # the camera's width in thirds, or all of it


def _crop(value: Any) -> str | list[float]:
    if isinstance(value, str):
        if value not in CROP_NAMES:
            raise ValueError(f"expected one of {', '.join(map(_quote, CROP_NAMES))} or four fractions "
                             f"[x0, y0, x1, y1] of the camera frame, got {_quote(value)}")
        return value
    if (isinstance(value, list) and len(value) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        x0, y0, x1, y1 = (float(v) for v in value)
        if all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (x0, y0, x1, y1)) and x0 < x1 and y0 < y1:
            return [x0, y0, x1, y1]
    raise ValueError(f"expected one of {', '.join(map(_quote, CROP_NAMES))} or four fractions [x0, y0, x1, y1] "
                     f"from 0 to 1 with x0 < x1 and y0 < y1 (e.g. [0.0, 0.0, 0.5, 1.0], the left half), "
                     f"got {_echo(value)}")


def _stream_ref(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_STREAMS:
        return value
    if isinstance(value, str) and value.strip() and len(value) <= MAX_NAME_CHARS:
        return value
    raise ValueError(f"expected a stream number from 1 to {MAX_STREAMS} or a stream's name, got {_echo(value)}")


CropValue = Annotated[str | list[float], PlainValidator(_crop)]
StreamRef = Annotated[int | str, PlainValidator(_stream_ref)]


class StreamConfig(_Section):
    """One stream: what one or more outputs paint. Unset keys follow the show ([prompt], [generator],
    the style a performer chose); each stream has its own OSC controls (/jadong/stream/N/...)."""

    name: str = Field("", max_length=MAX_NAME_CHARS, description="What outputs (`stream = \"left\"`) and the "
                      "operator call it; not only digits (those are stream numbers); \"\": `stream N`.")
    template: Template | None = Field(None, description="This stream's prompt template (contains {speech}); "
                                      "unset: the show's (or `style`).")
    style: str | None = Field(None, max_length=MAX_NAME_CHARS, description="A style from [styles] for this "
                              "stream (instead of `template`).")
    initial: str | None = Field(None, max_length=MAX_PROMPT_CHARS, description="What this stream paints before "
                                "anyone speaks; unset: [prompt] initial.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="This stream's noise seed; unset: the show's "
                             "(cues and /jadong/seed).")
    strength: float | None = Field(None, ge=0, le=1, description="This stream's img2img strength; unset: the "
                                   "show's (cues and /jadong/strength).")
    crop: CropValue = Field("full", description="The part of the camera frame this stream restyles: \"full\", "
                            "\"left\", \"centre\" or \"right\" (thirds of the width, a triptych), or four fractions "
                            "[x0, y0, x1, y1] of the frame.")
    words: bool = Field(True, description="Paint visitors' words (false: this stream keeps its own words while "
                        "visitors speak; cues and performers' prompts still reach it).")

    @field_validator("name")
    @classmethod
    def _name_is_not_a_number(cls, v: str) -> str:
        if v and (v != v.strip() or v.strip().isdigit()):
            raise ValueError(f"expected a name with a letter in it and no spaces at the ends (numbers are stream "
                             f"numbers), got {_quote(v)}")
        return v

    @model_validator(mode="after")
    def _template_or_style(self) -> StreamConfig:
        if self.template is not None and self.style is not None:
            raise ValueError("give `template` or `style`, not both")
        return self


# Which keys each kind of output reads; any other key set on it is a mistake to report.
OUTPUT_KEYS = {
    "screen": {"kind", "stream", "monitor", "mode", "width", "height", "fps", "caption", "hud"},
    "ndi": {"kind", "stream", "name", "width", "height", "fps", "alpha", "caption"},
    "record": {"kind", "stream", "path", "width", "height", "fps", "caption", "hud"},
}


class OutputConfig(_Section):
    """One output: a screen (a window on a monitor, or headless), an NDI source, or a recording.
    Unset keys follow [display]."""

    kind: Literal["screen", "ndi", "record"] = Field("screen", description="screen: a window on a monitor "
                                                     "(fullscreen or windowed) or headless; ndi: an NDI source "
                                                     "on the network; record: a video file.")
    stream: StreamRef = Field(1, description="The stream it shows: a number (1 is the first [[streams]] table, "
                              "or the show's one stream) or a stream's `name`; several outputs may show one stream.")
    monitor: int | None = Field(None, ge=0, le=15, description="screen: the monitor (`python run.py devices`); "
                                "unset: [display] monitor.")
    mode: Literal["fullscreen", "windowed", "headless"] | None = Field(
        None, description="screen: fullscreen on `monitor`, a window, or none; unset: [display] mode. "
        "[display] mode = \"headless\" (or --headless) makes every screen headless.")
    width: int | None = Field(None, ge=160, le=7680, description="Window, headless, NDI or recording width; unset: "
                              "[display] width (a fullscreen screen takes its monitor's size).")
    height: int | None = Field(None, ge=120, le=4320, description="Its height; unset: [display] height.")
    fps: float | None = Field(None, gt=0, le=240, description="Frames presented, sent or recorded per second; "
                              "unset: [display] fps for a screen, 30 for NDI and recordings.")
    caption: bool | None = Field(None, description="Show the visitor's words (NDI: burnt in, with the label; "
                                 "false sends the picture alone); unset: [display] caption.")
    hud: bool | None = Field(None, description="screen, record: the HUD; unset: [display] hud for a screen, "
                             "off for a recording.")
    name: str = Field("", max_length=MAX_NAME_CHARS, description="ndi: the source's name, as receivers "
                      "(TouchDesigner, OBS, Resolume) list it.")
    alpha: bool = Field(False, description="ndi: send BGRA, with an alpha channel (fully opaque), for receivers "
                        "that key or expect one; false: BGRX.")
    path: str = Field("", description="record: the video file (.mp4 or .avi; relative to the project).")


def stream_label(index: int, name: object = None) -> str:
    """A stream as errors name it: `streams[1] (stream 2, "left")`."""
    named = f", {_quote(name, 40)}" if isinstance(name, str) and name else ""
    return f"streams[{index}] (stream {index + 1}{named})"


def output_label(index: int) -> str:
    return f"outputs[{index}] (output {index + 1})"


def show_streams(show: Show) -> list[StreamConfig]:
    """The show's streams: its [[streams]] tables, or the one stream [prompt] and [generator] make."""
    return list(show.streams) or [StreamConfig()]


def stream_number(show: Show, ref: int | str) -> int | None:
    """The 1-based number of the stream `ref` (a number or a name, ignoring case) names, or None."""
    streams = show_streams(show)
    if isinstance(ref, int):
        return ref if 1 <= ref <= len(streams) else None
    wanted = ref.strip().lower()
    return next((i + 1 for i, s in enumerate(streams) if s.name.lower() == wanted), None)


def _streams_and_outputs_problems(show: Show) -> list[str]:
    """What is wrong between [[streams]], [[outputs]] and the rest of the show."""
    problems = []
    if len(show.streams) > MAX_STREAMS:
        problems.append(f"streams: at most {MAX_STREAMS} streams, got {len(show.streams)}")
    if len(show.outputs) > MAX_OUTPUTS:
        problems.append(f"outputs: at most {MAX_OUTPUTS} outputs, got {len(show.outputs)}")
    names: dict[str, int] = {}
    for i, stream in enumerate(show.streams):
        label = stream_label(i, stream.name)
        earlier = names.setdefault(stream.name.lower(), i) if stream.name else i
        if earlier != i:
            problems.append(f"{label}.name: stream {earlier + 1} is already called "
                            f"{_quote(show.streams[earlier].name)}; stream names must differ by more than case")
        if stream.style is not None and stream.style not in show.styles:
            problems.append(f"{label}.style: {_quote(stream.style)} is not in [styles] "
                            f"(known: {', '.join(show.styles) or 'none'})")
        scene = sorted(template_placeholders(stream.template or "{speech}") & set(SCENE_WORDS))
        if scene and not show.vision.enabled:
            problems.append(f"{label}.template: {', '.join('{' + w + '}' for w in scene)} need the vision stage: "
                            "set [vision] enabled = true")
    known = ", ".join(str(i + 1) + (f" ({_quote(s.name)})" if s.name else "")
                      for i, s in enumerate(show_streams(show)))
    shown: set[int] = set()
    fullscreen: dict[int, int] = {}
    seen_names: dict[str, int] = {}
    seen_paths: dict[str, int] = {}
    for i, out in enumerate(show.outputs):
        label = output_label(i)
        for key in sorted(out.model_fields_set - OUTPUT_KEYS[out.kind]):
            kinds = " and ".join(k for k, keys in OUTPUT_KEYS.items() if key in keys)
            problems.append(f"{label}.{key}: not read by kind = \"{out.kind}\" (it is for {kinds} outputs)")
        if out.kind == "ndi" and not out.name.strip():
            problems.append(f"{label}.name: an NDI output needs the name receivers find it by, "
                            "e.g. name = \"Jadong left\"")
        if out.kind == "record" and not out.path.strip():
            problems.append(f"{label}.path: a record output needs a file, e.g. path = \"recordings/left.mp4\"")
        number = stream_number(show, out.stream)
        if number is None:
            problems.append(f"{label}.stream: no stream {_quote(out.stream) if isinstance(out.stream, str) else out.stream} "
                            f"in this show (streams: {known})")
        else:
            shown.add(number)
        if out.kind == "screen" and (out.mode or show.display.mode) == "fullscreen":
            monitor = show.display.monitor if out.monitor is None else out.monitor
            earlier = fullscreen.setdefault(monitor, i)
            if earlier != i and show.display.mode != "headless":
                problems.append(f"{label}.monitor: output {earlier + 1} is already fullscreen on monitor {monitor}; "
                                "give each fullscreen screen its own monitor (or make one windowed)")
        if out.kind == "ndi":
            earlier = seen_names.setdefault(out.name.strip().lower(), i)
            if earlier != i:
                problems.append(f"{label}.name: output {earlier + 1} already sends as {_quote(out.name)}; "
                                "NDI receivers tell sources apart by name")
        if out.kind == "record":
            earlier = seen_paths.setdefault(str(resolve_path(out.path)), i)
            if earlier != i:
                problems.append(f"{label}.path: output {earlier + 1} already records to {_quote(out.path)}")
    if show.streams:
        unseen = [n for n in range(1, len(show.streams) + 1) if n not in (shown if show.outputs else {1})]
        for n in unseen:
            where = "no [[outputs]] table shows it" if show.outputs else "without [[outputs]] only stream 1 is shown"
            problems.append(f"{stream_label(n - 1, show.streams[n - 1].name)}: {where}; add an [[outputs]] table "
                            f"with stream = {n} (or remove the stream: each one costs generator time)")
    return problems


class Show(_Section):
    show: ShowInfo = ShowInfo()
    camera: CameraConfig = CameraConfig()
    microphone: MicrophoneConfig = MicrophoneConfig()
    speech: SpeechConfig = SpeechConfig()
    moderation: ModerationConfig = ModerationConfig()
    prompt: PromptConfig = PromptConfig()
    generator: GeneratorConfig = GeneratorConfig()
    display: DisplayConfig = DisplayConfig()
    osc: OscConfig = OscConfig()
    vision: VisionConfig = VisionConfig()
    web: WebConfig = Field(WebConfig(), description="The operator's page and monitoring endpoints.")
    curation: CurationConfig = Field(CurationConfig(), description="Visitors' words approved by a person first.")
    scene: SceneWordsConfig = Field(SceneWordsConfig(), description="How scene words enter prompts.")
    capture: CaptureConfig = Field(CaptureConfig(), description="What a capture keeps, when one happens by "
                                   "itself, and how much of the disk captures may use.")
    privacy: PrivacyConfig = Field(PrivacyConfig(), description="What is kept of visitors and for how long "
                                   "(the event log's words, captures), and how big the event log may grow.")
    provenance: ProvenanceConfig = Field(ProvenanceConfig(), description="The show's artist and the signing "
                                         "certificate for its captures' content credentials.")
    storyboard: StoryboardConfig = Field(StoryboardConfig(), description="The cues as a timed sequence: "
                                         "each cue's `duration_s` and `follow`, and here how the sequence runs.")
    attract: AttractConfig = Field(AttractConfig(), description="What the show does while nobody is there.")
    hours: HoursConfig = Field(HoursConfig(), description="Opening hours by weekday, and the screen while closed.")
    safety: SafetyConfig = Field(SafetyConfig(), description="An image safety checker on generated frames.")
    styles: dict[StyleName, Template] = Field(
        {}, description="Named prompt templates a performer switches between (/jadong/style NAME); "
        "each contains {speech}.")
    cues: list[Cue] = Field([], description="The show's cues, in order: one [[cues]] table each; a performer fires them with /jadong/cue/go, /next and /prev.")
    streams: list[StreamConfig] = Field([], description="Several streams, one [[streams]] table each (at most "
                                        f"{MAX_STREAMS}): each its own words, seed, strength and part of the camera; "
                                        "without them the show paints one stream from [prompt] and [generator].")
    outputs: list[OutputConfig] = Field([], description="Several outputs, one [[outputs]] table each (at most "
                                        f"{MAX_OUTPUTS}): screens, NDI sources, recordings, each showing a stream; "
                                        "without them the show has one screen, as [display] says.")

    @model_validator(mode="after")
    def _cues_consistent(self) -> Show:
        problems = []
        seen: dict[str, int] = {}
        for i, cue in enumerate(self.cues):
            label = cue_label(i, cue.name)
            # A performer fires cues by name ignoring case, so "Storm" after "storm" could never be fired.
            earlier = seen.setdefault(cue.name.lower(), i)
            if earlier != i:
                problems.append(f"{label}.name: cue {earlier + 1} is already called {_quote(self.cues[earlier].name)}; "
                                "cue names must differ by more than case")
            if cue.style is not None and cue.style not in self.styles:
                problems.append(f"{label}.style: {_quote(cue.style)} is not in [styles] "
                                f"(known: {', '.join(self.styles) or 'none'})")
        if not self.vision.enabled:
            if self.speech.listen == "presence":
                problems.append('speech.listen: "presence" needs the vision stage: set [vision] enabled = true')
            if self.display.silhouette != "off":
                problems.append(f'display.silhouette: "{self.display.silhouette}" needs the vision stage: '
                                "set [vision] enabled = true")
            templates = {"prompt.template": self.prompt.template,
                         **{f"styles.{name}": t for name, t in self.styles.items()}}
            for where, template in templates.items():
                scene = sorted(template_placeholders(template) & set(SCENE_WORDS))
                if scene:
                    problems.append(f"{where}: {', '.join('{' + w + '}' for w in scene)} need the vision stage: "
                                    "set [vision] enabled = true")
        if not self.cues:
            problems += [f"storyboard.{key}: the show has no cues to run: add [[cues]] tables or set {key} = false"
                         for key in ("autostart", "loop") if getattr(self.storyboard, key)]
        no_silhouette = not self.vision.enabled or self.vision.silhouette == "off"
        if self.generator.mask != "off" and no_silhouette and not self.generator.mask_image.strip():
            problems.append(f'generator.mask: "{self.generator.mask}" needs a mask: the visitor\'s silhouette '
                            '([vision] enabled = true, silhouette not "off") or generator.mask_image (an image file)')
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _no_words_anywhere(self) -> Show:
        """[privacy] keep_words = false covers captures too: one switch, never a capture
        keeping the words the log withholds."""
        if not self.privacy.keep_words and self.capture.keep_words:
            if "keep_words" in self.capture.model_fields_set:
                raise ValueError("capture.keep_words: true keeps visitors' words in captures, but privacy.keep_words "
                                 "= false keeps none: remove capture.keep_words (it follows [privacy])")
            self.capture.keep_words = False
        return self

    @model_validator(mode="after")
    def _streams_and_outputs_consistent(self) -> Show:
        problems = _streams_and_outputs_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # Where the show came from, for messages and relative paths.
    path: Path | None = Field(default=None, exclude=True)


# --- loading ---------------------------------------------------------------------------

UNKNOWN_FIELD = "no such field (check the spelling; see the README's show file reference)"

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "missing": "a value",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
}
_RANGES = {
    "greater_than_equal": ("ge", "a value of at least {}"),
    "less_than_equal": ("le", "a value of at most {}"),
    "greater_than": ("gt", "a value greater than {}"),
    "less_than": ("lt", "a value less than {}"),
    "multiple_of": ("multiple_of", "a multiple of {}"),
}
# Errors about a number: their message gives the field's whole range ("an integer from 1 to 50").
_NUMBER_ERRORS = {"int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "finite_number",
                  *_RANGES}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")  # a TOML key that needs no quotes


def cue_label(index: int, name: object = None) -> str:
    """A cue as errors name it: its place in the file, then the number and name a performer
    fires it by (OSC cue numbers count from 1), e.g. `cues[2] (cue 3, "storm")`."""
    named = f", {_quote(name, 40)}" if isinstance(name, str) else ""
    return f"cues[{index}] (cue {index + 1}{named})"


def _cue_name(data: dict, index: int, table: str = "cues") -> object:
    cues = data.get(table)
    cue = cues[index] if isinstance(cues, list) and index < len(cues) else None
    return cue.get("name") if isinstance(cue, dict) else None


def _location(loc: tuple, data: dict) -> str:
    """An error's location as the show's author wrote it: `display.fps`, `osc.allow[1]`,
    `styles."my style"`, `cues[2] (cue 3, "storm").prompt`."""
    text = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            if loc[:i] == ("cues",):
                text = cue_label(part, _cue_name(data, part))
            elif loc[:i] in (("streams",), ("outputs",)):  # numbered from 1 as OSC and outputs name them
                text = (stream_label(part, _cue_name(data, part, "streams")) if loc[0] == "streams"
                        else output_label(part))
            else:
                text = f"{text}[{part}]"
        elif part == "[key]" and i == 2 and loc[0] == "styles":  # pydantic's mark for a bad dict key
            text += " (the name)"
        else:
            key = part if _BARE_KEY.fullmatch(part) and len(part) <= 40 else _quote(part, 40)
            text += f".{key}" if text else key
    return text


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _field_at(loc: tuple) -> FieldInfo | None:
    """The schema's field at an error's location (list indexes skipped), or None."""
    model: type[BaseModel] | None = Show
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = _model_of(info.annotation)
    return info


def _number_expected(info: FieldInfo) -> str | None:
    """What a number field takes, in words: `an integer from 1 to 50`, `a number greater than
    0 and at most 240`, `a multiple of 8 from 64 to 2048`; None for a field that is no number."""
    kinds = (info.annotation, *typing.get_args(info.annotation))
    if int not in kinds and float not in kinds:
        return None
    limits = {key: getattr(meta, key) for meta in info.metadata for key in ("ge", "gt", "le", "lt", "multiple_of")
              if getattr(meta, key, None) is not None}
    noun = "an integer" if int in kinds else "a number"
    if "multiple_of" in limits:
        noun = f"a multiple of {limits['multiple_of']}"
    if "ge" in limits and "le" in limits:
        return f"{noun} from {limits['ge']} to {limits['le']}"
    words = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}
    bounds = " and ".join(f"{words[key]} {limits[key]}" for key in words if key in limits)
    return f"{noun} {bounds}".rstrip()


def _describe(err: Any, data: dict) -> str:
    """One validation error as a line (or, for the cross-checks of cues, lines) a show's author reads."""
    loc = _location(err["loc"], data) or "(top level)"
    kind, got, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "value_error":
        reason = str(ctx.get("error") or err["msg"]).removeprefix("Value error, ")
        return f"{loc}: {reason}" if err["loc"] else reason
    if kind == "extra_forbidden":
        return f"{loc}: {UNKNOWN_FIELD}"
    if kind == "missing":
        return f"{loc}: expected a value, but it is missing"
    if kind == "string_too_long":
        return f"{loc}: expected at most {ctx['max_length']} characters, got {len(got)}"
    info = _field_at(err["loc"]) if kind in _NUMBER_ERRORS else None
    expected = _number_expected(info) if info is not None else None
    if expected is None and kind in _RANGES:
        key, words = _RANGES[kind]
        expected = words.format(ctx.get(key))
    elif expected is None and kind in ("literal_error", "enum"):
        expected = f"one of {ctx.get('expected')}"
    elif expected is None:
        expected = _EXPECTED.get(kind) or str(err["msg"]).removeprefix("Input should be ")
    return f"{loc}: expected {expected}, got {_echo(got)}"


def _unique_errors(exc: ValidationError) -> list[Any]:
    """One error per location: the first says enough."""
    seen: dict[tuple, Any] = {}
    for err in exc.errors():
        seen.setdefault(tuple(err["loc"]), err)
    return list(seen.values())


def _report(path: Path | str, problems: list[str]) -> str:
    lines = [f"{path}: {problem}" for problem in problems[:MAX_REPORTED_ERRORS]]
    if len(problems) > MAX_REPORTED_ERRORS:
        lines.append(f"{path}: ... and {len(problems) - MAX_REPORTED_ERRORS} more errors")
    return "\n".join(lines)


def parse_show(data: dict, path: Path | str = "<show>") -> Show:
    """A show from its file's tables. TOML's types are taken strictly: `hud = "yes"` or
    `steps = true` is a mistake to report, not true and 1 (an integer is a fine number)."""
    # `path` is the loader's own field (where the show came from); a file cannot set it.
    problems = [f"path: {UNKNOWN_FIELD}"] if "path" in data else []
    try:
        show = Show.model_validate({k: v for k, v in data.items() if k != "path"}, strict=True)
    except ValidationError as exc:
        problems += [line for err in _unique_errors(exc) for line in _describe(err, data).split("\n")]
    if problems:
        raise ShowError(_report(path, problems))
    show.path = Path(path)
    return show


def resolve_show_path(name_or_path: str | Path | None) -> Path:
    """A show name in `shows/` ("default", "default.toml") or a path to a TOML file."""
    if name_or_path is None:
        return DEFAULT_SHOW
    p = Path(name_or_path)
    if p.suffix == ".toml" and (p.exists() or p.parent != Path(".")):
        return p
    candidate = SHOWS_DIR / (p.name if p.suffix == ".toml" else f"{p.name}.toml")
    if candidate.exists():
        return candidate
    if p.exists():
        return p
    names = ", ".join(sorted(s.stem for s in SHOWS_DIR.glob("*.toml"))) or "none"
    raise ShowError(f"{name_or_path}: no such show file (shows available in {SHOWS_DIR}: {names})")


def load_show(name_or_path: str | Path | None = None) -> Show:
    path = resolve_show_path(name_or_path)
    return parse_show(_parse_toml(_read_show_text(path), path), path)


def _read_show_text(path: Path) -> str:
    try:
        # utf-8-sig: Windows editors may start the file with a byte-order mark, which TOML refuses.
        with path.open(encoding="utf-8-sig") as file:
            text = file.read(MAX_SHOW_CHARS + 1)
    except FileNotFoundError:
        raise ShowError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ShowError(f"{path}: cannot be read as UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except OSError as exc:
        raise ShowError(f"{path}: cannot be read ({exc})") from None
    if len(text) > MAX_SHOW_CHARS:
        raise ShowError(f"{path}: longer than {MAX_SHOW_CHARS:,} characters; a show file is a few kilobytes "
                        "(is this the right file?)")
    return text


_TOML_AT = re.compile(r" \(at line (\d+), column (\d+)\)$")
_TOML_AT_END = " (at end of document)"
_LONG_NUMBER = re.compile(r"[0-9A-Fa-f_]{4300,}")  # past int()'s digit limit


def _parse_toml(text: str, path: Path) -> dict:
    """The file's tables; a syntax error names its line (and column where TOML knows it)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where, reason = _toml_position(str(exc), text)
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        where, reason = f"line {_deepest_line(text)}", "arrays or tables nested too deeply"
    except ValueError as exc:  # tomllib lets int()'s digit limit through, unlocated
        where, reason = _long_number(text) or ("", str(exc))
    raise ShowError(f"{path}: {where + ': ' if where else ''}not valid TOML: {reason}")


def _long_number(text: str) -> tuple[str, str] | None:
    number = _LONG_NUMBER.search(text)
    if number is None:
        return None
    line = text.count("\n", 0, number.start()) + 1
    return f"line {line}", f"a number of {len(number[0].replace('_', ''))} digits"


def _toml_position(message: str, text: str) -> tuple[str, str]:
    """tomllib's message split into where ("line 3, column 5") and what."""
    at = _TOML_AT.search(message)
    if at:
        return f"line {at[1]}, column {at[2]}", message[:at.start()]
    if message.endswith(_TOML_AT_END):
        last = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        return f"line {last}", message.removesuffix(_TOML_AT_END) + " at the end of the file"
    return "", message


def _deepest_line(text: str) -> int:
    """Where brackets nest deepest (strings not told apart: a pointer for the reader, no more)."""
    depth = deepest = 0
    line = deepest_line = 1
    for char in text:
        if char == "\n":
            line += 1
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest, deepest_line = depth, line
        elif char in "]}":
            depth -= 1
    return deepest_line


def resolve_path(value: str) -> Path:
    """A path from a show file: relative paths are taken from the project root, so shows
    work whatever the current directory."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p
