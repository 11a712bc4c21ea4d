"""Show files, property-based (issue #15): Hypothesis writes show files, valid ones built from the
real schema and broken ones of every kind, and `load_show` reads them back.

Properties: loading never crashes nor raises anything but ShowError; a ShowError names the file
on every line, and the field (or, for a TOML syntax error, the line); a valid file loads into a
Show whose values are the ones written, every other value its default.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
import string
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from installation.show import MAX_NAME_CHARS, MAX_PROMPT_CHARS, MAX_TEXT_CHARS, Cue, Show, ShowError, load_show

# Modest counts, so that the whole file runs in a few seconds; no example database in the tree.
PROPERTY = settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

SECTIONS: dict[str, type[BaseModel]] = {
    name: info.annotation for name, info in Show.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
}
CUE_FIELDS = {k: v for k, v in Cue.model_fields.items() if k not in ("name", "style")}


@pytest.fixture(scope="module")
def show_file(tmp_path_factory) -> Path:
    """One path, rewritten by every example (a module-scoped folder: Hypothesis reruns a test many times)."""
    return tmp_path_factory.mktemp("shows") / "generated.toml"


# --- writing TOML (the standard library only reads it) ------------------------------------------------

def toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:  # TOML wants control characters escaped
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")) if not math.isfinite(value) \
            else repr(value)
    if isinstance(value, int | datetime.date | datetime.time):
        return value.isoformat() if not isinstance(value, int) else str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def toml_document(data: dict) -> str:
    # Plain keys first: in TOML, whatever follows a [table] header belongs to that table.
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items()
             if not isinstance(v, dict) and not is_table_array(v)]
    for key, value in data.items():
        tables = [value] if isinstance(value, dict) else value if is_table_array(value) else []
        for table in tables:
            lines.append(f"[{toml_key(key)}]" if isinstance(value, dict) else f"[[{toml_key(key)}]]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# --- what the messages must say ------------------------------------------------------------------------

def quoted(text: str) -> str:
    """A string as the messages quote it: JSON/TOML style, cut at 40 characters, unprintable
    characters escaped (so that a message line is one line, whatever the names in it)."""
    text = json.dumps(text if len(text) <= 40 else text[:40] + "…", ensure_ascii=False)
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def key_label(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) and len(key) <= 40 else quoted(key)  # long ones cut


def cue_label(index: int, name: Any) -> str:
    named = f", {quoted(name)}" if isinstance(name, str) else ""
    return f"cues[{index}] (cue {index + 1}{named})"


def load_or_error(path: Path, text: str | bytes) -> Show | str:
    """The Show, or the ShowError's message after checking what every message must be; any other
    exception fails the test as it is."""
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    try:
        return load_show(path)
    except ShowError as exc:
        message = str(exc)
    lines = message.splitlines()
    assert lines, "an empty error message"
    for line in lines:
        assert line.startswith(f"{path}: ") and len(line) > len(f"{path}: "), line
        assert len(line) < 600, f"an error line of {len(line)} characters"
    for jargon in ("Input should", "Value error", "Traceback", "pydantic", "validation error"):
        assert jargon not in message, message
    if "not valid TOML" in message:
        assert re.match(rf"{re.escape(str(path))}: line \d+(, column \d+)?: not valid TOML: \S", message), message
    return message


def expect_error(path: Path, data: dict, label: str, fragment: str = "") -> str:
    result = load_or_error(path, toml_document(data))
    assert isinstance(result, str), f"loaded, though {label} was broken: {data}"
    wanted = f"{path}: {label}: "
    assert any(line.startswith(wanted) and fragment in line for line in result.splitlines()), (wanted, fragment, result)
    return result


# --- valid values, from the schema -----------------------------------------------------------------------

TEXT = st.characters(codec="utf-8")  # any character a UTF-8 file can hold


@functools.cache  # strategies are built once: building one costs more than drawing from it
def texts(limit: int) -> st.SearchStrategy[str]:
    """Mostly short text, sometimes right at the limit."""
    at_limit = st.tuples(TEXT, st.integers(max(0, limit - 3), limit)).map(lambda cn: cn[0] * cn[1])
    return st.one_of(st.text(TEXT, max_size=min(limit, 30)), at_limit)


@functools.cache
def names() -> st.SearchStrategy[str]:
    """Cue and style names a performer can type: no surrounding spaces, not a cue number."""
    return st.text(TEXT, min_size=1, max_size=12).filter(lambda s: s == s.strip() and not s.isdigit())


@functools.cache
def templates() -> st.SearchStrategy[str]:
    pieces = st.lists(st.one_of(st.text(TEXT.filter(lambda c: c not in "{}"), max_size=8),
                                st.sampled_from(["{speech}", "{{", "}}"])), max_size=5).map("".join)
    return st.tuples(pieces, pieces).map(lambda ab: ab[0] + "{speech}" + ab[1])


def members(info: FieldInfo) -> list[Any]:
    """A field's type without None (TOML cannot write None)."""
    args = typing.get_args(info.annotation)
    if typing.get_origin(info.annotation) in (typing.Union, type(int | str)):
        return [a for a in args if a is not type(None)]
    return [info.annotation]


