"""The engine benchmark command runs end to end on the CPU config and reports its keys
(speed is the benchmark's business, never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_engine_bench_json_has_the_documented_keys():
    proc = subprocess.run(
        [sys.executable, "-m", "installation.bench", "engine", "--device", "cpu", "--json",
         "--pipeline-frames", "2", "--engine-frames", "3", "--acceleration", "eager"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("pipeline_p50_ms", "engine_p50_ms", "ratio", "device"):
        assert key in res, key
    assert res["device"] == "cpu" and res["pipeline_p50_ms"] > 0 and res["engine_p50_ms"] > 0
    assert res["ratio"] == round(res["pipeline_p50_ms"] / res["engine_p50_ms"], 2) or abs(
        res["ratio"] - res["pipeline_p50_ms"] / res["engine_p50_ms"]) < 0.02
    assert "64x64" in res["config"] and "1 CPU thread" in res["config"] and res["engine_accel"] == "eager"
    assert res["engine_acceleration_option"] == "eager"


def test_bench_dispatcher_names_unknown_benchmarks():
    proc = subprocess.run([sys.executable, "-m", "installation.bench", "nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "expected one of: engine, speech, osc" in proc.stderr
