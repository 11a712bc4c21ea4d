"""The vision benchmark command runs and reports what it promises (not how fast: that is its job)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from installation.bench.vision import report_text

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("motion", "people", "faces", "silhouette", "colours", "light")


def bench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    return subprocess.run([sys.executable, "-m", "installation.bench", "vision", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def result() -> dict:
    """One short run of the real benchmark (the vision stage, camera, preview and display)."""
    proc = bench("--json", "--seconds", "2", "--phases", "2", "--frames", "12")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)  # the whole of stdout: exactly one object


def test_vision_bench_prints_one_json_object_with_costs_and_display_rates(result):
    for key in ("analysis_p50_ms", "analysis_p95_ms", "analysis_cpu_ms", "display_fps_off", "display_fps_on",
                "display_drop_percent", "generator_fps_off", "generator_fps_on", "vision_hz_on"):
        assert isinstance(result[key], float | int) and not isinstance(result[key], bool), key
    assert result["analysis_p50_ms"] > 0 and result["display_fps_off"] > 0 and result["display_fps_on"] > 0
    assert result["vision_hz_on"] > 0  # the vision stage really ran while "on"
    assert result["frames"] == 12 and result["size"] == "640x360"
    assert set(result["parts"]) == set(PARTS)
    for numbers in result["parts"].values():
        assert set(numbers) == {"p50_ms", "p95_ms", "mean_ms"}
        assert all(isinstance(v, float | int) and v >= 0 for v in numbers.values())
    assert isinstance(result["display_drop_ok"], bool)
    assert result["vision_errors"] == []


def test_vision_bench_prints_the_numbers_side_by_side_for_people(result):
    lines = report_text(result).splitlines()
    assert any(line.split() == ["part", "p50", "p95", "mean"] for line in lines)
    for part in PARTS:
        assert any(line.split()[:1] == [part] and len(line.split()) == 4 for line in lines), part
    assert any(line.split() == ["off", "on"] for line in lines)
    display = next(line for line in lines if line.strip().startswith("display fps"))
    assert f"{result['display_fps_off']:.2f}" in display and f"{result['display_fps_on']:.2f}" in display


def test_vision_bench_refuses_an_odd_number_of_phases():
    proc = bench("--phases", "3", timeout=60)
    assert proc.returncode == 2 and "--phases" in proc.stderr