def limits(info: FieldInfo) -> dict[str, Any]:
    return {key: getattr(meta, key) for meta in info.metadata
            for key in ("ge", "gt", "le", "lt", "multiple_of", "max_length") if getattr(meta, key, None) is not None}


def numbers(kind: type, lim: dict[str, Any]) -> st.SearchStrategy:
    low = lim.get("ge", lim.get("gt", -(2**31)))
    high = lim.get("le", lim.get("lt", 2**31))
    ints = st.integers(math.ceil(low), math.floor(high)).filter(lambda n: n > lim.get("gt", -math.inf))
    if "multiple_of" in lim:
        step = lim["multiple_of"]
        ints = st.integers(math.ceil(low / step), math.floor(high / step)).map(lambda n: n * step)
    if kind is int:
        return ints
    floats = st.floats(low, high, exclude_min="gt" in lim, exclude_max="lt" in lim)
    if math.ceil(low) > math.floor(high):  # no integer in range (0.05 to 0.95)
        return floats
    return st.one_of(floats, ints)  # an integer is a fine number


def day_hours() -> st.SearchStrategy:
    """A day's opening hours as a show writes them: "", "closed", all day, or one to three ranges
    (some past midnight)."""
    one = st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(1, 23), st.sampled_from([0, 30]))
    ranges = st.lists(one.filter(lambda r: r[:2] != r[2:]), min_size=1, max_size=3)
    written = ranges.map(lambda rs: ", ".join(f"{a:02d}:{b:02d}-{c:02d}:{d:02d}" for a, b, c, d in rs))
    return st.one_of(st.sampled_from(["", "closed", "00:00-24:00"]), written)


