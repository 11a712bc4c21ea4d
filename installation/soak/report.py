"""The soak's findings: what each fault cost, the longest gap between presented frames, crashes,
memory over time; as one JSON object (`--json`) or as text for a person, and judged against the
bounds the installation promises (issue #11): every fault recovered within 2 s, the SIGTERM
restart within the 5 s start-up bound, no gap over 1 s between presented frames outside the
restart, no crash, memory growth under 5 % from minute 1 on.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

RECOVERY_BOUND_S = 2.0
RESTART_BOUND_S = 5.0
GAP_BOUND_S = 1.0
RSS_GROWTH_BOUND_PCT = 5.0
RSS_BASELINE_S = 60.0  # memory growth is counted from minute 1 (the model loaded, the caches warm)
# Each end of the comparison is the median of this many seconds of samples, so that one sample
# taken while a frame's buffers are alive does not decide it.
RSS_WINDOW_S = 10.0
RSS_REPORT_EVERY_S = 10.0  # one point of memory over time per this many seconds


@dataclass
class FaultOutcome:
    kind: str
    injected_at_s: float  # seconds after the soak started
    recovered_after_s: float | None  # None: not recovered (see note)
    note: str = ""  # why it did not recover, or something worth knowing about how it did

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "injected_at_s": round(self.injected_at_s, 3),
                               "recovered_after_s": _r(self.recovered_after_s)}
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Crash:
    at_s: float
    reason: str  # "exit code 1", "killed by SIGSEGV", "hung: ..."
    output_tail: str = ""


@dataclass
class SoakResult:
    minutes: float
    faults_on: bool
    faults: list[FaultOutcome] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    frame_gaps_s: list[float] = field(default_factory=list)  # the longest per heartbeat, all processes
    rss: list[tuple[float, int, float]] = field(default_factory=list)  # (seconds, pid, MB)
    transcripts: int = 0
    presented_frames: int = 0
    bad_frames: int = 0
    cue_restored: bool | None = None  # after the restart: the cue fired before it is current again
    not_injected: list[str] = field(default_factory=list)  # kinds a soak this short had no room for
    ran_late: int = 0  # planned faults skipped: earlier recoveries took the time they were due in
    event_log: str = ""
    problems: list[str] = field(default_factory=list)  # what went wrong in the harness itself

    # --- the numbers --------------------------------------------------------------------
    def restart(self) -> FaultOutcome | None:
        return next((f for f in self.faults if f.kind == "sigterm_restart"), None)

    def restart_s(self) -> float | None:
        r = self.restart()
        return r.recovered_after_s if r is not None else None

    def max_recovery_s(self) -> float | None:
        """The slowest recovery, the restart left out; None when a fault never recovered."""
        times = [f.recovered_after_s for f in self.faults if f.kind != "sigterm_restart"]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)

    def max_frame_gap_s(self) -> float | None:
        return max(self.frame_gaps_s) if self.frame_gaps_s else None

    def rss_growth_pct(self) -> float | None:
        """Memory at the end (the last RSS_WINDOW_S of samples) against minute 1 (the first
        RSS_WINDOW_S from then on), each the median of its samples; None before there is both."""
        if not self.rss or self.rss[-1][0] < RSS_BASELINE_S + 2 * RSS_WINDOW_S:
            return None
        end_t = self.rss[-1][0]
        base = statistics.median(mb for t, _, mb in self.rss if RSS_BASELINE_S <= t < RSS_BASELINE_S + RSS_WINDOW_S)
        end = statistics.median(mb for t, _, mb in self.rss if t > end_t - RSS_WINDOW_S)
        return (end - base) / base * 100.0 if base > 0 else None

    def rss_over_time(self) -> list[list[float]]:
        """[seconds, MB] every RSS_REPORT_EVERY_S (the last sample in each window)."""
        out: dict[int, list[float]] = {}
        for t, _, mb in self.rss:
            out[int(t // RSS_REPORT_EVERY_S)] = [round(t, 1), mb]
        return [out[k] for k in sorted(out)]

    # --- the verdict --------------------------------------------------------------------
    def failures(self) -> list[str]:
        found = list(self.problems)
        if self.crashes:
            found.append(f"{len(self.crashes)} crash(es): " + "; ".join(f"{c.reason} at {c.at_s:.0f} s"
                                                                          for c in self.crashes))
        for f in self.faults:
            if f.recovered_after_s is None:
                found.append(f"{f.kind} at {f.injected_at_s:.0f} s did not recover: {f.note or 'no evidence of work'}")
            elif f.kind == "sigterm_restart":
                if f.recovered_after_s > RESTART_BOUND_S:
                    found.append(f"the restart took {f.recovered_after_s:.2f} s (bound {RESTART_BOUND_S:g} s)")
            elif f.recovered_after_s > RECOVERY_BOUND_S:
                found.append(f"{f.kind} at {f.injected_at_s:.0f} s took {f.recovered_after_s:.2f} s to recover "
                             f"(bound {RECOVERY_BOUND_S:g} s)")
        gap = self.max_frame_gap_s()
        if gap is None:
            found.append("no frame was presented")
        elif gap > GAP_BOUND_S:
            found.append(f"a gap of {gap:.2f} s between presented frames (bound {GAP_BOUND_S:g} s)")
        growth = self.rss_growth_pct()
        if growth is not None and growth >= RSS_GROWTH_BOUND_PCT:
            found.append(f"memory grew {growth:.1f} % from minute 1 (bound {RSS_GROWTH_BOUND_PCT:g} %)")
        if self.bad_frames:
            found.append(f"{self.bad_frames} broken frame(s) reached the frame slot")
        return found

    @property
    def passed(self) -> bool:
        return not self.failures()

    # --- output -------------------------------------------------------------------------
    def as_json(self) -> dict[str, Any]:
        return {
            "crashes": len(self.crashes),
            "max_frame_gap_s": _r(self.max_frame_gap_s()),
            "max_recovery_s": _r(self.max_recovery_s()),
            "restart_s": _r(self.restart_s()),
            "rss_growth_pct": _r(self.rss_growth_pct(), 2),
            "minutes": self.minutes,
            "faults": [f.as_dict() for f in self.faults],
            "passed": self.passed,
            "failures": self.failures(),
            "cue_restored": self.cue_restored,
            "rss_mb_over_time": self.rss_over_time(),
            "crash_details": [{"at_s": round(c.at_s, 1), "reason": c.reason, "output_tail": c.output_tail}
                              for c in self.crashes],
            "transcripts": self.transcripts,
            "presented_frames": self.presented_frames,
            "not_injected": self.not_injected,
            "ran_late": self.ran_late,
            "event_log": self.event_log,
        }

    def json_text(self) -> str:
        return json.dumps(self.as_json(), ensure_ascii=False)

    def text(self) -> str:
        lines = [f"soak: {self.minutes:g} minutes, faults {'on' if self.faults_on else 'off'}"
                 + (f"; event log {self.event_log}" if self.event_log else "")]
        if self.faults:
            lines.append(f"  {'fault':<16} {'injected at':>11}  recovered after")
            for f in self.faults:
                took = "not recovered" if f.recovered_after_s is None else f"{f.recovered_after_s:.2f} s"
                if f.kind == "sigterm_restart":
                    took = f"restart {took}" if f.recovered_after_s is not None else took
                lines.append(f"  {f.kind:<16} {f.injected_at_s:>9.1f} s  {took}" + (f"  ({f.note})" if f.note else ""))
        if self.not_injected:
            lines.append(f"  not injected (no room in a soak this short): {', '.join(self.not_injected)}")
        if self.ran_late:
            lines.append(f"  {self.ran_late} planned faults skipped near the end: waiting for earlier recoveries "
                         "took their time")
        if self.cue_restored is not None:
            lines.append(f"cue after the restart: {'restored' if self.cue_restored else 'NOT restored'}")
        lines.append(f"crashes: {len(self.crashes)}")
        for c in self.crashes:
            lines.append(f"  at {c.at_s:.0f} s: {c.reason}")
        gap = self.max_frame_gap_s()
        lines.append("longest gap between presented frames: "
                     + ("none presented" if gap is None else f"{gap:.3f} s") + " (the restart left out)")
        lines.append(f"presented frames: {self.presented_frames}, transcripts: {self.transcripts}")
        per_minute: dict[int, float] = {}
        for t, _, mb in self.rss:
            per_minute.setdefault(int(t // 60), mb)
        if self.rss:
            points = [f"{m}:00 {mb:.0f} MB" for m, mb in sorted(per_minute.items())]
            points.append(f"end {self.rss[-1][2]:.0f} MB")
            lines.append("memory (RSS): " + " · ".join(points))
        growth = self.rss_growth_pct()
        lines.append("memory growth from minute 1: " + ("n/a (shorter than 1 minute)" if growth is None
                                                        else f"{growth:+.1f} %"))
        failures = self.failures()
        lines.append("result: PASSED" if not failures else "result: FAILED")
        lines += [f"  - {f}" for f in failures]
        return "\n".join(lines)


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


__all__ = ["Crash", "FaultOutcome", "GAP_BOUND_S", "RECOVERY_BOUND_S", "RESTART_BOUND_S", "RSS_GROWTH_BOUND_PCT",
           "SoakResult"]
