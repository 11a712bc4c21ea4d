"""The command line refuses bad options by name, and never shows a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from installation.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    env.pop("DISPLAY", None)
    return env


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "soon"])
def test_a_bad_seconds_value_is_refused_by_name(value, capsys):
    """Issue #15: `--seconds -5` and `0` ran the show and exited 0; `nan` ran forever."""
    with pytest.raises(SystemExit) as exit_:
        main(["--headless", "--seconds", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--seconds" in err and "seconds" in err.split("--seconds", 1)[1]
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "1000"])
def test_a_bad_record_fps_is_refused_by_name(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--headless", "--record-fps", value])
    assert exit_.value.code == 2
    assert "--record-fps" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "value"), [("--osc-port", "99999"), ("--osc-port", "-1"), ("--monitor", "-3")])
def test_a_range_error_names_the_option_not_the_field(option, value, capsys):
    """Issue #15: `--osc-port 99999` said only "Input should be less than or equal to 65535"."""
    assert main(["--headless", option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {option} {value}: "), err
    assert "65535" in err or "0" in err


def test_ctrl_c_during_start_up_imports_prints_one_line_and_no_traceback():
    """Issue #15: a Ctrl-C in the first half second printed a KeyboardInterrupt traceback
    from inside an import and exited -2."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--headless", "--seconds", "5", "--osc-port", "0",
                             "--mic", "none", "--log", os.devnull], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.1)  # the command line is still importing pydantic and the show loader
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert proc.returncode == 130, (proc.returncode, out)
    assert out.strip().splitlines()[-1] == "jadong: interrupted before the show started"


def test_start_up_names_the_real_event_log_file_and_says_a_headless_run_shows_nothing(tmp_path):
    """Issue #15: the start-up line printed `logs/events-{day}.jsonl`, and a run without a
    screen gave no hint that it would run, unseen, forever."""
    log = tmp_path / "events-{day}.jsonl"
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--seconds", "1", "--osc-port", "0",
                           "--mic", "none", "--camera", "none", "--log", str(log)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "{day}" not in proc.stderr
    written = list(tmp_path.glob("events-*.jsonl"))
    assert len(written) == 1 and f"event log {written[0]}" in proc.stderr
    assert "--record" in proc.stderr and "no window" in proc.stderr
    display = [json.loads(line) for line in written[0].read_text().splitlines() if '"display"' in line]
    reason = display[0]["reason"].split(": ", 1)[1]  # "fullscreen unavailable: <why>"
    assert proc.stderr.count(reason) == 1, proc.stderr  # the headless reason, once
    assert "XDG_RUNTIME_DIR" not in proc.stderr  # SDL's own line does not pose as Jadong's error


@pytest.mark.parametrize("target", ["folder", "notes.txt", "/proc/x.mp4"])
def test_a_run_that_cannot_record_fails_at_start_with_the_reason(target, tmp_path):
    """Issue #15: an unusable --record path was logged, then the headless run went on for its
    whole length and exited 0 having recorded nothing (for /proc: "the disk is nearly full")."""
    if target == "folder":
        target = str(tmp_path)
    elif not target.startswith("/"):
        target = str(tmp_path / target)
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--headless", "--seconds", "30", "--osc-port", "0",
                           "--record", target, "--log", str(tmp_path / "events.jsonl")],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("error: --record: cannot record to"), err
    assert "nearly full" not in err
    assert not (tmp_path / "events.jsonl").exists()  # refused before the show started
