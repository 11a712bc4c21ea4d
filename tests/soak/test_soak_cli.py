"""The soak command's own mistakes are named, before anything starts (no app, no model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def soak(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "installation.soak", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("args", "words"), [
    (["--minutes", "0"], "expected minutes above 0"),
    (["--minutes", "soon"], "expected a number of minutes, got 'soon'"),
    ([], "--minutes"),
    (["--minutes", "3", "--log", "logs/soak-{day}.jsonl"], "without {day}"),
    (["--minutes", "3", "--faults", "--kinds", "generator_oom,coffee"], "unknown fault kinds ['coffee']"),
    (["--minutes", "3", "--faults", "--kinds", ","], "unknown fault kinds"),
    (["--minutes", "3", "--faults", "--spacing", "1"], "at least 5 seconds between faults"),
    (["--minutes", "3", "--faults", "--spacing", "often"], "expected seconds, got 'often'"),
])
def test_bad_options_are_refused_with_the_reason(args, words):
    proc = soak(*args)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_a_log_that_is_a_folder_is_refused(tmp_path):
    proc = soak("--minutes", "1", "--log", str(tmp_path))
    assert proc.returncode == 2 and "is a folder" in proc.stderr


def test_help_names_every_option():
    proc = soak("--help")
    assert proc.returncode == 0
    for option in ("--minutes", "--faults", "--kinds", "--spacing", "--json", "--log", "--work", "--model-dir",
                   "--seed"):
        assert option in proc.stdout


def test_the_app_always_writes_heartbeats_but_faults_come_only_when_asked(tmp_path, monkeypatch):
    from installation.soak.runner import Soak
    from installation.soak.workdir import SoakFiles

    monkeypatch.setenv("NOTIFY_SOCKET", "/run/user/0/systemd/notify")  # the harness's own, under systemd
    files = SoakFiles(work=tmp_path, shows_dir=tmp_path, show=tmp_path / "soak.toml", log=tmp_path / "e.jsonl",
                      state=tmp_path / "s.json", app_output=tmp_path / "app.log", model=tmp_path, osc_port=9)
    soak = Soak(files, 3, faults=False)
    # --faults even so: it is what makes the app write the heartbeats the soak is judged by.
    assert soak.app.args[2:] == ["soak", "--headless", "--log", str(files.log), "--state", str(files.state),
                                 "--faults"]
    assert soak.app.env["JADONG_SHOWS_DIR"] == str(tmp_path) and soak.app.env["SDL_VIDEODRIVER"] == "dummy"
    assert "NOTIFY_SOCKET" not in soak.app.env


def test_kinds_and_spacing_reach_the_schedule(tmp_path):
    from installation.soak import schedule
    from installation.soak.runner import Soak
    from installation.soak.workdir import SoakFiles

    files = SoakFiles(work=tmp_path, shows_dir=tmp_path, show=tmp_path / "soak.toml", log=tmp_path / "e.jsonl",
                      state=tmp_path / "s.json", app_output=tmp_path / "app.log", model=tmp_path, osc_port=9)
    planned = Soak(files, 5, faults=True, kinds=("generator_oom",), spacing_s=30.0).planned()
    assert {p.kind for p in planned} == {"generator_oom"}
    assert [p.at_s for p in planned][:3] == [schedule.FIRST_S, schedule.FIRST_S + 30, schedule.FIRST_S + 60]
    assert Soak(files, 5, faults=False, kinds=("generator_oom",)).planned() == []
