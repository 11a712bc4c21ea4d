"""`python run.py render SHOW --input VIDEO --output VIDEO`: a whole video file restyled frame by
frame at a show's settings, not in real time.

Each frame goes through the generator a show would run (generation/choice.py: the streaming
engine, the diffusers pipeline, or the preview when the show asks for it) with the show's
generator settings and its starting words (or `--prompt`, `--style`). The generator paints at
the show's pixel count in the input's shape, so nothing is cropped, and each frame is scaled
back to the input's size. The video keeps the input's frame count and frame rate, and ffmpeg
puts the input's sound back. Two things differ from a live show, both so that every frame is
painted from its own input frame: the similarity filter is off, and time (drifting noise, the
preview's moving canvas) is the video's, not the wall clock's.

Frames are written into short segment files in OUTPUT.partial/ beside the output, with a JSON
state (the input's fingerprint, the settings, the frames done). A render stopped by Ctrl-C (or
a crash, or a power cut: then at most the last segment is painted again) continues where it
stopped when the same command runs again; another input or other settings are refused unless
`--restart` throws the old frames away. Only when every frame is done is the output written,
so a half-made file never stands at OUTPUT.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import cv2
import numpy as np

from .control.scene_words import fill_template
from .core.interfaces import Generator
from .core.messages import GenerationParams, Prompt
from .core.text import clean_words
from .generation.choice import choose_generator, params_from_config
from .generation.preview import PreviewGenerator
from .show import MAX_PROMPT_CHARS, GeneratorConfig, Show, ShowError, load_show

log = logging.getLogger("jadong.render")

STATE_VERSION = 1
STATE_FILE = "state.json"
LOCK_FILE = "lock"
# Output containers ffmpeg writes with H.264 and the input's sound (and OpenCV without ffmpeg).
SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi")
# A segment is closed (and counted as done) after this many frames or seconds of painting: an
# interruption that is not a clean stop (a crash, a power cut) loses at most one segment.
SEGMENT_FRAMES = 300
SEGMENT_SECONDS = 30.0
# Segments are Motion-JPEG at this quality: near-lossless, cut anywhere, encoded once at the end.
SEGMENT_QUALITY = 92
# Fingerprint: the file's size and these many bytes from its start, middle and end (a video
# may be many gigabytes; reading all of it twice would double a short render's time).
FINGERPRINT_SAMPLE = 1 << 20
# Generator settings that decide no pixel: a resumed render may change them.
NOT_PIXELS = ("max_fps", "prepare_steps", "acceleration", "device")
# A progress line at most this often on a terminal, and this often in a log (not a terminal).
TTY_EVERY_S = 0.25
LOG_EVERY_S = 10.0


class RenderError(Exception):
    """A render that cannot go on; the message is one sentence saying why and what to do."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


# --- the input -----------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoInfo:
    """What a render keeps of its input: the decoded frames' size, the frame rate, the frame
    count the container reports (0: unknown), and a fingerprint to know the file again."""

    width: int
    height: int
    fps: float
    frames: int
    fingerprint: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fingerprint(path: Path) -> str:
    """A content fingerprint of a file that stays cheap for a huge one: sha256 of its size and
    three samples. Another file, or the same file edited, gives another fingerprint."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        for offset in sorted({0, max(size // 2 - FINGERPRINT_SAMPLE // 2, 0), max(size - FINGERPRINT_SAMPLE, 0)}):
            f.seek(offset)
            digest.update(f.read(FINGERPRINT_SAMPLE))
    return digest.hexdigest()


def _no_video_stream(path: Path) -> str | None:
    """Why ffprobe finds no video in the file, or None (also when ffprobe is not installed).
    Asked first because OpenCV's FFmpeg prints its complaints about a broken file itself."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    done = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v", "-show_entries", "stream=codec_type",
                           "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    if done.returncode == 0 and "video" in done.stdout:
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1].removeprefix(f"{path}: ") if lines else "it holds no video stream"


