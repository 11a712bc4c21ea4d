"""Show files: the default loads; broken ones name the file, the field and the reason."""

import json
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from installation.show import MAX_NAME_CHARS, MAX_PROMPT_CHARS, Cue, Show, ShowError, load_show, parse_show


def write(tmp_path: Path, text: str, name: str = "broken.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_default_show_loads():
    show = load_show()
    assert show.show.name == "default"
    assert "{speech}" in show.prompt.template
    assert show.generator.model == "stabilityai/sd-turbo"
    assert show.path.name == "default.toml"


BUNDLED = sorted((Path(__file__).resolve().parent.parent / "shows").glob("*.toml"))


def test_the_bundled_shows_are_found():
    assert {"default", "gallery", "performance"} <= {p.stem for p in BUNDLED}


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_every_bundled_show_loads(path):
    assert load_show(path).path == path


@pytest.mark.parametrize(
    "body, expected",
    [
        ("[generator]\nsteps = 'fast'\n", "generator.steps: expected an integer from 1 to 50, got 'fast'"),
        ("[generator]\nsteps = 0\n", "generator.steps: expected an integer from 1 to 50, got 0"),
        ("[generator]\nstrength = 1.5\n", "generator.strength: expected a number from 0.0 to 1.0, got 1.5"),
        ("[generator]\nwidth = 500\n", "generator.width: expected a multiple of 8 from 64 to 2048, got 500"),
        ("[display]\nmode = 'big'\n",
         "display.mode: expected one of 'fullscreen', 'windowed' or 'headless', got 'big'"),
        ("[display]\nfullscren = true\n", "display.fullscren: no such field"),
        ("[prompt]\ntemplate = 'ink wash'\n", "prompt.template: expected a template containing {speech}"),
        ("[prompt]\ntemplate = '{speech} {style}'\n",
         "prompt.template: \"{speech} {style}\" has the unknown placeholder {style}"),
        ("[osc]\nport = 70000\n", "osc.port: expected an integer from 0 to 65535, got 70000"),
        ("[camera]\nsource = 1.5\n", "camera.source: expected"),
        ("[camra]\nsource = 0\n", "camra: no such field"),
        ("generator = 3\n", "generator: expected a table, got 3"),
    ],
)
def test_broken_show_names_file_field_and_reason(tmp_path, body, expected):
    path = write(tmp_path, body)
    with pytest.raises(ShowError) as info:
        load_show(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": "), message
    assert expected in message, message
    assert "Traceback" not in message and "pydantic" not in message.lower()


def test_several_errors_reported_together(tmp_path):
    path = write(tmp_path, "[generator]\nsteps = 0\nseed = -1\n[display]\nfps = 0\n")
    with pytest.raises(ShowError) as info:
        load_show(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(str(path)) for line in lines)


def test_invalid_toml_names_file_and_line(tmp_path):
    path = write(tmp_path, "[generator\nsteps = 1\n")
    with pytest.raises(ShowError) as info:
        load_show(path)
    assert str(path) in str(info.value) and "not valid TOML" in str(info.value)
    assert "line 1" in str(info.value)


def test_missing_show_lists_available(tmp_path):
    with pytest.raises(ShowError) as info:
        load_show("no-such-show")
    assert "no such show" in str(info.value) and "default" in str(info.value)


def test_show_by_name_and_partial_sections():
    show = load_show("default")
    assert show.display.crossfade_s >= 0
    minimal = parse_show({"prompt": {"template": "{speech}, woodcut"}}, "mem.toml")
    assert minimal.generator.steps == 1 and minimal.camera.source == "none"


# --- issue #15: every string bounded, clear template errors, no NaN, cues named as performers know them ------


def fails(tmp_path: Path, body: str) -> str:
    """The ShowError message for a show file with this body (every line names the file)."""
    path = write(tmp_path, body)
    with pytest.raises(ShowError) as info:
        load_show(path)
    message = str(info.value)
    assert all(line.startswith(f"{path}: ") for line in message.splitlines()), message
    assert "Input should" not in message and "Value error" not in message, message
    return message.replace(f"{path}: ", "")


def toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of printable text is a TOML basic string


PROMPT_FIELDS = [
    ("show", "title", "", "show.title"),
    ("prompt", "initial", "", "prompt.initial"),
    ("prompt", "negative", "", "prompt.negative"),
    ("prompt", "template", "{speech}", "prompt.template"),
    ("moderation", "replacement", "", "moderation.replacement"),
    ("styles", "ink", "{speech}", "styles.ink"),
]


@pytest.mark.parametrize("section, key, prefix, label", PROMPT_FIELDS)
def test_prompt_text_is_bounded(tmp_path, section, key, prefix, label):
    at_limit = prefix + "x" * (MAX_PROMPT_CHARS - len(prefix))
    write(tmp_path, f"[{section}]\n{key} = {toml_string(at_limit)}\n", "ok.toml")
    load_show(tmp_path / "ok.toml")
    message = fails(tmp_path, f"[{section}]\n{key} = {toml_string(at_limit + 'x')}\n")
    assert message == f"{label}: expected at most {MAX_PROMPT_CHARS} characters, got {MAX_PROMPT_CHARS + 1}"


def test_names_are_bounded(tmp_path):
    long_name = "n" * (MAX_NAME_CHARS + 1)
    assert fails(tmp_path, f"[show]\nname = '{long_name}'\n") == (
        f"show.name: expected at most {MAX_NAME_CHARS} characters, got {MAX_NAME_CHARS + 1}")
    message = fails(tmp_path, f"[styles]\n{long_name} = '{{speech}}'\n")
    assert f"expected at most {MAX_NAME_CHARS} characters, got {MAX_NAME_CHARS + 1}" in message
    assert message.startswith("styles.") and "(the name)" in message
    message = fails(tmp_path, f"[[cues]]\nname = '{long_name}'\n")
    assert message.startswith("cues[0] (cue 1, \"nnnn") and message.endswith(
        f").name: expected at most {MAX_NAME_CHARS} characters, got {MAX_NAME_CHARS + 1}")


@pytest.mark.parametrize("key", ["prompt", "negative", "caption"])
def test_cue_text_is_bounded(tmp_path, key):
    body = "[[cues]]\nname = 'a'\n[[cues]]\nname = 'b'\n[[cues]]\nname = 'storm'\n"
    message = fails(tmp_path, body + f"{key} = '{'x' * 65400}'\n")
    assert message == f'cues[2] (cue 3, "storm").{key}: expected at most {MAX_PROMPT_CHARS} characters, got 65400'


def test_other_strings_are_bounded_too(tmp_path):
    message = fails(tmp_path, f"[generator]\nmodel = '{'m' * 5000}'\n"
                              f"[speech]\nhallucination_phrases = ['{'h' * 5000}']\n")
    assert "generator.model: expected at most 4096 characters, got 5000" in message
    assert "speech.hallucination_phrases[0]: expected at most 4096 characters, got 5000" in message
    assert "camera.source: expected" in fails(tmp_path, f"[camera]\nsource = '{'c' * 5000}'\n")


@pytest.mark.parametrize(
    "template, problem",
    [
        ("{speech}, {ink", "a \"{\" at character 11 that is never closed"),
        ("{speech}, ink}", "a lone \"}\" at character 14"),
        ("{speech} {style}", "the unknown placeholder {style}"),
        ("{speech} {}", "the unknown placeholder {}"),
        ("{speech.upper}", "the unknown placeholder {speech.upper}"),
        ("{speech!r}", "the unknown placeholder {speech!r}"),
    ],
)
def test_malformed_template_says_what_is_allowed(tmp_path, template, problem):
    for body, label in ((f"[prompt]\ntemplate = {toml_string(template)}\n", "prompt.template"),
                        (f"[styles]\nneon = {toml_string(template)}\n", "styles.neon")):
        message = fails(tmp_path, body)
        assert message.startswith(f"{label}: {toml_string(template)} has {problem}"), message
        assert "placeholders are {speech}" in message and "{{" in message and "}}" in message


def test_literal_braces_in_a_template(tmp_path):
    show = parse_show({"prompt": {"template": "{{ {speech} }}, ink"}, "styles": {"a": "{speech} {{x}}"}})
    assert show.prompt.template.format(speech="fox") == "{ fox }, ink"
    assert show.styles["a"].format(speech="fox") == "fox {x}"


def float_fields() -> list[tuple[str, str]]:
    """(section, key) of every float in the show, cues included: none may be NaN or infinite."""
    found = []
    for section, info in Show.model_fields.items():
        model = Cue if section == "cues" else info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            found += [(section, key) for key, field in model.model_fields.items() if float in (
                field.annotation, *typing.get_args(field.annotation))]
    return found


@pytest.mark.parametrize("section, key", float_fields())
@pytest.mark.parametrize("value, word", [("nan", "(not a number)"), ("inf", "(infinite)"), ("-inf", "(infinite)")])
def test_nan_and_infinity_are_refused_everywhere(tmp_path, section, key, value, word):
    if section == "cues":
        body, label = f"[[cues]]\nname = 'storm'\n{key} = {value}\n", f'cues[0] (cue 1, "storm").{key}'
    else:
        body, label = f"[{section}]\n{key} = {value}\n", f"{section}.{key}"
    message = fails(tmp_path, body)
    assert message.startswith(f"{label}: expected a") and message.endswith(f", got {value} {word}"), message


def test_nan_fps_names_its_range(tmp_path):
    assert fails(tmp_path, "[display]\nfps = nan\n") == (
        "display.fps: expected a number greater than 0 and at most 240, got nan (not a number)")
    assert fails(tmp_path, "[display]\nfps = 1e999\n") == (
        "display.fps: expected a number greater than 0 and at most 240, got inf (infinite)")


UNKNOWN = "no such field (check the spelling; see the README's show file reference)"
CUES = "[[cues]]\nname = 'dawn'\n[[cues]]\nname = 'voices'\n[[cues]]\nname = 'storm'\n"


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("strength = 2\n", 'cues[2] (cue 3, "storm").strength: expected a number from 0 to 1, got 2'),
        ("stength = 2\n", 'cues[2] (cue 3, "storm").stength: ' + UNKNOWN),
        ("style = 'nein'\n", 'cues[2] (cue 3, "storm").style: "nein" is not in [styles] (known: none)'),
        ("[[cues]]\nname = 'Storm'\n",
         'cues[3] (cue 4, "Storm").name: cue 3 is already called "storm"; cue names must differ by more than case'),
        ("[[cues]]\nprompt = 'x'\n", "cues[3] (cue 4).name: expected a value, but it is missing"),
        ("[[cues]]\nname = 4\n", "cues[3] (cue 4).name: expected a string, got 4"),
    ],
)
def test_cue_errors_name_the_cue_as_performers_count(tmp_path, extra, expected):
    assert fails(tmp_path, CUES + extra) == expected


