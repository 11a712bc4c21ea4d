"""Strict OSC argument check: every byte of a datagram accounted for before python-osc reads it.

python-osc (1.10.2) is lenient where a show must not be: it pads a float cut short with zero
bytes (a truncated `/jadong/strength ,f` set the strength to 0.0), skips a type tag it does not
know with a root-logger warning and then reads the following arguments from the wrong bytes,
ignores bytes after the last argument, and parses a bundle element that claims more bytes than
the datagram holds from whatever is left. `check_packet` walks the packet the way the OSC 1.0
specification lays it out and raises `MalformedPacket`, naming the message's address and what
is wrong, for anything python-osc would misread; a packet that passes parses exactly.
"""

from __future__ import annotations

BUNDLE_PREFIX = b"#bundle\0"
BUNDLE_ADDRESS = "#bundle"  # what an error about a bundle's own structure names as its address
MAX_BUNDLE_DEPTH = 16  # python-osc parses nested bundles recursively: a deep nest is refused, not a RecursionError
MAX_REPORTED_ADDRESS = 200  # characters of an address quoted in a reason or a reply

# Bytes each argument type takes after the type tag string (OSC 1.0 and its common extensions).
_FIXED_BYTES = {"i": 4, "f": 4, "c": 4, "r": 4, "m": 4, "d": 8, "h": 8, "t": 8}
_NO_BYTES = set("TFNI[]")
_STRINGS = set("sS")
_BLOB = "b"
# python-osc skips these (char, symbol, infinitum) without reading their bytes, which shifts
# every argument after them: well-formed OSC, but refused rather than misread.
_UNREAD_BY_PYTHON_OSC = {"c": "char", "S": "symbol", "I": "infinitum"}
_KNOWN = "i f d h t s b r m T F N [ ]"


class MalformedPacket(ValueError):
    """A datagram that is not well-formed OSC; `address` is the message it concerns (or
    "#bundle"), `reason` the sentence sent back on /jadong/error."""

    def __init__(self, address: str, reason: str, element: tuple[int, ...] = ()) -> None:
        super().__init__(reason)
        self.address = address
        self.reason = reason
        self.element = element  # where in nested bundles: (2, 1) is the first element of the second


def check_packet(data: bytes) -> None:
    """Raises MalformedPacket unless `data` is one well-formed OSC message or bundle whose
    every argument python-osc reads as sent."""
    try:
        if data.startswith(BUNDLE_PREFIX):
            _check_bundle(data, depth=1)
        else:
            _check_message(data)
    except MalformedPacket as exc:
        reason = f"malformed OSC packet ({len(data)} bytes): {exc.reason}"
        if exc.element:
            where = ".".join(str(n) for n in exc.element)
            reason += f" (bundle element {where}; the whole bundle was refused)"
        raise MalformedPacket(exc.address, reason) from None


def _padded(n: int) -> int:
    """n rounded up to a multiple of 4: OSC aligns every part of a message to 32 bits."""
    return (n + 3) & ~3


def _read_string(data: bytes, start: int) -> tuple[bytes, int] | None:
    """The string's bytes and the index after its padding, or None if it is cut off."""
    end = data.find(b"\0", start)
    if end < 0:
        return None
    after = start + _padded(end - start + 1)
    if after > len(data):
        return None
    return data[start:end], after


def _address_of(data: bytes) -> str:
    return data.split(b"\0", 1)[0][:MAX_REPORTED_ADDRESS].decode("utf-8", "replace")


def _check_message(data: bytes) -> None:
    address = _address_of(data)
    if not data.startswith(b"/"):
        raise MalformedPacket(address, "an OSC message starts with its address, which starts with /")
    read = _read_string(data, 0)
    if read is None:
        raise MalformedPacket(address, "the address is not ended by a zero byte and padding to 4 bytes (truncated?)")
    raw_address, index = read
    try:
        raw_address.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket(address, "the address is not UTF-8 text") from None
    if index == len(data):
        return  # no type tag string: a message without arguments
    read = _read_string(data, index)
    if read is None:
        raise MalformedPacket(address, "the type tag string is not ended by a zero byte and padding (truncated?)")
    raw_tags, index = read
    if not raw_tags.startswith(b","):
        raise MalformedPacket(address, "the type tag string must start with ','")
    tags = raw_tags[1:].decode("ascii", "replace")
    index = _check_arguments(data, index, tags, address)
    if index != len(data):
        raise MalformedPacket(address, f"{len(data) - index} bytes after the last argument: the type tags "
                                       f"(,{tags}) do not match the arguments sent")


