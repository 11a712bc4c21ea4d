"""The curation queue: visitors' words waiting for a person before they are painted ([curation]).

The study Jadong comes from makes this its point: the artist keeps the last choice. With
`[curation] enabled`, what a visitor said waits here until someone approves, edits or rejects
it (on the operator's page or over OSC, through the same address table), or until
`timeout_s` passes and the show's `on_timeout` decides. This module only keeps the words: ids,
order, the bound, the timeouts, and the last decisions (so a second operator is told the words
were already decided, not "unknown"). What a decision does to the prompt and the caption, and
the event it writes, is the show control's (show_control.py).

The main thread changes the queue; the web server's thread may read `snapshot()` at any time,
so every method holds a lock (a few microseconds per frame: `expired` looks at the oldest only).
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from installation.show import CurationConfig

from .host import Sender

# Ids never repeat within a run, even across show switches (a new show has a new queue): an
# approval meant for words of the previous show must not land on other words that got its id.
_IDS = itertools.count(1)
OLDEST = 0  # the id that means "the oldest words waiting" (a QLab button needs no id)
RECENT_DECISIONS = 256  # decided ids remembered, so a late second decision gets a clear reason

# Decisions, as the `decision` field of a `curation` event says them.
APPROVE, EDIT, REJECT = "approve", "edit", "reject"
TIMEOUT_ACCEPT, TIMEOUT_DROP = "timeout-accept", "timeout-drop"
OVERFLOW, DISCARDED = "overflow", "discarded"
PAINTING = frozenset({APPROVE, EDIT, TIMEOUT_ACCEPT})


class UnknownWords(LookupError):
    """No words wait with that id; the text says why, for /jadong/error and the page."""


@dataclass(frozen=True)
class PendingWords:
    """Words heard and waiting: `text` is the English for the prompt, `caption` the visitor's
    own words (what the screen shows), `t` when they were queued (time.monotonic())."""

    id: int
    text: str
    caption: str
    t: float


@dataclass(frozen=True)
class Decided:
    """What became of words: the decision, who made it, when (time.monotonic())."""

    decision: str
    who: str
    t: float


def who(sender: Sender | None) -> str:
    """A control's sender as the event log says it: "osc 127.0.0.1:9001" for an OSC peer, the
    sender's own name for anything else (the web page's ("web", 0) is "web"), "local" for none."""
    if sender is None:
        return "local"
    host, port = sender
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"{host}:{port}" if port else str(host)
    return f"osc {host}:{port}"


class CurationQueue:
    """Pending words in the order they were heard, at most `cfg.max_pending` of them."""

    def __init__(self, cfg: CurationConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._pending: deque[PendingWords] = deque()
        self._decided: OrderedDict[int, Decided] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def pending(self) -> list[PendingWords]:
        """The words waiting, oldest first."""
        with self._lock:
            return list(self._pending)

    def add(self, text: str, caption: str, now: float | None = None) -> tuple[PendingWords, list[PendingWords]]:
        """Queue words; returns them and the oldest words pushed out by the bound (if any), which
        the caller reports (decision "overflow")."""
        words = PendingWords(id=next(_IDS), text=text, caption=caption,
                             t=time.monotonic() if now is None else now)
        with self._lock:
            self._pending.append(words)
            over = [self._pending.popleft() for _ in range(len(self._pending) - self.cfg.max_pending)]
        return words, over

    def find(self, words_id: int) -> PendingWords:
        """The words waiting with this id (OLDEST: the oldest), or UnknownWords with the reason."""
        with self._lock:
            if words_id == OLDEST:
                if not self._pending:
                    raise UnknownWords("no words are waiting")
                return self._pending[0]
            for words in self._pending:
                if words.id == words_id:
                    return words
            decided = self._decided.get(words_id)
            waiting = ", ".join(str(w.id) for w in self._pending) or "none"
        if decided is not None:
            ago = max(0.0, time.monotonic() - decided.t)
            raise UnknownWords(f"words {words_id} were already decided: {decided.decision} by {decided.who}, "
                               f"{ago:.0f} s ago (waiting now: {waiting})")
        raise UnknownWords(f"no words waiting with id {words_id} (waiting now: {waiting}; "
                           f"{OLDEST} means the oldest)")

    def remove(self, words: PendingWords, decision: str, by: str, now: float | None = None) -> None:
        """Take decided words out of the queue, remembering the decision."""
        with self._lock:
            try:
                self._pending.remove(words)
            except ValueError:
                pass  # pushed out meanwhile: the decision is still remembered
            self._remember(words.id, Decided(decision, by, time.monotonic() if now is None else now))

    def remember(self, words: PendingWords, decision: str, by: str, now: float) -> None:
        """Record the decision about words already out of the queue (pushed out by the bound)."""
        with self._lock:
            self._remember(words.id, Decided(decision, by, now))

    def _remember(self, words_id: int, decided: Decided) -> None:
        self._decided[words_id] = decided
        while len(self._decided) > RECENT_DECISIONS:
            self._decided.popitem(last=False)

    def expired(self, now: float) -> list[PendingWords]:
        """The words that have waited `timeout_s` or longer, oldest first, taken out of the queue
        (the caller decides what they become). Every entry waits as long, so they are a prefix."""
        out = []
        with self._lock:
            while self._pending and now - self._pending[0].t >= self.cfg.timeout_s:
                out.append(self._pending.popleft())
        return out

    def clear(self) -> list[PendingWords]:
        """Every word waiting, taken out (a show that stops)."""
        with self._lock:
            out = list(self._pending)
            self._pending.clear()
        return out

    def snapshot(self, now: float | None = None) -> list[dict[str, Any]]:
        """The queue as JSON-able dicts for the operator's page, oldest first: id, text (English,
        for the prompt), caption (the visitor's words), age_s (waited so far) and left_s
        (until the timeout decides)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            pending = list(self._pending)
        return [{"id": w.id, "text": w.text, "caption": w.caption, "age_s": round(max(0.0, now - w.t), 1),
                 "left_s": round(max(0.0, self.cfg.timeout_s - (now - w.t)), 1)} for w in pending]
