"""THE SLOW ONE: a real 3-minute soak with faults (issue #11, "What must show"), about 3.5
minutes of wall time, the longest test in the suite on purpose. `python -m installation.soak
--minutes 3 --faults --json` runs the real app headless on the demo inputs with the tiny model and
injects every fault kind once; the report must show zero crashes, every fault recovered within
2 s, the SIGTERM restart within the 5 s start-up bound, no gap over 1 s between presented frames
outside the restart, and memory growth under 5 % from minute 1 on.

Deselect it with `-m "not slow"` when iterating on something else.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from installation.core.faults import FAULT_KINDS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_three_minute_soak_with_faults_meets_every_bound(tmp_path_factory):
    tiny = tmp_path_factory.getbasetemp() / "tiny-sd"  # shared with the other tests that need the model
    out = tmp_path_factory.mktemp("soak")
    log = out / "soak.jsonl"
    proc = subprocess.run([sys.executable, "-m", "installation.soak", "--minutes", "3", "--faults", "--json",
                           "--log", str(log), "--model-dir", str(tiny)],
                          cwd=ROOT, capture_output=True, text=True, timeout=560)
    assert proc.stdout.count("\n") == 1, f"expected exactly one JSON object on stdout:\n{proc.stdout[-2000:]}"
    report = json.loads(proc.stdout)
    why = f"{report['failures']}\n{proc.stderr[-3000:]}"

    assert report["minutes"] == 3
    assert report["crashes"] == 0, report["crash_details"]
    faults = report["faults"]
    assert sorted(f["kind"] for f in faults) == sorted(FAULT_KINDS), why
    for f in faults:
        assert f["recovered_after_s"] is not None, f"{f['kind']} did not recover: {f.get('note')}"
        if f["kind"] != "sigterm_restart":
            assert 0 <= f["recovered_after_s"] <= 2.0, f
    assert report["max_recovery_s"] <= 2.0
    assert report["restart_s"] <= 5.0, why
    assert report["cue_restored"] is True  # the saved state brought the cue back after SIGTERM
    assert 0 < report["max_frame_gap_s"] <= 1.0, why
    assert report["rss_growth_pct"] is not None and report["rss_growth_pct"] < 5.0, report["rss_mb_over_time"]
    assert report["transcripts"] > 0 and report["presented_frames"] > 0
    assert report["passed"] and proc.returncode == 0, why

    # The event log is where it was asked to be, with the app's own account of each fault.
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    recovered = {e["kind"] for e in events if e["event"] == "fault" and e["state"] == "recovered"}
    assert recovered == {"camera_lost", "mic_error", "generator_raise", "generator_nan", "generator_oom", "disk_full"}
    assert sum(e["event"] == "heartbeat" for e in events) > 3 * 60
    assert any(e["event"] == "error" and e.get("stage") == "events" and e.get("recovered") for e in events)
