from installation.docs import README, render


def test_readme_reference_sections_are_current():
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, "README reference sections are stale: run python -m installation.docs"


def test_readme_quick_start_is_two_make_commands():
    text = README.read_text(encoding="utf-8")
    assert "make run" in text and "make test" in text
