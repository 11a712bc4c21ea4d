"""The strict OSC argument check (control/packets.py) on its own, without a socket: what it
refuses, with which address and reason, and that what python-osc builds always passes."""

from __future__ import annotations

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder, build_msg

from installation.control.packets import BUNDLE_ADDRESS, MAX_BUNDLE_DEPTH, MalformedPacket, check_packet


def message(address: str, *args, tags: str | None = None) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a) if tags is None else b.add_arg(a, tags[len(b.args)])
    return b.build().dgram


def bundle(*elements: bytes, timetag: bytes = b"\0\0\0\0\0\0\0\x01") -> bytes:
    out = b"#bundle\0" + timetag
    for e in elements:
        out += len(e).to_bytes(4, "big") + e
    return out


def refused(data: bytes) -> MalformedPacket:
    with pytest.raises(MalformedPacket) as err:
        check_packet(data)
    assert err.value.reason.startswith(f"malformed OSC packet ({len(data)} bytes): ")
    return err.value


@pytest.mark.parametrize("data", [
    message("/jadong/strength", 0.5),
    message("/jadong/prompt", "a fox", tags="s"),
    message("/jadong/x", 1, 2**40, 1.5, "s", b"blob", True, False, None, tags="ihdsbTFN"),
    b"/jadong/x\0\0\0,rmt\0\0\0\0" + bytes(16),  # colour, MIDI, timetag: 4 + 4 + 8 bytes
    message("/jadong/x", [1, ["a"]]),
    message("/jadong/quit"),
    b"/jadong/quit\0\0\0\0",  # no type tag string at all: old senders do this
    bundle(),
    bundle(message("/jadong/seed", 1), bundle(message("/jadong/seed", 2))),
])
def test_well_formed_packets_pass(data):
    check_packet(data)


def test_every_cut_of_a_message_is_refused_but_the_bare_address():
    data = message("/jadong/x", 0.25, "words", 7, b"\1\2\3", 2.5, tags="fsibd")
    address_end = len(b"/jadong/x\0\0\0")
    for cut in range(1, len(data)):
        if cut == address_end:
            check_packet(data[:cut])  # the address alone: a message without arguments
            continue
        err = refused(data[:cut])
        assert err.address.startswith("/jadong/x"[:cut]) and err.address, cut


def test_a_float_cut_short_names_argument_and_bytes():
    err = refused(b"/jadong/strength\0\0\0\0,f\0\0")
    assert err.address == "/jadong/strength"
    assert "argument 1 (type tag 'f') needs 4 bytes, only 0 left: the message is truncated" in err.reason


@pytest.mark.parametrize("tags, reason", [
    ("q", "unknown OSC type tag 'q'"),
    ("c", "the OSC char type is not supported"),
    ("S", "the OSC symbol type is not supported"),
    ("I", "the OSC infinitum type is not supported"),
    ("[", "never closed"),
    ("]", "']' closes an array that was never opened"),
])
def test_type_tags_python_osc_would_misread(tags, reason):
    tag_string = ("," + tags).encode()
    tag_string += b"\0" * (4 - len(tag_string) % 4)
    err = refused(b"/jadong/prompt\0\0" + tag_string + b"abc\0")
    assert reason in err.reason and err.address == "/jadong/prompt"


@pytest.mark.parametrize("data, reason", [
    (b"/jadong/strength\0\0\0\0,\0\0\0\x3f\0\0\0", "4 bytes after the last argument"),
    (b"/jadong/strength\0\0\0\0f\0\0\0", "must start with ','"),
    (b"/jadong/strength\0\0\0\0,f\0\0", "truncated"),
    (b"/jadong/prompt\0\0,s\0\0\xff\xfe\0\0", "not UTF-8"),
    (b"/jadong/\xff\0\0\0", "address is not UTF-8"),
    (b"/jadong/prompt\0\0,b\0\0\xff\xff\xff\xff", "negative"),
    (b"/jadong/prompt\0\0,b\0\0\0\0\0\x08abcd", "claims 8 bytes, only 4 follow"),
    (b"/jadong/prompt", "not ended by a zero byte"),
])
def test_broken_messages_name_what_is_wrong(data, reason):
    assert reason in refused(data).reason


def test_a_broken_element_refuses_the_whole_bundle_and_names_it():
    cut = b"/jadong/strength\0\0\0\0,f\0\0"
    err = refused(bundle(build_msg("/jadong/seed", 1).dgram, bundle(cut)))
    assert err.address == "/jadong/strength"
    assert "(bundle element 2.1; the whole bundle was refused)" in err.reason


@pytest.mark.parametrize("data, reason", [
    (b"#bundle\0\0\0\0", "timetag is cut off"),
    (bundle() + b"\0\0", "4-byte size is cut off"),
    (bundle() + b"\0\0\0\x08/a\0\0", "claims 8 bytes, only 4 follow"),
    (bundle() + b"\0\0\0\x00", "positive multiple of 4, got 0"),
    (bundle() + b"\xff\xff\xff\xfc", "got -4"),
    (bundle() + b"\0\0\0\x04abc\0", "neither a message nor a bundle"),
])
def test_broken_bundles_are_named_as_bundles(data, reason):
    err = refused(data)
    assert err.address == BUNDLE_ADDRESS and reason in err.reason


def test_deep_nesting_is_refused_before_python_osc_recurses():
    data = build_msg("/jadong/seed", 1).dgram
    for _ in range(MAX_BUNDLE_DEPTH):
        data = bundle(data)
    check_packet(data)
    assert f"nested more than {MAX_BUNDLE_DEPTH} deep" in refused(bundle(data)).reason


def test_bundles_from_python_osc_pass():
    b = OscBundleBuilder(IMMEDIATELY)
    b.add_content(build_msg("/jadong/prompt", "moss"))
    b.add_content(build_msg("/jadong/strength", 0.5))
    check_packet(b.build().dgram)