def _check_arguments(data: bytes, index: int, tags: str, address: str) -> int:
    """Walks the arguments the type tags announce; returns the index after the last one."""
    depth = 0
    for number, tag in enumerate(tags, start=1):
        where = f"argument {number} (type tag '{tag}')"
        if tag in _UNREAD_BY_PYTHON_OSC:
            raise MalformedPacket(address, f"{where}: the OSC {_UNREAD_BY_PYTHON_OSC[tag]} type is not "
                                           f"supported here; send strings as 's' (supported: {_KNOWN})")
        if tag in _FIXED_BYTES:
            need = _FIXED_BYTES[tag]
            if index + need > len(data):
                raise MalformedPacket(address, f"{where} needs {need} bytes, only {len(data) - index} left: "
                                               "the message is truncated")
            index += need
        elif tag in _STRINGS:
            read = _read_string(data, index)
            if read is None:
                raise MalformedPacket(address, f"{where}: the string is not ended by a zero byte and padding: "
                                               "the message is truncated")
            text, index = read
            try:
                text.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedPacket(address, f"{where}: the string is not UTF-8 text") from None
        elif tag == _BLOB:
            index = _check_blob(data, index, where, address)
        elif tag in _NO_BYTES:
            depth += {"[": 1, "]": -1}.get(tag, 0)
            if depth < 0:
                raise MalformedPacket(address, f"{where}: ']' closes an array that was never opened")
        else:
            raise MalformedPacket(address, f"{where}: unknown OSC type tag {tag!r} (supported: {_KNOWN})")
    if depth:
        raise MalformedPacket(address, "an array opened with '[' in the type tags is never closed with ']'")
    return index


def _check_blob(data: bytes, index: int, where: str, address: str) -> int:
    if index + 4 > len(data):
        raise MalformedPacket(address, f"{where}: the blob's 4-byte size is missing: the message is truncated")
    size = int.from_bytes(data[index:index + 4], "big", signed=True)
    if size < 0:
        raise MalformedPacket(address, f"{where}: the blob's size is negative ({size})")
    end = index + 4 + _padded(size)
    if end > len(data):
        raise MalformedPacket(address, f"{where}: the blob claims {size} bytes, only {len(data) - index - 4} "
                                       "follow: the message is truncated")
    return end


def _check_bundle(data: bytes, depth: int) -> None:
    if depth > MAX_BUNDLE_DEPTH:
        raise MalformedPacket(BUNDLE_ADDRESS, f"bundles nested more than {MAX_BUNDLE_DEPTH} deep")
    if len(data) < len(BUNDLE_PREFIX) + 8:
        raise MalformedPacket(BUNDLE_ADDRESS, "the bundle's 8-byte timetag is cut off")
    index = len(BUNDLE_PREFIX) + 8
    number = 0
    while index < len(data):
        number += 1
        if index + 4 > len(data):
            raise MalformedPacket(BUNDLE_ADDRESS, "the element's 4-byte size is cut off", (number,))
        size = int.from_bytes(data[index:index + 4], "big", signed=True)
        index += 4
        if size <= 0 or size % 4:
            raise MalformedPacket(BUNDLE_ADDRESS, f"the element's size must be a positive multiple of 4, "
                                                  f"got {size}", (number,))
        if index + size > len(data):
            raise MalformedPacket(BUNDLE_ADDRESS, f"the element claims {size} bytes, only {len(data) - index} "
                                                  "follow: the bundle is truncated", (number,))
        element = data[index:index + size]
        index += size
        if not element.startswith((BUNDLE_PREFIX, b"/")):
            raise MalformedPacket(BUNDLE_ADDRESS, "the element is neither a message nor a bundle", (number,))
        try:
            if element.startswith(BUNDLE_PREFIX):
                _check_bundle(element, depth + 1)
            else:
                _check_message(element)
        except MalformedPacket as exc:
            raise MalformedPacket(exc.address, exc.reason, (number, *exc.element)) from None
