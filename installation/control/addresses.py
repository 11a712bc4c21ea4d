"""The address table: every control Jadong answers to, one row each (path, argument types,
limits, help, kind), and the checks that turn a message's arguments into the row's types.

One table decides what a control is; the OSC server (osc.py), the show control
(show_control.py, which maps each row to a setter and, for values, a getter), the README's OSC
reference (docs.py) and the tests all read it, so they cannot drift apart. Nothing here does
I/O: any front end (OSC today, a web page later) validates through the same functions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from installation.core.faults import INTERNAL_FAULTS
from installation.show import MAX_NAME_CHARS, MAX_PROMPT_CHARS, MAX_STREAMS

Limits = tuple[float, float]

ERROR_ADDRESS = "/jadong/error"  # replies: (offending address, reason), both strings
# OSC address patterns (/jadong/*) would let one message fire several cues; the table takes
# literal addresses only, and says so rather than guessing.
PATTERN_CHARS = set("*?[]{}")
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
    # The longest string (in characters) any "s" or "x" argument may be. Every row with one
    # must say: an unbounded string once stopped the status replies and filled the event log.
    max_chars: int | None = None

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or self.path != self.path.lower():
            raise ValueError(f"OSC address {self.path!r}: must start with / and be lower case")
        unknown = set(self.args) - set(_TYPE_NAMES)
        if unknown:
            raise ValueError(f"OSC address {self.path}: unknown type codes {sorted(unknown)}")
        if len(self.limits) > len(self.args):
            raise ValueError(f"OSC address {self.path}: more limits than arguments")
        if set(self.args) & set("sx") and self.max_chars is None:
            raise ValueError(f"OSC address {self.path}: a string argument needs max_chars (its longest length)")

    @property
    def signature(self) -> str:
        return f"{self.path} {self.args}".rstrip()


def _table(*rows: Address) -> dict[str, Address]:
    return {a.path: a for a in rows}


SECONDS = (0.0, 60.0)
WORDS_ID = (0, 2**31 - 1)  # curation ids; 0 = the oldest words waiting

ADDRESSES: dict[str, Address] = _table(
    # The picture's words
    Address("/jadong/prompt", "s", "paint these words (until the next speech or cue)", "value",
            max_chars=MAX_PROMPT_CHARS),
    Address("/jadong/prompt/append", "s", "add words to the current prompt (the whole prompt stays within "
            f"{MAX_PROMPT_CHARS} characters)", "action", max_chars=MAX_PROMPT_CHARS),
    Address("/jadong/prompt/clear", "", "back to the show's initial prompt", "action"),
    Address("/jadong/prompt/blend", "f", "seconds a new prompt (or seed) takes to blend in", "value",
            limits=(SECONDS,)),
    Address("/jadong/negative", "s", "negative prompt (\"\" for none)", "value", max_chars=MAX_PROMPT_CHARS),
    Address("/jadong/style", "s", "a named style from the show's [styles]; repaints the last words in it", "value",
            max_chars=MAX_NAME_CHARS),
    # How it is painted
    Address("/jadong/strength", "f", "how far img2img departs from the camera image, 0 (camera) to 1 (prompt only)",
            "value", limits=((0.0, 1.0),)),
    Address("/jadong/steps", "i", "denoising steps per frame", "value", limits=((1, 50),)),
    Address("/jadong/seed", "i", "noise seed", "value", limits=((0, 2**31 - 1),)),
    Address("/jadong/seed/drift", "f", "how fast the noise walks, 0 (still) to 1", "value", limits=((0.0, 1.0),)),
    Address("/jadong/mode", "s", "img2img (restyle the camera), txt2img (words alone) or feedback "
            "(the still image brought to life)", "value", choices=("img2img", "txt2img", "feedback"),
            max_chars=MAX_NAME_CHARS),
    # Cues and shows
    Address("/jadong/cue", "", "the current cue (query only): replies with its number and name", "value"),
    Address("/jadong/cue/go", "x", "fire a cue by name or number (1 is the first)", "action",
            max_chars=MAX_NAME_CHARS),
    Address("/jadong/cue/next", "", "fire the next cue (GO; after the last, the first with [storyboard] loop)",
            "action"),
    Address("/jadong/cue/prev", "", "fire the previous cue (from the first, the last with [storyboard] loop)",
            "action"),
    Address("/jadong/show", "s", "load another show from shows/ by name (no paths)", "action",
            max_chars=MAX_NAME_CHARS),
    # Listening and the screen
    Address("/jadong/listen", "T", "listen to the microphone (1) or not (0)", "value"),
    Address("/jadong/freeze", "T", "hold the picture on screen (1) or let it move (0)", "value"),
    Address("/jadong/blackout", "T", "fade to black (1) or back to the picture (0)", "value"),
    Address("/jadong/blackout/fade", "f", "seconds the blackout fades take", "value", limits=(SECONDS,)),
    Address("/jadong/crossfade", "f", "seconds from one generated frame to the next", "value", limits=((0.0, 30.0),)),
    Address("/jadong/caption", "T", "show captions (1) or hide them (0)", "value"),
    Address("/jadong/caption/text", "s", "show this caption now (\"\" clears it)", "value",
            max_chars=MAX_PROMPT_CHARS),
    Address("/jadong/hud", "T", "show the HUD (1) or hide it (0)", "value"),
    # Actions
    Address("/jadong/capture", "", "save the current frame (PNG + JSON of the words and settings) in captures/",
            "action"),
    Address("/jadong/status", "", "send all /jadong/status/... values to the sender now", "action"),
    Address("/jadong/quit", "", "end the show cleanly", "action"),
    Address("/jadong/fault", "s", "arm an injected fault for the soak harness (python -m installation.soak): "
            f"{', '.join(INTERNAL_FAULTS)}; refused unless the app runs with --faults", "action",
            max_chars=MAX_NAME_CHARS),
    # Curation ([curation] enabled): visitors' words wait for a person. An id of 0 means the oldest words.
    Address("/jadong/queue", "", "reply with the words waiting: how many, then the oldest's id, English words, "
            "the visitor's own words and seconds waited (0, \"\", \"\", 0 when none)", "action"),
    Address("/jadong/queue/approve", "i", "paint the waiting words with this id (0: the oldest)", "action",
            limits=(WORDS_ID,)),
    Address("/jadong/queue/edit", "is", "paint these words instead of the waiting words with this id (0: the oldest)",
            "action", limits=(WORDS_ID,), max_chars=MAX_PROMPT_CHARS),
    Address("/jadong/queue/reject", "i", "never paint the waiting words with this id (0: the oldest)", "action",
            limits=(WORDS_ID,)),
    # Unattended ([hours], [attract]): staff's hand on the opening hours and the attract behaviour.
    Address("/jadong/hours/override", "s", "open or closed until the schedule next opens or closes, or auto "
            "to follow [hours] again", "value", choices=("open", "closed", "auto"),
            max_chars=MAX_NAME_CHARS),
    Address("/jadong/attract", "T", "start the show's attract behaviour now (1; it ends when someone comes or "
            "speaks) or end it (0)", "value"),
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
    "/jadong/status/presence": "int: 1 while the vision stage sees somebody (0 without [vision])",
    "/jadong/status/people": "int: how many people the vision stage counts",
    "/jadong/status/scene": "string: the scene words now, e.g. \"two people · red and blue · bright · calm\"",
    "/jadong/status/queue": "int: visitors' words waiting for a decision ([curation]; 0 without)",
    "/jadong/status/time_left": "float: seconds the current cue has left (its `duration_s`; 0 once over), "
                                "-1 when it does not end by itself",
    "/jadong/status/attract": "int: 1 while the attract behaviour shows ([attract]: nobody there)",
    "/jadong/status/open": "int: 1 while the show is open ([hours], or staff's override; always 1 without hours)",
}

# Each stream's own controls ([[streams]], control/streams.py): /jadong/stream/N/LEAF for N from 1
# to MAX_STREAMS (a number the show lacks is refused with the streams it has). The rows
# are written with "n"; lookup() answers for a real address with the row's path made concrete.
STREAM_ADDRESSES: dict[str, Address] = {
    a.path.rsplit("/", 1)[1]: a for a in (
        Address("/jadong/stream/n/prompt", "s", "paint these words on stream N alone (until the next show prompt "
                "that reaches it)", "value", max_chars=MAX_PROMPT_CHARS),
        Address("/jadong/stream/n/strength", "f", "stream N's own img2img strength, 0 to 1", "value",
                limits=((0.0, 1.0),)),
        Address("/jadong/stream/n/seed", "i", "stream N's own noise seed", "value", limits=((0, 2**31 - 1),)),
        Address("/jadong/stream/n/style", "s", "a style from [styles] for stream N (\"\": the show's style again)",
                "value", max_chars=MAX_NAME_CHARS),
        Address("/jadong/stream/n/words", "T", "visitors' words reach stream N (1: the show's words now and from "
                "now on) or not (0: it keeps what it paints while visitors speak)", "value"),
    )
}
_STREAM_PATH = re.compile(r"/jadong/stream/(\d{1,3})/([a-z]+)")

# Sent, for a show with several streams, as one more bundle per stream after the status above.
STREAM_STATUS_ADDRESSES: dict[str, str] = {
    "name": "string: the stream's name (\"\" for none)",
    "prompt": "string: the prompt the stream paints",
    "strength": "float: its img2img strength",
    "seed": "int: its noise seed",
    "style": "string: its own style (\"\": the show's)",
    "words": "int: 1 while visitors' words reach it",
    "frames": "int: frames painted for it so far",
}


# Each string in a status bundle is cut to this many UTF-8 bytes (ellipsis included): with five
# strings the bundle stays under 8 KB, inside one datagram and the smallest common receive
# buffers, whatever the state holds. A prompt of MAX_PROMPT_CHARS plain letters is shown whole.
STATUS_TEXT_MAX_BYTES = 1000
ELLIPSIS = "…"


def shorten(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters, ending in an ellipsis where it was cut."""
    return text if len(text) <= max_chars else text[:max(0, max_chars - 1)] + ELLIPSIS