def probe_input(path: Path) -> VideoInfo:
    """The input's size, rate and frame count, read by OpenCV the way the render reads it."""
    why = _no_video_stream(path)
    if why:
        raise RenderError(f"--input {path}: not a video ({why})")
    cap = cv2.VideoCapture(str(path))
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok or frame is None:
            raise RenderError(f"--input {path}: not a video OpenCV can read (no frame could be decoded); "
                              "convert it with: ffmpeg -i IN -c:v libx264 OUT.mp4")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or not 0 < fps <= 1000:
            raise RenderError(f"--input {path}: the video states no usable frame rate ({fps}); "
                              "re-encode it with a fixed rate: ffmpeg -i IN -r 30 OUT.mp4")
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        frames = int(count) if math.isfinite(count) and count > 0 else 0
        height, width = frame.shape[:2]
    finally:
        cap.release()
    return VideoInfo(width=width, height=height, fps=fps, frames=frames, fingerprint=fingerprint(path))


def generation_size(width: int, height: int, show_width: int, show_height: int) -> tuple[int, int]:
    """The size the generator paints at: the show's pixel count in the input's shape, each side
    a multiple of 8 and from 64 to 2048, so a 16:9 video on a 512×512 show is neither cropped
    nor squashed (and costs the model what the show's frames cost)."""
    aspect = width / height
    area = show_width * show_height
    w, h = math.sqrt(area * aspect), math.sqrt(area / aspect)
    if min(w, h) < 64:  # keep the shape: scale both up
        w, h = w * 64 / min(w, h), h * 64 / min(w, h)
    if max(w, h) > 2048:
        w, h = w * 2048 / max(w, h), h * 2048 / max(w, h)
    return (min(max(round(w / 8) * 8, 64), 2048), min(max(round(h / 8) * 8, 64), 2048))


# --- the command line --------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python run.py render",
        description="Restyle a whole video file frame by frame at a show's settings (not in real time). "
        "The output keeps the input's frame count, frame rate, size and sound. An interrupted render "
        "continues when the same command runs again.",
    )
    p.add_argument("show", nargs="?", default=None,
                   help="a show name in shows/ or a path to a .toml file (default: shows/default.toml)")
    p.add_argument("--input", type=Path, required=True, metavar="VIDEO", help="the video to restyle")
    p.add_argument("--output", type=Path, required=True, metavar="VIDEO",
                   help=f"the video to write ({', '.join(SUFFIXES)})")
    p.add_argument("--prompt", default=None, metavar="TEXT", help="the words to paint (default: the show's [prompt] "
                   "initial)")
    p.add_argument("--style", default=None, metavar="NAME",
                   help="paint the words through this style from the show's [styles]")
    p.add_argument("--model", default=None,
                   help="diffusion model: Hugging Face id, local folder or .safetensors/.ckpt file")
    p.add_argument("--generator", choices=("auto", "diffusers", "preview"), default=None,
                   help="which generator to run (default: the show's)")
    p.add_argument("--restart", action="store_true",
                   help="throw away an earlier unfinished render (and an existing output) and start again")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def partial_dir(output: Path) -> Path:
    """Where an unfinished render keeps its frames and state: OUTPUT.partial/ beside it."""
    return output.with_name(output.name + ".partial")


def path_problem(input_: Path, output: Path) -> str | None:
    """Why these paths cannot be rendered from and to, as one sentence naming the option."""
    if not input_.exists():
        return f"--input {input_}: no such file"
    if not input_.is_file():
        return f"--input {input_}: not a file"
    if not os.access(input_, os.R_OK):
        return f"--input {input_}: cannot be read (permission denied)"
    if output.suffix.lower() not in SUFFIXES:
        return f"--output {output}: expected a video file name ending in {', '.join(SUFFIXES)}"
    if output.exists() and output.is_dir():
        return f"--output {output}: is a folder; name a video file"
    if output.resolve() == input_.resolve() or (output.exists() and os.path.samefile(output, input_)):
        return f"--output {output}: is the input itself; name another file (the input is read while the output is made)"
    folder = output.resolve().parent
    if not folder.is_dir():
        return f"--output {output}: the folder {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"--output {output}: cannot write in {folder} (permission denied)"
    return None


@dataclass(frozen=True)
class RenderJob:
    """Everything a render decides before its first frame."""

    show: Show
    cfg: GeneratorConfig  # the show's generator, overrides applied, sized for the input
    prompt: Prompt
    params: GenerationParams
    input: Path
    output: Path
    info: VideoInfo

    @property
    def partial(self) -> Path:
        return partial_dir(self.output)

    def settings(self) -> dict[str, Any]:
        """What decides the frames' pixels: a resumed render must have the same."""
        cfg = {k: v for k, v in self.cfg.model_dump(mode="json").items() if k not in NOT_PIXELS}
        # "auto" and "diffusers" both paint with the model (or refuse to start): the same frames.
        cfg["kind"] = "preview" if self.cfg.kind == "preview" else "model"
        return {**cfg, "prompt": self.prompt.text, "negative": self.prompt.negative}


