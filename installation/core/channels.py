"""Channels between stages: a latest-value slot for sampled state, a bounded drop-oldest queue
for streams and events. Both count what they lose so status can show it."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ChannelStats:
    name: str
    written: int
    read: int
    dropped: int


class LatestSlot(Generic[T]):
    """Holds the newest value only. Writers overwrite; readers never wait for old data.

    `dropped` counts values that were overwritten before anyone read them. `version` grows by
    one per write so a reader can tell whether anything new arrived since it last looked.
    """

    def __init__(self, name: str, initial: T | None = None) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._value: T | None = initial
        self._version = 0 if initial is None else 1
        self._unread = False
        self._written = self._version
        self._read = 0
        self._dropped = 0

    def put(self, value: T) -> None:
        with self._cond:
            if self._unread:
                self._dropped += 1
            self._value = value
            self._version += 1
            self._written += 1
            self._unread = True
            self._cond.notify_all()

    def get(self) -> T | None:
        """The newest value (or None if nothing was ever written)."""
        with self._cond:
            if self._unread:
                self._read += 1
                self._unread = False
            return self._value

    def get_with_version(self) -> tuple[T | None, int]:
        with self._cond:
            if self._unread:
                self._read += 1
                self._unread = False
            return self._value, self._version

    def wait_newer(self, version: int, timeout: float | None = None) -> tuple[T | None, int]:
        """Wait until the slot holds a value newer than `version`, or the timeout passes."""
        with self._cond:
            self._cond.wait_for(lambda: self._version > version, timeout)
            if self._unread:
                self._read += 1
                self._unread = False
            return self._value, self._version

    @property
    def version(self) -> int:
        with self._cond:
            return self._version

    def stats(self) -> ChannelStats:
        with self._cond:
            return ChannelStats(self.name, self._written, self._read, self._dropped)


class DropOldestQueue(Generic[T]):
    """A bounded FIFO: when full, a put drops the oldest item and counts the drop, so the
    writer never blocks and the newest data always gets in."""

    def __init__(self, name: str, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"{name}: maxsize must be at least 1, got {maxsize}")
        self.name = name
        self.maxsize = maxsize
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._written = 0
        self._read = 0
        self._dropped = 0

    def put(self, item: T) -> bool:
        """Add an item; returns False if an old item had to be dropped to make room."""
        with self._cond:
            dropped = False
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self._dropped += 1
                dropped = True
            self._items.append(item)
            self._written += 1
            self._cond.notify()
            return not dropped

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, waiting up to `timeout` seconds; None if none came."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            self._read += 1
            return self._items.popleft()

    def get_nowait(self) -> T | None:
        return self.get(timeout=0)

    def drain(self) -> list[T]:
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._read += len(items)
            return items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def stats(self) -> ChannelStats:
        with self._cond:
            return ChannelStats(self.name, self._written, self._read, self._dropped)
