"""OSC in: the address table, and the UDP server that turns valid messages into Controls.

Every address Jadong understands is one row of `ADDRESSES` (path, argument types, help, kind);
one python-osc Dispatcher with a single default handler checks each message against the table,
so a new cue is a new row, not a new handler. What does not fit the table gets a reply on
/jadong/error with two strings, the offending address and the reason, sent back to the port
the message came from, so the performer's tool can show it.

The server runs on its own thread and only validates and enqueues; the main thread applies
Controls to the show state (see app.py), so nothing here touches the show directly.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pythonosc import osc_bundle, osc_message
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from pythonosc.osc_server import BlockingOSCUDPServer

from .channels import DropOldestQueue
from .messages import Control
from .show import OscConfig

log = logging.getLogger(__name__)

EventHandler = Callable[..., None]
Limits = tuple[float, float]

ERROR_ADDRESS = "/jadong/error"  # replies: (offending address, reason), both strings
# OSC address patterns (/jadong/*) would let one message fire several cues; the table takes
# literal addresses only, and says so rather than guessing.
_PATTERN_CHARS = set("*?[]{}")
_TYPE_NAMES = {"s": "a string", "f": "a number", "i": "an integer", "T": "true or false"}


@dataclass(frozen=True)
class Address:
    """One OSC address Jadong answers to.

    `args` holds one type code per argument: "s" string, "f" number (ints accepted, OSC
    senders mix them freely), "i" integer (whole floats such as 3.0 accepted), "T" boolean
    (T/F, or 0/1). `limits` gives an inclusive (low, high) per argument, or None for no
    limit; it may be shorter than `args`. `kind` is "value" for a setting the show holds
    (and can report back), "action" for something that happens once."""

    path: str
    args: str
    help: str
    kind: Literal["value", "action"] = "action"
    limits: tuple[Limits | None, ...] = ()

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or self.path != self.path.lower():
            raise ValueError(f"OSC address {self.path!r}: must start with / and be lower case")
        unknown = set(self.args) - set(_TYPE_NAMES)
        if unknown:
            raise ValueError(f"OSC address {self.path}: unknown type codes {sorted(unknown)}")
        if len(self.limits) > len(self.args):
            raise ValueError(f"OSC address {self.path}: more limits than arguments")

    @property
    def signature(self) -> str:
        return f"{self.path} {self.args}".rstrip()


def _table(*rows: Address) -> dict[str, Address]:
    return {a.path: a for a in rows}


ADDRESSES: dict[str, Address] = _table(
    Address("/jadong/prompt", "s", "paint these words (replaces the current prompt until the next speech)", "value"),
    Address("/jadong/strength", "f", "how far img2img departs from the camera image, 0 (camera) to 1 (prompt only)",
            "value", limits=((0.0, 1.0),)),
    Address("/jadong/quit", "", "end the show cleanly", "action"),
)


class OscArgumentError(ValueError):
    """A message whose arguments do not fit its address; the text is the reason sent back."""


class OscError(OSError):
    """The OSC server cannot run (e.g. its port is taken); the message names host and port.
    An OSError, because that is what a failed bind is."""


def lookup(address: str) -> Address | None:
    """The table row for an address, ignoring case (performers type /Jadong/Prompt too)."""
    return ADDRESSES.get(address.lower())


def _fmt(x: float) -> str:
    return f"{x:g}"


def validate_args(addr: Address, args: tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
    """The arguments converted to the table's types, or OscArgumentError with the reason."""
    if len(args) != len(addr.args):
        want = len(addr.args)
        expected = "no arguments" if want == 0 else f"{want} argument{'s' if want > 1 else ''} ({addr.args})"
        raise OscArgumentError(f"expected {expected}, got {len(args)}")
    out = []
    for i, (code, value) in enumerate(zip(addr.args, args)):
        where = f"argument {i + 1}" if len(addr.args) > 1 else "argument"
        value = _convert(code, value, where)
        limits = addr.limits[i] if i < len(addr.limits) else None
        if limits is not None and not (limits[0] <= value <= limits[1]):
            raise OscArgumentError(f"{where}: expected a value from {_fmt(limits[0])} to {_fmt(limits[1])}, got {value!r}")
        out.append(value)
    return tuple(out)


