"""The display benchmark command runs and reports what it promises (not how fast: that is its job)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_display_bench_reports_loop_rate_cpu_and_recording(tmp_path):
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    out = tmp_path / "bench.avi"
    proc = subprocess.run([sys.executable, "-m", "installation.bench", "display", "--seconds", "1",
                           "--size", "320x180", "--fps", "30", "--gen-fps", "10", "--record", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["size"] == "320x180" and result["loop_fps"] > 0 and result["presented_frames"] > 0
    assert result["recorded"] > 0 and out.stat().st_size > 0


def test_display_bench_refuses_a_bad_size():
    proc = subprocess.run([sys.executable, "-m", "installation.bench", "display", "--size", "big"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--size" in proc.stderr
