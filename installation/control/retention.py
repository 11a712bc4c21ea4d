"""The retention janitor: deletes what a show's [privacy] says is not to be kept any longer,
on its own thread, every few minutes while the show runs.

Each pass, oldest first, never touching the log file being written:
- event-log files whose last line is older than `logs_days` are deleted, then the oldest while
  all of them together hold more than `logs_max_mb`;
- closed log files whose last line is older than `words_days` (every closed one when the show
  keeps no words) are rewritten with each visitor's words replaced by a count
  (core/logfiles.scrub_file; the rest of every line stays, for staff reading errors);
- captures taken more than `captures_days` ago are deleted with their clip and sidecar, and
  their lines leave captures/index.jsonl (control/archive.expire_captures).

What it did is one `retention` event; what it could not do, an `error` with stage "retention"
(once per reason until a pass succeeds), and it tries again at the next pass. A capture's words
are signed into its content credentials, so a capture is kept whole or deleted, never scrubbed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from installation.core.events import EventHook, EventLog, emit
from installation.core.logfiles import LogFile, scrub_file
from installation.show import PrivacyConfig

from .archive import expire_captures

log = logging.getLogger(__name__)

DAY_S = 86400.0
INTERVAL_S = 300.0  # a pass every five minutes: expiry is in days, the disk is touched rarely
FIRST_PASS_S = 10.0  # the first pass once the show has started (not during the model's load)


@dataclass(frozen=True)
class RetentionPolicy:
    """[privacy] in the janitor's units. Days of 0 mean no limit by age."""

    keep_words: bool = True
    words_days: float = 30.0
    captures_days: float = 0.0
    logs_days: float = 90.0
    logs_max_bytes: int = 1_000_000_000

    @classmethod
    def from_config(cls, cfg: PrivacyConfig) -> RetentionPolicy:
        return cls(keep_words=cfg.keep_words, words_days=cfg.words_days, captures_days=cfg.captures_days,
                   logs_days=cfg.logs_days, logs_max_bytes=int(cfg.logs_max_mb * 1_000_000))


@dataclass
class PassReport:
    """What one pass did (and could not do)."""

    logs_deleted: list[str] = field(default_factory=list)
    logs_freed_bytes: int = 0
    files_scrubbed: list[str] = field(default_factory=list)
    lines_scrubbed: int = 0
    unreadable_dropped: int = 0
    captures_deleted: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def did_something(self) -> bool:
        return bool(self.logs_deleted or self.files_scrubbed or self.captures_deleted)


class Janitor:
    """Runs `run_once` at start (after FIRST_PASS_S) and every `interval_s`, on its own daemon
    thread. `events` is the app's event log (its files, and the one never to touch);
    `captures` the captures folder. `policy` may change with a show switch (`set_policy`)."""

    def __init__(self, events: EventLog, captures: Path, policy: RetentionPolicy,
                 on_event: EventHook | None = None, interval_s: float = INTERVAL_S,
                 first_pass_s: float = FIRST_PASS_S, clock: Callable[[], float] = time.time) -> None:
        self.events = events
        self.captures = captures
        self.policy = policy  # replaced whole (one assignment), read once per pass
        self._on_event = on_event
        self.interval_s = interval_s
        self.first_pass_s = first_pass_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scrubbed: set[tuple[str, int, float]] = set()  # (path, size, mtime) known to hold no words
        self._reported: set[str] = set()
        self.passes = 0

    def set_policy(self, policy: RetentionPolicy) -> None:
        self.policy = policy

    # --- the thread ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        wait = self.first_pass_s
        while not self._stop.wait(wait):
            try:
                self.run_once()
            except Exception as exc:  # a bug here must not end the show, nor the next passes
                log.exception("retention pass failed")
                self._error(f"retention pass failed: {type(exc).__name__}: {exc}")
            wait = self.interval_s

    # --- one pass --------------------------------------------------------------------------
    def run_once(self, now: float | None = None) -> PassReport:
        """Prune and scrub the logs and expire captures as of `now` (time.time())."""
        now = self._clock() if now is None else now
        policy = self.policy
        report = PassReport()
        files = self._prune_logs(self.events.files(), policy, now, report)
        self._scrub_logs(files, policy, now, report)
        if policy.captures_days > 0:
            try:
                report.captures_deleted = len(expire_captures(self.captures, now - policy.captures_days * DAY_S))
            except OSError as exc:
                report.errors.append(f"an expired capture in {self.captures} could not be deleted: "
                                     f"{exc.strerror or exc}")
        self.passes += 1
        if report.did_something:
            emit(self._on_event, "retention", logs_deleted=report.logs_deleted,
                 logs_freed_mb=round(report.logs_freed_bytes / 1e6, 3), files_scrubbed=report.files_scrubbed,
                 lines_scrubbed=report.lines_scrubbed, unreadable_dropped=report.unreadable_dropped,
                 captures_deleted=report.captures_deleted)
        for reason in report.errors:
            self._error(reason)
        if not report.errors:
            self._reported.clear()
        return report

    def _prune_logs(self, files: list[LogFile], policy: RetentionPolicy, now: float,
                    report: PassReport) -> list[LogFile]:
        """Delete the files too old, then the oldest beyond the total; the files left."""
        kept: list[LogFile] = []
        for f in files:
            if policy.logs_days > 0 and f.mtime < now - policy.logs_days * DAY_S and self._remove(f, report):
                continue
            kept.append(f)
        total = sum(f.size for f in kept)
        left: list[LogFile] = []
        for f in kept:  # oldest first
            if total > policy.logs_max_bytes and self._remove(f, report):
                total -= f.size
                continue
            left.append(f)
        return left

    def _remove(self, f: LogFile, report: PassReport) -> bool:
        try:
            if not self.events.remove(f.path):
                return False  # the file being written
        except OSError as exc:
            report.errors.append(f"the expired log file {f.path} could not be deleted: {exc.strerror or exc}")
            return False
        report.logs_deleted.append(f.path.name)
        report.logs_freed_bytes += f.size
        return True

    def _scrub_logs(self, files: list[LogFile], policy: RetentionPolicy, now: float, report: PassReport) -> None:
        if policy.keep_words and policy.words_days <= 0:
            return
        # A show that keeps no words keeps none from before either: every closed file.
        cutoff = float("inf") if not policy.keep_words else now - policy.words_days * DAY_S
        for f in files:
            key = (str(f.path), f.size, f.mtime)
            if f.mtime >= cutoff or key in self._scrubbed or self.events.is_current(f.path):
                continue
            try:
                done = scrub_file(f.path)
            except FileNotFoundError:
                continue  # deleted meanwhile
            except OSError as exc:
                report.errors.append(f"visitors' words in {f.path} could not be scrubbed: {exc.strerror or exc}")
                continue
            if done.changed:
                report.files_scrubbed.append(f.path.name)
                report.lines_scrubbed += done.lines
                report.unreadable_dropped += done.unreadable
            try:
                st = f.path.stat()
                self._scrubbed.add((str(f.path), st.st_size, st.st_mtime))
            except OSError:
                pass
        present = {str(f.path) for f in files}
        self._scrubbed = {key for key in self._scrubbed if key[0] in present}  # pruned files are forgotten

    def _error(self, reason: str) -> None:
        if reason in self._reported:
            return
        self._reported.add(reason)
        log.warning("%s", reason)
        emit(self._on_event, "error", stage="retention", reason=reason)


__all__ = ["INTERVAL_S", "Janitor", "PassReport", "RetentionPolicy"]