def _words(show: Show, args: argparse.Namespace) -> Prompt:
    """The prompt the render paints: --prompt or the show's starting words, through --style."""
    words = show.prompt.initial if args.prompt is None else clean_words(args.prompt)
    if not words:
        raise RenderError("--prompt: expected some words, got an empty prompt")
    if args.style is not None:
        by_lower = {name.lower(): name for name in show.styles}
        name = by_lower.get(args.style.strip().lower())
        if name is None:
            known = ", ".join(show.styles) or "none"
            raise RenderError(f"--style {args.style}: no such style in the show's [styles] (known: {known})")
        empty = {str(k): v for k, v in show.scene.empty.items()}
        words = fill_template(show.styles[name], {"speech": words}, empty)
    if len(words) > MAX_PROMPT_CHARS:
        raise RenderError(f"--prompt: {len(words)} characters; at most {MAX_PROMPT_CHARS} are accepted")
    return Prompt(text=words, negative=show.prompt.negative, source="show" if args.prompt is None else "render")


def _generator_config(show: Show, args: argparse.Namespace, info: VideoInfo) -> GeneratorConfig:
    """The show's [generator] with --model and --generator (as `python run.py` takes them) and the
    input's shape."""
    from pydantic import ValidationError

    cfg = show.generator.model_copy(deep=True)
    if args.model is not None:
        try:
            cfg.model = args.model
        except ValidationError as exc:
            raise RenderError(f"--model {args.model}: {exc.errors()[0]['msg']}") from None
        if args.generator is None and cfg.kind == "preview":
            cfg.kind = "auto"
    if args.generator is not None:
        cfg.kind = args.generator
    width, height = generation_size(info.width, info.height, cfg.width, cfg.height)
    # Every frame is painted: the similarity filter skips frames to keep a live show's rate, and
    # in a render it would freeze a slow pan for up to ten frames, then jump.
    return cfg.model_copy(update={"width": width, "height": height, "similarity_filter": 0.0})


def build_job(args: argparse.Namespace) -> RenderJob:
    problem = path_problem(args.input, args.output)
    if problem:
        raise RenderError(problem)
    try:
        show = load_show(args.show)
    except ShowError as exc:
        raise RenderError(str(exc)) from None
    info = probe_input(args.input)
    cfg = _generator_config(show, args, info)
    params = dataclasses.replace(params_from_config(cfg), prompt_blend_s=0.0)  # one prompt: nothing blends
    return RenderJob(show=show, cfg=cfg, prompt=_words(show, args), params=params,
                     input=args.input, output=args.output, info=info)


# --- the state beside the output ----------------------------------------------------------------
@dataclass
class Segment:
    file: str
    frames: int


@dataclass
class RenderState:
    """OUTPUT.partial/state.json: which input and settings the frames are of, and which
    segment files hold them (in order)."""

    input: dict[str, Any]
    settings: dict[str, Any]
    segments: list[Segment] = field(default_factory=list)
    complete: bool = False  # every frame painted: only the output is left to write
    version: int = STATE_VERSION

    @property
    def done(self) -> int:
        return sum(s.frames for s in self.segments)

    def save(self, folder: Path) -> None:
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2), encoding="utf-8")
        os.replace(tmp, folder / STATE_FILE)  # a reader sees the old state or the new, never half

    @classmethod
    def load(cls, folder: Path) -> RenderState:
        data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"state version {data.get('version')!r}, expected {STATE_VERSION}")
        return cls(input=data["input"], settings=data["settings"], complete=bool(data.get("complete", False)),
                   segments=[Segment(file=s["file"], frames=int(s["frames"])) for s in data["segments"]])


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k} ({old.get(k)!r} → {new.get(k)!r})" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


