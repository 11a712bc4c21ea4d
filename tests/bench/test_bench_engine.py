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


def test_engine_bench_streams_reports_batched_against_turns():
    proc = subprocess.run(
        [sys.executable, "-m", "installation.bench", "engine", "--device", "cpu", "--json", "--streams", "2,1",
         "--engine-frames", "2", "--acceleration", "eager", "--size", "32"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["device"] == "cpu" and res["engine_accel"] == "eager" and "32x32 per stream" in res["config"]
    rows = res["streams"]
    assert [r["streams"] for r in rows] == [1, 2]
    for r in rows:
        n = r["streams"]
        for side in ("batched", "turns"):
            assert r[f"{side}_p50_ms"] > 0
            assert abs(r[f"{side}_fps_total"] - n * r[f"{side}_fps_per_stream"]) <= 0.1 * n + 0.01
        assert abs(r["speedup"] - r["turns_p50_ms"] / r["batched_p50_ms"]) < 0.02
        assert r["max_diff_batched_vs_turns"] <= 2  # both sides paint the same streams


def test_engine_bench_names_a_bad_stream_count():
    proc = subprocess.run([sys.executable, "-m", "installation.bench", "engine", "--streams", "2,zero"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--streams" in proc.stderr and "expected stream counts like 1,2,4" in proc.stderr


def test_bench_dispatcher_names_unknown_benchmarks():
    proc = subprocess.run([sys.executable, "-m", "installation.bench", "nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "expected one of: engine, speech, osc" in proc.stderr
