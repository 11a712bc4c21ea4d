"""Command line: run a show, or one of the tools (devices, check, tiny-model, fetch-models)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .show import PROJECT_ROOT, Show, ShowError, load_show

log = logging.getLogger("jadong")

COMMANDS = ("devices", "check", "tiny-model", "fetch-models")


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python run.py",
        description="Run a Jadong show. Tools: `python run.py devices | check | tiny-model DIR | fetch-models [SHOW]`.",
    )
    p.add_argument("show", nargs="?", default=None,
                   help="a show name in shows/ or a path to a .toml file (default: shows/default.toml)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--windowed", action="store_true", help="a window instead of fullscreen")
    mode.add_argument("--headless", action="store_true", help="no window (with --record, a video of the show)")
    mode.add_argument("--fullscreen", action="store_true", help="fullscreen (the show's monitor)")
    p.add_argument("--seconds", type=float, default=None, help="stop after N seconds")
    p.add_argument("--record", type=Path, default=None, help="write what is presented to a video file (.mp4 or .avi)")
    p.add_argument("--record-fps", type=float, default=30.0, help="frames per second in the recording (default 30)")
    p.add_argument("--camera", default=None,
                   help="camera device index, video file or stream URL ('none' for no camera)")
    p.add_argument("--mic", default=None, help="microphone name or index, or a WAV file ('none' for no speech)")
    p.add_argument("--model", default=None,
                   help="diffusion model: Hugging Face id, local folder or .safetensors/.ckpt file")
    p.add_argument("--generator", choices=("auto", "diffusers", "preview"), default=None,
                   help="which generator to run (default: the show's)")
    p.add_argument("--log", type=Path, default=None,
                   help="event log (JSON lines); default logs/events-{day}.jsonl, a new file each day")
    p.add_argument("--osc-port", type=int, default=None, help="OSC UDP port (0: any free port)")
    p.add_argument("--monitor", type=int, default=None, help="monitor index for fullscreen")
    p.add_argument("--hud", action="store_true", help="show the HUD (fps per stage, drops, generator)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _device_value(text: str) -> int | str:
    return int(text) if text.strip().lstrip("-").isdigit() else text


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
        show.camera.source = _device_value(args.camera)
    if args.mic is not None:
        show.microphone.source = _device_value(args.mic)
    if args.model is not None:
        show.generator.model = args.model
        if args.generator is None and show.generator.kind == "preview":
            show.generator.kind = "auto"
    if args.generator is not None:
        show.generator.kind = args.generator
    if args.osc_port is not None:
        show.osc.port = args.osc_port
    if args.monitor is not None:
        show.display.monitor = args.monitor
    if args.hud:
        show.display.hud = True
    return show


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
    from pydantic import ValidationError

    try:
        show = apply_overrides(load_show(args.show), args)
    except ShowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error: a command-line value is out of range: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    from .app import App, RunOptions

    log_path = args.log or default_log_path()
    if args.record_fps <= 0:
        print("error: --record-fps must be above 0", file=sys.stderr)
        return 2
    options = RunOptions(seconds=args.seconds, record=args.record, record_fps=args.record_fps,
                         log_path=log_path, started_mono=started_mono)
    log.info("show %s (%s); event log %s", show.show.name, show.path, log_path)
    return App(show, options).run()


def main(argv: list[str] | None = None, started_mono: float | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if argv and argv[0] in COMMANDS:
        from . import tools

        setup_logging("-v" in argv or "--verbose" in argv)
        return tools.main(argv[0], [a for a in argv[1:] if a not in ("-v", "--verbose")])
    return run_show(argv, started_mono)
