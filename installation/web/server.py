"""The web server: the operator's page, its JSON API and live updates, /healthz and /metrics.

aiohttp on its own thread with its own event loop: the render loop never waits for it. It reads
the show only through the bridge's snapshots (bridge.py) and changes it only by enqueueing
Controls, checked against the same address table as OSC (control/addresses.py), which the main
thread then applies and settles.

Public without a password: GET / (the page, which asks for the password), /static/…, /healthz
and /metrics (which hold no visitor's words). Everything else needs `Authorization: Bearer
PASSWORD`, checked in a middleware before a request's body or content type is looked at. With
no password set at all, the read-only API answers anyone and every control is refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math
import os
import re
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger, BaseRequest
from aiohttp.web_response import StreamResponse
from yarl import URL

from installation.control.addresses import ADDRESSES, PATTERN_CHARS, OscArgumentError, is_query, lookup, validate_args
from installation.control.show_control import CAPTURES_DIR, SHOW_NAME
from installation.core.events import EventHook, emit
from installation.core.messages import Control, ControlOutcome
from installation.show import SHOWS_DIR, WebConfig

from .auth import (
    NO_PASSWORD,
    Credential,
    FailureTracker,
    Lockout,
    RateLimit,
    TokenBuckets,
    bearer_token,
    resolve_password,
)
from .bridge import STALE_AFTER_S, WEB_SENDER, WORDS_KEY, WebBridge
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import ShowCollector, WebCounters, make_registry, render
from .preview import PreviewEncoder

log = logging.getLogger(__name__)
access_log = logging.getLogger("installation.web.access")

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
CAPTURE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".json": "application/json", ".mp4": "video/mp4"}
CAPTURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_CAPTURES_LISTED = 200
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
}
CONTROL_EXAMPLE = '{"address": "/jadong/cue/next", "args": []}'


class WebError(OSError):
    """The web server cannot run (its port is taken, its host does not exist); the text says what to do."""


@dataclass(frozen=True)
class WebLimits:
    """How much the server accepts. The defaults let one phone refresh the preview 4 times a
    second with room to spare, and keep a flood's cost to a cheap refusal per request."""

    max_body_bytes: int = 16 * 1024
    per_client: RateLimit = RateLimit(per_s=20.0, burst=60.0)
    everyone: RateLimit = RateLimit(per_s=200.0, burst=200.0)
    lockout: Lockout = Lockout()
    control_timeout_s: float = 2.0
    max_event_streams: int = 16
    events_hz: float = 4.0  # status updates pushed per second at most
    heartbeat_s: float = 5.0  # an event at least this often, so the page notices a dead stream
    keepalive_s: float = 15.0  # idle keep-alive connections are closed after this
    # A refused request's answer waits this long (its connection with it), so each connection of a
    # flood gets a few answers a second: the flood then costs the server, and the display, little.
    tarpit_s: float = 0.25
    max_held_per_client: int = 32  # refused answers waiting per address; beyond, connections are closed
    max_held: int = 256  # the same for everyone together