def fit_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` bytes of UTF-8, never inside a character, ending in an
    ellipsis where it was cut. Characters UTF-8 cannot hold (lone surrogates) become "?"."""
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return data.decode("utf-8")
    room = max(0, max_bytes - len(ELLIPSIS.encode("utf-8")))
    return data[:room].decode("utf-8", "ignore") + ELLIPSIS


class OscArgumentError(ValueError):
    """A message whose arguments do not fit its address; the text is the reason sent back."""


def lookup(address: str) -> Address | None:
    """The table row for an address, ignoring case (performers type /Jadong/Prompt too). A
    per-stream address (/jadong/stream/2/strength) gets its row with that path."""
    address = address.lower()
    row = ADDRESSES.get(address)
    if row is not None:
        return row
    match = _STREAM_PATH.fullmatch(address)
    if match is None or match[2] not in STREAM_ADDRESSES or not 1 <= int(match[1]) <= MAX_STREAMS:
        return None
    return replace(STREAM_ADDRESSES[match[2]], path=f"/jadong/stream/{int(match[1])}/{match[2]}")


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
        if isinstance(value, str) and addr.max_chars is not None and len(value) > addr.max_chars:
            raise OscArgumentError(f"{where}: at most {addr.max_chars} characters, got {len(value)}")
        limits = addr.limits[i] if i < len(addr.limits) else None
        if limits is not None and not (limits[0] <= value <= limits[1]):
            raise OscArgumentError(f"{where}: expected a value from {_fmt(limits[0])} to {_fmt(limits[1])}, "
                                   f"got {value!r}")
        if addr.choices and code == "s":
            value = value.strip().lower()
            if value not in addr.choices:
                raise OscArgumentError(f"{where}: expected one of {', '.join(addr.choices)}, got {_preview(value)}")
        out.append(value)
    return tuple(out)


def _preview(value: Any) -> str:
    """A value as quoted in a reason: cut short, so a huge argument makes a short reply."""
    return shorten(repr(value), 60)


def _convert(code: str, value: Any, where: str) -> Any:
    expected = _TYPE_NAMES[code]
    got = f"{type(value).__name__} {_preview(value)}" if not isinstance(value, str) else f"string {_preview(value)}"
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
    for a in (*ADDRESSES.values(), *STREAM_ADDRESSES.values()):
        args = []
        for i, code in enumerate(a.args):
            lim = a.limits[i] if i < len(a.limits) else None
            text = codes[code] + (f" {_fmt(lim[0])}–{_fmt(lim[1])}" if lim else "")
            if a.choices:
                text += f" ({' or '.join(a.choices)})"
            elif code in "sx" and a.max_chars is not None:
                text += f" (at most {a.max_chars} characters)"
            args.append(text)
        kind = "value (no argument: query)" if a.kind == "value" else "action"
        path = a.path.replace("/stream/n/", "/stream/N/")
        lines.append(f"| `{path}` | {', '.join(args) or '—'} | {kind} | {a.help} |")
    lines.append(f"| `{ERROR_ADDRESS}` (reply) | string address, string reason | reply | "
                 "sent back to the sender's port when a message is refused (a malformed packet, an unknown "
                 "address or type tag, a wrong argument, a string over its limit) |")
    lines += ["", "Status, pushed to `[osc] status_targets` every 1/`status_hz` s as one bundle, and sent to",
              "whoever sends `/jadong/status`:", "", "| address | value |", "|---|---|"]
    lines += [f"| `{path}` | {what} |" for path, what in STATUS_ADDRESSES.items()]
    lines += ["", "A show with several streams ([[streams]]) sends, after that bundle, one bundle per stream "
              "(N counts from 1):", "", "| address | value |", "|---|---|"]
    lines += [f"| `/jadong/status/stream/N/{leaf}` | {what} |" for leaf, what in STREAM_STATUS_ADDRESSES.items()]
    lines += ["", f"Each status string is cut to {STATUS_TEXT_MAX_BYTES} bytes of UTF-8 (ending in "
              f"\"{ELLIPSIS}\" where cut), so the bundle always fits one datagram of under 8 KB."]
    return "\n".join(lines) + "\n"


def address_help() -> str:
    """The table as text, for --help and the README."""
    width = max(len(a.signature) for a in ADDRESSES.values())
    return "\n".join(f"{a.signature:<{width}}  {a.help}" for a in ADDRESSES.values())