SPECIAL: dict[tuple[str, str], st.SearchStrategy] = {
    ("prompt", "template"): templates(),
    ("osc", "allow"): st.lists(st.sampled_from(["127.0.0.1", "::1", "10.0.0.0/24", "192.168.1.20", "fe80::/10"]),
                               max_size=3),
    ("osc", "status_targets"): st.lists(st.builds("{}:{}".format, st.sampled_from(["127.0.0.1", "localhost", "[::1]"]),
                                                  st.integers(1, 65535)), max_size=2),
    ("camera", "source"): st.one_of(st.integers(0, 9), texts(MAX_TEXT_CHARS)),
    ("microphone", "source"): st.one_of(st.integers(0, 9), texts(MAX_TEXT_CHARS)),
    ("generator", "prepare_steps"): st.lists(st.integers(1, 50), max_size=3),
    # "presence" needs [vision] enabled, which a drawn show may not have: tried in test_show.py.
    ("speech", "listen"): st.sampled_from(["always", "gated"]),
    ("display", "silhouette"): st.just("off"),  # "outline" needs [vision] enabled too
    # follow = true needs duration_s, and [storyboard] needs cues: both tried in tests/control/test_storyboard.py.
    ("cues", "follow"): st.just(False),
    ("storyboard", "autostart"): st.just(False),
    ("storyboard", "loop"): st.just(False),
    # certificate and key go together: tried in tests/control/test_capture_provenance.py.
    ("provenance", "certificate"): st.just(""),
    ("provenance", "key"): st.just(""),
    ("generator", "mask"): st.just("off"),  # needs a silhouette or mask_image: tried in tests/generation/test_mask.py
    ("scene", "vocabulary"): st.dictionaries(st.sampled_from(["people", "colours", "light", "motion"]),
                                             st.dictionaries(names(), texts(100), max_size=2), max_size=2),
    ("scene", "empty"): st.dictionaries(st.sampled_from(["speech", "people", "colours", "light", "motion", "scene"]),
                                        texts(100), max_size=2),
    # Attract on needs its prompts, clip or still (files that exist): tried in tests/control/test_attract.py.
    ("attract", "enabled"): st.just(False),
    ("attract", "prompts"): st.lists(texts(MAX_PROMPT_CHARS), max_size=3),
    ("attract", "clip"): st.just(""),
    ("attract", "image"): st.just(""),
    # Opening hours are a small language of their own: tried in tests/control/test_hours.py.
    ("hours", "timezone"): st.sampled_from(["", "UTC", "Europe/Berlin", "Asia/Seoul", "America/New_York"]),
    **{("hours", day): day_hours() for day in ("default", "mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    ("hours", "closed"): st.sampled_from(["dim", "black"]),  # "still" needs an image file
    ("hours", "image"): st.just(""),
    ("camera", "ndi_ips"): st.lists(st.sampled_from(["127.0.0.1", "192.168.1.20", "media-server.local"]),
                                    max_size=3),
    # keep_words = false also switches [capture] keep_words off (what the round trip would not
    # expect): tried in tests/core/test_event_log.py and tests/control/test_retention.py.
    ("privacy", "keep_words"): st.just(True),
    # One log file may not be larger than all of them together: both bounds drawn apart.
    ("privacy", "log_file_mb"): st.floats(0.01, 50.0, allow_nan=False),
    ("privacy", "logs_max_mb"): st.floats(100.0, 10_000_000, allow_nan=False),  # log_file_mb: 100 by default
}


@functools.cache
def valid_values(section: str, key: str, info: FieldInfo) -> st.SearchStrategy:
    if (section, key) in SPECIAL:
        return SPECIAL[(section, key)]
    kind = members(info)[0]
    lim = limits(info)
    if typing.get_origin(kind) is Literal:
        return st.sampled_from(typing.get_args(kind))
    if kind is bool:
        return st.booleans()
    if kind in (int, float):
        return numbers(kind, lim)
    if kind is str:
        return texts(lim.get("max_length", MAX_TEXT_CHARS))
    if kind == list[str]:
        return st.lists(texts(MAX_TEXT_CHARS), max_size=3)
    raise AssertionError(f"{section}.{key}: no strategy for {info.annotation} (a new kind of field: add one)")


@st.composite
def cues_for(draw, styles: list[str], min_size: int = 0) -> list[dict]:
    cues = []
    for name in draw(st.lists(names(), unique_by=str.lower, min_size=min_size, max_size=4)):
        cue: dict[str, Any] = {"name": name}
        for key in draw(st.lists(st.sampled_from(list(CUE_FIELDS)), unique=True, max_size=4)):
            cue[key] = draw(valid_values("cues", key, CUE_FIELDS[key]))
        if styles and draw(st.booleans()):
            cue["style"] = draw(st.sampled_from(styles))
        cues.append(cue)
    return cues


@st.composite
def valid_shows(draw, sections: int = len(SECTIONS)) -> dict:
    show: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(list(SECTIONS)), unique=True, max_size=sections)):
        model = SECTIONS[section]
        keys = draw(st.lists(st.sampled_from(list(model.model_fields)), unique=True, max_size=6))
        show[section] = {k: draw(valid_values(section, k, model.model_fields[k])) for k in keys}
    styles = draw(st.dictionaries(names(), templates(), max_size=3))
    if styles:
        show["styles"] = styles
    cues = draw(cues_for(list(styles)))
    if cues:
        show["cues"] = cues
    return show


