"""Show files: TOML in `shows/`, validated into typed config.

A broken show file fails loudly, naming the file, the field and what was expected, e.g.
`shows/x.toml: generator.steps: expected an integer from 1 to 50, got 'fast'`.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHOWS_DIR = PROJECT_ROOT / "shows"
ASSETS_DIR = PROJECT_ROOT / "assets"
DEFAULT_SHOW = SHOWS_DIR / "default.toml"

# Bounds on every string that enters the show, from a show file or over OSC. A diffusion text
# encoder reads 77 tokens (a few hundred characters), so a longer prompt paints nothing more;
# the bounds keep status replies inside one UDP datagram and the event log a sane size.
MAX_PROMPT_CHARS = 1000  # prompts, negative prompts, templates, captions
MAX_NAME_CHARS = 100  # cue, style and show names


class ShowError(ValueError):
    """A show file that cannot be used; the message names file, field and reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


DeviceOrPath = int | str


class ShowInfo(_Section):
    name: str = Field("untitled", description="Short name, shown in logs and status.")
    title: str = Field("", description="Shown on the starting card.")
    description: str = Field("", description="Free text for the people who run the show.")


class CameraConfig(_Section):
    source: DeviceOrPath = Field(
        "none", description="Device index (0), video file (relative to the project), stream URL "
        "(rtsp://, tcp://, http://), or \"none\".")
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
    listen: Literal["always", "gated"] = Field(
        "always", description="always: listen from the start; gated: deaf until a performer sends /jadong/listen 1.")
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
    replacement: str = Field("flowers", description="What a listed word becomes with action = \"replace\".")
    lists: list[str] = Field(
        ["en", "ko"], description="Word lists: a language code (assets/moderation/CODE.txt) or a file relative to the project.")
    extra_words: list[str] = Field([], description="More words and phrases to match, in any language.")
    allow_words: list[str] = Field([], description="Words the lists must not match in this show.")


class PromptConfig(_Section):
    template: str = Field("{speech}", description="The prompt; {speech} is replaced by the visitor's words.")
    initial: str = Field("a quiet garden at dawn, soft light", description="The prompt before anyone speaks.")
    negative: str = Field("", description="Negative prompt (models with guidance only).")

    @field_validator("template")
    @classmethod
    def _template_has_speech(cls, v: str) -> str:
        if "{speech}" not in v:
            raise ValueError("expected a template containing {speech}, e.g. \"{speech}, ink wash painting\"")
        try:
            v.format(speech="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"expected only the placeholder {{speech}}; {exc!s} is not known") from None
        return v


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
    seed_drift: float = Field(0.0, ge=0.0, le=1.0, description="How fast the noise walks by itself (seeds per second); moves a txt2img picture.")
    still_image: str = Field("", description="feedback mode: the image to bring to life (relative to the project); empty: the camera.")


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
    lock_keyboard: bool = Field(False, description="Esc does not quit (public spaces).")


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected \"host:port\" such as \"127.0.0.1:9001\", got {value!r}")
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
                raise ValueError(f"expected IP addresses or subnets such as \"192.168.1.0/24\", got {entry!r}") from None
        return v

    @field_validator("status_targets")
    @classmethod
    def _valid_targets(cls, v: list[str]) -> list[str]:
        for entry in v:
            _host_port(entry)
        return v

    def status_addresses(self) -> list[tuple[str, int]]:
        return [_host_port(t) for t in self.status_targets]


