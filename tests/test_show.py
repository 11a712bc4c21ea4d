"""Show files: the default loads; broken ones name the file, the field and the reason."""

from pathlib import Path

import pytest

from installation.show import ShowError, load_show, parse_show


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


def test_every_bundled_show_loads(project_root):
    for path in (project_root / "shows").glob("*.toml"):
        load_show(path)


@pytest.mark.parametrize(
    "body, expected",
    [
        ("[generator]\nsteps = 'fast'\n", "generator.steps: expected an integer, got 'fast'"),
        ("[generator]\nsteps = 0\n", "generator.steps: expected a value of at least 1, got 0"),
        ("[generator]\nstrength = 1.5\n", "generator.strength: expected a value of at most 1.0, got 1.5"),
        ("[generator]\nwidth = 500\n", "generator.width: expected a multiple of 8, got 500"),
        ("[display]\nmode = 'big'\n",
         "display.mode: expected one of 'fullscreen', 'windowed' or 'headless', got 'big'"),
        ("[display]\nfullscren = true\n", "display.fullscren: no such field"),
        ("[prompt]\ntemplate = 'ink wash'\n", "prompt.template: expected a template containing {speech}"),
        ("[prompt]\ntemplate = '{speech} {style}'\n", "prompt.template: expected only the placeholder {speech}"),
        ("[osc]\nport = 70000\n", "osc.port: expected a value of at most 65535, got 70000"),
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