def _convert(code: str, value: Any, where: str) -> Any:
    expected = _TYPE_NAMES[code]
    got = f"{type(value).__name__} {value!r}" if not isinstance(value, str) else f"string {value!r}"
    if code == "s":
        if isinstance(value, str):
            return value
    elif code == "T":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
    elif isinstance(value, bool) or value is None:
        pass  # T/F/N are not numbers, however Python sees them
    elif code == "f":
        if isinstance(value, (int, float)):
            value = float(value)
            if not math.isfinite(value):
                raise OscArgumentError(f"{where}: expected a finite number, got {value!r}")
            return value
    elif code == "i":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    raise OscArgumentError(f"{where}: expected {expected}, got {got}")


def address_table_markdown() -> str:
    """The table as Markdown, for the README's OSC reference (installation/docs.py)."""
    codes = {"s": "string", "f": "float", "i": "int", "T": "bool"}
    lines = ["| address | arguments | kind | what it does |", "|---|---|---|---|"]
    for a in ADDRESSES.values():
        args = []
        for i, code in enumerate(a.args):
            lim = a.limits[i] if i < len(a.limits) else None
            args.append(codes[code] + (f" {_fmt(lim[0])}–{_fmt(lim[1])}" if lim else ""))
        lines.append(f"| `{a.path}` | {', '.join(args) or '—'} | {a.kind} | {a.help} |")
    lines.append(f"| `{ERROR_ADDRESS}` (reply) | string address, string reason | reply | "
                 "sent back to the sender's port when a message is refused |")
    return "\n".join(lines) + "\n"


def address_help() -> str:
    """The table as text, for --help and the README."""
    width = max(len(a.signature) for a in ADDRESSES.values())
    return "\n".join(f"{a.signature:<{width}}  {a.help}" for a in ADDRESSES.values())


@dataclass(frozen=True)
class OscStats:
    received: int  # valid messages turned into Controls
    rejected: int  # messages answered on /jadong/error
    malformed: int  # datagrams that were not OSC at all
    replies_failed: int