class Cue(_Section):
    """One cue: what changes when the performer fires it. Unset keys leave things as they are."""

    name: str = Field(description="What the performer calls it (/jadong/cue/go NAME); unique in the show.")
    prompt: str | None = Field(None, description="Paint these words.")
    style: str | None = Field(None, description="A style from [styles].")
    negative: str | None = Field(None, description="Negative prompt.")
    strength: float | None = Field(None, ge=0, le=1, description="img2img strength.")
    steps: int | None = Field(None, ge=1, le=50, description="Denoising steps.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Noise seed.")
    seed_drift: float | None = Field(None, ge=0, le=1, description="How fast the noise walks, 0-1.")
    mode: Literal["img2img", "txt2img", "feedback"] | None = Field(None, description="Generation mode.")
    blend_s: float | None = Field(None, ge=0, le=60, description="Seconds a new prompt takes to blend in.")
    crossfade_s: float | None = Field(None, ge=0, le=30, description="Display crossfade seconds.")
    caption: str | None = Field(None, description="Caption text to show (\"\" clears it).")
    listen: bool | None = Field(None, description="Listen to the microphone from this cue on.")
    blackout: bool | None = Field(None, description="Fade to black (true) or back (false).")
    fade_s: float | None = Field(None, ge=0, le=60, description="Blackout fade seconds for this cue.")


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
    styles: dict[str, str] = Field(
        {}, description="Named prompt templates a performer switches between (/jadong/style NAME); "
        "each contains {speech}.")
    cues: list[Cue] = Field([], description="The show's cues, in order: one [[cues]] table each; a performer fires them with /jadong/cue/go, /next and /prev.")

    @field_validator("styles")
    @classmethod
    def _styles_have_speech(cls, v: dict[str, str]) -> dict[str, str]:
        for name, template in v.items():
            if "{speech}" not in template:
                raise ValueError(f"style {name!r}: expected a template containing {{speech}}")
            try:
                template.format(speech="x")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"style {name!r}: expected only the placeholder {{speech}}; {exc!s} is not known") from None
        return v

    @model_validator(mode="after")
    def _cues_consistent(self) -> Show:
        seen = set()
        for i, cue in enumerate(self.cues):
            if cue.name in seen:
                raise ValueError(f"cues[{i}].name: {cue.name!r} is used by an earlier cue; cue names must be unique")
            seen.add(cue.name)
            if cue.style is not None and cue.style not in self.styles:
                raise ValueError(f"cues[{i}].style: {cue.style!r} is not in [styles] "
                                 f"(known: {', '.join(self.styles) or 'none'})")
        return self

    # Where the show came from, for messages and relative paths.
    path: Path | None = Field(default=None, exclude=True)


# --- loading ---------------------------------------------------------------------------

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "extra_forbidden": "no such field (check the spelling; see the README's show file reference)",
    "missing": "a value",
    "model_type": "a table",
    "dict_type": "a table",
}


def _describe(err: dict, section: BaseModel | None = None) -> str:
    # Union members add their type name to the location; drop it, a user never wrote it.
    loc = ""
    for part in err["loc"]:
        if part in ("int", "str"):
            continue
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    kind = err["type"]
    got = err.get("input")
    ctx = err.get("ctx") or {}
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than", "multiple_of"):
        expected = {
            "greater_than_equal": f"a value of at least {ctx.get('ge')}",
            "less_than_equal": f"a value of at most {ctx.get('le')}",
            "greater_than": f"a value greater than {ctx.get('gt')}",
            "less_than": f"a value less than {ctx.get('lt')}",
            "multiple_of": f"a multiple of {ctx.get('multiple_of')}",
        }[kind]
    elif kind in ("literal_error", "enum"):
        expected = f"one of {ctx.get('expected')}"
    elif kind == "value_error":
        expected = str(ctx.get("error") or err["msg"]).removeprefix("Value error, ")
        return f"{loc}: {expected}" if loc else expected
    else:
        expected = _EXPECTED.get(kind, err["msg"])
    loc = loc or "(top level)"
    if kind == "extra_forbidden":
        return f"{loc}: {expected}"
    if kind == "missing":
        return f"{loc}: expected {expected}, but it is missing"
    return f"{loc}: expected {expected}, got {got!r}"


def _unique_errors(exc: ValidationError) -> list[dict]:
    """Union fields (int | str) report one error per member; keep one per location."""
    seen: dict[tuple, dict] = {}
    for err in exc.errors():
        key = tuple(p for p in err["loc"] if p not in ("int", "str"))
        seen.setdefault(key, err)
    return list(seen.values())


def parse_show(data: dict, path: Path | str = "<show>") -> Show:
    try:
        show = Show.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: {_describe(e)}" for e in _unique_errors(exc)]
        raise ShowError("\n".join(lines)) from None
    show.path = Path(path) if not isinstance(path, Path) else path
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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ShowError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ShowError(f"{path}: cannot be read ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ShowError(f"{path}: not valid TOML: {exc}") from None
    return parse_show(data, path)


def resolve_path(value: str) -> Path:
    """A path from a show file: relative paths are taken from the project root, so shows
    work whatever the current directory."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p
