"""The soak itself: the app runs for the whole N minutes while faults are injected on the
schedule (schedule.py), and every fault's recovery is taken from evidence of work.

Everything is timed on time.monotonic(), which on Linux is one clock for every process, so the
app's event-log stamps, the harness's SIGTERM and the moment an OSC reply arrived are comparable.
What counts as recovered, per kind:

- camera_lost, mic_error, generator_raise, generator_nan, generator_oom, disk_full: armed in the
  app (`/jadong/fault KIND`); the app's injector logs when the fault was armed, when the stage
  failed because of it, and the first real work of that stage after it (core/faults.py): a new
  camera frame, audio from the reopened source (and the speech stage alive), a good frame
  painted by the primary generator (not the preview), the event log writing again.
- bad_show: `/jadong/show` naming a broken show is refused with /jadong/error and the app goes
  on generating and presenting frames.
- osc_malformed: a datagram that is not OSC and two truncated messages; the two truncated ones
  are answered on /jadong/error and then a query is answered.
- osc_flood: thousands of messages at once; then a query is answered and frames still flow.
- sigterm_restart: SIGTERM, a clean exit, a new process; restart_s runs from the SIGTERM to the
  new process's first presented frame. The cue fired at the start should come back with it.
"""

from __future__ import annotations

import collections
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from installation.core.faults import FAULT_KINDS, INTERNAL_FAULTS

from . import schedule
from .applog import LogTail
from .child import AppProcess, child_env, read_rss_mb
from .osc_client import OscClient, build, is_error_for, is_reply
from .report import Crash, FaultOutcome, SoakResult
from .workdir import BROKEN_SHOW_NAME, CUES, RESTORED_CUE, SHOW_NAME, SoakFiles

START_TIMEOUT_S = 180.0  # from starting the app to its first presented frame, on a busy machine
RECOVERY_WAIT_S = 20.0  # how long a fault is watched for its recovery before it counts as not recovered
PRIMARY_WAIT_S = 90.0  # a generator fault waits this long for the primary to paint (after a restart it loads)
EXIT_WAIT_S = 20.0  # SIGTERM to exit; then the app is killed
HANG_S = 20.0  # no heartbeat for this long from a running app: hung (killed, counted, restarted)
RSS_EVERY_S = 2.0
FLOOD_MESSAGES = 5000
GOOD_STATE = ("ok",)


