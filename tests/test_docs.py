from installation.docs import README, render


def test_readme_reference_sections_are_current():
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, "README reference sections are stale: run python -m installation.docs"


def test_readme_quick_start_is_two_make_commands():
    text = README.read_text(encoding="utf-8")
    assert "make run" in text and "make test" in text


def _stages_named_in_code() -> set[str]:
    """Every stage an event can carry: `stage="..."` literals, the names of Worker threads
    (a worker's errors carry its name) and the supervisor's restart stages (app.stage_of)."""
    import re

    from installation.app import App
    from installation.show import PROJECT_ROOT

    found: set[str] = set()
    for path in (PROJECT_ROOT / "installation").rglob("*.py"):
        if "bench" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r"\bstage=\"(\w+)\"", text))
        found |= set(re.findall(r"setdefault\(\"stage\", \"(\w+)\"\)", text))
        if re.search(r"class \w+\((\w+\.)?Worker\)", text):
            found |= set(re.findall(r"super\(\).__init__\(\"(\w+)\"", text))
            found |= set(re.findall(r"\bname: str = \"(\w+)\"", text))

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

    found |= {App.stage_of(Named(n)) for n in list(found)}
    return found


def test_every_stage_the_event_log_uses_is_in_the_troubleshooting_table():
    """Issue #15: a missing microphone device was logged as `stage: "mic"`, a missing WAV as
    `stage: "microphone"`, and the README named only the latter."""
    from installation.core.events import STAGES

    named = _stages_named_in_code()
    assert named - set(STAGES) == set(), "stages used in code but missing from core/events.py STAGES"
    assert set(STAGES) - named == set(), "stages documented but used nowhere"
    text = README.read_text(encoding="utf-8")
    for stage in STAGES:
        assert f"| `{stage}` |" in text