@contextmanager
def claimed(job: RenderJob, restart: bool) -> Iterator[None]:
    """OUTPUT.partial/ made and held (a lock the system drops if the process dies) while one
    render writes into it: the same command started twice is refused, not interleaved.
    `restart` empties it first, and removes an existing output."""
    folder = job.partial
    if not restart and job.output.exists() and not folder.exists():
        raise RenderError(f"--output {job.output}: already exists; pass --restart to render it again")
    try:
        folder.mkdir(exist_ok=True)
        handle = (folder / LOCK_FILE).open("a")
    except OSError as exc:
        raise RenderError(f"--output {job.output}: cannot write {folder} ({exc.strerror or exc})") from None
    try:
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            pass
        else:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise RenderError(f"--output {job.output}: another render is writing it now ({folder} is in use); "
                                  "wait for it to finish or stop it first") from None
        if restart:
            for path in folder.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.name != LOCK_FILE:
                    path.unlink()
            job.output.unlink(missing_ok=True)
        yield
    finally:
        handle.close()


def open_state(job: RenderJob) -> tuple[RenderState, bool]:
    """The state to render on, and whether it continues an earlier run. An earlier run of
    another input or other settings is refused (its frames would not match)."""
    folder = job.partial
    fresh = RenderState(input=job.info.as_dict(), settings=job.settings())
    if not (folder / STATE_FILE).is_file():
        try:
            fresh.save(folder)
        except OSError as exc:
            raise RenderError(f"--output {job.output}: cannot write {folder} ({exc.strerror or exc})") from None
        _remove_strays(folder, fresh)
        return fresh, False
    try:
        state = RenderState.load(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RenderError(f"{folder / STATE_FILE}: unreadable ({exc}); pass --restart to start again") from None
    problems = []
    if state.input != fresh.input:
        problems.append(f"the input differs: {', '.join(_differences(state.input, fresh.input))}")
    if state.settings != fresh.settings:
        problems.append(f"the settings differ: {', '.join(_differences(state.settings, fresh.settings))}")
    if problems:
        raise RenderError(f"{folder} holds an unfinished render of another job ({'; '.join(problems)}); run the "
                          "same command as before to finish it, or pass --restart to throw it away")
    missing = [s.file for s in state.segments if not (folder / s.file).is_file()]
    if missing:
        raise RenderError(f"{folder}: segment {missing[0]} is missing; pass --restart to start again")
    _remove_strays(folder, state)
    return state, True


def _remove_strays(folder: Path, state: RenderState) -> None:
    """A segment left open by a run that died (not a clean stop) is not in the state: removed,
    its frames are painted again."""
    kept = {s.file for s in state.segments}
    for path in folder.glob("seg-*.avi"):
        if path.name not in kept:
            path.unlink(missing_ok=True)


class SegmentWriter:
    """Writes the rendered frames into numbered Motion-JPEG segments; a segment counts (is
    entered in the state) only once it is closed."""

    def __init__(self, folder: Path, state: RenderState, fps: float, size: tuple[int, int]) -> None:
        self.folder, self.state, self.fps, self.size = folder, state, fps, size
        self._writer: cv2.VideoWriter | None = None
        self._file = ""
        self._frames = 0
        self._opened = 0.0

    def write(self, bgr: np.ndarray) -> None:
        if self._writer is None:
            self._open()
        assert self._writer is not None
        self._writer.write(bgr)
        self._frames += 1
        if self._frames >= SEGMENT_FRAMES or time.monotonic() - self._opened >= SEGMENT_SECONDS:
            self.close()

    def _open(self) -> None:
        self._file = f"seg-{len(self.state.segments):05d}.avi"
        path = self.folder / self._file
        writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter.fourcc(*"MJPG"), self.fps, self.size)
        if not writer.isOpened():
            raise RenderError(f"{path}: OpenCV cannot write a Motion-JPEG segment there", status=1)
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, SEGMENT_QUALITY)
        self._writer, self._frames, self._opened = writer, 0, time.monotonic()

    def close(self) -> None:
        """Finishes the open segment and enters it in the state (saved)."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        if self._frames:
            self.state.segments.append(Segment(self._file, self._frames))
            self.state.save(self.folder)
        else:
            (self.folder / self._file).unlink(missing_ok=True)

    def discard(self) -> None:
        """Drops the open segment: after an interruption in the middle of a write, what it holds
        is not known for sure."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            (self.folder / self._file).unlink(missing_ok=True)