@pytest.mark.parametrize(
    "name, reason",
    [
        ("3", '"3" would be read as a cue number'),
        ("", "expected a name, got an empty string"),
        (" storm", "expected no spaces at the start or end"),
    ],
)
def test_cue_names_a_performer_can_fire(tmp_path, name, reason):
    message = fails(tmp_path, f"[[cues]]\nname = {toml_string(name)}\n")
    assert message.startswith(f"cues[0] (cue 1, {toml_string(name)}).name: ") and reason in message, message


@pytest.mark.parametrize("name", ["", " ink"])
def test_style_names_a_performer_can_choose(tmp_path, name):
    message = fails(tmp_path, f"[styles]\n{toml_string(name)} = '{{speech}}'\n")
    assert message.startswith(f"styles.{toml_string(name)} (the name): expected"), message


@pytest.mark.parametrize(
    "body, expected",
    [
        ("[display]\nhud = 'yes'\n", "display.hud: expected true or false, got 'yes'"),
        ("[display]\nhud = 1\n", "display.hud: expected true or false, got 1"),
        ("[display]\nfps = true\n", "display.fps: expected a number greater than 0 and at most 240, got True"),
        ("[generator]\nsteps = true\n", "generator.steps: expected an integer from 1 to 50, got True"),
        ("[camera]\nsource = true\n", "camera.source: expected a device index or a file, URL or \"none\", got True"),
    ],
)
def test_toml_types_are_not_coerced(tmp_path, body, expected):
    assert fails(tmp_path, body) == expected


