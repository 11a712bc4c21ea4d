"""shows/scene.toml end to end: a headless run on real street footage in which a walker comes,
stands still and goes. Its prompts follow the scene before anyone speaks, and the event log
records presence turning on and off (issue #10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VISIT = ROOT / "tests" / "data" / "vision" / "vtest_visit.mp4"  # empty 8 s, a walker 16 s, empty again
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scene_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("scene")
    events = out / "events.jsonl"
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "scene", "--headless", "--seconds", "38",
                           "--camera", str(VISIT), "--mic", "none", "--log", str(events), "--osc-port", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    records = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines() if line.strip()]
    return proc, records


def test_the_run_is_clean(scene_run):
    proc, _ = scene_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "TensorFlow Lite" not in proc.stderr and "inference_feedback_manager" not in proc.stderr


def test_presence_turns_on_when_the_walker_comes_and_off_when_they_go(scene_run):
    _, records = scene_run
    scenes = [r for r in records if r["event"] == "scene"]
    presence = [r["presence"] for r in scenes]
    assert presence[0] is False, scenes  # the empty place first
    assert True in presence, scenes
    assert presence[-1] is False and presence.index(True) < len(presence) - 1, scenes
    seen = next(r for r in scenes if r["presence"])
    assert seen["people"] >= 1 and seen["where"], seen
    # Only changes are logged, never one line per analysed frame (38 s at 5 Hz = 190 frames).
    assert len(scenes) < 20


def test_the_prompts_follow_the_scene_before_anyone_speaks(scene_run):
    _, records = scene_run
    painted = [r["text"] for r in records if r["event"] == "prompt" and r["source"] == "scene"]
    assert len(set(painted)) >= 2, painted
    assert any(text.startswith("an empty courtyard") for text in painted), painted  # [scene.empty] people
    assert any(text.startswith("a lone figure") for text in painted), painted  # [scene.vocabulary.people]
    assert all(r["source"] != "speech" for r in records if r["event"] == "prompt")
