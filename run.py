#!/usr/bin/env python3
"""Jadong's command line. `python run.py --help`."""

import sys
import time

_STARTED = time.monotonic()  # before heavy imports, so start-up timing is honest

if __name__ == "__main__":
    from installation.cli import main

    sys.exit(main(sys.argv[1:], started_mono=_STARTED))
