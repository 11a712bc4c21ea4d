"""Show files: TOML in `shows/`, validated into typed config.

A broken show file fails loudly, naming the file, the field and what was expected, e.g.
`shows/x.toml: generator.steps: expected an integer from 1 to 50, got 'fast'`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHOWS_DIR = PROJECT_ROOT / "shows"
ASSETS_DIR = PROJECT_ROOT / "assets"
DEFAULT_SHOW = SHOWS_DIR / "default.toml"


class ShowError(ValueError):
    """A show file that cannot be used; the message names file, field and reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


DeviceOrPath = Union[int, str]


class ShowInfo(_Section):
    name: str = "untitled"
    title: str = ""
    description: str = ""


class CameraConfig(_Section):
    # A device index (0), a file path (relative paths are from the project root), a stream
    # URL (rtsp://, tcp://, http://), or "none" for a show without a camera.
    source: DeviceOrPath = "none"
    loop: bool = True  # files only
    paced: bool = True  # files play at their own frame rate; False reads as fast as possible
    width: Annotated[int, Field(ge=0, le=7680)] = 0  # 0 keeps the device default
    height: Annotated[int, Field(ge=0, le=4320)] = 0
    retry_s: Annotated[float, Field(gt=0, le=60)] = 2.0


class MicrophoneConfig(_Section):
    # A device name or index, a WAV file path, "default" for the system's default input, or
    # "none" for a show without speech.
    source: DeviceOrPath = "none"
    loop: bool = False  # WAV files only: once then silence, unless True
    sample_rate: Literal[16000] = 16000
    chunk_ms: Annotated[int, Field(ge=5, le=200)] = 20


class SpeechConfig(_Section):
    enabled: bool = True
    engine: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    # A model name ("tiny.en", "base"), a Hugging Face id, or a local folder.
    model: str = "tiny.en"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"  # int8 on CPU, float16 on CUDA when "auto"
    language: str = "auto"  # a code such as "en" or "ko", or "auto"
    beam_size: Annotated[int, Field(ge=1, le=10)] = 1
    # Endpointing
    energy_threshold_db: Annotated[float, Field(ge=-90, le=0)] = -40.0
    preroll_ms: Annotated[int, Field(ge=0, le=2000)] = 300
    min_speech_ms: Annotated[int, Field(ge=50, le=5000)] = 300
    end_silence_ms: Annotated[int, Field(ge=100, le=5000)] = 500
    max_utterance_s: Annotated[float, Field(gt=0.5, le=30)] = 10.0


class PromptConfig(_Section):
    template: str = "{speech}"
    initial: str = "a quiet garden at dawn, soft light"
    negative: str = ""

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
    # "auto": diffusers when the model is present locally, else preview (labelled on screen).
    kind: Literal["auto", "diffusers", "preview"] = "auto"
    model: str = "stabilityai/sd-turbo"  # Hugging Face id or local folder
    mode: Literal["img2img", "txt2img"] = "img2img"  # img2img falls back to txt2img with no camera
    steps: Annotated[int, Field(ge=1, le=50)] = 1
    strength: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    guidance_scale: Annotated[float, Field(ge=0.0, le=20.0)] = 0.0
    width: Annotated[int, Field(ge=64, le=2048, multiple_of=8)] = 512
    height: Annotated[int, Field(ge=64, le=2048, multiple_of=8)] = 512
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_fps: Annotated[float, Field(gt=0, le=500)] = 30.0


class DisplayConfig(_Section):
    mode: Literal["fullscreen", "windowed", "headless"] = "fullscreen"
    monitor: Annotated[int, Field(ge=0, le=15)] = 0
    width: Annotated[int, Field(ge=160, le=7680)] = 1280
    height: Annotated[int, Field(ge=120, le=4320)] = 720
    fps: Annotated[float, Field(gt=0, le=240)] = 60.0
    crossfade_s: Annotated[float, Field(ge=0, le=30)] = 0.4
    caption: bool = True
    caption_seconds: Annotated[float, Field(gt=0, le=600)] = 12.0
    caption_size: Annotated[int, Field(ge=8, le=300)] = 40
    hud: bool = False
    lock_keyboard: bool = False  # True: Esc does not quit (public spaces)


class OscConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9000  # 0 picks a free port


class Show(_Section):
    show: ShowInfo = ShowInfo()
    camera: CameraConfig = CameraConfig()
    microphone: MicrophoneConfig = MicrophoneConfig()
    speech: SpeechConfig = SpeechConfig()
    prompt: PromptConfig = PromptConfig()
    generator: GeneratorConfig = GeneratorConfig()
    display: DisplayConfig = DisplayConfig()
    osc: OscConfig = OscConfig()

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
    loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int) or True)
    # Union members add their type name to the location; drop it, a user never wrote it.
    parts = [str(p) for p in err["loc"] if p not in ("int", "str")]
    loc = ".".join(parts) or "(top level)"
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
        return f"{loc}: {expected}"
    else:
        expected = _EXPECTED.get(kind, err["msg"])
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
