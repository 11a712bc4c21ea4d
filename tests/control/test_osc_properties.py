"""Property-based tests: generated OSC packets thrown at a running OscServer over loopback UDP.

Valid messages to every address with right and wrong types, cuts of valid messages and bundles
at every length, unknown type tags, packets up to ~65,000 bytes, nested bundles with timetags
from the past to hours ahead, and random bytes. For each, the server must:

- stay up, and still answer the next message (a sentinel sent after every packet);
- never change anything silently: every message becomes a Control in the queue, or gets a
  /jadong/error reply and an "error" event naming its address and the reason; bytes that are
  not OSC at all get an "error" event;
- never let an exception escape (socketserver's handler logs one) and never let python-osc
  misread or skip part of a packet (its root-logger warnings).

One server serves the whole module (Hypothesis runs many examples per test); a reader thread
drains the replies so the client's receive buffer never overflows. Example counts are small
enough that the file runs in a few seconds.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from pythonosc.parsing import ntp

from installation.control.addresses import ADDRESSES, ERROR_ADDRESS, Address, OscArgumentError, validate_args
from installation.control.osc import MAX_BUNDLE_DELAY_S, OscServer
from installation.control.packets import MalformedPacket, check_packet
from installation.core.channels import DropOldestQueue
from installation.core.messages import Control
from installation.show import OscConfig

WAIT = 5.0
IMMEDIATELY = b"\0\0\0\0\0\0\0\x01"

# Modest counts and no example database (nothing written into the working tree).
FEW = settings(max_examples=40, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
SOME = settings(FEW, max_examples=120)
MANY = settings(FEW, max_examples=400)  # in-process checks, no socket


# --- the running server ------------------------------------------------------------------------

@dataclass
class Outcome:
    """What one exchange caused: Controls queued, /jadong/error replies (address, reason),
    events."""

    controls: list[Control] = field(default_factory=list)
    replies: list[tuple[str, str]] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    osc_events: list[dict] = field(default_factory=list)


class LogProblems(logging.Handler):
    """Records what must never be logged: python-osc's root-logger warnings (it skipped part of
    a packet) and the server's errors (an exception escaped a handler)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        from_python_osc = record.name == "root" and record.levelno >= logging.WARNING
        escaped = record.name.startswith("installation") and record.levelno >= logging.ERROR
        unparsed = "unparsable packet" in record.getMessage()  # check_packet passed what python-osc refused
        if from_python_osc or escaped or unparsed:
            self.records.append(f"{record.name}: {record.getMessage()}")


