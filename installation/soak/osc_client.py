"""The harness's side of OSC: one UDP socket on loopback that sends to the app and keeps every
reply with the moment it arrived (time.monotonic(), the clock the app's event log uses too).

Replies are read on a thread of their own, so a flood the harness sends never hides the answer
it then waits for.
"""

from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

MAX_KEPT = 20_000  # replies kept; older ones are dropped (the harness only waits for recent ones)


@dataclass(frozen=True)
class Reply:
    address: str
    args: tuple[Any, ...]
    mono: float  # when it arrived


def build(address: str, *args: Any) -> bytes:
    """One OSC message; floats as 32-bit, ints as int32, strings, booleans."""
    builder = OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class OscClient:
    """Sends to 127.0.0.1:`port`; `wait` for the first reply that matches, after a moment."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self._cond = threading.Condition()
        self._replies: collections.deque[Reply] = collections.deque(maxlen=MAX_KEPT)
        self.unparsable = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="soak-osc-replies", daemon=True)
        self._thread.start()

    def send(self, address: str, *args: Any) -> float:
        """Sends one message; returns the moment it left."""
        return self.send_raw(build(address, *args))

    def send_raw(self, data: bytes) -> float:
        t = time.monotonic()
        try:
            self.sock.sendto(data, self.target)
        except OSError:  # the app is restarting and nothing listens: a lost datagram, as on a network
            pass
        return t

    def wait(self, match: Callable[[Reply], bool], after: float, timeout: float,
             idle: Callable[[], None] | None = None) -> Reply | None:
        """The first reply that arrived after `after` and matches, waiting up to `timeout`
        seconds; `idle` runs every few tens of milliseconds meanwhile (the harness keeps reading
        the event log and watching the app)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                for reply in self._replies:
                    if reply.mono >= after and match(reply):
                        return reply
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.05))
            if idle is not None:
                idle()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self.sock.close()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            t = time.monotonic()
            try:
                messages = OscPacket(data).messages
            except Exception:  # not OSC: counted, never fatal
                self.unparsable += 1
                continue
            with self._cond:
                for timed in messages:
                    self._replies.append(Reply(timed.message.address, tuple(timed.message.params), t))
                self._cond.notify_all()


def is_error_for(address: str) -> Callable[[Reply], bool]:
    """Matches the app's /jadong/error reply about `address`."""
    return lambda r: r.address == "/jadong/error" and bool(r.args) and r.args[0] == address


def is_reply(address: str) -> Callable[[Reply], bool]:
    return lambda r: r.address == address


__all__ = ["OscClient", "Reply", "build", "is_error_for", "is_reply"]
