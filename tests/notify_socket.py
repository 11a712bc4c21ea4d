"""A stand-in for systemd's notify socket: a real AF_UNIX datagram socket, bound where
NOTIFY_SOCKET points, that keeps every message with the time it arrived. systemd-notify(1)
and Jadong's notifier both speak to it exactly as to systemd."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Notification:
    t: float  # time.monotonic() on arrival
    text: str

    @property
    def fields(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.text.split("\n") if "=" in line)


class NotifySocket:
    """Bound at a path in `folder`, or at an abstract name (`abstract=True`: NOTIFY_SOCKET
    "@name"). Read on a thread, so the sender's queue never fills."""

    def __init__(self, folder: Path | None = None, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"jadong-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            assert folder is not None
            path = folder / "notify.sock"
            self.sock.bind(str(path))
            self.env_value = str(path)
        self.sock.settimeout(0.1)
        self.messages: list[Notification] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append(Notification(time.monotonic(), data.decode("utf-8")))

    def received(self) -> list[Notification]:
        with self._lock:
            return list(self.messages)

    def with_field(self, key: str) -> list[Notification]:
        return [m for m in self.received() if key in m.fields]

    def wait_for(self, key: str, count: int = 1, timeout: float = 30.0) -> list[Notification]:
        """The first `count` messages that carry `key` (e.g. "WATCHDOG"); AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.with_field(key)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{count} × {key} not received within {timeout:g} s; got {self.received()}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()
