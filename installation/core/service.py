"""systemd's service notifications (the sd_notify protocol) from the display loop.

Under `Type=notify` (deploy/jadong.service) systemd passes a datagram socket in
`NOTIFY_SOCKET` and, with `WatchdogSec`, the watchdog period in `WATCHDOG_USEC`. The display
loop, and only the display loop, tells it: `READY=1` once the first frame is on screen,
`WATCHDOG=1` while frames are presented (every half period, as systemd advises), `STATUS=` a
one-line state when it changes, and `STOPPING=1` at shutdown. No helper thread pings: a hung
main loop must go quiet, so that systemd kills and restarts it. Without `NOTIFY_SOCKET`
(a terminal, a test) nothing is built and the loop pays one `is None` check.

Why a few lines of socket code rather than the `sdnotify` package (0.3.2, its whole source
read): it opens a blocking socket, so an unread queue (systemd busy, a stale NOTIFY_SOCKET)
would freeze the picture on `sendall`; it encodes Latin-1, which turns any non-ASCII status
into bytes that are not UTF-8, and systemd drops a STATUS that is not UTF-8; and a bare
`except:` hides every failure, so a wrong socket could never be reported. Here sends never
block, the text is UTF-8, and the first failure of each kind is reported once.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Mapping

STATUS_MAX_CHARS = 200  # one line for `systemctl status`; systemd keeps the whole text, people read a line
STATUS_EVERY_S = 2.0  # a STATUS at most this often, and only when its text changed
ErrorReport = Callable[[str], None]


def notify_address(value: str) -> str | None:
    """The socket address in NOTIFY_SOCKET: a path, or an abstract name written "@name"
    (Linux; sent with a leading NUL byte). None for kinds this does not speak (vsock:...)."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def one_line(text: str, max_chars: int = STATUS_MAX_CHARS) -> str:
    """`text` as one STATUS line: a newline would start a new assignment (a prompt holding
    "\\nREADY=1" must not speak for the app), so control characters become spaces."""
    cleaned = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= max_chars else cleaned[: max_chars - 1] + "…"


class Notifier:
    """Datagrams to systemd's notify socket. `send` never blocks and never raises: a message
    that cannot go (the queue is full, the socket is gone) is counted in `dropped`, and the
    first failure of each kind goes to `on_error` (the event log)."""

    def __init__(self, address: str, on_error: ErrorReport | None = None) -> None:
        self.address = address
        self._on_error = on_error
        self._reported: set[int] = set()
        self.sent = 0
        self.dropped = 0
        self._sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)

    def send(self, message: str) -> bool:
        """One notification ("READY=1", "WATCHDOG=1\\nSTATUS=..."); True if it went."""
        if self._sock is None:
            return False
        try:
            # Addressed each time rather than connected once: systemd re-executing itself
            # (an upgrade) binds the socket afresh, and a connected socket would stay stale.
            self._sock.sendto(message.encode("utf-8", "replace"), self.address)
        except OSError as exc:
            self.dropped += 1
            code = exc.errno or 0
            if code not in self._reported and self._on_error is not None:
                self._reported.add(code)
                why = "systemd's queue is full" if code in (errno.EAGAIN, errno.EWOULDBLOCK) else str(exc)
                self._on_error(f"a notification to systemd ({self.address.replace(chr(0), '@')}) "
                               f"could not be sent: {why}")
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_period_s(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """The watchdog period systemd set (WATCHDOG_USEC), in seconds, or None when systemd
    watches nothing, or watches another process (WATCHDOG_PID)."""
    usec = environ.get("WATCHDOG_USEC", "").strip()
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get("WATCHDOG_PID", "").strip()
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 1e6


class ServiceNotifier:
    """What the display loop tells systemd, and when (see the module note). Main thread only."""

    def __init__(self, notifier: Notifier, watchdog_s: float | None, status_every_s: float = STATUS_EVERY_S) -> None:
        self.notifier = notifier
        # Half the period, as sd_watchdog_enabled(3) advises: one late ping is not yet a kill.
        self.ping_every_s = None if watchdog_s is None else watchdog_s / 2
        self.status_every_s = status_every_s
        self.ready = False
        self._pinged_t = 0.0
        self._status_t = float("-inf")
        self._status = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None,
                         on_error: ErrorReport | None = None) -> ServiceNotifier | None:
        """The notifier systemd asked for, or None when it asked for none (no NOTIFY_SOCKET)."""
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET", "")
        if not value:
            return None
        address = notify_address(value)
        if address is None:
            if on_error is not None:
                on_error(f"NOTIFY_SOCKET={value!r} is not a socket path or @name; systemd is not told "
                         "that the show runs (its watchdog, if any, will restart it)")
            return None
        return cls(Notifier(address, on_error), watchdog_period_s(env))

    def presented(self, now: float, status: Callable[[], str]) -> None:
        """After each frame the loop presents. `status` makes the one-line state; it is only
        called when a STATUS is due."""
        if not self.ready:
            self.ready = True
            self._pinged_t = now
            self._status_t = now
            self._status = one_line(status())
            self.notifier.send(f"READY=1\nSTATUS={self._status}")
            return
        lines = []
        if self.ping_every_s is not None and now - self._pinged_t >= self.ping_every_s:
            self._pinged_t = now
            lines.append("WATCHDOG=1")
        if now - self._status_t >= self.status_every_s:
            self._status_t = now
            text = one_line(status())
            if text != self._status:
                self._status = text
                lines.append(f"STATUS={text}")
        if lines:
            self.notifier.send("\n".join(lines))

    def stopping(self, status: str = "stopping") -> None:
        """At shutdown: from here TimeoutStopSec governs, not the watchdog."""
        self.notifier.send(f"STOPPING=1\nSTATUS={one_line(status)}")

    def close(self) -> None:
        self.notifier.close()


__all__ = ["Notifier", "STATUS_EVERY_S", "STATUS_MAX_CHARS", "ServiceNotifier", "notify_address", "one_line",
           "watchdog_period_s"]
