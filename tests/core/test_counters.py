"""Event tallies for monitoring: by kind and stage, the last errors with advice, no words."""

from installation.core.counters import RECENT_ERRORS, EventCounters
from installation.core.events import STAGES


def test_events_are_counted_by_kind_and_stage():
    counters = EventCounters()
    counters.count("transcript", {"text": "a red fox"})
    counters.count("rejected", {"text": "thank you", "reason": "hallucination"})
    counters.count("error", {"stage": "camera", "reason": "unplugged"})
    counters.count("error", {"source": "osc", "reason": "malformed"})
    counters.count("restart", {"stage": "speech", "why": "stalled"})
    counters.count("generator", {"state": "loaded", "seconds": 4.2})
    snap = counters.snapshot()
    assert (snap.transcripts, snap.rejections, snap.model_load_s) == (1, 1, 4.2)
    assert snap.errors == {"camera": 1, "osc": 1} and snap.restarts == {"speech": 1}
    assert snap.recent_errors[0].advice == STAGES["camera"]
    assert "a red fox" not in repr(snap) and "thank you" not in repr(snap)


def test_only_the_last_errors_are_kept():
    counters = EventCounters()
    for i in range(RECENT_ERRORS + 5):
        counters.count("error", {"stage": "generator", "reason": f"oom {i}"})
    snap = counters.snapshot()
    assert len(snap.recent_errors) == RECENT_ERRORS and snap.recent_errors[-1].reason == f"oom {RECENT_ERRORS + 4}"
    assert snap.errors["generator"] == RECENT_ERRORS + 5