def test_path_is_not_a_show_field(tmp_path):
    assert fails(tmp_path, "path = '/etc/passwd'\n") == (
        "path: no such field (check the spelling; see the README's show file reference)")


@pytest.mark.parametrize(
    "body, expected",
    [
        ("[generator]\nseed = " + "9" * 5000 + "\n", "line 2: not valid TOML: a number of 5000 digits"),
        ("[generator]\nprepare_steps = " + "[" * 2000 + "\n",
         "line 2: not valid TOML: arrays or tables nested too deeply"),
        ("[show]\nname = 'x\n", "line 2: not valid TOML: "),
        ("[show]\nname = \n", "line 2, column 8: not valid TOML: "),
    ],
)
def test_toml_errors_name_the_line(tmp_path, body, expected):
    assert expected in fails(tmp_path, body)


def test_huge_file_is_refused_without_reading_it_all(tmp_path):
    message = fails(tmp_path, "# x\n" * 300_000)
    assert message.startswith("longer than") and "a show file is a few kilobytes" in message


def test_many_errors_are_summarised(tmp_path):
    message = fails(tmp_path, "[display]\n" + "".join(f"k{i} = 1\n" for i in range(50)))
    lines = message.splitlines()
    assert len(lines) == 21 and lines[-1] == "... and 30 more errors", lines[-3:]


def test_echoed_values_are_short(tmp_path):
    message = fails(tmp_path, f"[generator]\nsteps = '{'x' * 5000}'\n")
    assert message.startswith("generator.steps: expected an integer from 1 to 50, got 'xxx") and len(message) < 200


def test_odd_keys_are_quoted_as_toml_writes_them(tmp_path):
    message = fails(tmp_path, '[display]\n"big screen" = 1\n')
    assert message.startswith('display."big screen": no such field'), message


def test_byte_order_mark_is_accepted(tmp_path):
    """Windows editors may save UTF-8 with a byte-order mark; TOML itself refuses it."""
    path = write(tmp_path, "\ufeff[show]\nname = 'bom'\n", "bom.toml")
    assert load_show(path).show.name == "bom"


def test_prepare_steps_are_step_counts(tmp_path):
    assert fails(tmp_path, "[generator]\nprepare_steps = [2, 0, 1000000000]\n") == (
        "generator.prepare_steps: expected step counts from 1 to 50, as for `steps`, got [0, 1000000000]")
    assert parse_show({"generator": {"prepare_steps": [1, 4, 50]}}).generator.prepare_steps == [1, 4, 50]


def test_a_file_that_is_not_utf8_says_so(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("[show]\nname = 'café'\n".encode("latin-1"))
    with pytest.raises(ShowError) as info:
        load_show(path)
    message = str(info.value)
    assert message.startswith(f"{path}: cannot be read as UTF-8 text (") and "save it as UTF-8" in message