@dataclass
class Seen:
    """What the harness has read from the app's event log."""

    heartbeats: collections.deque[dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=2000))
    faults: list[dict[str, Any]] = field(default_factory=list)
    first_frames: list[float] = field(default_factory=list)
    transcripts: list[float] = field(default_factory=list)
    gap_by_pid: dict[int, float] = field(default_factory=dict)
    frames_by_pid: dict[int, int] = field(default_factory=dict)
    bad_frames: int = 0

    def take(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        mono = event.get("mono")
        if not isinstance(mono, (int, float)):
            return
        if kind == "heartbeat":
            self.heartbeats.append(event)
            pid = int(event.get("pid", 0))
            gap = max(float(event.get("gap_max_s") or 0.0), float(event.get("gap_life_max_s") or 0.0))
            self.gap_by_pid[pid] = max(self.gap_by_pid.get(pid, 0.0), gap)
            self.frames_by_pid[pid] = int(event.get("new_frames", 0) or 0)
        elif kind == "fault":
            self.faults.append(event)
        elif kind == "frame" and event.get("first"):
            self.first_frames.append(float(mono))
        elif kind == "transcript":
            self.transcripts.append(float(mono))
        elif kind == "soak_bad_frame":
            self.bad_frames += 1

    def last_heartbeat(self, pid: int | None) -> dict[str, Any] | None:
        for hb in reversed(self.heartbeats):
            if hb.get("pid") == pid:
                return hb
        return None

    def fault(self, kind: str, state: str, since: float) -> dict[str, Any] | None:
        for ev in self.faults:
            if ev.get("kind") == kind and ev.get("state") == state and float(ev.get("armed_mono", 0)) >= since:
                return ev
        return None


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Soak:
    def __init__(self, files: SoakFiles, minutes: float, faults: bool, seed: int = 0,
                 progress: Callable[[str], None] = _say, kinds: tuple[str, ...] = FAULT_KINDS,
                 spacing_s: float = schedule.SPACING_S) -> None:
        self.files = files
        self.minutes = minutes
        self.faults_on = faults
        self.seed = seed
        self.kinds = kinds
        self.spacing_s = spacing_s
        self._progress = progress
        # --faults always: it is also what makes the app write the heartbeats the soak is judged by;
        # without the harness's --faults, nothing is armed.
        args = [SHOW_NAME, "--headless", "--log", str(files.log), "--state", str(files.state), "--faults"]
        self.app = AppProcess(args, child_env(files.shows_dir), files.app_output)
        self.tail = LogTail(files.log)
        self.seen = Seen()
        self.osc: OscClient | None = None
        self.result = SoakResult(minutes=minutes, faults_on=faults, event_log=str(files.log))
        self.t0 = 0.0
        self._expect_exit = False
        self._ended = False  # stopped on purpose at the end: no more watching
        self._next_rss = 0.0
        self._last_hb_pid: int | None = None
        self._last_hb_at = 0.0
        self._hb_count = 0

    # --- the whole run ------------------------------------------------------------------
    def run(self) -> SoakResult:
        self.osc = OscClient(self.files.osc_port)
        try:
            self.t0 = self._start_app()
            self._next_rss = self.t0
            if not self._wait(lambda: bool(self.seen.first_frames), START_TIMEOUT_S):
                self.result.problems.append(f"the app presented no frame within {START_TIMEOUT_S:.0f} s of starting "
                                            f"(its output: {self.files.app_output})")
                return self._finish()
            self._note(f"first frame after {self.seen.first_frames[0] - self.t0:.2f} s")
            self.osc.send("/jadong/cue/go", RESTORED_CUE)  # a restart should come back to it
            planned = self.planned()
            if self.faults_on:
                self.result.not_injected = schedule.left_out(planned, self.kinds)
            end = self.t0 + self.minutes * 60.0
            for p in planned:
                self._idle_until(self.t0 + p.at_s)
                if time.monotonic() > end - schedule.TAIL_S / 2:
                    self.result.ran_late += 1
                    if p.kind not in self.result.not_injected and all(f.kind != p.kind for f in self.result.faults):
                        self.result.not_injected.append(p.kind)
                    continue
                outcome = self._inject(p.kind)
                self.result.faults.append(outcome)
                took = ("NOT recovered" if outcome.recovered_after_s is None
                        else f"recovered after {outcome.recovered_after_s:.3f} s")
                self._note(f"{outcome.kind}: {took}" + (f" ({outcome.note})" if outcome.note else ""))
            self._idle_until(end)
            return self._finish()
        finally:
            if self.app.poll() is None:
                self.app.kill()
            self.osc.close()
            self.tail.close()

    def planned(self) -> list[schedule.PlannedFault]:
        """The faults this soak injects (none without --faults)."""
        if not self.faults_on:
            return []
        return schedule.plan(self.minutes, self.kinds, seed=self.seed, spacing_s=self.spacing_s)

    def _finish(self) -> SoakResult:
        self._stop_app("at the end")
        self._ended = True
        self._pump()
        r = self.result
        r.frame_gaps_s = list(self.seen.gap_by_pid.values())
        r.presented_frames = sum(self.seen.frames_by_pid.values())
        r.transcripts = len(self.seen.transcripts)
        r.bad_frames = self.seen.bad_frames
        for f in r.faults:
            if f.kind == "mic_error" and f.recovered_after_s is not None:
                at = self.t0 + f.injected_at_s
                heard = next((t for t in self.seen.transcripts if t > at), None)
                f.note = (f"first transcript {heard - at:.1f} s after" if heard is not None
                          else "no transcript after it")
        return r

    # --- the app ------------------------------------------------------------------------
    def _start_app(self) -> float:
        t = self.app.start()
        self._last_hb_pid = self.app.pid
        self._last_hb_at = t + START_TIMEOUT_S - HANG_S  # start-up is given its own time
        return t

    def _stop_app(self, when: str) -> int | None:
        if self.app.poll() is not None:
            return self.app.poll()
        self._expect_exit = True
        self.app.terminate()
        code = self._wait_exit()
        if code is None:
            self.app.kill()
            self.result.problems.append(f"the app did not exit within {EXIT_WAIT_S:.0f} s of SIGTERM {when}; killed")
        elif code != 0:
            self.result.problems.append(f"the app exited with code {code} after SIGTERM {when}")
        self._expect_exit = False
        return code

    def _wait_exit(self) -> int | None:
        deadline = time.monotonic() + EXIT_WAIT_S
        while time.monotonic() < deadline:
            code = self.app.poll()
            if code is not None:
                return code
            self._pump()
            time.sleep(0.02)
        return None

    def _watch_app(self, now: float) -> None:
        if self._expect_exit or self._ended:
            return
        code = self.app.poll()
        if code is not None:
            reason = (f"killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals()
                      else f"exit code {code}")
            self._crash(now, reason)
            return
        if now - self._last_hb_at > HANG_S:
            self.app.kill()
            self._crash(now, f"hung: no heartbeat for {HANG_S:.0f} s (killed)")

    def _crash(self, now: float, reason: str) -> None:
        self.result.crashes.append(Crash(at_s=now - self.t0, reason=reason, output_tail=self.app.output_tail()))
        self._note(f"CRASH: {reason}; starting the app again")
        self._start_app()

    # --- watching -----------------------------------------------------------------------
    def _pump(self) -> None:
        for event in self.tail.read():
            if float(event.get("mono", 0.0) or 0.0) < self.t0 - 1.0:
                continue  # an earlier run's lines in the same log
            self.seen.take(event)
            if event.get("event") == "heartbeat" and event.get("pid") == self.app.pid:
                self._last_hb_at = time.monotonic()
        now = time.monotonic()
        pid = self.app.pid
        if now >= self._next_rss and pid is not None and not self._expect_exit and not self._ended:
            self._next_rss = now + RSS_EVERY_S
            mb = read_rss_mb(pid)
            if mb is not None:
                self.result.rss.append((now - self.t0, pid, mb))
        self._watch_app(now)

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self._pump()
            if done():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _idle_until(self, t: float) -> None:
        self._wait(lambda: time.monotonic() >= t, max(0.0, t - time.monotonic()) + 1.0)

    def _heartbeat_after(self, t: float, check: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """A heartbeat of the running app stamped after `t` that passes `check`."""
        def found() -> bool:
            hb = self.seen.last_heartbeat(self.app.pid)
            return hb is not None and float(hb["mono"]) > t and check(hb)
        return self._wait(found, timeout)

    def _note(self, text: str) -> None:
        self._progress(f"[{time.monotonic() - self.t0:7.1f} s] {text}")

    # --- the faults ---------------------------------------------------------------------
    def _inject(self, kind: str) -> FaultOutcome:
        if kind in INTERNAL_FAULTS:
            return self._internal(kind)
        return {"bad_show": self._bad_show, "osc_malformed": self._osc_malformed, "osc_flood": self._osc_flood,
                "sigterm_restart": self._restart}[kind]()

    def _outcome(self, kind: str, at: float, recovered: float | None, note: str = "") -> FaultOutcome:
        return FaultOutcome(kind, at - self.t0, recovered, note)

    def _internal(self, kind: str) -> FaultOutcome:
        assert self.osc is not None
        stage = INTERNAL_FAULTS[kind]
        if stage == "generator" and not self._heartbeat_after(0.0, lambda hb: bool(hb.get("primary_painting")),
                                                               PRIMARY_WAIT_S):
            note = f"the primary generator was not painting {PRIMARY_WAIT_S:.0f} s before it was injected"
        else:
            note = ""
        sent = self.osc.send("/jadong/fault", kind)
        since = sent - 0.001
        refused = None

        def settled() -> bool:
            nonlocal refused
            refused = self.osc.wait(is_error_for("/jadong/fault"), sent, 0) if self.osc else None
            return refused is not None or self.seen.fault(kind, "recovered", since) is not None
        self._wait(settled, RECOVERY_WAIT_S)
        armed = self.seen.fault(kind, "armed", since)
        fired = self.seen.fault(kind, "fired", since)
        recovered = self.seen.fault(kind, "recovered", since)
        at = float(armed["armed_mono"]) if armed is not None else sent
        if refused is not None:
            return self._outcome(kind, sent, None, f"refused: {refused.args[1] if len(refused.args) > 1 else ''}")
        if armed is None and recovered is None:
            return self._outcome(kind, sent, None, "the app never armed it (no fault event in the log)")
        if recovered is None:
            if fired is None:
                why = f"never fired: the {stage} stage does not take this fault"
                if kind == "disk_full":
                    why = "never fired: no writer asked whether the disk is full"
            else:
                why = f"fired, but the {stage} stage did no work within {RECOVERY_WAIT_S:.0f} s"
            return self._outcome(kind, at, None, "; ".join(filter(None, (note, why))))
        after = float(recovered["recovered_mono"]) - at
        if kind == "mic_error" and not self._heartbeat_after(
                float(recovered["recovered_mono"]),
                lambda hb: bool(hb.get("speech_alive")) and float(hb.get("speech_beat_s", 99)) < 2.0, 5.0):
            return self._outcome(kind, at, None, "audio flows again, but the speech stage is not alive")
        if kind == "camera_lost" and not self._heartbeat_after(float(recovered["recovered_mono"]),
                                                               lambda hb: hb.get("camera_state") in GOOD_STATE, 5.0):
            note = "; ".join(filter(None, (note, "the camera does not report ok after it")))
        return self._outcome(kind, at, after, note)

    def _painting_after(self, t: float, before: dict[str, Any] | None, timeout: float = 5.0) -> bool:
        """Frames still generated and presented after `t` (than in heartbeat `before`)."""
        gen0 = int(before.get("generated", 0)) if before else 0
        new0 = int(before.get("new_frames", 0)) if before else 0
        return self._heartbeat_after(t, lambda hb: int(hb.get("generated", 0)) > gen0
                                     and int(hb.get("new_frames", 0)) > new0, timeout)

    def _bad_show(self) -> FaultOutcome:
        assert self.osc is not None
        before = self.seen.last_heartbeat(self.app.pid)
        sent = self.osc.send("/jadong/show", BROKEN_SHOW_NAME)
        reply = self.osc.wait(is_error_for("/jadong/show"), sent, RECOVERY_WAIT_S, idle=self._pump)
        if reply is None:
            return self._outcome("bad_show", sent, None, "no /jadong/error reply")
        if not self._painting_after(reply.mono, before):
            return self._outcome("bad_show", sent, None, "refused, but the app stopped painting")
        return self._outcome("bad_show", sent, reply.mono - sent)

    def _osc_malformed(self) -> FaultOutcome:
        assert self.osc is not None
        t = self.osc.send_raw(b"\x00\x01\x02 not OSC at all \xff\xfe")  # noted by the app, not answered
        self.osc.send_raw(b"/jadong/prompt\x00\x00,s\x00\x00")  # a string cut off
        self.osc.send_raw(b"/jadong/strength\x00\x00\x00\x00,f\x00\x00\x3f\x00")  # a float cut short
        errors = self.osc.wait(lambda r: r.address == "/jadong/error" and r.args[:1] == ("/jadong/strength",),
                               t, RECOVERY_WAIT_S, idle=self._pump)
        first = self.osc.wait(is_error_for("/jadong/prompt"), t, 0)
        q = self.osc.send("/jadong/strength")
        answer = self.osc.wait(is_reply("/jadong/strength"), q, RECOVERY_WAIT_S, idle=self._pump)
        if errors is None or first is None:
            return self._outcome("osc_malformed", t, None, "a malformed message got no /jadong/error reply")
        if answer is None:
            return self._outcome("osc_malformed", t, None, "a valid query was not answered after it")
        return self._outcome("osc_malformed", t, answer.mono - t)

    def _osc_flood(self) -> FaultOutcome:
        assert self.osc is not None
        before = self.seen.last_heartbeat(self.app.pid)
        message = build("/jadong/strength", 0.5)
        t = time.monotonic()
        for _ in range(FLOOD_MESSAGES):
            self.osc.send_raw(message)
        sent_s = time.monotonic() - t
        answer = None
        deadline = t + RECOVERY_WAIT_S
        while answer is None and time.monotonic() < deadline:
            # Asked again until answered: a query sent into a full receive buffer is lost.
            q = self.osc.send("/jadong/cue")
            answer = self.osc.wait(is_reply("/jadong/cue"), q, 0.25, idle=self._pump)
        note = f"{FLOOD_MESSAGES} messages in {sent_s:.2f} s"
        if answer is None:
            return self._outcome("osc_flood", t, None, f"{note}; no query answered")
        if not self._painting_after(answer.mono, before):
            return self._outcome("osc_flood", t, None, f"{note}; frames stopped")
        return self._outcome("osc_flood", t, answer.mono - t, note)

    def _restart(self) -> FaultOutcome:
        assert self.osc is not None
        notes = []
        # Stopped as a running show is, painting with its model (a SIGTERM while the model loads
        # waits for the load: a start-up's cost, not a running show's).
        if not self._heartbeat_after(0.0, lambda hb: bool(hb.get("primary_painting")), PRIMARY_WAIT_S):
            notes.append(f"the primary generator was not painting {PRIMARY_WAIT_S:.0f} s before it")
        frames_before = len(self.seen.first_frames)
        self._expect_exit = True
        t = self.app.terminate()
        code = self._wait_exit()
        if code is None:
            self.app.kill()
            notes.append(f"did not exit within {EXIT_WAIT_S:.0f} s of SIGTERM; killed")
        elif code != 0:
            notes.append(f"exit code {code} after SIGTERM")
        exited = time.monotonic()
        self._start_app()
        self._expect_exit = False
        if not self._wait(lambda: len(self.seen.first_frames) > frames_before, START_TIMEOUT_S):
            return self._outcome("sigterm_restart", t, None, "; ".join(notes + ["no frame after the restart"]))
        first = self.seen.first_frames[frames_before]
        notes.append(f"exit {exited - t:.2f} s, first frame {first - exited:.2f} s after")
        q = self.osc.send("/jadong/cue")
        answer = self.osc.wait(is_reply("/jadong/cue"), q, 5.0, idle=self._pump)
        self.result.cue_restored = bool(answer is not None and answer.args[:1] == (RESTORED_CUE,))
        if not self.result.cue_restored:
            got = f"cue {answer.args[0]}" if answer is not None and answer.args else "no answer"
            notes.append(f"cue {RESTORED_CUE} ({CUES[RESTORED_CUE - 1][0]}) not restored: {got}")
        return self._outcome("sigterm_restart", t, first - t, "; ".join(notes))


__all__ = ["Seen", "Soak"]
