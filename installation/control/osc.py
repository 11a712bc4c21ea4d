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
import heapq
import ipaddress
import logging
import math
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pythonosc import osc_bundle, osc_message
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from pythonosc.osc_server import BlockingOSCUDPServer

from installation.core.channels import DropOldestQueue
from installation.core.events import EventHook, emit
from installation.core.messages import Control
from installation.show import OscConfig

log = logging.getLogger(__name__)

Limits = tuple[float, float]

ERROR_ADDRESS = "/jadong/error"  # replies: (offending address, reason), both strings
# OSC address patterns (/jadong/*) would let one message fire several cues; the table takes
# literal addresses only, and says so rather than guessing.
_PATTERN_CHARS = set("*?[]{}")
_TYPE_NAMES = {"s": "a string", "f": "a number", "i": "an integer", "T": "true or false",
               "x": "a name or a number"}


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
    choices: tuple[str, ...] = ()  # allowed strings for a single "s" argument

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


SECONDS = (0.0, 60.0)

ADDRESSES: dict[str, Address] = _table(
    # The picture's words
    Address("/jadong/prompt", "s", "paint these words (until the next speech or cue)", "value"),
    Address("/jadong/prompt/append", "s", "add words to the current prompt", "action"),
    Address("/jadong/prompt/clear", "", "back to the show's initial prompt", "action"),
    Address("/jadong/prompt/blend", "f", "seconds a new prompt (or seed) takes to blend in", "value", limits=(SECONDS,)),
    Address("/jadong/negative", "s", "negative prompt (\"\" for none)", "value"),
    Address("/jadong/style", "s", "a named style from the show's [styles]; repaints the last words in it", "value"),
    # How it is painted
    Address("/jadong/strength", "f", "how far img2img departs from the camera image, 0 (camera) to 1 (prompt only)",
            "value", limits=((0.0, 1.0),)),
    Address("/jadong/steps", "i", "denoising steps per frame", "value", limits=((1, 50),)),
    Address("/jadong/seed", "i", "noise seed", "value", limits=((0, 2**31 - 1),)),
    Address("/jadong/seed/drift", "f", "how fast the noise walks, 0 (still) to 1", "value", limits=((0.0, 1.0),)),
    Address("/jadong/mode", "s", "img2img (restyle the camera), txt2img (words alone) or feedback "
            "(the still image brought to life)", "value", choices=("img2img", "txt2img", "feedback")),
    # Cues and shows
    Address("/jadong/cue", "", "the current cue (query only): replies with its number and name", "value"),
    Address("/jadong/cue/go", "x", "fire a cue by name or number (1 is the first)", "action"),
    Address("/jadong/cue/next", "", "fire the next cue", "action"),
    Address("/jadong/cue/prev", "", "fire the previous cue", "action"),
    Address("/jadong/show", "s", "load another show from shows/ by name (no paths)", "action"),
    # Listening and the screen
    Address("/jadong/listen", "T", "listen to the microphone (1) or not (0)", "value"),
    Address("/jadong/freeze", "T", "hold the picture on screen (1) or let it move (0)", "value"),
    Address("/jadong/blackout", "T", "fade to black (1) or back to the picture (0)", "value"),
    Address("/jadong/blackout/fade", "f", "seconds the blackout fades take", "value", limits=(SECONDS,)),
    Address("/jadong/crossfade", "f", "seconds from one generated frame to the next", "value", limits=((0.0, 30.0),)),
    Address("/jadong/caption", "T", "show captions (1) or hide them (0)", "value"),
    Address("/jadong/caption/text", "s", "show this caption now (\"\" clears it)", "value"),
    Address("/jadong/hud", "T", "show the HUD (1) or hide it (0)", "value"),
    # Actions
    Address("/jadong/capture", "", "save the current frame (PNG + JSON of the words and settings) in captures/", "action"),
    Address("/jadong/status", "", "send all /jadong/status/... values to the sender now", "action"),
    Address("/jadong/quit", "", "end the show cleanly", "action"),
)

# Pushed to [osc] status_targets at status_hz, and sent to whoever asks /jadong/status.
STATUS_ADDRESSES: dict[str, str] = {
    "/jadong/status/fps/display": "float: frames presented per second",
    "/jadong/status/fps/generator": "float: frames generated per second",
    "/jadong/status/fps/camera": "float: camera frames per second",
    "/jadong/status/prompt": "string: the prompt being painted",
    "/jadong/status/transcript": "string: the last accepted transcript",
    "/jadong/status/listening": "int: 1 while listening",
    "/jadong/status/cue": "string: the current cue's name (\"\" before the first)",
    "/jadong/status/generator": "string: the generator and model painting now",
    "/jadong/status/error": "string: the last error (\"\" if none)",
    "/jadong/status/dropped": "int: items dropped by all channels so far",
}


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