def _public(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Answers without a credential."""
    handler.jadong_access = "public"  # type: ignore[attr-defined]
    return handler


def _readable(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Read-only: needs the credential when a password is set, answers anyone when none is."""
    handler.jadong_access = "read"  # type: ignore[attr-defined]
    return handler


def _plain(value: Any) -> Any:
    """`value` as JSON can hold it: NaN and infinity as null (browsers refuse them), numpy
    scalars as numbers, anything else unknown as its text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalars
        try:
            return _plain(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))


class _AccessLog(AbstractAccessLogger):
    """One debug line per request: address, method, path (no query, no headers: the credential
    is in a header and never logged), status and time. Also counts answers by status code."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        counters = request.app.get(COUNTERS) if isinstance(request, web.Request) else None
        if counters is not None:
            counters.requests[str(response.status)] += 1
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("%s %s %s %d %.1f ms", request.remote, request.method, request.path[:200],
                              response.status, time * 1000.0)

    @property
    def enabled(self) -> bool:
        return True


COUNTERS = web.AppKey("counters", WebCounters)


class StatusFeed:
    """The status as JSON, refreshed at most `hz` times a second while anyone listens, and a
    version that grows when it changes. One poller serves every event stream."""

    def __init__(self, render: Callable[[], tuple[str, str]], hz: float) -> None:
        self._render = render  # -> (what decides a change, the JSON to send)
        self.interval_s = 1.0 / hz
        self.version = 0
        self.body = ""
        self._key: str | None = None
        self._changed = asyncio.Event()
        self._listeners = 0
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    def listen(self) -> None:
        self._listeners += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll())

    def leave(self) -> None:
        self._listeners -= 1

    def refresh(self) -> None:
        key, body = self._render()
        if key != self._key:
            self._key, self.body = key, body
            self.version += 1
            self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_newer(self, version: int, timeout: float) -> bool:
        """True once the feed is newer than `version` (or closed); False after `timeout`."""
        if self.version > version or self.closed:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _poll(self) -> None:
        try:
            while self._listeners > 0 and not self.closed:
                try:
                    self.refresh()
                except Exception:  # a bad snapshot costs one update, never the stream
                    log.exception("web: the status could not be rendered")
                await asyncio.sleep(self.interval_s)
        finally:
            self._task = None