# --- stopping and progress ---------------------------------------------------------------------
class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM asks the render to stop after the frame it is painting; a
    second Ctrl-C stops at once (the open segment is then painted again next time)."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _clock_text(seconds: float) -> str:
    seconds = max(int(seconds + 0.5), 0)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """A progress bar with the time left: one line rewritten in place on a terminal; a line now
    and then (the first frame, every LOG_EVERY_S) in a log."""

    def __init__(self, total: int, start: int, stream: TextIO = sys.stderr) -> None:
        self.total, self.start, self.stream = total, start, stream
        self.tty = stream.isatty()
        self._t0 = time.monotonic()
        self._last = float("-inf")
        self._drawn = False

    def line(self, done: int) -> str:
        elapsed = time.monotonic() - self._t0
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        if self.total:
            share = min(done / self.total, 1.0)
            bar = "#" * round(share * 24)
            left = f"{_clock_text((self.total - done) / rate)} left" if rate > 0 else "time left unknown"
            return f"render: [{bar:<24}] {share:4.0%} {done}/{self.total} frames, {rate:.1f} frames/s, {left}"
        return f"render: {done} frames, {rate:.1f} frames/s"

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        first = done == self.start + 1
        if not (force or first or now - self._last >= (TTY_EVERY_S if self.tty else LOG_EVERY_S)):
            return
        self._last = now
        if self.tty:
            self.stream.write("\r" + self.line(done) + "\x1b[K")
            self._drawn = True
        else:
            self.stream.write(self.line(done) + "\n")
        self.stream.flush()

    def end(self) -> None:
        """Leaves the terminal's line so the next message starts on its own."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


# --- the generator ---------------------------------------------------------------------------
class VideoClock:
    """The render's time: the painted frame's time in the video, not the wall clock, so noise
    that drifts (seed_drift) or a canvas that moves (the preview without an image) moves as it
    would have at the show's speed, however slowly the frames are painted."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _EngineOnVideoTime:
    """The streaming engine with `now` taken from the video clock (the engine takes the time as
    an argument; the StreamGenerator over it asks the wall clock)."""

    def __init__(self, engine: Any, clock: VideoClock) -> None:
        self._engine, self._clock = engine, clock

    def frame(self, req: Any, image: np.ndarray | None, now: float | None = None) -> np.ndarray:
        return self._engine.frame(req, image, now=self._clock() if now is None else now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def load_generator(cfg: GeneratorConfig, clock: VideoClock, say: Callable[[str], None]) -> Generator:
    """The generator the show runs (choice.py), loaded. A model that is not here is an error,
    not a preview standing in: a render is made to be kept."""
    gen, reason = choose_generator(cfg)
    if isinstance(gen, PreviewGenerator):
        if cfg.kind != "preview":
            why = (gen.label or reason).removeprefix("Preview: ")
            raise RenderError(f"{why} (or pass --generator preview to render with the preview)")
        gen = PreviewGenerator(cfg.width, cfg.height, clock=clock)  # its drifting canvas on video time
        gen.reason = reason
    gen.progress_callback = lambda msg: say(f"render: {msg}")
    say(f"render: loading {gen.name}{' ' + gen.model if gen.model else ''} ({reason})")
    try:
        gen.load()
    except Exception as exc:
        raise RenderError(f"{gen.model or gen.name} failed to load: {type(exc).__name__}: {exc}", status=1) from None
    from .generation.engine.stream_generator import StreamGenerator

    if isinstance(gen, StreamGenerator) and gen.engine is not None:
        gen.engine = _EngineOnVideoTime(gen.engine, clock)  # type: ignore[assignment]
    return gen


def stream_lag(gen: Generator, cfg: GeneratorConfig, params: GenerationParams) -> int:
    """How many frames the generator's output trails its input: the streaming engine with
    several steps in one batch hands back frame i-(steps-1) (stream.py). The render drops that
    many frames at the start and feeds the last one that many times at the end, so output
    frame i is painted from input frame i."""
    batched = gen.name == "stream" and cfg.stream_batch and params.steps > 1
    return params.steps - 1 if batched and (params.mode or cfg.mode) == "img2img" else 0


# --- painting --------------------------------------------------------------------------------
def _skip(cap: cv2.VideoCapture, frames: int, path: Path) -> None:
    """Past the frames an earlier run painted. Decoding them is exact where seeking by frame
    number is not (it lands on key frames in many files)."""
    for i in range(frames):
        if not cap.grab():
            raise RenderError(f"--input {path}: ends after {i} frames, but an earlier run painted {frames}; "
                              "pass --restart to start again")


def paint_frames(job: RenderJob, state: RenderState, gen: Generator, clock: VideoClock, stop: StopRequest,
                 on_frame: Callable[[int], None] | None = None) -> tuple[bool, int]:
    """Paints the frames not done yet into segments. Returns (finished, frames painted now)."""
    info, params, prompt = job.info, job.params, job.prompt
    mode = params.mode or job.cfg.mode
    lag = stream_lag(gen, job.cfg, params)
    start = state.done
    writer = SegmentWriter(job.partial, state, info.fps, (info.width, info.height))
    progress = Progress(info.frames, start)
    cap = cv2.VideoCapture(str(job.input))
    painted = 0
    warm = 0  # frames the streaming batch still owes (see stream_lag)
    last: np.ndarray | None = None

    def paint(rgb: np.ndarray, index: int) -> np.ndarray | None:
        nonlocal warm
        clock.now = index / info.fps
        out = gen.generate(prompt, params, rgb if mode in ("img2img", "feedback") else None)
        if warm < lag:
            warm += 1
            return None
        return out

    def keep(out: np.ndarray) -> None:
        nonlocal painted
        if out.shape[:2] != (info.height, info.width):
            grow = out.shape[1] < info.width
            out = cv2.resize(out, (info.width, info.height), interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA)
        writer.write(cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        painted += 1
        progress.update(start + painted)
        if on_frame is not None:
            on_frame(start + painted)

    try:
        _skip(cap, start, job.input)
        index = start
        while not stop.requested:
            ok, bgr = cap.read()
            if not ok:
                for _ in range(warm):  # the frames still in the streaming batch
                    assert last is not None
                    keep(gen.generate(prompt, params, last))
                writer.close()
                return True, painted
            last = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            out = paint(last, index)
            index += 1
            if out is not None:
                keep(out)
        writer.close()  # a clean stop: every frame written is kept
        return False, painted
    except KeyboardInterrupt:
        writer.discard()
        raise
    except RenderError:
        writer.close()
        raise
    except Exception as exc:
        writer.close()
        raise RenderError(f"frame {start + painted + 1}: {type(exc).__name__}: {exc}; the {state.done} frames "
                          "painted are kept: run the same command again to continue", status=1) from exc
    finally:
        cap.release()
        if painted:
            progress.update(start + painted, force=True)
        progress.end()


# --- the output ------------------------------------------------------------------------------
def _ffmpeg() -> str | None:
    return shutil.which("ffmpeg")


def _rate_text(fps: float) -> str:
    """The frame rate as ffmpeg takes it exactly: 29.97… → 30000/1001."""
    rate = Fraction(fps).limit_denominator(1001)
    return f"{rate.numerator}/{rate.denominator}"


def _video_codec_args(width: int, height: int) -> list[list[str]]:
    """H.264 where ffmpeg has it (4:2:0 needs even sides), MPEG-4 otherwise."""
    pix = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    return [["-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", pix],
            ["-c:v", "mpeg4", "-q:v", "2"]]


def assemble(job: RenderJob, state: RenderState, ffmpeg: str | None) -> str:
    """Joins the segments into the output with the input's sound; returns what happened to
    the sound. Written beside the output and renamed into place: never half a file there."""
    folder = job.partial
    tmp = folder / f"joined{job.output.suffix.lower()}"
    if ffmpeg is None:
        _join_with_opencv(job, state, tmp)
        os.replace(tmp, job.output)
        return "no sound: ffmpeg is not installed (it is installed by `make setup`)"
    listing = folder / "segments.txt"
    listing.write_text("".join(f"file '{s.file}'\n" for s in state.segments), encoding="utf-8")
    errors = []
    for video in _video_codec_args(job.info.width, job.info.height):
        for audio in (["-c:a", "copy"], ["-c:a", "aac", "-b:a", "192k"]):
            cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                   "-f", "concat", "-safe", "0", "-r", _rate_text(job.info.fps), "-i", str(listing),
                   "-i", str(job.input), "-map", "0:v:0", "-map", "1:a?", *video, *audio,
                   "-r", _rate_text(job.info.fps), "-map_metadata", "-1", str(tmp)]
            if job.output.suffix.lower() in (".mp4", ".m4v", ".mov"):
                cmd[-1:-1] = ["-movflags", "+faststart"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode == 0:
                os.replace(tmp, job.output)
                return _sound_note(job.output, audio[1] == "copy")
            errors.append(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"status {done.returncode}")
            tmp.unlink(missing_ok=True)
    raise RenderError(f"ffmpeg could not write {job.output}: {errors[-1]}; the painted frames are kept in {folder}",
                      status=1)


def _sound_note(path: Path, copied: bool) -> str:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return "sound kept if the input had any"
    done = subprocess.run([ffprobe, "-v", "error", "-select_streams", "a", "-show_entries", "stream=codec_name",
                           "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    codecs = [c for c in done.stdout.split() if c]
    if not codecs:
        return "no sound: the input has none"
    return f"sound kept ({', '.join(codecs)}{'' if copied else ', re-encoded for this container'})"


def _join_with_opencv(job: RenderJob, state: RenderState, tmp: Path) -> None:
    fourcc = "MJPG" if tmp.suffix == ".avi" else "mp4v"
    size = (job.info.width, job.info.height)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*fourcc), job.info.fps, size)
    if not writer.isOpened():
        raise RenderError(f"{job.output}: OpenCV cannot write {tmp.suffix} files here; install ffmpeg", status=1)
    try:
        for seg in state.segments:
            cap = cv2.VideoCapture(str(job.partial / seg.file))
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                writer.write(frame)
            cap.release()
    finally:
        writer.release()


# --- the command -----------------------------------------------------------------------------
def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def render(job: RenderJob, restart: bool = False, on_frame: Callable[[int], None] | None = None) -> int:
    """The whole render, from the state to the output; the exit status."""
    with claimed(job, restart):
        state, resumed = open_state(job)
        status = 1
        try:
            status = _render_on(job, state, resumed, on_frame)
        finally:
            # Done, or stopped before a frame was kept (a model that is not here, Ctrl-C while
            # it loads): nothing to continue from, and no state to refuse other settings with.
            if status == 0 or state.done == 0:
                shutil.rmtree(job.partial, ignore_errors=True)
    return status


def _render_on(job: RenderJob, state: RenderState, resumed: bool, on_frame: Callable[[int], None] | None) -> int:
    total = job.info.frames
    of_total = f" of {total}" if total else ""
    if resumed:
        at = "all frames painted" if state.complete else f"at frame {state.done + 1}{of_total}"
        _say(f"render: continuing {job.output} {at} (earlier frames are in {job.partial})")
    ffmpeg = _ffmpeg()
    if ffmpeg is None:
        _say("render: ffmpeg is not installed: the output will have no sound (install it with `make setup`)")
    clock, stop = VideoClock(), StopRequest()
    t0 = time.monotonic()
    painted = 0
    try:
        # Ctrl-C while the model loads or ffmpeg encodes stops at once (KeyboardInterrupt);
        # while frames are painted it stops after the frame in hand, which is kept.
        if not state.complete:
            gen = load_generator(job.cfg, clock, _say)
            with stop.installed():
                finished, painted = paint_frames(job, state, gen, clock, stop, on_frame)
            if not finished:
                raise KeyboardInterrupt
            state.complete = True
            state.save(job.partial)
        _say(f"render: encoding {job.output}")
        sound = assemble(job, state, ffmpeg)
    except KeyboardInterrupt:
        _say(f"render: stopped with {state.done}{of_total} frames painted (kept in {job.partial}); "
             "run the same command again to continue")
        return 130
    earlier = f", {state.done - painted} of them by an earlier run" if resumed else ""
    print(f"render: wrote {job.output}: {state.done} frames at {job.info.fps:g} fps, "
          f"{job.info.width}x{job.info.height}{earlier}; {sound}; {time.monotonic() - t0:.1f} s")
    return 0


def main(argv: list[str], on_frame: Callable[[int], None] | None = None) -> int:
    """`python run.py render …`. `on_frame(n)` hears each frame written (n counts from the first
    frame of the video), for tests."""
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        job = build_job(args)
        return render(job, restart=args.restart, on_frame=on_frame)
    except RenderError as exc:
        print(f"error: render: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("render: interrupted before the first frame; nothing to keep", file=sys.stderr)
        return 130
