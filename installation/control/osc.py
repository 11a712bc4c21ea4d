"""OSC in: the UDP server that turns valid messages into Controls.

Every message is checked against the address table (addresses.py); what does not fit gets a
reply on /jadong/error with two strings, the offending address and the reason, sent back to
the port the message came from, so the performer's tool can show it.

The server runs on its own thread and only validates and enqueues; the main thread applies
Controls to the show state (show_control.py), so nothing here touches the show directly.
"""

from __future__ import annotations

import enum
import errno
import heapq
import ipaddress
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pythonosc import osc_bundle, osc_bundle_builder, osc_message, osc_message_builder
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from installation.core.channels import DropOldestQueue
from installation.core.events import EventHook, emit
from installation.core.messages import Control
from installation.show import OscConfig

from .addresses import (
    ADDRESSES,
    ERROR_ADDRESS,
    PATTERN_CHARS,
    OscArgumentError,
    is_query,
    lookup,
    shorten,
    validate_args,
)
from .packets import MAX_REPORTED_ADDRESS, MalformedPacket, check_packet

log = logging.getLogger(__name__)


class OscError(OSError):
    """The OSC server cannot run (e.g. its port is taken); the message names host and port.
    An OSError, because that is what a failed bind is."""



@dataclass(frozen=True)
class OscStats:
    received: int  # valid messages turned into Controls
    rejected: int  # messages answered on /jadong/error
    malformed: int  # datagrams that were not OSC at all
    replies_failed: int
    refused: int = 0  # datagrams from senders outside osc.allow
    scheduled_bundles: int = 0  # bundles held for a future timetag
    pending: int = 0  # messages waiting for their timetag
    dropped_timed: int = 0  # timed messages dropped because MAX_PENDING were already waiting


# A bundle due within this much is delivered at once: less than one display frame.
_LATE_ENOUGH_S = 0.002
MAX_BUNDLE_DELAY_S = 3600.0
MAX_PENDING = 10_000
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
# Timed messages dropped while MAX_PENDING wait are one burst until none is dropped for
# DROP_QUIET_S; the burst is then summarised in one event (and every DROP_SUMMARY_S while it
# lasts), never a console line per message.
DROP_QUIET_S = 1.0
DROP_SUMMARY_S = 10.0
MAX_REASON_CHARS = 1000  # a reason sent on /jadong/error or logged: a sentence, never a dump
_REPLY_ERRORS = (OSError, ValueError, TypeError, osc_message_builder.BuildError, osc_bundle_builder.BuildError)


class _Added(enum.Enum):
    QUEUED = "queued"
    DROPPED = "dropped"
    DROPPED_TELL = "dropped, and the sender has not been told in this burst"


@dataclass
class _DropBurst:
    """Timed messages dropped since dropping began, counted for one summary."""

    started: float  # time.monotonic() of the first drop in this summary window
    last: float  # of the latest drop
    count: int = 0
    by_address: dict[str, int] = field(default_factory=dict)
    told: set[tuple[str, int]] = field(default_factory=set)  # senders answered once in this burst
    first_sender: str = ""

    def note(self, address: str, sender: tuple[str, int] | None, now: float) -> bool:
        """Counts one drop; True when `sender` has not been told yet in this burst."""
        self.count += 1
        self.last = now
        if address in self.by_address or len(self.by_address) < 20:  # bounded: a flood of addresses is one
            self.by_address[address] = self.by_address.get(address, 0) + 1
        if sender is None or sender in self.told or len(self.told) >= 100:
            return False
        self.first_sender = self.first_sender or _fmt_sender(sender)
        self.told.add(sender)
        return True


@dataclass(frozen=True)
class DropSummary:
    """What one summary of dropped timed messages says."""

    dropped: int
    seconds: float
    by_address: dict[str, int]
    sender: str

    def reason(self) -> str:
        most = ", ".join(f"{a} ×{n:,}" for a, n in sorted(self.by_address.items(), key=lambda kv: -kv[1])[:3])
        return (f"{self.dropped:,} timed messages dropped in {self.seconds:.1f} s: {MAX_PENDING:,} were already "
                f"waiting for their timetags (most: {most})")