def is_query(addr: Address, args: tuple[Any, ...] | list[Any]) -> bool:
    """A value address sent with no argument asks for the current value."""
    return addr.kind == "value" and len(args) == 0


def validate_args(addr: Address, args: tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
    """The arguments converted to the table's types, or OscArgumentError with the reason."""
    if is_query(addr, args):
        return ()
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
        if addr.choices and code == "s":
            value = value.strip().lower()
            if value not in addr.choices:
                raise OscArgumentError(f"{where}: expected one of {', '.join(addr.choices)}, got {value!r}")
        out.append(value)
    return tuple(out)


def _convert(code: str, value: Any, where: str) -> Any:
    expected = _TYPE_NAMES[code]
    got = f"{type(value).__name__} {value!r}" if not isinstance(value, str) else f"string {value!r}"
    if code == "s":
        if isinstance(value, str):
            return value
    elif code == "x":
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
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
    codes = {"s": "string", "f": "float", "i": "int", "T": "bool", "x": "string or int"}
    lines = ["| address | arguments | kind | what it does |", "|---|---|---|---|"]
    for a in ADDRESSES.values():
        args = []
        for i, code in enumerate(a.args):
            lim = a.limits[i] if i < len(a.limits) else None
            args.append(codes[code] + (f" {_fmt(lim[0])}–{_fmt(lim[1])}" if lim else "")
                        + (f" ({' or '.join(a.choices)})" if a.choices else ""))
        kind = "value (no argument: query)" if a.kind == "value" else "action"
        lines.append(f"| `{a.path}` | {', '.join(args) or '—'} | {kind} | {a.help} |")
    lines.append(f"| `{ERROR_ADDRESS}` (reply) | string address, string reason | reply | "
                 "sent back to the sender's port when a message is refused |")
    lines += ["", "Status, pushed to `[osc] status_targets` every 1/`status_hz` s as one bundle, and sent to",
              "whoever sends `/jadong/status`:", "", "| address | value |", "|---|---|"]
    lines += [f"| `{path}` | {what} |" for path, what in STATUS_ADDRESSES.items()]
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
    refused: int = 0  # datagrams from senders outside osc.allow
    scheduled_bundles: int = 0  # bundles held for a future timetag
    pending: int = 0  # messages waiting for their timetag


# A bundle due within this much is delivered at once: less than one display frame.
_LATE_ENOUGH_S = 0.002
MAX_BUNDLE_DELAY_S = 3600.0
MAX_PENDING = 10_000
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024


class _BundleScheduler:
    """Delivers messages from future-dated bundles at their timetags on a thread of its own,
    so a bundle for later never holds up the messages behind it (python-osc's strict timing
    would sleep on the server thread)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="osc-bundles", daemon=True)
        self._thread.start()

    def add(self, when: float, deliver: Callable[[], None]) -> bool:
        with self._cond:
            if len(self._heap) >= MAX_PENDING:
                log.warning("OSC: %d timed messages already waiting; one more dropped", MAX_PENDING)
                return False
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, deliver))
            self._cond.notify()
            return True

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def stop(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    wait = self._heap[0][0] - time.time() if self._heap else None
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopping:
                    return
                _, _, deliver = heapq.heappop(self._heap)
            try:
                deliver()
            except Exception:
                log.exception("OSC: delivering a timed message failed")


class _UDPServer(BlockingOSCUDPServer):
    """python-osc's blocking server, with a pre-check that reports what its dispatcher would
    drop in silence, and errors logged instead of printed."""

    max_packet_size = 65507  # the UDP maximum; socketserver's 8 KiB would cut long bundles
    owner: "OscServer"

    def server_bind(self) -> None:
        # A burst (a fader sweep, a flood) lands in the kernel's receive buffer; when that is
        # full the kernel drops the newest datagrams, which are the ones that matter most.
        # Ask for room for about a second at 10,000 messages/s (the kernel may cap it).
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        except OSError:
            pass
        super().server_bind()

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

    def __init__(self, cfg: OscConfig, controls: DropOldestQueue[Control], on_event: EventHook | None = None) -> None:
        self.cfg = cfg
        self.controls = controls
        self._on_event = on_event
        self._server: _UDPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = cfg.port
        self._lock = threading.Lock()  # counters are bumped on the server thread, read anywhere
        self._received = self._rejected = self._malformed = self._replies_failed = 0
        self._refused = self._scheduled_bundles = 0
        self._allow = [ipaddress.ip_network(a, strict=False) for a in cfg.allow]
        self._scheduler = _BundleScheduler()
        # python-osc's server needs a dispatcher; _precheck delivers every message itself, so
        # this one is only the fallback should a datagram ever pass the pre-check.
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
        self._scheduler.start()
        log.info("OSC: listening on udp %s:%d", host, self._port)

    def stop(self, timeout: float = 2.0) -> None:
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        if thread is not None and thread.is_alive():
            server.shutdown()  # waits for serve_forever to return
            thread.join(timeout)
        self._scheduler.stop(timeout)
        server.server_close()

    def __enter__(self) -> "OscServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> OscStats:
        with self._lock:
            return OscStats(self._received, self._rejected, self._malformed, self._replies_failed,
                            self._refused, self._scheduled_bundles, self._scheduler.pending())

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
        """Parses and delivers each datagram, returning False so python-osc does not parse it
        again. Done here rather than in python-osc's dispatcher, which drops unparsable packets
        and broken address patterns without a word: a performer deserves to know why nothing
        happened.
        Also where senders outside `osc.allow` are refused, and where bundles timed for the
        future are handed to the scheduler instead of blocking this thread."""
        sender = _sender(client)
        if sender is not None and not self._allowed(sender[0]):
            with self._lock:
                self._refused += 1
            self._reject(sender, _first_address(data),
                         f"sender {sender[0]} is not allowed to control this show (osc.allow)")
            return False
        if not (osc_bundle.OscBundle.dgram_is_bundle(data) or osc_message.OscMessage.dgram_is_message(data)):
            # Not OSC at all (a port scan, a stray tool): noted, not answered.
            with self._lock:
                self._malformed += 1
            emit(self._on_event, "error", source="osc", address="", sender=_fmt_sender(sender),
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
        if ok and any(t.time > time.time() + _LATE_ENOUGH_S for t in packet.messages):
            self._schedule(packet, client)
            return False  # the scheduler delivers them, in time order, at their timetags
        if ok:
            # Delivered from the packet parsed here, so python-osc's handler does not parse the
            # datagram a second time (its dispatcher only ever called _on_message anyway).
            # socketserver calls verify_request outside its own error handling: an exception
            # escaping here would end the server for the rest of the show.
            try:
                for timed in packet.messages:
                    self._on_message(client, timed.message.address, *timed.message.params)
            except Exception:
                log.exception("OSC: error while handling a datagram from %s", sender)
        return False

    def _schedule(self, packet: OscPacket, client: Any) -> None:
        with self._lock:
            self._scheduled_bundles += 1
        for timed in packet.messages:
            delay = timed.time - time.time()
            if delay > MAX_BUNDLE_DELAY_S:
                self._reject(_sender(client), timed.message.address,
                             f"bundle timetag is {delay:.0f} s ahead; at most {MAX_BUNDLE_DELAY_S:.0f} s is accepted")
                continue
            self._scheduler.add(timed.time, lambda m=timed.message: self._on_message(client, m.address, *m.params))

    def _allowed(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._allow)

    def reply_target(self, sender: tuple[str, int]) -> tuple[str, int]:
        """Where a reply to `sender` goes: its own port, or the show's fixed reply port."""
        return (sender[0], self.cfg.reply_port) if self.cfg.reply_port else sender

    def send_bundle(self, target: tuple[str, int], messages: list[tuple[str, tuple[Any, ...]]]) -> bool:
        """Several messages in one immediate bundle (status feedback), from the server's socket."""
        server = self._server
        if server is None:
            return False
        try:
            bundle = OscBundleBuilder(IMMEDIATELY)
            for address, args in messages:
                builder = OscMessageBuilder(address=address)
                for a in args:
                    builder.add_arg(a)
                bundle.add_content(builder.build())
            server.socket.sendto(bundle.build().dgram, tuple(target[:2]))
            return True
        except (OSError, ValueError, TypeError) as exc:
            with self._lock:
                self._replies_failed += 1
            log.debug("OSC: status to %s failed: %s", target, exc)
            return False

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
        query = is_query(row, args)
        self.controls.put(Control(address=row.path, args=values, sender=sender, query=query))
        with self._lock:
            self._received += 1
        emit(self._on_event, "osc", address=row.path, args=list(values), sender=_fmt_sender(sender), query=query)

    def _reject(self, sender: tuple[str, int] | None, address: str, reason: str) -> None:
        with self._lock:
            self._rejected += 1
        emit(self._on_event, "error", source="osc", address=address, reason=reason, sender=_fmt_sender(sender))
        # Never answer an error with an error: two programs that reply from their listening
        # ports (two Jadongs, say) would otherwise bounce it between them forever.
        if sender is not None and address.lower() != ERROR_ADDRESS and not self._is_self(sender):
            self.reply(sender, ERROR_ADDRESS, address, reason)

    def _is_self(self, sender: tuple[str, int]) -> bool:
        server = self._server
        return server is not None and sender == tuple(server.socket.getsockname()[:2])



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
