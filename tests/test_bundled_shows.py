"""The example shows do what their comments promise."""

from __future__ import annotations

import pytest

from installation.show import SHOWS_DIR, load_show

SHOWS = sorted(SHOWS_DIR.glob("*.toml"))


@pytest.mark.parametrize("path", SHOWS, ids=lambda p: p.stem)
def test_a_show_with_a_cue_that_turns_listening_on_starts_deaf(path):
    """Issue #15: shows/performance.toml said "listening is on from the second cue" but
    painted speech before any cue fired. A cue with `listen = true` only means something
    if the show starts gated."""
    show = load_show(path)
    if any(cue.listen for cue in show.cues):
        assert show.speech.listen == "gated", f"{path.name}: a cue turns listening on, so [speech] listen = \"gated\""


def test_the_performance_show_listens_from_its_voices_cue():
    from control.test_control import RecordingHost
    from installation.control.show_control import ShowControl
    from installation.generation.choice import params_from_config

    show = load_show("performance")
    host = RecordingHost()
    control = ShowControl(show, host, params_from_config(show.generator))
    assert control.state.listening is False
    control.go_cue("voices")
    assert control.state.listening is True and host.listening[-1] is True
