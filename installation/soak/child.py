"""The app under soak: `python run.py SHOW --faults ...` as a child process, headless, its
console output appended to one file across restarts, and its memory read from /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from installation.show import PROJECT_ROOT

# Inherited settings that would change what the child does: a desktop to open a window on, a
# systemd notify socket that is the harness's own, a web password.
DROPPED_ENV = ("DISPLAY", "WAYLAND_DISPLAY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JADONG_WEB_PASSWORD")


def child_env(shows_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    for key in DROPPED_ENV:
        env.pop(key, None)
    env.update(SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", PYGAME_HIDE_SUPPORT_PROMPT="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               JADONG_SHOWS_DIR=str(shows_dir))
    return env


def read_rss_mb(pid: int) -> float | None:
    """VmRSS of a process in MB (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            try:
                return round(int(parts[1]) * 1024 / 1e6, 1)  # kB
            except (IndexError, ValueError):
                return None
    return None


class AppProcess:
    """One app process at a time; `start` again after it ended."""

    def __init__(self, args: list[str], env: dict[str, str], output: Path) -> None:
        self.args = [sys.executable, str(PROJECT_ROOT / "run.py"), *args]
        self.env = env
        self.output = output
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self.started_mono = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> float:
        """Starts the app; returns the moment it was started."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the app is already running")
        self._close_output()
        self._out = self.output.open("ab")
        self.started_mono = time.monotonic()
        self.proc = subprocess.Popen(self.args, cwd=PROJECT_ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        return self.started_mono

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def terminate(self) -> float:
        """SIGTERM, as systemd stops a service; returns the moment it was sent."""
        assert self.proc is not None
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        return t

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it has not ended within `timeout` seconds."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_output()

    def output_tail(self, chars: int = 2000) -> str:
        """The end of the app's console output (for a crash's report)."""
        try:
            with self.output.open("rb") as f:
                f.seek(max(0, self.output.stat().st_size - chars))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _close_output(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


__all__ = ["AppProcess", "child_env", "read_rss_mb"]