class _UDPServer(BlockingOSCUDPServer):
    """python-osc's blocking server, with a pre-check that reports what its dispatcher would
    drop in silence, and errors logged instead of printed."""

    max_packet_size = 65507  # the UDP maximum; socketserver's 8 KiB would cut long bundles
    owner: "OscServer"

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return self.owner._precheck(request[0], client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("OSC: error while handling a datagram from %s", client_address)


class OscServer:
    """Listens for OSC over UDP on cfg.host:cfg.port and puts each valid message into
    `controls` as Control(address, args, sender). Invalid ones are answered on /jadong/error.

    on_event("osc", address, args, sender) for each valid message (the app rate-limits these),
    on_event("error", source="osc", address, reason, sender) for each rejected one. Both are
    called on the server thread.
    """

    def __init__(self, cfg: OscConfig, controls: DropOldestQueue[Control], on_event: EventHandler | None = None) -> None:
        self.cfg = cfg
        self.controls = controls
        self._on_event = on_event
        self._server: _UDPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = cfg.port
        self._lock = threading.Lock()  # counters are bumped on the server thread, read anywhere
        self._received = self._rejected = self._malformed = self._replies_failed = 0
        self.dispatcher = Dispatcher(strict_timing=False)  # never sleep on the server thread
        self.dispatcher.set_default_handler(self._on_message, needs_reply_address=True)

    # --- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound UDP port (the free one picked when cfg.port is 0)."""
        return self._port

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._server is not None:
            raise OscError(f"OSC server on port {self._port} is already running")
        host, port = self.cfg.host, self.cfg.port
        try:
            server = _UDPServer((host, port), self.dispatcher)
        except socket.gaierror as exc:
            raise OscError(f"OSC: cannot listen on host {host!r} (osc.host): {exc.strerror or exc}") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OscError(f"OSC: UDP port {port} on {host} is already in use (another Jadong or OSC program?); "
                               "stop it or set osc.port in the show (0 picks a free port)") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise OscError(f"OSC: {host} is not an address of this machine (osc.host); "
                               "use 127.0.0.1 for this machine only or 0.0.0.0 for the network") from None
            if exc.errno == errno.EACCES:
                raise OscError(f"OSC: no permission to listen on UDP port {port} (ports below 1024 need root)") from None
            raise OscError(f"OSC: cannot listen on UDP {host}:{port}: {exc.strerror or exc}") from None
        server.owner = self
        self._server = server
        self._port = server.server_address[1]
        # A short poll keeps stop() quick; an idle UDP select costs nothing.
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"osc-server:{self._port}", daemon=True)
        self._thread.start()
        log.info("OSC: listening on udp %s:%d", host, self._port)

    def stop(self, timeout: float = 2.0) -> None:
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        if thread is not None and thread.is_alive():
            server.shutdown()  # waits for serve_forever to return
            thread.join(timeout)
        server.server_close()

    def __enter__(self) -> "OscServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> OscStats:
        with self._lock:
            return OscStats(self._received, self._rejected, self._malformed, self._replies_failed)

    # --- replies ---------------------------------------------------------------------
    def reply(self, target: tuple[str, int], address: str, *args: Any) -> bool:
        """Send an OSC message from the server's own socket, so it comes from the port the
        client sent to. Returns False (and logs) if it could not be sent: a reply must never
        stop the show."""
        server = self._server
        if server is None:
            log.debug("OSC: not running, reply %s to %s dropped", address, target)
            return False
        try:
            builder = OscMessageBuilder(address=address)
            for a in args:
                builder.add_arg(a)
            dgram = builder.build().dgram
            server.socket.sendto(dgram, tuple(target[:2]))
            return True
        except (OSError, ValueError, TypeError) as exc:
            with self._lock:
                self._replies_failed += 1
            log.warning("OSC: reply %s to %s failed: %s", address, target, exc)
            return False

    # --- receiving -------------------------------------------------------------------
    def _precheck(self, data: bytes, client: Any) -> bool:
        """Runs before the dispatcher: python-osc drops unparsable packets and broken address
        patterns without a word, and a performer deserves to know why nothing happened."""
        sender = _sender(client)
        if not (osc_bundle.OscBundle.dgram_is_bundle(data) or osc_message.OscMessage.dgram_is_message(data)):
            # Not OSC at all (a port scan, a stray tool): noted, not answered.
            with self._lock:
                self._malformed += 1
            self._emit("error", source="osc", address="", sender=_fmt_sender(sender),
                       reason=f"not an OSC message ({len(data)} bytes)")
            return False
        try:
            packet = OscPacket(data)
        except Exception as exc:  # ParseError, or anything else python-osc raises on hostile input
            log.debug("OSC: unparsable packet from %s: %r", sender, exc)
            self._reject(sender, _first_address(data),
                         f"malformed OSC packet ({len(data)} bytes): truncated, or arguments that do not "
                         "match the type tags")
            return False
        ok = True
        for timed in packet.messages:
            addr = timed.message.address
            if _PATTERN_CHARS & set(addr):
                self._reject(sender, addr, "address patterns (* ? [ ] { }) are not supported; send the full address")
                ok = False
        return ok

    def _on_message(self, client: Any, address: str, *args: Any) -> None:
        sender = _sender(client)
        row = lookup(address)
        if row is None:
            self._reject(sender, address, f"unknown address; known: {', '.join(ADDRESSES)}")
            return
        try:
            values = validate_args(row, args)
        except OscArgumentError as exc:
            self._reject(sender, address, f"{exc} (usage: {row.signature})")
            return
        self.controls.put(Control(address=row.path, args=values, sender=sender))
        with self._lock:
            self._received += 1
        self._emit("osc", address=row.path, args=list(values), sender=_fmt_sender(sender))

    def _reject(self, sender: tuple[str, int] | None, address: str, reason: str) -> None:
        with self._lock:
            self._rejected += 1
        self._emit("error", source="osc", address=address, reason=reason, sender=_fmt_sender(sender))
        # Never answer an error with an error: two programs that reply from their listening
        # ports (two Jadongs, say) would otherwise bounce it between them forever.
        if sender is not None and address.lower() != ERROR_ADDRESS and not self._is_self(sender):
            self.reply(sender, ERROR_ADDRESS, address, reason)

    def _is_self(self, sender: tuple[str, int]) -> bool:
        server = self._server
        return server is not None and sender == tuple(server.socket.getsockname()[:2])

    def _emit(self, event: str, **fields: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event, **fields)
        except Exception:  # a broken event sink must not take the server down
            log.exception("OSC: event handler failed")


def _sender(client: Any) -> tuple[str, int] | None:
    if isinstance(client, tuple) and len(client) >= 2:
        return (str(client[0]), int(client[1]))  # IPv6 adds flow info and scope: not needed
    return None


def _fmt_sender(sender: tuple[str, int] | None) -> str:
    return f"{sender[0]}:{sender[1]}" if sender else ""


def _first_address(data: bytes) -> str:
    """The address of a message that failed to parse, as far as it can be read."""
    if not data.startswith(b"/"):
        return ""
    return data.split(b"\0", 1)[0][:200].decode("utf-8", "replace")