class WebServer:
    """The operator's page and monitoring endpoints on `host:port` (from [web], or the
    arguments), served from a thread of its own between start() and stop().

    `password` overrides [web] password and JADONG_WEB_PASSWORD (tests); `environ` is where
    JADONG_WEB_PASSWORD is read (os.environ by default)."""

    def __init__(self, bridge: WebBridge, cfg: WebConfig | None = None, *, host: str | None = None,
                 port: int | None = None, password: str | None = None, environ: Mapping[str, str] | None = None,
                 captures_dir: Path = CAPTURES_DIR, shows_dir: Path = SHOWS_DIR, limits: WebLimits = WebLimits(),
                 on_event: EventHook | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        cfg = cfg or WebConfig.model_validate({})
        self.bridge = bridge
        self.host = host if host is not None else cfg.host
        self._wanted_port = port if port is not None else cfg.port
        self.show_words = cfg.show_words
        self.credential = Credential(password if password is not None else resolve_password(cfg.password, environ))
        self.captures_dir = captures_dir
        self.shows_dir = shows_dir
        self.limits = limits
        self._on_event = on_event
        self._clock = clock
        self.counters = WebCounters()
        self.failures = FailureTracker(limits.lockout, clock)
        self._per_client = TokenBuckets(limits.per_client, clock)
        self._everyone = TokenBuckets(limits.everyone, clock)
        self.preview = PreviewEncoder(bridge.preview)
        self._registry = make_registry(ShowCollector(bridge.metrics, self.health, lambda: self.counters))
        self._static = {name: (STATIC_DIR / name).read_bytes() for name in STATIC_FILES}
        self._streams = 0
        self._held: dict[str, int] = {}  # rate-limited answers waiting, per address
        self._held_total = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._feed: StatusFeed | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._port: int | None = None

    # --- life -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port it listens on (the one chosen when [web] port is 0); valid after start()."""
        if self._port is None:
            raise RuntimeError("the web server is not running: call start() first")
        return self._port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else ("[::1]" if self.host == "::" else self.host)
        return f"http://{host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._port is not None

    def start(self, timeout: float = 10.0) -> None:
        """Listen, on a new thread; returns once listening. WebError if it cannot (a port taken)."""
        if self._thread is not None:
            raise RuntimeError("the web server is already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"web-server:{self._wanted_port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise WebError(f"the web server did not start listening on {self.host}:{self._wanted_port} "
                           f"within {timeout:g} s")
        if self._error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise WebError(self._bind_message(self._error)) from None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, end every open stream and join the thread (idempotent)."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop closed meanwhile: the thread is ending anyway
                pass
        thread.join(timeout)
        if thread.is_alive():
            log.warning("web: the server thread did not stop within %g s", timeout)
            return
        self._thread = None
        self._loop = None
        self._port = None

    def _bind_message(self, exc: BaseException) -> str:
        why = getattr(exc, "strerror", None) or str(exc)
        return (f"the web server cannot listen on {self.host}:{self._wanted_port}: {why}. Choose another "
                "[web] port (or --web-port N), or a [web] host this machine has (127.0.0.1, 0.0.0.0)")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start() (before listening) or logged (after)
            if not self._ready.is_set():
                self._error = exc
            else:
                log.exception("web: the server stopped on an error")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._feed = StatusFeed(self._render_status, self.limits.events_hz)
        runner = web.AppRunner(self._make_app(), access_log_class=_AccessLog, access_log=access_log,
                               shutdown_timeout=1.0, keepalive_timeout=self.limits.keepalive_s)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._wanted_port)
            await site.start()
            self._port = int(runner.addresses[0][1])
            threading.current_thread().name = f"web-server:{self._port}"
            self._ready.set()
            log.info("web: the operator's page is at %s", self.url)
            emit(self._on_event, "web", state="listening", url=self.url, controls=self.credential.is_set)
            await self._stop.wait()
        finally:
            self._feed.close()  # event streams end now rather than at the shutdown timeout
            await runner.cleanup()

    # --- the application ----------------------------------------------------------------------
    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard, self._authorize], client_max_size=self.limits.max_body_bytes)
        app[COUNTERS] = self.counters
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static_file)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/preview.jpg", self._preview)
        app.router.add_get("/api/shows", self._shows)
        app.router.add_get("/api/captures", self._captures)
        app.router.add_get("/captures/{name}", self._capture_file)
        app.router.add_post("/api/control", self._control)
        return app

    def _refuse(self, request: web.Request, status: int, reason: str,
                headers: Mapping[str, str] | None = None) -> web.Response:
        """An error answer: JSON for the API (the page shows `reason`), plain text elsewhere."""
        if request.path.startswith("/api/"):
            return web.json_response({"ok": False, "reason": reason}, status=status, headers=headers, dumps=dumps)
        return web.Response(text=reason + "\n", status=status, headers=headers)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[[web.Request], Awaitable[StreamResponse]]
                     ) -> StreamResponse:
        """Outermost: the rate limits (a refusal costs next to nothing), errors as clear answers
        (never a traceback), and the security headers on every answer."""
        response: StreamResponse
        refused = self._rate_limit(request)
        if refused is not None:
            await self._tarpit(request, refused)
            response = refused
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                response = self._refuse(request, exc.status, self._http_reason(exc),
                                        {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None)
            except (asyncio.CancelledError, ConnectionResetError):
                raise
            except Exception as exc:
                log.exception("web: %s %s failed", request.method, request.path[:200])
                response = self._refuse(request, 500, f"the server failed: {type(exc).__name__}: {exc}")
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
            if request.path.startswith("/api/"):
                response.headers.setdefault("Cache-Control", "no-store")
        return response

    @staticmethod
    def _http_reason(exc: web.HTTPException) -> str:
        if exc.status == 404:
            return "not found"
        if exc.status == 405:
            return f"method not allowed (allowed: {exc.headers.get('Allow', '')})"
        return exc.text or exc.reason

    def _rate_limit(self, request: web.Request) -> web.Response | None:
        client = request.remote or "unknown"
        wait = self._per_client.take(client)
        busy = f"too many requests from this address: slow down (at most {self.limits.per_client.per_s:g} a second)"
        if not wait:
            wait = self._everyone.take("*")
            busy = "the server is busy (too many requests from everyone together): try again shortly"
        if not wait:
            return None
        self.counters.rate_limited += 1
        return self._refuse(request, 429, busy, {"Retry-After": str(max(1, math.ceil(wait)))})

    async def _tarpit(self, request: web.Request, response: web.Response) -> None:
        """Hold a rate-limited answer for `tarpit_s`; when too many are held already, answer at
        once and close the connection (a new one costs the flooder a handshake)."""
        client = request.remote or "unknown"
        held = self._held.get(client, 0)
        if held >= self.limits.max_held_per_client or self._held_total >= self.limits.max_held:
            response.force_close()
            return
        self._held[client] = held + 1
        self._held_total += 1
        try:
            await asyncio.sleep(self.limits.tarpit_s)
        finally:
            self._held_total -= 1
            left = self._held.get(client, 1) - 1
            if left > 0:
                self._held[client] = left
            else:
                self._held.pop(client, None)

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Callable[[web.Request], Awaitable[StreamResponse]]
                         ) -> StreamResponse:
        """The credential, then (for POST) the cross-site check, content type and size: all from
        the headers, before the body is read."""
        route = request.match_info.route
        access = getattr(route.handler, "jadong_access", "private") if request.match_info.http_exception is None \
            else "public"  # nothing there: aiohttp answers 404/405 without reading anything
        if access == "public":
            return await handler(request)
        refused = self._check_credential(request, read_only=access == "read")
        if refused is None and request.method == "POST":
            refused = self._check_post(request)
        return refused if refused is not None else await handler(request)

    def _check_credential(self, request: web.Request, read_only: bool) -> web.Response | None:
        if not self.credential.is_set:
            return None if read_only else self._refuse(request, 403, NO_PASSWORD)
        client = request.remote or "unknown"
        wait = self.failures.wait_s(client)
        if wait > 0:
            self.failures.refused()
            self.counters.lockouts = self.failures.lockouts
            return self._refuse(request, 429, f"too many wrong passwords from this address: wait {math.ceil(wait)} s "
                                "and try again", {"Retry-After": str(max(1, math.ceil(wait)))})
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return self._refuse(request, 401, "the password is needed: sign in on the page "
                                "(send it as Authorization: Bearer PASSWORD)", {"WWW-Authenticate": "Bearer"})
        if not self.credential.matches(token):
            wait = self.failures.failed(client)
            self.counters.auth_failures = self.failures.failures
            if wait > 0:
                log.warning("web: repeated wrong passwords from %s: it must wait %g s", client, wait)
                emit(self._on_event, "web", state="lockout", client=client, wait_s=wait)
            return self._refuse(request, 403, "wrong password")
        self.failures.succeeded(client)
        return None

    def _check_post(self, request: web.Request) -> web.Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and not self._same_origin(origin, request):
            return self._refuse(request, 403, f"cross-site request refused: Origin {origin[:100]!r} is not this "
                                "server")
        if request.content_type != "application/json":
            return self._refuse(request, 415, f"expected Content-Type: application/json, got "
                                f"{request.content_type[:100]!r}; send {CONTROL_EXAMPLE}")
        if request.content_length is not None and request.content_length > self.limits.max_body_bytes:
            return self._too_big(request, request.content_length)
        return None

    @staticmethod
    def _same_origin(origin: str, request: web.Request) -> bool:
        try:
            theirs = URL(origin)
            ours = URL(f"{request.scheme}://{request.host}")
            return bool(theirs.host) and (theirs.scheme, (theirs.host or "").lower(), theirs.port) == (
                ours.scheme, (ours.host or "").lower(), ours.port)
        except ValueError:
            return False

    def _too_big(self, request: web.Request, size: int | None) -> web.Response:
        got = f" (got {size} bytes)" if size is not None else ""
        return self._refuse(request, 413, f"the request body is over {self.limits.max_body_bytes} bytes{got}; a "
                            f"control is a small JSON object such as {CONTROL_EXAMPLE}")

    # --- public -----------------------------------------------------------------------------
    @_public
    async def _index(self, request: web.Request) -> web.Response:
        return self._static_response("index.html")

    @_public
    async def _static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._static:  # a fixed list, read at start: no path ever reaches the disk
            return self._refuse(request, 404, "not found")
        return self._static_response(name)

    def _static_response(self, name: str) -> web.Response:
        return web.Response(body=self._static[name], content_type=STATIC_FILES[name], charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    def health(self) -> tuple[bool, str]:
        """(True, "ok") while the main thread publishes and the app says it is healthy."""
        status = self.bridge.status()
        t = status.get("t") if isinstance(status, dict) else None
        if not isinstance(t, (int, float)):
            return False, "the display loop is not presenting (no status yet)"
        age = self._clock() - float(t)
        if age > STALE_AFTER_S:
            return False, f"the display loop is not presenting (no new status for {age:.0f} s)"
        ok, reason = self.bridge.health()
        return (True, "ok") if ok else (False, reason or "unhealthy")

    @_public
    async def _healthz(self, request: web.Request) -> web.Response:
        ok, reason = self.health()
        return web.Response(text=("ok" if ok else reason) + "\n", status=200 if ok else 503,
                            headers={"Cache-Control": "no-store"})

    @_public
    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=render(self._registry), headers={"Content-Type": METRICS_CONTENT_TYPE,
                                                                   "Cache-Control": "no-store"})

    # --- read-only API -------------------------------------------------------------------------
    def _public_status(self) -> tuple[dict[str, Any], float]:
        raw = self.bridge.status()
        status = dict(raw) if isinstance(raw, dict) else {}
        if not self.show_words:
            status.pop(WORDS_KEY, None)
        t = status.get("t")
        age = self._clock() - float(t) if isinstance(t, (int, float)) else None
        status["web"] = {"controls": self.credential.is_set, "reason": "" if self.credential.is_set else NO_PASSWORD,
                         "show_words": self.show_words}
        return status, (round(age, 1) if age is not None else -1.0)

    def _render_status(self) -> tuple[str, str]:
        status, age = self._public_status()
        status.pop("t", None)
        key = dumps(status)
        status["age_s"] = age
        return key, dumps(status)

    @_readable
    async def _status(self, request: web.Request) -> web.Response:
        _, body = self._render_status()
        return web.Response(text=body, content_type="application/json")

    @_readable
    async def _events(self, request: web.Request) -> StreamResponse:
        feed = self._feed
        assert feed is not None  # made before the server listens
        if self._streams >= self.limits.max_event_streams:
            return self._refuse(request, 503, f"too many live pages ({self.limits.max_event_streams}) are open: close "
                                "one, or use GET /api/status", {"Retry-After": "5"})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no", **SECURITY_HEADERS})
        await response.prepare(request)
        self._streams += 1
        feed.listen()
        try:
            await response.write(b"retry: 2000\n\n")
            feed.refresh()
            await self._stream(response, feed)
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
        finally:
            feed.leave()
            self._streams -= 1
        return response

    async def _stream(self, response: StreamResponse, feed: StatusFeed) -> None:
        sent = 0
        while not feed.closed:
            if feed.version > sent:
                sent = feed.version
                await response.write(f"event: status\ndata: {feed.body}\n\n".encode())
            elif not await feed.wait_newer(sent, self.limits.heartbeat_s):
                ok, reason = self.health()
                beat = dumps({"healthy": ok, "reason": reason})
                await response.write(f"event: heartbeat\ndata: {beat}\n\n".encode())

    @_readable
    async def _preview(self, request: web.Request) -> web.Response:
        jpeg = self.preview.jpeg()
        if jpeg is None:
            return web.Response(status=204, headers={"Cache-Control": "no-store"})
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @_readable
    async def _shows(self, request: web.Request) -> web.Response:
        names = sorted(p.stem for p in self.shows_dir.glob("*.toml") if SHOW_NAME.match(p.stem) and p.is_file())
        return web.json_response({"shows": names}, dumps=dumps)

    def _capture_allowed(self, name: str) -> bool:
        suffix = os.path.splitext(name)[1].lower()
        if not CAPTURE_NAME.match(name) or ".." in name or suffix not in CAPTURE_TYPES:
            return False
        return self.show_words or suffix != ".json"  # a capture's JSON holds the visitor's words

    @_readable
    async def _captures(self, request: web.Request) -> web.Response:
        found: list[tuple[float, str, int]] = []
        try:
            with os.scandir(self.captures_dir) as entries:
                for entry in entries:
                    if self._capture_allowed(entry.name) and entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        found.append((info.st_mtime, entry.name, info.st_size))
        except FileNotFoundError:
            pass  # no capture yet
        found.sort(reverse=True)
        items = [{"name": name, "bytes": size, "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(mtime))}
                 for mtime, name, size in found[:MAX_CAPTURES_LISTED]]
        return web.json_response({"captures": items, "count": len(found)}, dumps=dumps)

    @_readable
    async def _capture_file(self, request: web.Request) -> StreamResponse:
        name = request.match_info["name"]
        if not self._capture_allowed(name):
            return self._refuse(request, 404 if CAPTURE_NAME.match(name) and ".." not in name else 400,
                                "expected the name of a file in captures/ (letters, digits, - _ .; .png, .jpg or "
                                ".json), not a path")
        path = self.captures_dir / name
        try:
            info = os.lstat(path)
            inside = path.resolve().parent == self.captures_dir.resolve()
        except OSError:
            return self._refuse(request, 404, f"no capture {name!r}")
        if not stat.S_ISREG(info.st_mode) or not inside:  # a link or a folder is never followed
            return self._refuse(request, 404, f"no capture {name!r}")
        return web.FileResponse(path, headers={"Content-Type": CAPTURE_TYPES[path.suffix.lower()],
                                               "Cache-Control": "no-store"})

    # --- controls -------------------------------------------------------------------------------
    async def _control(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_big(request, None)
        parsed = self._parse_control(body)
        if isinstance(parsed, str):
            self.counters.controls["invalid"] += 1
            return self._refuse(request, 400, parsed)
        outcome = await self._submit(parsed)
        if outcome is None:
            return self._refuse(request, 503, "the show did not take the control (it is stopping or restarting); "
                                "try again in a moment")
        if isinstance(outcome, str):
            return self._refuse(request, 503, outcome)
        self.counters.controls["ok" if outcome.ok else "refused"] += 1
        if not outcome.ok:
            return self._refuse(request, 422, outcome.reason or "the show refused it")
        return web.json_response({"ok": True, "values": list(outcome.values)}, dumps=dumps)

    def _parse_control(self, body: bytes) -> Control | str:
        """The body as a Control, checked exactly as OSC checks a message; or the reason it is not one."""
        try:
            data = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError:
            return "the body is not UTF-8 text"
        except RecursionError:
            return "the body's JSON is nested too deeply"
        except ValueError as exc:
            return f"the body is not valid JSON ({exc}); send {CONTROL_EXAMPLE}"
        if not isinstance(data, dict) or not isinstance(data.get("address"), str):
            return f"expected a JSON object with an \"address\" string and an \"args\" list, such as {CONTROL_EXAMPLE}"
        unknown = sorted(set(data) - {"address", "args"})
        if unknown:
            return f"unknown field(s) {', '.join(map(repr, unknown))[:200]}: only \"address\" and \"args\" are read"
        args = data.get("args", [])
        if not isinstance(args, list):
            return "\"args\" must be a list, such as [1] or [\"dawn\"] ([] for none)"
        address: str = data["address"]
        if PATTERN_CHARS & set(address):
            return "address patterns (* ? [ ] { }) are not supported; send the full address"
        row = lookup(address)
        if row is None:
            return f"unknown address {address[:100]!r}; known: {', '.join(ADDRESSES)}"
        try:
            values = validate_args(row, args)
        except OscArgumentError as exc:
            return f"{row.path}: {exc} (usage: {row.signature})"
        return Control(address=row.path, args=values, sender=WEB_SENDER, query=is_query(row, args),
                       outcome=concurrent.futures.Future())

    async def _submit(self, control: Control) -> ControlOutcome | str | None:
        """Enqueue `control` and wait for the main thread to settle it: its outcome, None if the
        bridge refused it, or the reason the wait ended."""
        assert control.outcome is not None
        try:
            taken = self.bridge.submit(control)
        except Exception:
            log.exception("web: the bridge failed to take a control")
            taken = False
        if not taken:
            return None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(control.outcome), self.limits.control_timeout_s)
        except TimeoutError:
            return (f"the show did not answer within {self.limits.control_timeout_s:g} s (it may be loading a show "
                    "or stalled: see /healthz); the control may still happen")
