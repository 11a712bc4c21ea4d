#!/usr/bin/env python3
"""Jadong's command line. `python run.py --help`."""

import gc
import sys
import time

_STARTED = time.monotonic()  # before heavy imports, so start-up timing is honest

if __name__ == "__main__":
    try:
        from installation.cli import main

        code = main(sys.argv[1:], started_mono=_STARTED)
        # The show is over and everything it opened is closed. What it built (the models, their
        # tensors, the speech engine) is a great many objects: the interpreter's last garbage
        # collection would walk them all, for seconds on a busy CPU, while a restart waits (systemd
        # after SIGTERM, the soak harness). Frozen, they are left to the OS, which frees them at once.
        gc.freeze()
        sys.exit(code)
    except KeyboardInterrupt:
        # Ctrl-C before the show installed its own handler (while PyTorch and friends import):
        # nothing has started, so nothing needs stopping; one line, the shell's usual status.
        print("jadong: interrupted before the show started", file=sys.stderr)
        sys.exit(130)
