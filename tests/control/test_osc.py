"""The OSC server over real UDP on loopback: python-osc clients bound to a local port so they
can read the replies, raw sockets for broken datagrams, and liblo's oscsend as an independent
client."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg
from pythonosc.udp_client import SimpleUDPClient

from installation.control.addresses import (
    ADDRESSES,
    ERROR_ADDRESS,
    Address,
    OscArgumentError,
    address_help,
    address_table_markdown,
    lookup,
    validate_args,
)
from installation.control.osc import OscError, OscServer
from installation.core.channels import DropOldestQueue
from installation.core.messages import Control
from installation.show import OscConfig

WAIT = 3.0  # generous: other test suites share the two cores


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields) -> None:
        with self._lock:
            self.items.append((event, fields))

    def of(self, event: str) -> list[dict]:
        with self._lock:
            return [f for e, f in self.items if e == event]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def controls() -> DropOldestQueue[Control]:
    return DropOldestQueue("controls", 64)


@pytest.fixture
def server(controls, events, no_thread_leak):
    srv = OscServer(OscConfig(host="127.0.0.1", port=0), controls, on_event=events)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    """A python-osc client whose socket is bound, so replies to its port reach it."""
    c = SimpleUDPClient("127.0.0.1", server.port)
    c._sock.bind(("127.0.0.1", 0))
    yield c
    c.close()


def local(c: SimpleUDPClient) -> tuple[str, int]:
    return c._sock.getsockname()


def next_reply(c: SimpleUDPClient) -> OscMessage:
    data = c.receive(WAIT)
    assert data, "no reply came back"
    return OscMessage(data)


def next_control(q: DropOldestQueue[Control]) -> Control:
    item = q.get(timeout=WAIT)
    assert item is not None, "no control arrived"
    return item


# --- the table -----------------------------------------------------------------------------

def test_table_has_the_first_addresses():
    assert ADDRESSES["/jadong/prompt"].args == "s" and ADDRESSES["/jadong/prompt"].kind == "value"
    assert ADDRESSES["/jadong/strength"].args == "f" and ADDRESSES["/jadong/strength"].limits == ((0.0, 1.0),)
    assert ADDRESSES["/jadong/quit"].args == "" and ADDRESSES["/jadong/quit"].kind == "action"
    for path, row in ADDRESSES.items():
        assert path == row.path and row.help
    for text in (address_help(), address_table_markdown()):
        assert all(path in text for path in ADDRESSES)
    assert "| `/jadong/strength` | float 0–1 | value (no argument: query) |" in address_table_markdown()
    assert lookup("/JADONG/Prompt") is ADDRESSES["/jadong/prompt"]


def test_rows_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="lower case"):
        Address("/Jadong/X", "", "x")
    with pytest.raises(ValueError, match="type codes"):
        Address("/jadong/x", "q", "x")
    with pytest.raises(ValueError, match="more limits"):
        Address("/jadong/x", "", "x", limits=((0, 1),))


@pytest.mark.parametrize("args, expected", [
    ((1,), (1.0,)),  # ints are accepted where a number is expected
    ((0,), (0.0,)),
    ((0.25,), (0.25,)),
])
def test_strength_accepts_numbers(args, expected):
    got = validate_args(ADDRESSES["/jadong/strength"], args)
    assert got == expected and isinstance(got[0], float)


@pytest.mark.parametrize("args, reason", [
    ((1.5,), "expected a value from 0 to 1, got 1.5"),
    ((-0.1,), "from 0 to 1"),
    (("loud",), "expected a number, got string 'loud'"),
    ((True,), "expected a number"),
    ((float("nan"),), "finite"),
    ((0.5, 0.5), "got 2"),
])
def test_strength_refuses_with_a_reason(args, reason):
    with pytest.raises(OscArgumentError) as err:
        validate_args(ADDRESSES["/jadong/strength"], args)
    assert reason in str(err.value)


def test_integer_and_boolean_codes():
    row = Address("/jadong/t", "iT", "test", limits=((1, 50),))
    assert validate_args(row, (3.0, 1)) == (3, True)
    with pytest.raises(OscArgumentError, match="argument 1: expected an integer"):
        validate_args(row, (2.5, True))
    with pytest.raises(OscArgumentError, match="argument 2: expected true or false"):
        validate_args(row, (3, "yes"))
    with pytest.raises(OscArgumentError, match="argument 1: expected a value from 1 to 50"):
        validate_args(row, (0, True))


# --- over UDP ------------------------------------------------------------------------------

def test_valid_messages_become_controls(server, client, controls, events):
    assert server.port > 0
    client.send_message("/jadong/prompt", "a red fox in snow")
    client.send_message("/jadong/strength", 1)  # an int, as many senders do
    client.send_message("/jadong/strength", 0.1)
    client.send_message("/jadong/quit", None)
    got = [next_control(controls) for _ in range(4)]
    assert [(c.address, c.args) for c in got[:2]] == [
        ("/jadong/prompt", ("a red fox in snow",)),
        ("/jadong/strength", (1.0,)),
    ]
    assert got[2].args[0] == pytest.approx(0.1, abs=1e-6)  # OSC floats are 32-bit
    assert got[3].address == "/jadong/quit" and got[3].args == ()
    assert all(c.sender == local(client) for c in got)
    seen = events.of("osc")
    assert [e["address"] for e in seen] == ["/jadong/prompt", "/jadong/strength", "/jadong/strength", "/jadong/quit"]
    assert seen[0]["args"] == ["a red fox in snow"]
    assert events.of("error") == []
    assert server.stats().received == 4


def test_addresses_are_case_insensitive(server, client, controls):
    client.send_message("/JADONG/Prompt", "loud")
    c = next_control(controls)
    assert c.address == "/jadong/prompt" and c.args == ("loud",)


def test_unknown_address_gets_an_error_reply_from_the_server_port(server, client, controls, events):
    client.send_message("/jadong/nope", 3)
    client._sock.settimeout(WAIT)
    data, origin = client._sock.recvfrom(65535)
    reply = OscMessage(data)
    assert origin == ("127.0.0.1", server.port)
    assert reply.address == ERROR_ADDRESS
    assert len(reply.params) == 2 and all(isinstance(p, str) for p in reply.params)
    assert reply.params[0] == "/jadong/nope"
    assert "unknown address" in reply.params[1] and "/jadong/prompt" in reply.params[1]
    assert controls.get_nowait() is None
    err = events.of("error")[0]
    assert err["source"] == "osc" and err["address"] == "/jadong/nope" and "unknown address" in err["reason"]


@pytest.mark.parametrize("address, value, reason", [
    ("/jadong/strength", "loud", "expected a number, got string 'loud'"),
    ("/jadong/strength", 2.0, "expected a value from 0 to 1"),
    ("/jadong/prompt", 42, "expected a string, got int 42"),
    ("/jadong/prompt/append", None, "expected 1 argument (s), got 0"),
    ("/jadong/mode", "sideways", "expected one of img2img, txt2img, feedback, got 'sideways'"),
    ("/jadong/steps", 0, "expected a value from 1 to 50, got 0"),
    ("/jadong/cue/go", 1.5, "expected a name or a number, got float 1.5"),
    ("/jadong/quit", "now", "expected no arguments, got 1"),
])
def test_wrong_type_arity_or_range_gets_an_error_reply(server, client, controls, address, value, reason):
    client.send_message(address, value)
    reply = next_reply(client)
    assert reply.address == ERROR_ADDRESS
    assert reply.params[0] == address
    assert reason in reply.params[1]
    assert "usage: " + ADDRESSES[address].signature in reply.params[1]
    assert controls.get_nowait() is None


def test_garbage_does_not_kill_the_server(server, client, controls, events):
    raw = client._sock
    target = ("127.0.0.1", server.port)
    raw.sendto(b"\x00\xff not osc at all", target)
    raw.sendto(b"", target)
    raw.sendto(b"#bundle\0\x01", target)  # a cut-off bundle header
    raw.sendto(b"/jadong/prompt\0\0,s\0\0ab", target)  # string argument cut off
    raw.sendto(b"/jadong/prompt\0\0,i\0\0\0", target)  # integer argument cut off
    client.send_message("/jadong/prompt", "still here")
    assert next_control(controls).args == ("still here",)
    assert server.running
    # Non-OSC bytes are noted but never answered; broken OSC is answered.
    replies = [next_reply(client) for _ in range(3)]
    assert [r.address for r in replies] == [ERROR_ADDRESS] * 3
    assert "malformed OSC packet" in replies[1].params[1] and replies[1].params[0] == "/jadong/prompt"
    assert server.stats().malformed >= 2
    assert any("not an OSC message" in e["reason"] for e in events.of("error"))


def test_no_reply_to_plain_garbage(server, client):
    client._sock.sendto(b"hello?", ("127.0.0.1", server.port))
    client.send_message("/jadong/unknown", None)
    # Datagrams on loopback keep their order: the first reply must be for the second one.
    assert next_reply(client).params[0] == "/jadong/unknown"


def test_an_error_is_never_answered_with_an_error(server, client):
    client.send_message(ERROR_ADDRESS, ["/x", "some reason"])
    client.send_message("/jadong/unknown", None)
    assert next_reply(client).params[0] == "/jadong/unknown"


def test_bundles_deliver_each_message(server, client, controls):
    bundle = OscBundleBuilder(IMMEDIATELY)
    bundle.add_content(build_msg("/jadong/prompt", "moss"))
    bundle.add_content(build_msg("/jadong/strength", 0.5))
    client.send(bundle.build())
    got = {next_control(controls).address for _ in range(2)}
    assert got == {"/jadong/prompt", "/jadong/strength"}


def test_address_patterns_are_refused_clearly(server, client, controls):
    client.send_message("/jadong/*", "x")
    reply = next_reply(client)
    assert reply.params[0] == "/jadong/*" and "patterns" in reply.params[1]
    client.send_message("/jadong/[", "x")  # a broken pattern python-osc would drop silently
    assert "patterns" in next_reply(client).params[1]
    assert controls.get_nowait() is None


def test_reply_goes_out_from_the_server_port(server, client):
    assert server.reply(local(client), "/jadong/status", "ok", 3, 0.5) is True
    client._sock.settimeout(WAIT)
    data, origin = client._sock.recvfrom(65535)
    assert origin == ("127.0.0.1", server.port)
    msg = OscMessage(data)
    assert msg.address == "/jadong/status" and msg.params[:2] == ["ok", 3]


def test_a_broken_event_handler_does_not_stop_the_server(controls, no_thread_leak):
    def explode(event, **fields):
        raise RuntimeError("event sink broke")

    with OscServer(OscConfig(port=0), controls, on_event=explode) as srv:
        with SimpleUDPClient("127.0.0.1", srv.port) as c:
            c.send_message("/jadong/prompt", "one")
            c.send_message("/jadong/prompt", "two")
            assert next_control(controls).args == ("one",)
            assert next_control(controls).args == ("two",)


def test_an_error_while_delivering_does_not_stop_the_server(no_thread_leak, caplog):
    """Messages are delivered from the pre-check, which socketserver runs outside its own error
    handling: whatever goes wrong with one message, the next one still arrives."""

    class BreaksOnce(DropOldestQueue):
        broke = False

        def put(self, item):
            if not self.broke:
                self.broke = True
                raise RuntimeError("queue broke")
            return super().put(item)

    queue = BreaksOnce("controls", 16)
    with caplog.at_level("ERROR", logger="installation.control.osc"):
        with OscServer(OscConfig(port=0), queue) as srv:
            with SimpleUDPClient("127.0.0.1", srv.port) as c:
                c.send_message("/jadong/prompt", "one")
                c.send_message("/jadong/prompt", "two")
                assert next_control(queue).args == ("two",)
                assert srv.running
    assert "queue broke" in caplog.text


def test_full_control_queue_drops_the_oldest(events, no_thread_leak):
    small: DropOldestQueue[Control] = DropOldestQueue("controls", 2)
    with OscServer(OscConfig(port=0), small, on_event=events) as srv:
        with SimpleUDPClient("127.0.0.1", srv.port) as c:
            for i in range(5):
                c.send_message("/jadong/prompt", f"p{i}")
            c.send_message("/jadong/quit", None)
            # the quit is the sixth valid message; once it is logged, all have been queued
            deadline_ok = _wait_for(lambda: len(events.of("osc")) == 6)
    assert deadline_ok
    assert [c.args for c in small.drain()] == [("p4",), ()]
    assert small.stats().dropped == 4


def _wait_for(cond, timeout: float = WAIT) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if cond():
            return True
        done.wait(0.02)
    return cond()


# --- lifecycle -----------------------------------------------------------------------------

def test_stop_joins_the_thread_and_frees_the_port(controls, no_thread_leak):
    srv = OscServer(OscConfig(port=0), controls)
    srv.start()
    port = srv.port
    assert any(t.name == f"osc-server:{port}" for t in threading.enumerate())
    srv.stop()
    assert not srv.running
    assert not any(t.name.startswith("osc-server") for t in threading.enumerate())
    srv.stop()  # twice is harmless
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))  # the port is free again
    assert srv.reply(("127.0.0.1", port), "/x") is False  # not running: dropped, no exception


def test_port_in_use_is_a_clear_error(controls, no_thread_leak):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        srv = OscServer(OscConfig(port=port), controls)
        with pytest.raises(OscError, match=rf"UDP port {port} on 127.0.0.1 is already in use") as err:
            srv.start()
    assert isinstance(err.value, OSError)  # the app catches OSError around start()
    assert not srv.running


def test_bad_host_is_a_clear_error(controls):
    with pytest.raises(OscError, match="osc.host"):
        OscServer(OscConfig(host="192.0.2.1", port=0), controls).start()  # TEST-NET: not ours


def test_start_twice_is_refused(server):
    with pytest.raises(OscError, match="already running"):
        server.start()


# --- an independent client -----------------------------------------------------------------

@pytest.mark.skipif(shutil.which("oscsend") is None, reason="oscsend comes with liblo-tools (`make setup`)")
def test_liblo_oscsend_is_understood(server, controls):
    def oscsend(*args: str) -> None:
        subprocess.run(["oscsend", "127.0.0.1", str(server.port), *args], check=True, timeout=10)

    oscsend("/jadong/prompt", "s", "a lantern in fog")
    oscsend("/jadong/strength", "i", "1")
    oscsend("/jadong/strength", "f", "0.1")
    oscsend("/Jadong/Quit")
    got = [next_control(controls) for _ in range(4)]
    assert got[0].args == ("a lantern in fog",)
    assert got[1].args == (1.0,)
    assert got[2].args[0] == pytest.approx(0.1, abs=1e-6)
    assert got[3].address == "/jadong/quit"
    assert got[0].sender[0] == "127.0.0.1"


# --- strict argument checks (issue #15) ----------------------------------------------------

def _raw(client: SimpleUDPClient, server: OscServer, data: bytes) -> None:
    client._sock.sendto(data, ("127.0.0.1", server.port))


def test_a_truncated_float_is_refused_not_read_as_zero(server, client, controls, events):
    """python-osc pads a float cut short with zero bytes: the strength became 0.0, silently."""
    _raw(client, server, b"/jadong/strength\0\0\0\0,f\0\0")
    _raw(client, server, b"/jadong/strength\0\0\0\0,f\0\0\x3f\x00")  # two of its four bytes
    for _ in range(2):
        reply = next_reply(client)
        assert reply.address == ERROR_ADDRESS and reply.params[0] == "/jadong/strength"
        assert "malformed OSC packet" in reply.params[1] and "argument 1" in reply.params[1]
        assert "truncated" in reply.params[1]
    client.send_message("/jadong/prompt", "after")
    assert next_control(controls).args == ("after",)  # nothing came before it
    assert [e["address"] for e in events.of("error")] == ["/jadong/strength"] * 2
    assert events.of("osc")[0]["address"] == "/jadong/prompt"


def test_unknown_type_tags_are_refused_clearly(server, client, controls, caplog):
    """python-osc skips a type tag it does not know with a root-logger warning, and reads the
    arguments after it from the wrong bytes."""
    with caplog.at_level("WARNING"):
        _raw(client, server, b"/jadong/strength\0\0\0\0,qf\0" + b"\x3f\x00\x00\x00")
        reply = next_reply(client)
        _raw(client, server, b"/jadong/prompt\0\0,c\0\0\0\0\0a")  # a char: OSC has it, python-osc skips it
        reply_c = next_reply(client)
    assert reply.params[0] == "/jadong/strength" and "type tag 'q'" in reply.params[1]
    assert reply_c.params[0] == "/jadong/prompt" and "type tag 'c'" in reply_c.params[1]
    assert "Unhandled parameter type" not in caplog.text
    assert controls.get_nowait() is None


def test_a_broken_message_inside_a_bundle_refuses_the_bundle(server, client, controls):
    good = build_msg("/jadong/prompt", "moss").dgram
    cut = b"/jadong/strength\0\0\0\0,f\0\0"
    bundle = b"#bundle\0" + b"\0\0\0\0\0\0\0\x01"
    for element in (good, cut):
        bundle += len(element).to_bytes(4, "big") + element
    _raw(client, server, bundle)
    reply = next_reply(client)
    assert reply.params[0] == "/jadong/strength" and "truncated" in reply.params[1]
    assert "bundle" in reply.params[1]
    client.send_message("/jadong/quit", None)
    assert next_control(controls).address == "/jadong/quit"  # the moss never arrived


def test_trailing_bytes_after_the_arguments_are_refused(server, client, controls):
    """`,` with a float's bytes after it would have been read as a query of strength."""
    _raw(client, server, b"/jadong/strength\0\0\0\0,\0\0\0\x3f\x00\x00\x00")
    reply = next_reply(client)
    assert reply.params[0] == "/jadong/strength" and "after the last argument" in reply.params[1]
    assert controls.get_nowait() is None


