"""Silencing what C libraries print to file descriptor 2, without losing anyone else's lines.

ALSA, its pulse plugin, JACK and SDL print "XDG_RUNTIME_DIR is invalid or not set", "Unknown
PCM" and the like straight to descriptor 2 on every machine without a sound server or a
screen; that would bury the messages that matter. Pointing descriptor 2 at /dev/null would
silence them, but descriptor 2 belongs to the whole process: another thread's log line written
in that window would vanish with them. So the window's output goes to a temporary file instead,
and when the window closes every line that is not known library noise is written back (a
little late, never lost). The noise itself is kept at debug level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

_LOCK = threading.RLock()  # re-entrant: device listing nests inside a caller's quiet block

# Lines the native audio and display libraries print on machines without sound server or screen.
NATIVE_NOISE = re.compile(
    rb"^\s*(ALSA lib |Expression '.*' failed in '|Cannot connect to server|jack server is not running|"
    rb"JackShm|JackClient|connect\(2\) call to|attempt to connect to server failed|"
    rb"(error: )?XDG_RUNTIME_DIR|pa_context_connect|Home directory not accessible|"
    rb"Unknown PCM|Cannot open device|jack_client_open|Failed to connect to the sound server|"
    # TensorFlow Lite and absl (mediapipe's vision models) on their first inference
    rb"INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog|"
    rb"[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\])"
)


def is_native_noise(line: bytes) -> bool:
    return bool(NATIVE_NOISE.match(line))


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Descriptor 2 goes to a temporary file for the duration; afterwards the lines that are
    not native noise are written back to the real descriptor 2. Python's own errors are
    untouched: they are raised, not printed, and reach the caller after the descriptor is
    restored."""
    with _LOCK:
        try:
            sys.stderr.flush()
        except Exception:
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 at all (a daemon): nothing to silence
            yield
            return
        try:
            capture = tempfile.TemporaryFile()
        except OSError:  # no writable temporary folder: noise is better than lost lines
            os.close(saved)
            yield
            return
        try:
            os.dup2(capture.fileno(), 2)
            yield
        finally:
            try:
                sys.stderr.flush()
            except Exception:
                pass
            os.dup2(saved, 2)
            os.close(saved)
            _replay(capture)


def _replay(capture) -> None:
    """Writes the captured lines that are not noise back to descriptor 2."""
    with capture:
        capture.seek(0)
        for line in capture.read().splitlines(keepends=True):
            if is_native_noise(line):
                log.debug("native library: %s", line.decode("utf-8", "replace").rstrip())
                continue
            try:
                os.write(2, line)
            except OSError:
                return
