"""python -m installation.soak --minutes N [--faults] [--kinds K,K] [--spacing S] [--json] [--log PATH]

Runs the real app (`python run.py`) headless on the demo inputs with a tiny random-weight model
for N minutes, injects faults on a schedule with --faults, and reports each fault's recovery,
the longest gap between presented frames, crashes and memory over time. Exit status 0 when the
soak met every bound, 1 when it did not (the report says which), 2 when it could not run.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path

from installation.core.faults import FAULT_KINDS

from .runner import Soak
from .schedule import SPACING_S
from .workdir import SetupError, default_model_dir, prepare


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= 60 * 24 * 14:
        raise argparse.ArgumentTypeError(f"expected minutes above 0 and at most two weeks, got {text!r}")
    return value


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown fault kinds {unknown or [text]}; known: {', '.join(FAULT_KINDS)}")
    return kinds


def _spacing(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 5.0:
        # a fault needs time to recover (up to 2 s, a restart 5 s) before the next one is judged
        raise argparse.ArgumentTypeError(f"expected at least 5 seconds between faults, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m installation.soak", description=__doc__.strip().split("\n\n")[1])
    p.add_argument("--minutes", type=_minutes, required=True, help="how long the app runs (minutes, may be fractional)")
    p.add_argument("--faults", action="store_true", help="inject faults on a schedule (each kind in turn)")
    p.add_argument("--kinds", type=_kinds, default=FAULT_KINDS,
                   help="with --faults: only these kinds, comma-separated (default: all ten), e.g. to trace what "
                        "one kind costs in memory")
    p.add_argument("--spacing", type=_spacing, default=SPACING_S,
                   help=f"with --faults: seconds between two faults (default {SPACING_S:g}, at least 5)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout (progress on stderr)")
    p.add_argument("--log", type=Path, default=None,
                   help="write the app's event log here (default: in the soak's folder, removed at the end)")
    p.add_argument("--work", type=Path, default=None,
                   help="the soak's folder (shows, state, the app's console output); default: a temporary one, "
                        "removed at the end")
    p.add_argument("--model-dir", type=Path, default=None,
                   help=f"the tiny model, written there once and reused (default: {default_model_dir()})")
    p.add_argument("--seed", type=int, default=0, help="the order of the faults after the first round")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.log is not None and "{day}" in str(args.log):
        print("error: --log: give one file for the soak's event log, without {day}", file=sys.stderr)
        return 2
    if args.log is not None and args.log.is_dir():
        print(f"error: --log {args.log}: is a folder; give a file, e.g. {args.log / 'soak.jsonl'}", file=sys.stderr)
        return 2
    # The app runs in the project folder: paths from this command line are made absolute here.
    for name in ("log", "work", "model_dir"):
        if getattr(args, name) is not None:
            setattr(args, name, getattr(args, name).expanduser().resolve())
    work = args.work or Path(tempfile.mkdtemp(prefix="jadong-soak-"))
    try:
        try:
            files = prepare(work, log=args.log, model_dir=args.model_dir)
        except (SetupError, OSError) as exc:
            print(f"error: the soak cannot start: {exc}", file=sys.stderr)
            return 2
        result = Soak(files, args.minutes, args.faults, seed=args.seed, kinds=args.kinds,
                      spacing_s=args.spacing).run()
        if args.log is None and args.work is None:
            result.event_log = ""  # it goes with the temporary folder
        print(result.json_text() if args.json else result.text(), flush=True)
        return 0 if result.passed else 1
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