# --- bounded strings (issue #15) -----------------------------------------------------------

STRING_ADDRESSES = [p for p, r in ADDRESSES.items() if set(r.args) & set("sx")]


def test_every_string_argument_has_a_limit():
    from installation.show import MAX_NAME_CHARS, MAX_PROMPT_CHARS

    assert STRING_ADDRESSES
    for path in STRING_ADDRESSES:
        assert ADDRESSES[path].max_chars in (MAX_PROMPT_CHARS, MAX_NAME_CHARS), path
    assert ADDRESSES["/jadong/prompt"].max_chars == MAX_PROMPT_CHARS
    assert ADDRESSES["/jadong/cue/go"].max_chars == MAX_NAME_CHARS
    with pytest.raises(ValueError, match="max_chars"):
        Address("/jadong/x", "s", "x")
    assert "at most 1000 characters" in address_table_markdown()


@pytest.mark.parametrize("address", STRING_ADDRESSES)
def test_over_long_strings_are_refused_naming_the_limit(server, client, controls, events, address):
    row = ADDRESSES[address]
    limit = row.max_chars

    def args(text: str) -> list:  # the row's string arguments `text`, the others valid
        return [text if code in "sx" else {"i": 1, "f": 0.5, "T": True}[code] for code in row.args]

    client.send_message(address, args("x" * (limit + 1)))
    reply = next_reply(client)
    assert reply.address == ERROR_ADDRESS and reply.params[0] == address
    assert f"at most {limit} characters" in reply.params[1] and str(limit + 1) in reply.params[1]
    assert controls.get_nowait() is None
    if not row.choices:  # a mode or an override is one of a few words: the longest is refused there
        client.send_message(address, args("y" * limit))
        next_control(controls)


