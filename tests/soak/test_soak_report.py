"""The soak's report (soak/report.py): the numbers, the verdict against the bounds, the JSON."""

from __future__ import annotations

import json

from installation.soak.report import Crash, FaultOutcome, SoakResult

REQUIRED = {"crashes", "max_frame_gap_s", "max_recovery_s", "restart_s", "rss_growth_pct", "minutes", "faults"}


def good() -> SoakResult:
    r = SoakResult(minutes=3, faults_on=True, event_log="/tmp/soak.jsonl")
    r.faults = [FaultOutcome("sigterm_restart", 20.0, 3.2), FaultOutcome("camera_lost", 45.0, 0.3),
                FaultOutcome("generator_nan", 60.0, 1.4)]
    r.frame_gaps_s = [0.05, 0.4]
    r.rss = [(2.0, 10, 300.0), (58.0, 11, 1000.0), (61.0, 11, 1010.0), (63.0, 11, 1400.0), (65.0, 11, 1012.0),
             (120.0, 11, 1020.0), (172.0, 11, 1030.0), (175.0, 11, 1500.0), (178.0, 11, 1028.0)]
    return r


def test_a_good_soak_passes_and_its_json_is_one_object_with_the_required_keys():
    r = good()
    assert r.passed, r.failures()
    text = r.json_text()
    assert "\n" not in text
    data = json.loads(text)
    assert REQUIRED <= set(data)
    assert data["crashes"] == 0 and data["minutes"] == 3
    assert data["restart_s"] == 3.2
    assert data["max_recovery_s"] == 1.4  # the restart is left out
    assert data["max_frame_gap_s"] == 0.4
    # The median of the first 10 s from minute 1 against the median of the last 10 s: one sample
    # taken while a frame's buffers were alive does not decide it.
    assert abs(data["rss_growth_pct"] - (1030 - 1012) / 1012 * 100) < 0.01
    assert data["faults"][1] == {"kind": "camera_lost", "injected_at_s": 45.0, "recovered_after_s": 0.3}
    assert data["rss_mb_over_time"][0] == [2.0, 300.0]


def test_each_bound_broken_is_named():
    r = good()
    r.faults.append(FaultOutcome("mic_error", 80.0, None, "fired, but the microphone stage did no work"))
    r.faults.append(FaultOutcome("bad_show", 90.0, 2.5))
    r.faults[0].recovered_after_s = 6.0
    r.frame_gaps_s.append(1.7)
    r.rss += [(179.0, 11, 1100.0), (179.5, 11, 1100.0), (179.9, 11, 1100.0)]
    r.crashes.append(Crash(100.0, "killed by SIGSEGV"))
    failures = "\n".join(r.failures())
    for words in ("mic_error at 80 s did not recover: fired", "bad_show at 90 s took 2.50 s", "restart took 6.00 s",
                  "gap of 1.70 s", "memory grew 8.7 %", "1 crash(es): killed by SIGSEGV"):
        assert words in failures
    data = r.as_json()
    assert data["max_recovery_s"] is None  # a fault that never recovered has no "slowest recovery"
    assert data["passed"] is False and data["crashes"] == 1


def test_a_soak_under_a_minute_has_no_memory_growth_to_judge():
    r = SoakResult(minutes=0.5, faults_on=False)
    r.rss = [(2.0, 1, 500.0), (28.0, 1, 900.0)]
    r.frame_gaps_s = [0.02]
    assert r.rss_growth_pct() is None and r.passed


def test_the_text_report_lists_faults_memory_and_the_verdict():
    r = good()
    r.cue_restored = False
    text = r.text()
    assert "camera_lost" in text and "restart 3.20 s" in text
    assert "memory (RSS): 0:00 300 MB · 1:00 1010 MB · 2:00 1020 MB · end 1028 MB" in text
    assert "cue after the restart: NOT restored" in text
    assert text.rstrip().endswith("result: PASSED")
    assert "skipped" not in text and r.as_json()["ran_late"] == 0


def test_faults_skipped_because_the_soak_ran_late_are_counted_apart_from_kinds_it_had_no_room_for():
    r = good()
    r.not_injected, r.ran_late = ["disk_full"], 3
    text = r.text()
    assert "not injected (no room in a soak this short): disk_full" in text
    assert "3 planned faults skipped near the end" in text
    assert (r.as_json()["not_injected"], r.as_json()["ran_late"]) == (["disk_full"], 3)
