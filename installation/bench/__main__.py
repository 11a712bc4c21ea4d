"""python -m installation.bench engine|speech|osc|display|vision [ARGS...]

Each benchmark lives in its own module (engine.py, speech.py, osc.py, display.py, vision.py) with
`main(argv) -> int`, imported only when asked for, so one area's heavy imports never slow another's
command."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("engine", "speech", "osc", "display", "vision")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("benchmarks: " + ", ".join(BENCHMARKS))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; expected one of: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"installation.bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"installation.bench.{name}":
            print(f"the {name} benchmark is not written yet (installation/bench/{name}.py)", file=sys.stderr)
            return 2
        raise
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