class _BundleScheduler:
    """Delivers messages from future-dated bundles at their timetags on a thread of its own,
    so a bundle for later never holds up the messages behind it (python-osc's strict timing
    would sleep on the server thread). At most MAX_PENDING wait; what comes beyond is dropped,
    with one console warning when dropping starts and a `DropSummary` to `on_drops` when it
    stops (and every DROP_SUMMARY_S while it goes on)."""

    def __init__(self, on_drops: Callable[[DropSummary], None] | None = None) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._on_drops = on_drops
        self._burst: _DropBurst | None = None
        self.dropped = 0  # all drops since start, for OscStats

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="osc-bundles", daemon=True)
        self._thread.start()

    def add(self, when: float, deliver: Callable[[], None], address: str = "",
            sender: tuple[str, int] | None = None) -> _Added:
        with self._cond:
            if len(self._heap) >= MAX_PENDING:
                return self._drop(address, sender)
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, deliver))
            self._cond.notify()
            return _Added.QUEUED

    def _drop(self, address: str, sender: tuple[str, int] | None) -> _Added:
        """Called with the lock held."""
        now = time.monotonic()
        self.dropped += 1
        if self._burst is None:
            self._burst = _DropBurst(started=now, last=now)
            log.warning("OSC: %d timed messages are waiting for their timetags; dropping more until some are "
                        "delivered (the event log gets a summary)", MAX_PENDING)
            self._cond.notify()  # the thread's wait now ends in time for the summary
        return _Added.DROPPED_TELL if self._burst.note(address, sender, now) else _Added.DROPPED

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
        with self._cond:
            summary = self._take_summary(time.monotonic(), end=True)
        self._report(summary)

    def _take_summary(self, now: float, end: bool) -> DropSummary | None:
        """Called with the lock held: the burst's summary so far; `end` closes the burst."""
        burst = self._burst
        if burst is None:
            return None
        summary = None
        if burst.count:
            summary = DropSummary(burst.count, now - burst.started, dict(burst.by_address), burst.first_sender)
        if end:
            self._burst = None
        else:  # a long burst: a new window, the same burst (no second warning, no second reply)
            burst.started, burst.count, burst.by_address = now, 0, {}
        return summary

    def _summary_due(self, now: float) -> tuple[float | None, bool]:
        """Seconds until the burst's summary is due (None: no burst), and whether it ends it."""
        burst = self._burst
        if burst is None:
            return None, False
        quiet = burst.last + DROP_QUIET_S - now
        window = burst.started + DROP_SUMMARY_S - now
        return min(quiet, window), quiet <= window

    def _report(self, summary: DropSummary | None) -> None:
        if summary is not None and self._on_drops is not None:
            try:
                self._on_drops(summary)
            except Exception:
                log.exception("OSC: reporting dropped timed messages failed")

    def _run(self) -> None:
        while True:
            deliver: Callable[[], None] | None = None
            summary = None
            with self._cond:
                while not self._stopping:
                    now_mono = time.monotonic()
                    due, ends = self._summary_due(now_mono)
                    if due is not None and due <= 0:
                        summary = self._take_summary(now_mono, end=ends)
                        break
                    wait = self._heap[0][0] - time.time() if self._heap else None
                    if wait is not None and wait <= 0:
                        _, _, deliver = heapq.heappop(self._heap)
                        break
                    waits = [w for w in (wait, due) if w is not None]
                    self._cond.wait(min(waits) if waits else None)
                if self._stopping:
                    return
            self._report(summary)
            if deliver is None:
                continue
            try:
                deliver()
            except Exception:
                log.exception("OSC: delivering a timed message failed")


class _DatagramHandler(socketserver.BaseRequestHandler):
    """One datagram: handed whole to the OscServer that owns this socket."""

    server: _UDPServer

    def handle(self) -> None:
        self.server.owner._receive(self.request[0], self.client_address)


class _UDPServer(socketserver.UDPServer):
    """A UDP server that hands every datagram to its OscServer. socketserver's `handle_error`
    guards each one, so a bug in handling one message costs that message, never the server."""

    max_packet_size = 65507  # the UDP maximum; socketserver's 8 KiB would cut long bundles
    owner: OscServer

    def server_bind(self) -> None:
        # A burst (a fader sweep, a flood) lands in the kernel's receive buffer; when that is
        # full the kernel drops the newest datagrams, which are the ones that matter most.
        # Ask for room for about a second at 10,000 messages/s (the kernel may cap it).
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        except OSError:
            pass
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("OSC: error while handling a datagram from %s", client_address)


