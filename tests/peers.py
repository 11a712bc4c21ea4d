"""Shared helpers for the end-to-end tests that run the real app: an OSC controller on loopback
UDP that hears the replies, and readers of the app's event log (JSON lines) that poll it."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket


def osc_message(address: str, *args: Any) -> bytes:
    """One OSC message as a datagram."""
    builder = OscMessageBuilder(address=address)
    for a in args:
        builder.add_arg(a)
    return builder.build().dgram


class Peer:
    """An OSC controller on its own port, hearing every reply (messages and bundles)."""

    def __init__(self, port: int, recv_timeout: float = 0.5) -> None:
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(recv_timeout)

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(osc_message(address, *args), self.target)

    def replies(self, until: str, timeout: float = 5.0) -> dict[str, list]:
        """Every message heard until one at `until` arrives (the last value of each address)."""
        heard: dict[str, list] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            for timed in OscPacket(data).messages:
                heard[timed.message.address] = list(timed.message.params)
            if until in heard:
                return heard
        raise AssertionError(f"no {until} within {timeout} s; heard {sorted(heard)}")

    def status(self, timeout: float = 5.0) -> dict[str, list]:
        """The show's own status bundle (/jadong/status), as address -> values."""
        self.send("/jadong/status")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            values = {m.message.address: list(m.message.params) for m in OscPacket(data).messages}
            if "/jadong/status/open" in values:
                return values
        raise AssertionError("no status bundle")

    def close(self) -> None:
        self.sock.close()


def read_events(path: Path) -> list[dict]:
    """The event log's lines so far."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def wait_for(path: Path, found: Callable[[dict], bool], seconds: float, what: str) -> dict:
    """The first event `found` accepts, polling the log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for record in read_events(path):
            if found(record):
                return record
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {seconds:.0f} s; events: {read_events(path)[-12:]}")


def wait_until(check: Callable[[], Any], seconds: float, what: str) -> None:
    """Poll `check` until it is true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not {what} within {seconds:.0f} s")
