"""The speech benchmark command runs and reports what it promises (not how fast: that is its job)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_speech_bench_reports_latency_rtf_memory_and_frames():
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    proc = subprocess.run([sys.executable, "-m", "installation.bench", "speech", "--json", "--utterances", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("transcript_p50_ms", "transcript_p95_ms", "frame_p50_ms", "rtf", "rss_mb",
                "baseline_p50_ms", "no_partials_p50_ms"):
        assert key in r, key
    assert r["transcripts_matched"] == 2  # each utterance heard once, none split
    assert r["transcript_p50_ms"] > 0 and r["frame_p50_ms"] is not None and r["frame_p50_ms"] > 0
    assert 0 < r["rtf"] and r["rss_mb"] > 50