class OscServer:
    """Listens for OSC over UDP on cfg.host:cfg.port and puts each valid message into
    `controls` as Control(address, args, sender). Invalid ones are answered on /jadong/error.

    on_event("osc", address, args, sender) for each valid message (the app rate-limits these),
    on_event("error", source="osc", address, reason, sender) for each rejected one (a datagram
    that is not OSC, a malformed packet, an unknown address or type tag, a wrong argument).
    These are called on the server thread. Timed messages dropped because MAX_PENDING already
    wait are summarised instead: one "error" event per burst with `dropped` (the count) and
    `by` (per address), from the scheduler thread, and one reply per sender and burst.
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
        self._scheduler = _BundleScheduler(on_drops=self._report_drops)

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
            server = _UDPServer((host, port), _DatagramHandler)
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
                raise OscError(f"OSC: no permission to listen on UDP port {port} "
                               "(ports below 1024 need root)") from None
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

    def __enter__(self) -> OscServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> OscStats:
        with self._lock:
            return OscStats(self._received, self._rejected, self._malformed, self._replies_failed,
                            self._refused, self._scheduled_bundles, self._scheduler.pending(),
                            self._scheduler.dropped)

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
        except _REPLY_ERRORS as exc:
            with self._lock:
                self._replies_failed += 1
            log.warning("OSC: reply %s to %s failed: %s", address, target, exc)
            return False

    # --- receiving -------------------------------------------------------------------
    def _receive(self, data: bytes, client: Any) -> None:
        """Parses one datagram and delivers its messages (server thread). Parsed here with
        python-osc's packet parser rather than through its dispatcher, which drops unparsable
        packets and broken address patterns without a word: a performer deserves to know why
        nothing happened. Also where senders outside `osc.allow` are refused, and where bundles
        timed for the future are handed to the scheduler instead of blocking this thread."""
        sender = _sender(client)
        if sender is not None and not self._allowed(sender[0]):
            with self._lock:
                self._refused += 1
            self._reject(sender, _first_address(data),
                         f"sender {sender[0]} is not allowed to control this show (osc.allow)")
            return
        if not (osc_bundle.OscBundle.dgram_is_bundle(data) or osc_message.OscMessage.dgram_is_message(data)):
            # Not OSC at all (a port scan, a stray tool): noted, not answered.
            with self._lock:
                self._malformed += 1
            emit(self._on_event, "error", source="osc", address="", sender=_fmt_sender(sender),
                       reason=f"not an OSC message ({len(data)} bytes)")
            return
        try:
            check_packet(data)  # python-osc reads short floats and unknown type tags without a word
        except MalformedPacket as exc:
            self._reject(sender, exc.address, exc.reason)
            return
        try:
            packet = OscPacket(data)
        except Exception as exc:  # ParseError, or anything else python-osc raises on hostile input
            log.debug("OSC: unparsable packet from %s: %r", sender, exc)
            self._reject(sender, _first_address(data),
                         f"malformed OSC packet ({len(data)} bytes): truncated, or arguments that do not "
                         "match the type tags")
            return
        ok = True
        for timed in packet.messages:
            addr = timed.message.address
            if PATTERN_CHARS & set(addr):
                self._reject(sender, addr, "address patterns (* ? [ ] { }) are not supported; send the full address")
                ok = False
        if ok and any(t.time > time.time() + _LATE_ENOUGH_S for t in packet.messages):
            self._schedule(packet, client)
            return  # the scheduler delivers them, in time order, at their timetags
        if ok:
            for timed in packet.messages:
                self._on_message(client, timed.message.address, *timed.message.params)

    def _schedule(self, packet: OscPacket, client: Any) -> None:
        with self._lock:
            self._scheduled_bundles += 1
        for timed in packet.messages:
            delay = timed.time - time.time()
            if delay > MAX_BUNDLE_DELAY_S:
                self._reject(_sender(client), timed.message.address,
                             f"bundle timetag is {delay:.0f} s ahead; at most {MAX_BUNDLE_DELAY_S:.0f} s is accepted")
                continue

            def deliver(m: osc_message.OscMessage = timed.message) -> None:
                self._on_message(client, m.address, *m.params)

            address = shorten(timed.message.address, MAX_REPORTED_ADDRESS)
            if self._scheduler.add(timed.time, deliver, address, _sender(client)) is _Added.DROPPED_TELL:
                # Once per sender and burst: a flood of timed messages gets one answer, not thousands.
                self._tell(_sender(client), address,
                           f"{MAX_PENDING:,} timed messages are already waiting for their timetags; this one "
                           "and any more are dropped until some are delivered (the event log counts them)")

    def _report_drops(self, summary: DropSummary) -> None:
        """One event for a burst of dropped timed messages (scheduler thread)."""
        top = max(summary.by_address.items(), key=lambda kv: kv[1])[0] if summary.by_address else ""
        emit(self._on_event, "error", source="osc", address=top, sender=summary.sender, reason=summary.reason(),
             dropped=summary.dropped, by=summary.by_address)

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
            server.socket.sendto(build_bundle(messages), tuple(target[:2]))
            return True
        except _REPLY_ERRORS as exc:
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
        # Both cut short: a 65,000-character address must not become a 65,000-character
        # event log line or a reply too big for a datagram.
        address, reason = shorten(address, MAX_REPORTED_ADDRESS), shorten(reason, MAX_REASON_CHARS)
        with self._lock:
            self._rejected += 1
        emit(self._on_event, "error", source="osc", address=address, reason=reason, sender=_fmt_sender(sender))
        self._tell(sender, address, reason)

    def _tell(self, sender: tuple[str, int] | None, address: str, reason: str) -> None:
        """The /jadong/error reply. Never an error answered with an error: two programs that
        reply from their listening ports (two Jadongs, say) would bounce it between them forever."""
        if sender is not None and address.lower() != ERROR_ADDRESS and not self._is_self(sender):
            self.reply(sender, ERROR_ADDRESS, address, reason)

    def _is_self(self, sender: tuple[str, int]) -> bool:
        server = self._server
        return server is not None and sender == tuple(server.socket.getsockname()[:2])



def build_bundle(messages: list[tuple[str, tuple[Any, ...]]]) -> bytes:
    """Several messages as one immediate OSC bundle (the status feedback)."""
    bundle = OscBundleBuilder(IMMEDIATELY)
    for address, args in messages:
        builder = OscMessageBuilder(address=address)
        for a in args:
            builder.add_arg(a)
        bundle.add_content(builder.build())
    return bundle.build().dgram


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
