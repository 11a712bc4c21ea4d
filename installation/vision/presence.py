"""Whether someone is there, without flicker: presence turns on after `on_s` of sightings (a
passing shadow or a single false detection does not count) and off after `hold_s` without any
(a visitor who looks away or is hidden for a moment is still there). And a people count that
does not flicker between 1 and 2: the median over a window, changed only once it has held."""

from __future__ import annotations

import statistics
from collections import deque

RUN_GAP_S = 1.0  # a sighting run survives a gap this long (one or two missed frames at 5 Hz)
COUNT_WINDOW_S = 2.0  # the stable count is the median over this many seconds of raw counts
COUNT_HOLD_S = 1.0  # ...and a new median must hold this long before it replaces the old count


class Presence:
    """Hysteresis and hold over "someone seen in this frame". Times are seconds on any
    monotonic clock; `update` is called once per analysed frame."""

    def __init__(self, on_s: float, hold_s: float) -> None:
        self.on_s = on_s
        self.hold_s = hold_s
        self._run_start: float | None = None  # first sighting of the current run
        self._last_seen: float | None = None
        self._present = False

    @property
    def present(self) -> bool:
        return self._present

    def update(self, seen: bool, t: float) -> bool:
        if seen:
            if self._last_seen is None or t - self._last_seen > RUN_GAP_S:
                self._run_start = t  # a new run: the earlier sightings were too long ago
            self._last_seen = t
            if self._run_start is not None and t - self._run_start >= self.on_s:
                self._present = True
        elif self._present and self._last_seen is not None and t - self._last_seen > self.hold_s:
            self._present = False
        if not self._present and self._last_seen is not None and t - self._last_seen > RUN_GAP_S:
            self._run_start = None
        return self._present


class StableCount:
    """A count that follows the raw per-frame count slowly: the low median of the last
    `window_s`, adopted only once that median has stayed the same for `hold_s`. A raw count that
    alternates 1, 2, 1, 2 never moves it; a second visitor who stays moves it within ~2 s."""

    def __init__(self, window_s: float = COUNT_WINDOW_S, hold_s: float = COUNT_HOLD_S) -> None:
        self.window_s = window_s
        self.hold_s = hold_s
        self._raw: deque[tuple[float, int]] = deque()
        self._value = 0
        self._candidate = 0
        self._candidate_since = 0.0

    @property
    def value(self) -> int:
        return self._value

    def update(self, raw: int, t: float) -> int:
        self._raw.append((t, raw))
        while self._raw and t - self._raw[0][0] > self.window_s:
            self._raw.popleft()
        median = statistics.median_low(n for _, n in self._raw)
        if median == self._value:
            self._candidate = median
            self._candidate_since = t
        elif median != self._candidate:
            self._candidate, self._candidate_since = median, t
        elif t - self._candidate_since >= self.hold_s:
            self._value = median
        return self._value