class Rig:
    def __init__(self) -> None:
        self.controls: DropOldestQueue[Control] = DropOldestQueue("controls", 200_000)
        self._events: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.server = OscServer(OscConfig(host="127.0.0.1", port=0), self.controls, on_event=self._on_event)
        self.server.start()
        self.target = ("127.0.0.1", self.server.port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.replies: queue.Queue[bytes] = queue.Queue()
        self._reading = True
        self._reader = threading.Thread(target=self._read, name="test-osc-replies", daemon=True)
        self._reader.start()
        self._sentinels = itertools.count()
        self.problems = LogProblems()
        logging.getLogger().addHandler(self.problems)
        self._osc_logger_level = logging.getLogger("installation.control.osc").level
        logging.getLogger("installation.control.osc").setLevel(logging.DEBUG)

    def _on_event(self, event: str, **fields) -> None:
        with self._lock:
            self._events.append((event, fields))

    def _read(self) -> None:
        while self._reading:
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.replies.put(data)

    def close(self) -> None:
        logging.getLogger().removeHandler(self.problems)
        logging.getLogger("installation.control.osc").setLevel(self._osc_logger_level)
        self._reading = False
        self._reader.join(2)
        self.sock.close()
        self.server.stop()

    def exchange(self, *datagrams: bytes, settle_until: float = 0.0) -> Outcome:
        """Sends the datagrams, then (after `settle_until`, for timed bundles) a sentinel to an
        unknown address: its error reply comes after every reply the datagrams caused, as the
        server handles one datagram at a time and loopback keeps their order."""
        self.controls.drain()
        with self._lock:
            self._events.clear()
        for data in datagrams:
            self.sock.sendto(data, self.target)
        if settle_until:
            self._settle(settle_until)
        sentinel = f"/test/sentinel/{next(self._sentinels)}"
        self.sock.sendto(OscMessageBuilder(sentinel).build().dgram, self.target)
        out = Outcome()
        deadline = time.monotonic() + WAIT
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the server stopped answering"
            try:
                reply = OscMessage(self.replies.get(timeout=remaining))
            except queue.Empty:
                continue
            assert reply.address == ERROR_ADDRESS and len(reply.params) == 2, reply.params
            assert all(isinstance(p, str) for p in reply.params)
            if reply.params[0] == sentinel:
                break
            out.replies.append((reply.params[0], reply.params[1]))
        out.controls = self.controls.drain()
        with self._lock:
            events = list(self._events)
        out.errors = [f for e, f in events if e == "error" and f.get("address") != sentinel]
        out.osc_events = [f for e, f in events if e == "osc"]
        assert self.server.running, "the server thread died"
        assert not self.problems.records, self.problems.records
        return out

    def _settle(self, until: float) -> None:
        """Waits until the scheduler has delivered everything timed before `until`: nothing
        pending, and the server's counters still for 20 ms (the last one popped may still be
        on its way to the queue)."""
        time.sleep(max(0.0, until - time.time()) + 0.005)
        deadline = time.monotonic() + WAIT
        last, still_since = None, time.monotonic()
        while time.monotonic() < deadline:
            stats = self.server.stats()
            now = (stats.pending, stats.received, stats.rejected)
            if now != last:
                last, still_since = now, time.monotonic()
            elif stats.pending == 0 and time.monotonic() - still_since >= 0.02:
                return
            time.sleep(0.002)


@pytest.fixture(scope="module")
def rig():
    r = Rig()
    yield r
    r.close()
    assert not r.server.running


# --- strategies --------------------------------------------------------------------------------

ROWS = list(ADDRESSES.values())
# OSC strings cannot hold a zero byte; python-osc (rightly) cannot encode lone surrogates.
CHARS = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))


