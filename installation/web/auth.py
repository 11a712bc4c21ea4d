"""The operator's credential, wrong-password counting, and per-client rate limits.

One password guards the page's controls: the show's `[web] password`, else the environment's
JADONG_WEB_PASSWORD. It travels in an `Authorization: Bearer …` header (never in a URL, so no
access log or browser history holds it) and is compared in constant time. After a few wrong
ones from the same address, that address must wait, longer after each further failure, before
any password it sends is even looked at: guessing becomes hopeless while a staff member who
mistyped waits a second or two.

Everything here is used on the web server's thread only (no locks), and every table is bounded:
a flood from many addresses cannot grow memory without end.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

PASSWORD_ENV = "JADONG_WEB_PASSWORD"
NO_PASSWORD = f"no password is set: set [web] password or {PASSWORD_ENV}"
MAX_CLIENTS = 4096  # addresses remembered by each table; the least recently seen go first


def resolve_password(configured: str, environ: Mapping[str, str] | None = None) -> str:
    """The password in force: the show's [web] password if it has one, else JADONG_WEB_PASSWORD
    (the bundled shows carry none, and a password belongs in the environment, not in git).
    "" means none is set; a password of only spaces counts as none."""
    environ = os.environ if environ is None else environ
    for candidate in (configured, environ.get(PASSWORD_ENV, "")):
        if candidate and candidate.strip():
            return candidate
    return ""


def _digest(text: str) -> bytes:
    # Comparing fixed-length digests: hmac.compare_digest on the raw strings would return early
    # on a length difference and tell a guesser the password's length.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class Credential:
    """The password, kept as a digest; `matches` takes the same time whatever is offered."""

    def __init__(self, password: str) -> None:
        self._digest = _digest(password) if password else None

    @property
    def is_set(self) -> bool:
        return self._digest is not None

    def matches(self, offered: str) -> bool:
        if self._digest is None:
            return False
        return hmac.compare_digest(_digest(offered), self._digest)

    def __repr__(self) -> str:  # never the password, nor its digest, in a log or a traceback
        return f"Credential(set={self.is_set})"


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header; None when there is no such header."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class Lockout:
    """After `free` wrong passwords in a row, an address waits `base_s`, then twice as long
    after each further one, at most `max_s`; `forget_s` without a failure clears its count."""

    free: int = 3
    base_s: float = 1.0
    max_s: float = 60.0
    forget_s: float = 900.0


class FailureTracker:
    """Wrong passwords per client address, and the wait each address must sit out."""

    def __init__(self, policy: Lockout = Lockout(), clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        # address -> (failures in a row, when the last one was, locked until)
        self._clients: OrderedDict[str, tuple[int, float, float]] = OrderedDict()
        self.failures = 0  # every wrong password, for /metrics
        self.lockouts = 0  # attempts refused because the address had to wait

    def wait_s(self, client: str) -> float:
        """Seconds `client` must still wait before a password it sends is checked (0: none)."""
        entry = self._clients.get(client)
        if entry is None:
            return 0.0
        now = self._clock()
        count, last, until = entry
        if now - last > self.policy.forget_s:
            del self._clients[client]
            return 0.0
        return max(0.0, until - now)

    def refused(self) -> None:
        self.lockouts += 1

    def failed(self, client: str) -> float:
        """Count a wrong password from `client`; returns the wait it now faces (0: none yet)."""
        self.failures += 1
        now = self._clock()
        count, last, _ = self._clients.pop(client, (0, now, now))
        if now - last > self.policy.forget_s:
            count = 0
        count += 1
        over = count - self.policy.free
        wait = 0.0 if over <= 0 else min(self.policy.max_s, self.policy.base_s * 2 ** min(over - 1, 30))
        self._clients[client] = (count, now, now + wait)
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        return wait

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `per_s` requests a second on average, bursts of up to `burst`."""

    per_s: float
    burst: float


class TokenBuckets:
    """One token bucket per key (a client address, or one key for everybody together)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)

    def take(self, key: str) -> float:
        """0.0 if a request by `key` may go ahead (a token is spent), else the seconds until it may."""
        now = self._clock()
        tokens, then = self._buckets.pop(key, (self.limit.burst, now))
        tokens = min(self.limit.burst, tokens + (now - then) * self.limit.per_s)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.limit.per_s
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait
