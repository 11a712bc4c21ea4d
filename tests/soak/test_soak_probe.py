"""What the app writes for the soak harness (core/soak_probe.py): heartbeats with the gaps
between presented frames, and a generator fault's recovery only when the primary paints a good
frame again, through the real event log and frame check."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from installation.core.events import EventLog
from installation.core.faults import FaultInjector
from installation.core.messages import GeneratedFrame, GenerationParams, Prompt
from installation.core.soak_probe import FrameGaps, SoakProbe, rss_mb
from installation.generation.frame_check import frame_problem


def frame(generator: str, image: np.ndarray, t: float) -> GeneratedFrame:
    return GeneratedFrame(image=image, prompt=Prompt("a garden"), params=GenerationParams(), generator=generator,
                          model="tiny", t=t)


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gaps_are_kept_per_window_and_for_the_whole_life():
    gaps = FrameGaps()
    for t in (10.0, 10.1, 10.9, 11.0):
        gaps.presented(t)
    assert round(gaps.take_window(), 6) == 0.8 and gaps.take_window() == 0.0
    gaps.presented(11.3)
    assert round(gaps.take_window(), 6) == 0.3 and round(gaps.life_max, 6) == 0.8 and gaps.frames == 5


def test_heartbeats_and_a_generator_fault_recovered_by_the_primary_only(tmp_path):
    path = tmp_path / "events.jsonl"
    events = EventLog(path)
    faults = FaultInjector(enabled=True)
    app = SimpleNamespace(workers=[], generator_worker=None, presenter=None)
    probe = SoakProbe(faults, events, app, frame_problem, lambda: "stream", every_s=0.0)
    rng = np.random.default_rng(0)
    good = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    black = np.zeros((32, 32, 3), np.uint8)  # what a NaN frame becomes in uint8

    probe.presented(None, 100.0)
    faults.arm("generator_nan")
    assert faults.take("generator_nan")
    fired = faults.expecting("generator")
    probe.presented(frame("preview", good, t=1e9), 100.02)  # the preview standing in: not a recovery
    probe.presented(frame("stream", black, t=1e9 + 1), 100.04)  # a broken frame from the primary: neither
    probe.presented(frame("stream", good, t=1e9 + 2), 100.5)  # the primary paints again
    probe.close()
    events.close()
    log = read(path)
    beats = [e for e in log if e["event"] == "heartbeat"]
    assert fired and beats[-1]["final"] and beats[-1]["gap_life_max_s"] == 0.46
    assert max(b["gap_max_s"] for b in beats) == 0.46
    assert all(b["pid"] > 0 for b in beats)
    assert [e["reason"] for e in log if e["event"] == "soak_bad_frame"] == [frame_problem(black)]
    faults_seen = [(e["state"], e["recovered_mono"]) for e in log if e["event"] == "fault"]
    assert faults_seen == [("armed", None), ("fired", None), ("recovered", 1e9 + 2)]


def test_memory_is_read_from_proc():
    mb = rss_mb()
    assert mb is not None and 10 < mb < 100_000