def words(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(CHARS, max_size=max_size)


def valid_arg(row: Address, i: int, code: str) -> st.SearchStrategy:
    limits = row.limits[i] if i < len(row.limits) else None
    if code == "f":
        lo, hi = limits or (-1e6, 1e6)
        return st.floats(lo, hi, width=32)
    if code == "i":
        lo, hi = limits or (-(2**31), 2**31 - 1)
        return st.integers(int(lo), int(hi))
    if code == "T":
        return st.booleans()
    if row.choices:
        return st.sampled_from(row.choices)
    assert row.max_chars is not None
    text = st.one_of(words(), st.integers(0, row.max_chars).map(lambda n: "w" * n))
    return st.one_of(text, st.integers(1, 99)) if code == "x" else text


@st.composite
def valid_messages(draw, rows: list[Address] = ROWS) -> tuple[Address, str, tuple]:
    """A row, the address as sent (any case) and arguments that fit it."""
    row = draw(st.sampled_from(rows))
    address = "".join(c.upper() if draw(st.booleans()) else c for c in row.path) if draw(st.booleans()) else row.path
    if row.kind == "value" and draw(st.integers(0, 4)) == 0:
        return row, address, ()  # a query
    return row, address, tuple(draw(valid_arg(row, i, code)) for i, code in enumerate(row.args))


ANY_ARG = st.one_of(
    st.integers(-(2**31), 2**31 - 1), st.integers(-(2**63), 2**63 - 1), st.floats(width=32),
    words(), st.booleans(), st.none(), st.binary(min_size=1, max_size=12),
)


def build(address: str, args: tuple) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def bundle(timetag: bytes, *elements: bytes) -> bytes:
    return b"#bundle\0" + timetag + b"".join(len(e).to_bytes(4, "big") + e for e in elements)


def timetag(t: float) -> bytes:
    return ntp.system_time_to_ntp(t)


def padded_address_length(data: bytes) -> int:
    n = data.index(b"\0") + 1
    return n + (-n % 4)


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def expect_one(out: Outcome, row: Address, sent_address: str, params: list) -> None:
    """The single message (sent_address, params) either became exactly one Control with the
    values the table makes of them, or exactly one reply and event naming it and the reason."""
    try:
        values = validate_args(row, params)
    except OscArgumentError as exc:
        assert out.controls == [], out.controls
        assert [a for a, _ in out.replies] == [sent_address] and str(exc) in out.replies[0][1]
        assert [(e["address"], e["reason"]) for e in out.errors] == out.replies
        return
    assert out.replies == [] and out.errors == []
    [control] = out.controls
    assert control.address == row.path and control.query == (row.kind == "value" and not params)
    assert len(control.args) == len(values) and all(same(a, b) for a, b in zip(control.args, values))
    assert [e["address"] for e in out.osc_events] == [row.path]


# --- properties over loopback ---------------------------------------------------------------------

@SOME
@given(valid_messages())
def test_valid_messages_become_exactly_their_controls(rig, message):
    row, address, args = message
    out = rig.exchange(build(address, args))
    assert out.replies == [] and out.errors == []
    [control] = out.controls
    assert control.address == row.path
    expected = validate_args(row, args)
    assert all(same(a, b) for a, b in zip(control.args, expected)) and len(control.args) == len(expected)


@SOME
@given(st.sampled_from(ROWS), st.lists(ANY_ARG, max_size=3), st.booleans())
def test_wrong_types_and_counts_are_refused_or_exactly_understood(rig, row, args, upper):
    address = row.path.upper() if upper else row.path
    data = build(address, tuple(args))
    out = rig.exchange(data)
    expect_one(out, row, address, OscMessage(data).params)


@FEW
@given(st.one_of(valid_messages(), st.tuples(st.sampled_from(ROWS), st.none(), st.lists(ANY_ARG, max_size=3))))
def test_every_cut_of_a_message_is_refused_unless_it_is_the_bare_address(rig, drawn):
    row, address, args = drawn
    address = address or row.path
    data = build(address, tuple(args))
    cuts = [data[:n] for n in range(1, len(data))]
    out = rig.exchange(*cuts)
    # The bare address is a message without arguments: a query, an action, or "expected 1 argument".
    try:
        validate_args(row, ())
        bare_controls, bare_replies = 1, 0
    except OscArgumentError:
        bare_controls, bare_replies = 0, 1
    assert len(out.controls) == bare_controls
    assert all(c.args == () for c in out.controls)
    assert len(out.replies) == len(cuts) - 1 + bare_replies
    malformed = [r for r in out.replies if "malformed OSC packet" in r[1]]
    assert len(malformed) == len(cuts) - 1
    for reply_address, reason in malformed:
        assert address.startswith(reply_address) and reply_address, (reply_address, reason)
    assert len(out.errors) == len(out.replies)
    assert len(out.osc_events) == bare_controls


@FEW
@given(st.lists(valid_messages(), min_size=1, max_size=3))
def test_every_cut_of_a_bundle_delivers_whole_elements_or_is_refused(rig, messages):
    elements = [build(address, args) for _, address, args in messages]
    data = bundle(IMMEDIATELY, *elements)
    boundaries = {16}  # an empty bundle: valid, and does nothing
    end = 16
    for e in elements:
        end += 4 + len(e)
        boundaries.add(end)
    cuts = [data[:n] for n in range(1, len(data))]
    out = rig.exchange(*cuts)
    not_osc = [c for c in cuts if not c.startswith(b"#bundle\0")]
    whole = [len(c) for c in cuts if len(c) in boundaries]
    assert len(out.controls) == sum(sorted(boundaries).index(n) for n in whole)
    assert len(out.replies) == len(cuts) - len(not_osc) - len(whole)
    assert all("malformed OSC packet" in reason for _, reason in out.replies)
    assert sum("not an OSC message" in e["reason"] for e in out.errors) == len(not_osc)


TAGS = st.text(st.sampled_from("ifdhsbrmtTFNcSI[]qxyZ?,"), min_size=1, max_size=6)


@SOME
@given(st.sampled_from(ROWS), TAGS, st.binary(max_size=40))
def test_any_type_tags_are_understood_or_refused_naming_the_address(rig, row, tags, payload):
    tag_string = ("," + tags).encode()
    tag_string += b"\0" * (4 - len(tag_string) % 4)
    data = build(row.path, ())[:padded_address_length(build(row.path, ()))] + tag_string + payload
    out = rig.exchange(data)
    try:
        check_packet(data)
    except MalformedPacket as exc:
        assert out.controls == [] and out.replies == [(row.path, exc.reason)]
        if set(tags) - set("ifdhsbrmtTFN[]"):
            assert "type tag" in exc.reason
        return
    assert not set(tags) - set("ifdhsbrmtTFN[]"), "a tag python-osc skips was let through"
    expect_one(out, row, row.path, OscMessage(data).params)


@dataclass(frozen=True)
class Leaf:
    """A message in a generated bundle: its row, the arguments python-osc reads, and whether
    its innermost bundle is timed more than MAX_BUNDLE_DELAY_S ahead (refused)."""

    row: Address
    params: tuple
    far: bool


@st.composite
def nested_bundles(draw, depth: int = 0) -> tuple[bytes, list[Leaf], bool]:
    """A bundle nested up to 3 deep, its messages, and whether any bundle in it is timed
    ahead (its messages then go through the scheduler). python-osc times each message by its
    innermost bundle: past, immediate, a few ms ahead, or hours ahead."""
    now = time.time()
    kind = draw(st.sampled_from(["immediately", "past", "soon", "far"]))
    when = {"immediately": now, "past": now - draw(st.floats(0.01, 1e5)),
            "soon": now + draw(st.floats(0.0, 0.02)), "far": now + MAX_BUNDLE_DELAY_S + draw(st.floats(60, 1e6))}[kind]
    tag = IMMEDIATELY if kind == "immediately" else timetag(when)
    elements: list[bytes] = []
    leaves: list[Leaf] = []
    ahead = kind in ("soon", "far")
    for _ in range(draw(st.integers(0, 3))):
        if depth < 2 and draw(st.integers(0, 3)) == 0:
            inner, inner_leaves, inner_ahead = draw(nested_bundles(depth + 1))
            elements.append(inner)
            leaves += inner_leaves
            ahead = ahead or inner_ahead
        else:
            row = draw(st.sampled_from(ROWS))
            args = draw(st.one_of(valid_messages([row]).map(lambda m: m[2]), st.lists(ANY_ARG, max_size=2)))
            elements.append(build(row.path, tuple(args)))
            leaves.append(Leaf(row, tuple(OscMessage(elements[-1]).params), far=kind == "far"))
    return bundle(tag, *elements), leaves, ahead


@SOME
@given(nested_bundles())
def test_nested_and_timed_bundles_account_for_every_message(rig, drawn):
    data, leaves, ahead = drawn
    out = rig.exchange(data, settle_until=time.time() + 0.03 if ahead else 0.0)
    refused, valid = [], 0
    for leaf in leaves:
        if leaf.far:
            refused.append(leaf.row.path)
            continue
        try:
            validate_args(leaf.row, leaf.params)
            valid += 1
        except OscArgumentError:
            refused.append(leaf.row.path)
    assert len(out.controls) == valid
    assert sorted(a for a, _ in out.replies) == sorted(refused)
    far = [r for _, r in out.replies if "timetag" in r]
    assert len(far) == sum(leaf.far for leaf in leaves) and all("s ahead" in r for r in far)
    assert len(out.errors) == len(out.replies)
    assert rig.server.stats().pending == 0


@FEW
@given(st.integers(1_000, 64_900), st.sampled_from(["prompt", "bundle", "bytes", "unknown"]), st.binary(max_size=64))
def test_huge_packets_are_refused_or_delivered_whole(rig, size, kind, noise):
    if kind == "prompt":
        data = build("/jadong/prompt", ("p" * (size + 1),))  # one more than the limit, at least
        out = rig.exchange(data)
        assert out.controls == [] and len(out.replies) == 1
        assert "at most 1000 characters" in out.replies[0][1]
    elif kind == "bundle":
        one = build("/jadong/seed", (7,))
        count = (size - 16) // (4 + len(one))
        out = rig.exchange(bundle(IMMEDIATELY, *[one] * count))
        assert len(out.controls) == count and out.replies == []
    elif kind == "unknown":
        out = rig.exchange(build("/jadong/" + "u" * size, (1,)))
        assert out.controls == [] and len(out.replies) == 1
        assert len(out.replies[0][0]) <= 200 and "unknown address" in out.replies[0][1]
    else:
        data = (b"/jadong/prompt\0\0,s\0\0" + noise * (size // max(1, len(noise))))[:size]
        out = rig.exchange(data)
        assert len(out.controls) + len(out.replies) == 1
    for address, reason in out.replies:
        assert len(address) <= 200 and len(reason) <= 1000
    for e in out.errors + out.osc_events:
        assert len(str(e)) < 2500


PREFIXES = st.sampled_from([b"", b"/", b"/jadong/strength\0\0\0\0,", b"/jadong/prompt\0\0", b"#bundle\0",
                            b"#bundle\0" + IMMEDIATELY, b"#bundle\0" + IMMEDIATELY + b"\0\0\0\x10"])


@SOME
@given(PREFIXES, st.binary(max_size=120))
def test_random_bytes_never_change_anything_silently(rig, prefix, noise):
    data = prefix + noise
    out = rig.exchange(data)
    if not (data.startswith(b"/") or data.startswith(b"#bundle\0")):
        assert out.controls == [] and out.replies == []
        assert [e["reason"] for e in out.errors] == [f"not an OSC message ({len(data)} bytes)"]
        return
    try:
        check_packet(data)
        messages = len(OscPacket(data).messages)
    except MalformedPacket as exc:
        assert out.controls == [] and out.replies == [(exc.address, exc.reason)]
        return
    # Well-formed: each message is a Control or a refusal (a far-future bundle is refused too).
    assert len(out.controls) + len(out.replies) == messages or rig.server.stats().pending
    for c in out.controls:
        validate_args(ADDRESSES[c.address], c.args)  # only what the table allows reaches the show
    assert len(out.errors) == len(out.replies)


@FEW
@given(st.binary(max_size=64))
def test_the_server_still_takes_a_valid_message_afterwards(rig, noise):
    out = rig.exchange(noise, b"/" + noise, b"#bundle\0" + noise, build("/jadong/strength", (0.5,)))
    assert out.controls[-1].address == "/jadong/strength" and out.controls[-1].args == (0.5,)


# --- in process: the check against python-osc ---------------------------------------------------

@MANY
@given(st.one_of(st.binary(max_size=80), PREFIXES.flatmap(lambda p: st.binary(max_size=80).map(lambda b: p + b))))
def test_what_the_check_passes_python_osc_parses_without_a_warning(data):
    if not (data.startswith(b"/") or data.startswith(b"#bundle\0")):
        return
    try:
        check_packet(data)
    except MalformedPacket as exc:
        assert exc.reason.startswith("malformed OSC packet") and len(exc.address) <= 200
        return
    problems = LogProblems()
    logging.getLogger().addHandler(problems)
    try:
        OscPacket(data)  # raises if the check let through what python-osc cannot parse
    finally:
        logging.getLogger().removeHandler(problems)
    assert not problems.records


@MANY
@given(valid_messages(), st.lists(valid_messages(), max_size=3))
def test_what_python_osc_builds_passes_the_check(message, more):
    _, address, args = message
    check_packet(build(address, args))
    check_packet(bundle(IMMEDIATELY, *[build(a, x) for _, a, x in more]))