@settings(PROPERTY, max_examples=120)
@given(show=valid_shows())
def test_a_valid_show_loads_with_the_values_written(show_file, show):
    loaded = load_or_error(show_file, toml_document(show))
    assert isinstance(loaded, Show), loaded
    expected = Show().model_dump()
    for section, values in show.items():
        if section in SECTIONS:
            expected[section].update(values)
        elif section == "cues":
            expected["cues"] = [dict.fromkeys(Cue.model_fields) | cue for cue in values]
        else:
            expected[section] = values
    assert loaded.model_dump() == expected
    assert loaded.path == show_file


# --- broken files ------------------------------------------------------------------------------------------

# What a broken value sits among: a few valid sections, styles and cues (smaller: faster).
BACKGROUND = valid_shows(sections=2)
SITES = [(section, key, info) for section, model in SECTIONS.items() for key, info in model.model_fields.items()]
CUE_SITES = [("cues", key, info) for key, info in Cue.model_fields.items()]


@st.composite
def placed(draw, section: str, key: str, value: Any) -> tuple[dict, str]:
    """A valid show with `value` put at section.key (in one of its cues for "cues"), and the
    location the error must name."""
    show = draw(BACKGROUND)
    if section != "cues":
        show.setdefault(section, {})[key] = value
        return show, f"{section}.{key}"
    cues = show.get("cues") or draw(cues_for(list(show.get("styles", {})), min_size=1))
    index = draw(st.integers(0, len(cues) - 1))
    cues[index][key] = value
    show["cues"] = cues
    return show, f"{cue_label(index, cues[index].get('name'))}.{key}"


def toml_kinds(info: FieldInfo) -> set[str]:
    """The TOML value kinds a field takes."""
    kinds = set()
    for kind in members(info):
        origin = typing.get_origin(kind)
        if origin is Literal:
            kinds |= {"str" if isinstance(a, str) else "int" for a in typing.get_args(kind)}
        elif kind is float:
            kinds |= {"int", "float"}
        else:
            kinds.add({bool: "bool", int: "int", str: "str", list: "list", dict: "table"}.get(origin or kind, "table"))
    return kinds


VALUES_OF_KIND: dict[str, st.SearchStrategy] = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
    "str": st.text(TEXT, max_size=10),
    "list": st.lists(st.integers(0, 3), max_size=2),
    "table": st.dictionaries(st.sampled_from(["a", "b c"]), st.integers(0, 3), max_size=2),
    "date": st.dates(),
    "time": st.times(),
}


@st.composite
def wrong_types(draw) -> tuple[dict, str]:
    section, key, info = draw(st.sampled_from(SITES + CUE_SITES))
    kind = draw(st.sampled_from(sorted(set(VALUES_OF_KIND) - toml_kinds(info))))
    value = draw(VALUES_OF_KIND[kind])
    if kind == "float" and toml_kinds(info) == {"int"} and value.is_integer():
        value += 0.5  # a float is never an integer here: 2.0 is refused too, but say so plainly
    return draw(placed(section, key, value))  # a cue whose name is no string is named by number alone


@PROPERTY
@given(case=wrong_types())
def test_a_value_of_the_wrong_type_is_named(show_file, case):
    show, label = case
    expect_error(show_file, show, label, "expected")