def test_a_65400_character_prompt_leaves_small_replies_and_events(server, client, controls, events):
    client.send_message("/jadong/prompt", "w" * 65_400)
    assert "at most 1000 characters" in next_reply(client).params[1]
    client.send_message("/jadong/strength", "s" * 65_000)  # the wrong type, and huge
    assert len(next_reply(client).params[1]) < 500
    client.send_message("/jadong/" + "a" * 65_000, None)  # an unknown address, and huge
    reply = next_reply(client)
    assert len(reply.params[0]) <= 200 and len(reply.params[1]) < 1500
    assert controls.get_nowait() is None
    for e in events.of("error"):
        assert len(str(e)) < 2000, e


def test_event_fields_for_valid_messages_are_bounded_by_the_limits(server, client, controls, events):
    client.send_message("/jadong/prompt", "z" * 1000)
    next_control(controls)
    assert len(str(events.of("osc")[0])) < 1300


# --- too many timed messages (issue #15) ---------------------------------------------------

def _timed_bundle(when: float, n: int) -> bytes:
    bundle = OscBundleBuilder(when)
    for i in range(n):
        bundle.add_content(build_msg("/jadong/seed", i))
    return bundle.build().dgram


def test_dropped_timed_messages_are_summarised_not_warned_one_by_one(controls, events, no_thread_leak,
                                                                      monkeypatch, caplog):
    import time

    from installation.control import osc

    monkeypatch.setattr(osc, "MAX_PENDING", 5)
    monkeypatch.setattr(osc, "DROP_QUIET_S", 0.2)
    with caplog.at_level("WARNING", logger="installation.control.osc"):
        with OscServer(OscConfig(port=0), controls, on_event=events) as srv:
            with SimpleUDPClient("127.0.0.1", srv.port) as c:
                c._sock.bind(("127.0.0.1", 0))
                later = time.time() + 600
                for _ in range(6):
                    c._sock.sendto(_timed_bundle(later, 4), ("127.0.0.1", srv.port))  # 24: 5 wait, 19 dropped
                reply = next_reply(c)
                assert reply.params[0] == "/jadong/seed" and "5 timed messages" in reply.params[1]
                assert _wait_for(lambda: any("dropped" in e["reason"] for e in events.of("error")))
                c._sock.settimeout(0.3)
                with pytest.raises(OSError):  # one reply per burst, not one per message
                    c._sock.recvfrom(65535)
                assert srv.stats().pending == 5 and srv.stats().dropped_timed == 19
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    [summary] = [e for e in events.of("error") if "dropped" in e["reason"]]
    assert summary["source"] == "osc" and summary["dropped"] == 19
    assert summary["address"] == "/jadong/seed" and "19 timed messages dropped" in summary["reason"]


def test_a_long_drop_burst_is_summarised_every_window_with_one_warning(monkeypatch, caplog):
    import time

    from installation.control import osc

    monkeypatch.setattr(osc, "MAX_PENDING", 1)
    monkeypatch.setattr(osc, "DROP_SUMMARY_S", 0.15)
    summaries: list = []
    scheduler = osc._BundleScheduler(on_drops=summaries.append)
    scheduler.start()
    try:
        with caplog.at_level("WARNING", logger="installation.control.osc"):
            assert scheduler.add(time.time() + 600, lambda: None, "/jadong/seed", ("127.0.0.1", 1)) is osc._Added.QUEUED
            told = []
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                told.append(scheduler.add(time.time() + 600, lambda: None, "/jadong/seed", ("127.0.0.1", 1)))
                time.sleep(0.005)
            assert _wait_for(lambda: len(summaries) >= 3)
    finally:
        scheduler.stop()
    assert told[0] is osc._Added.DROPPED_TELL and set(told[1:]) == {osc._Added.DROPPED}  # one reply per burst
    assert sum(s.dropped for s in summaries) == len(told) == scheduler.dropped
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    assert summaries[0].by_address == {"/jadong/seed": summaries[0].dropped}
