"""The OSC benchmark command runs and reports what it promises (not how fast: that is its job)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_osc_bench_reports_latency_rate_and_display():
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    proc = subprocess.run([sys.executable, "-m", "installation.bench", "osc", "--json", "--seconds", "1",
                           "--rate", "2000", "--samples", "20"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("latency_p50_ms", "latency_p95_ms", "baseline_latency_p50_ms", "held_rate",
                "flood_sent", "flood_received", "display_fps_during_flood_mean"):
        assert key in result, key
    assert result["latest_value_intact"] is True
    assert result["flood_received"] <= result["flood_sent"]
    assert result["latency_p50_ms"] > 0