NUMBER_SITES = [(s, k, i) for s, k, i in SITES + CUE_SITES if toml_kinds(i) & {"int", "float"} and limits(i)]


@st.composite
def out_of_range(draw) -> tuple[dict, str]:
    section, key, info = draw(st.sampled_from(NUMBER_SITES))
    lim = limits(info)
    choices = []
    if "ge" in lim or "gt" in lim:
        low = lim.get("ge", lim.get("gt"))
        choices.append(st.integers(1, 10**6).map(lambda d: math.floor(low) - d))
    if "le" in lim or "lt" in lim:
        high = lim.get("le", lim.get("lt"))
        choices.append(st.integers(1, 10**6).map(lambda d: math.ceil(high) + d))
    if "multiple_of" in lim:
        choices.append(st.integers(lim.get("ge", 1) // lim["multiple_of"], 100)
                       .map(lambda n: n * lim["multiple_of"] + 1))
    return draw(placed(section, key, draw(st.one_of(choices))))


@PROPERTY
@given(case=out_of_range())
def test_a_number_out_of_range_is_named(show_file, case):
    show, label = case
    message = expect_error(show_file, show, label, "expected ")
    assert re.search(r"expected (an integer|a number|a multiple of \d+) (from|greater|at|less)", message), message


FLOAT_SITES = [(s, k, i) for s, k, i in SITES + CUE_SITES if "float" in toml_kinds(i)]


@PROPERTY
@given(data=st.data(), site=st.sampled_from(FLOAT_SITES), value=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_nan_and_infinity_are_said_to_be_no_number(show_file, data, site, value):
    show, label = data.draw(placed(site[0], site[1], value))
    expect_error(show_file, show, label, "(not a number)" if math.isnan(value) else "(infinite)")


@st.composite
def unknown_keys(draw) -> tuple[dict, str]:
    where = draw(st.sampled_from([*SECTIONS, "cues", "(top level)"]))
    known = set(Cue.model_fields if where == "cues" else SECTIONS[where].model_fields if where in SECTIONS
                else Show.model_fields) - ({"path"} if where == "(top level)" else set())
    key = draw(st.one_of(st.text(string.ascii_lowercase + "_", min_size=1, max_size=12),
                         st.text(TEXT, min_size=1, max_size=50)).filter(lambda k: k not in known))
    if where == "(top level)":
        show = draw(BACKGROUND)
        show[key] = draw(VALUES_OF_KIND["int"])
        return show, key_label(key)
    show, label = draw(placed(where, key, 1))
    return show, label.removesuffix("." + key) + "." + key_label(key)


@PROPERTY
@given(case=unknown_keys())
def test_an_unknown_key_is_named(show_file, case):
    show, label = case
    expect_error(show_file, show, label, "no such field")


def string_sites() -> list[tuple[str, str, int, str]]:
    """(section, key, limit, how) of every string in the show: how is "field", "item" (in a
    list), "style" (a [styles] template) or "style name"."""
    sites = []
    for section, key, info in SITES + CUE_SITES:
        kinds = members(info)
        limit = limits(info).get("max_length", MAX_TEXT_CHARS)
        if str in kinds:
            sites.append((section, key, limit, "field"))
        elif list[str] in kinds:
            sites.append((section, key, MAX_TEXT_CHARS, "item"))
    return sites + [("styles", "", MAX_PROMPT_CHARS, "style"), ("styles", "", MAX_NAME_CHARS, "style name")]


@st.composite
def huge_strings(draw) -> tuple[dict, str, str]:
    section, key, limit, how = draw(st.sampled_from(string_sites()))
    length = draw(st.one_of(st.just(limit + 1), st.integers(limit + 1, limit + 300), st.just(65400)))
    text = draw(TEXT.filter(lambda c: not c.isspace())) * length
    if key == "template" or how == "style":
        text = "{speech}" + text[8:]
    fragment = f"expected at most {limit} characters, got {length}"
    if how == "style":
        show = draw(BACKGROUND)
        show["styles"] = {**show.get("styles", {}), "huge": text}
        return show, "styles.huge", fragment
    if how == "style name":
        show = draw(BACKGROUND)
        show["styles"] = {**show.get("styles", {}), text: "{speech}"}
        return show, f"styles.{key_label(text)} (the name)", fragment
    show, label = draw(placed(section, key, [text] if how == "item" else text))
    return show, label + ("[0]" if how == "item" else ""), fragment


@settings(PROPERTY, max_examples=50)
@given(case=huge_strings())
def test_every_string_is_bounded(show_file, case):
    show, label, fragment = case
    expect_error(show_file, show, label, fragment)


PIECES = ["{", "}", "{{", "}}", "{speech}", "speech", "{style}", "{}", "{0}", "{speech!r}", "{speech:>3}",
          "{speech:}", "{speech.upper}", "{speech[0]}", " ", "x", "é"]


@settings(PROPERTY, max_examples=200)
@given(template=st.one_of(st.lists(st.sampled_from(PIECES), max_size=6).map("".join),
                          st.text(st.sampled_from("{}speech !:.0[]"), max_size=16)),
       in_styles=st.booleans())
def test_a_template_loads_only_if_it_formats_with_just_speech(show_file, template, in_styles):
    data = {"styles": {"neon": template}} if in_styles else {"prompt": {"template": template}}
    result = load_or_error(show_file, toml_document(data))
    if isinstance(result, Show):
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
        assert fields and all(f == ("speech", "", None) for f in fields), fields
        assert template.format(speech="words")  # what the show control does with it
    else:
        label = "styles.neon" if in_styles else "prompt.template"
        assert result.startswith(f"{show_file}: {label}: "), result
        assert "{speech}" in result


@st.composite
def duplicate_cue_names(draw) -> tuple[dict, str]:
    show = draw(BACKGROUND)
    cues = show.get("cues") or draw(cues_for(list(show.get("styles", {})), min_size=1))
    earlier = draw(st.integers(0, len(cues) - 1))
    name = cues[earlier]["name"]
    variants = [v for v in (name, name.upper(), name.lower(), name.swapcase())
                if v.lower() == name.lower() and v == v.strip() and len(v) <= MAX_NAME_CHARS and not v.isdigit()]
    again = draw(st.sampled_from(variants))
    cues.append({"name": again})
    show["cues"] = cues
    return show, f"{cue_label(len(cues) - 1, again)}.name"


@PROPERTY
@given(case=duplicate_cue_names())
def test_a_duplicate_cue_name_is_named(show_file, case):
    show, label = case
    expect_error(show_file, show, label, "already called")


@st.composite
def damaged_toml(draw) -> str:
    text = toml_document(draw(valid_shows()))
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 20)))
    junk = draw(st.text(st.sampled_from("[]{}=\"'\n#,.\\ 1a"), max_size=4))
    return text[:start] + junk + text[end:]


@PROPERTY
@given(text=damaged_toml())
def test_damaged_toml_names_its_line(show_file, text):
    load_or_error(show_file, text)  # the TOML message format is checked there


GARBAGE = st.one_of(
    st.text(TEXT, max_size=200),
    st.binary(max_size=200),
    st.integers(1, 3000).map(lambda n: "a = " + "[" * n),
    st.integers(1, 3000).map(lambda n: "a = " + "{b = " * n),
    st.integers(4000, 6000).map(lambda n: "[generator]\nseed = " + "7" * n),
    st.lists(st.sampled_from(["[show]", "[[cues]]", "name = 'a'", "x = 1", "[display]", "fps = nan", "= 2", "\x00"]),
             max_size=8).map("\n".join),
)


@settings(PROPERTY, max_examples=150)
@given(text=GARBAGE)
def test_random_text_never_crashes(show_file, text):
    load_or_error(show_file, text)
