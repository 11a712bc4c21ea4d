#!/usr/bin/env python3
"""Jadong's command line. `python run.py --help`."""

import sys
import time

_STARTED = time.monotonic()  # before heavy imports, so start-up timing is honest

if __name__ == "__main__":
    try:
        from installation.cli import main

        sys.exit(main(sys.argv[1:], started_mono=_STARTED))
    except KeyboardInterrupt:
        # Ctrl-C before the show installed its own handler (while PyTorch and friends import):
        # nothing has started, so nothing needs stopping; one line, the shell's usual status.
        print("jadong: interrupted before the show started", file=sys.stderr)
        sys.exit(130)
