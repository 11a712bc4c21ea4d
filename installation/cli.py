"""Command line: run a show, or one of the tools (devices, check, tiny-model, fetch-models)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from .core.heap import limit_malloc_arenas
from .show import PROJECT_ROOT, Show, ShowError, load_show

log = logging.getLogger("jadong")

COMMANDS = ("devices", "check", "tiny-model", "fetch-models", "credentials", "verify")


def _seconds(text: str) -> float:
    """A duration on the command line: a finite number above 0 (argparse names the option)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def _rate(text: str) -> float:
    """Frames per second on the command line: a finite number above 0 and at most 240."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frames per second, got {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= 240:
        raise argparse.ArgumentTypeError(f"expected frames per second above 0 and at most 240, got {text!r}")
    return value


def _port(text: str) -> int:
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def _ndi_name(text: str) -> str:
    from .display.ndi_out import ndi_name_problem

    problem = ndi_name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text.strip()


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python run.py",
        description="Run a Jadong show. Tools: `python run.py devices | check | tiny-model DIR | fetch-models [SHOW] | "
                    "credentials DIR | verify FILE | render SHOW`.",
    )
    p.add_argument("show", nargs="?", default=None,
                   help="a show name in shows/ or a path to a .toml file (default: shows/default.toml)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--windowed", action="store_true", help="a window instead of fullscreen")
    mode.add_argument("--headless", action="store_true", help="no window (with --record, a video of the show)")
    mode.add_argument("--fullscreen", action="store_true", help="fullscreen (the show's monitor)")
    p.add_argument("--seconds", type=_seconds, default=None, help="stop after N seconds (a number above 0)")
    p.add_argument("--record", type=Path, default=None, help="write what is presented to a video file (.mp4 or .avi)")
    p.add_argument("--record-fps", type=_rate, default=30.0, help="frames per second in the recording (default 30)")
    p.add_argument("--camera", default=None,
                   help="camera device index, video file, stream URL, NDI source (ndi:NAME) or 'none'")
    p.add_argument("--mic", default=None, help="microphone name or index, or a WAV file ('none' for no speech)")
    p.add_argument("--model", default=None,
                   help="diffusion model: Hugging Face id, local folder or .safetensors/.ckpt file")
    p.add_argument("--generator", choices=("auto", "diffusers", "preview"), default=None,
                   help="which generator to run (default: the show's)")
    p.add_argument("--log", type=Path, default=None,
                   help="event log (JSON lines); default logs/events-DAY.jsonl, a new file each day")
    p.add_argument("--osc-port", type=int, default=None, help="OSC UDP port (0: any free port)")
    p.add_argument("--web-port", type=_port, default=None, metavar="N",
                   help="serve the operator's page, /healthz and /metrics on TCP port N (0: any free port)")
    p.add_argument("--state", type=Path, default=None, metavar="PATH",
                   help="save the show state (cue, prompt, settings) in this file and start from it; default: "
                        "state/SHOW.json, except with --seconds (trial runs neither read nor write state)")
    p.add_argument("--ndi", type=_ndi_name, default=None, metavar="NAME",
                   help="also send what the screen presents as an NDI source called NAME")
    p.add_argument("--monitor", type=int, default=None, help="monitor index for fullscreen")
    p.add_argument("--faults", action="store_true",
                   help="for the soak harness (python -m installation.soak) only: accept /jadong/fault and "
                        "write heartbeats to the event log")
    p.add_argument("--hud", action="store_true", help="show the HUD (fps per stage, drops, generator)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _device_value(text: str) -> int | str:
    return int(text) if text.strip().lstrip("-").isdigit() else text


class OptionError(ValueError):
    """A command-line value the show cannot take; the message names the option."""


def _set(section: Any, field: str, value: Any, option: str) -> None:
    """One override, validated like the show file's own value, its error naming the option."""
    from pydantic import ValidationError

    try:
        setattr(section, field, value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise OptionError(f"{option} {value}: {reason[0].lower() + reason[1:]}") from None


def apply_overrides(show: Show, args: argparse.Namespace) -> Show:
    """Command-line settings win over the show file's, validated the same way."""
    show = show.model_copy(deep=True)
    if args.windowed:
        show.display.mode = "windowed"
    elif args.headless:
        show.display.mode = "headless"
    elif args.fullscreen:
        show.display.mode = "fullscreen"
    if args.camera is not None:
        _set(show.camera, "source", _device_value(args.camera), "--camera")
    if args.mic is not None:
        _set(show.microphone, "source", _device_value(args.mic), "--mic")
    if args.model is not None:
        _set(show.generator, "model", args.model, "--model")
        if args.generator is None and show.generator.kind == "preview":
            show.generator.kind = "auto"
    if args.generator is not None:
        show.generator.kind = args.generator
    if args.osc_port is not None:
        _set(show.osc, "port", args.osc_port, "--osc-port")
    if args.monitor is not None:
        _set(show.display, "monitor", args.monitor, "--monitor")
    if args.hud:
        show.display.hud = True
    return show


def default_state_dir() -> Path:
    return PROJECT_ROOT / "state"


def default_log_path() -> Path:
    # "{day}" makes the event log start a new file each day (see events.EventLog).
    return PROJECT_ROOT / "logs" / "events-{day}.jsonl"



def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub", "PIL", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_show(argv: list[str], started_mono: float | None) -> int:
    args = _run_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        show = apply_overrides(load_show(args.show), args)
    except (ShowError, OptionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.record is not None:
        # A run asked to record that cannot record fails now, with the real reason, rather
        # than playing unseen for its whole length and leaving nothing behind.
        from .display.recorder import record_path_problem

        problem = record_path_problem(args.record, fps=min(args.record_fps, show.display.fps))
        if problem:
            print(f"error: --record: {problem}", file=sys.stderr)
            return 2
    if args.state is not None and args.state.is_dir():
        print(f"error: --state {args.state}: is a folder; give a file, e.g. {args.state / 'show.json'}",
              file=sys.stderr)
        return 2
    from .app import App, RunOptions

    log_path = args.log or default_log_path()
    # A show runs from where it was (state/SHOW.json); a trial run (--seconds) only with --state.
    state_dir = default_state_dir() if args.state is None and args.seconds is None else None
    options = RunOptions(seconds=args.seconds, record=args.record, record_fps=args.record_fps,
                         log_path=log_path, started_mono=started_mono, web_port=args.web_port,
                         state_dir=state_dir, state_file=args.state, ndi_name=args.ndi, faults=args.faults)
    app = App(show, options)
    log.info("show %s (%s); event log %s", show.show.name, show.path, app.events.path)
    return app.run()


def main(argv: list[str] | None = None, started_mono: float | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    limit_malloc_arenas()  # before any thread: weeks of faults must not grow the C heap (core/heap.py)
    if argv and argv[0] == "render":  # a whole video file restyled, not in real time (render.py)
        from .render import main as render

        return render(argv[1:])
    if argv and argv[0] in COMMANDS:
        from . import tools

        setup_logging("-v" in argv or "--verbose" in argv)
        return tools.main(argv[0], [a for a in argv[1:] if a not in ("-v", "--verbose")])
    return run_show(argv, started_mono)
