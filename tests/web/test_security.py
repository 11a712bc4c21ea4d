"""The web server's defences over real HTTP: the credential decided before the body is read,
wrong passwords counted and delayed, paths that leave what is served, floods, and the
credential kept out of every log."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import aiohttp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from installation.web.auth import (
    Credential,
    FailureTracker,
    Lockout,
    RateLimit,
    TokenBuckets,
    bearer_token,
    resolve_password,
)
from installation.web.server import WebLimits

SECRET = b"TOP-SECRET-NOT-SERVED"


def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 5.0) -> tuple[int, bytes]:
    """Send `head` (request line and headers) and `body` as they are; the status and what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        try:
            sock.settimeout(0.5)
            while chunk := sock.recv(65536):
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return int(data.split(b" ", 2)[1]), data


def metric(rig, name: str) -> float:
    text = rig.call("GET", "/metrics", password=None).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


# --- the credential, before the body ------------------------------------------------------------


@pytest.mark.parametrize("auth, expected", [("", 401), ("Authorization: Bearer wrong\n", 403)])
def test_the_credential_is_decided_before_the_body_is_read(rig, auth, expected):
    # A body announced as 50 MB, of which a few bytes come: a server that read it first would hang.
    head = (f"POST /api/control HTTP/1.1\nHost: 127.0.0.1:{rig.port}\n{auth}Content-Type: text/plain\n"
            "Content-Length: 50000000\n")
    started = time.monotonic()
    status, data = raw_request(rig.port, head, b"{not json at all")
    assert status == expected and time.monotonic() - started < 3
    assert rig.loop.handled == 0


def test_malformed_or_huge_bodies_without_a_credential_still_get_401(rig):
    for body, kind in ((b"{not json", "application/json"), (b"x" * 100_000, "application/json"),
                       (b'{"address": "/jadong/cue/next"}', "text/plain")):
        r = rig.call("POST", "/api/control", body, password=None, headers={"Content-Type": kind})
        assert r.status == 401, (body[:10], kind)
    assert rig.ctl.state.cue_index == -1


def test_wrong_passwords_are_counted_and_then_delayed(rig):
    for _ in range(3):  # Lockout(free=3): the first three are answered at once
        assert rig.call("GET", "/api/status", password="guess").status == 403
    assert rig.call("GET", "/api/status", password="guess").status == 403  # the 4th: a wait begins
    r = rig.call("GET", "/api/status")  # even the right password waits it out
    assert r.status == 429 and "too many wrong passwords" in r.json()["reason"] and r.headers["retry-after"] == "1"
    assert metric(rig, "jadong_web_auth_failures_total") == 4
    assert metric(rig, "jadong_web_lockouts_total") == 1
    time.sleep(0.6)  # base_s 0.5 in the tests
    assert rig.call("GET", "/api/status").status == 200  # and a success clears the count
    assert rig.call("GET", "/api/status", password="guess").status == 403
    assert rig.call("GET", "/api/status").status == 200


def test_the_wait_grows_with_each_further_failure_and_is_forgotten():
    now = [0.0]
    tracker = FailureTracker(Lockout(free=2, base_s=1.0, max_s=8.0, forget_s=100.0), clock=lambda: now[0])
    waits = [tracker.failed("10.0.0.5") for _ in range(7)]
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert tracker.wait_s("10.0.0.5") == 8.0 and tracker.wait_s("10.0.0.6") == 0.0  # per address
    now[0] = 5.0
    assert tracker.wait_s("10.0.0.5") == 3.0
    now[0] = 200.0  # long after: forgotten
    assert tracker.wait_s("10.0.0.5") == 0.0 and tracker.failed("10.0.0.5") == 0.0
    assert tracker.failures == 8


def test_the_credential_compares_whole_passwords_and_never_shows_itself():
    cred = Credential("sesame")
    assert cred.matches("sesame") and not cred.matches("sesam") and not cred.matches("sesame ")
    assert not cred.matches("") and not Credential("").matches("")
    assert "sesame" not in repr(cred) and "sesame" not in str(vars(cred))
    assert bearer_token("Bearer  sesame ") == "sesame" and bearer_token("bearer x") == "x"
    assert bearer_token("Basic c2VzYW1l") is None and bearer_token("Bearer") is None and bearer_token(None) is None
    assert resolve_password("", {"JADONG_WEB_PASSWORD": "env"}) == "env"
    assert resolve_password("show", {"JADONG_WEB_PASSWORD": "env"}) == "show"
    assert resolve_password("  ", {"JADONG_WEB_PASSWORD": ""}) == ""


def test_the_credential_never_reaches_the_logs(rig, caplog):
    caplog.set_level(logging.DEBUG)
    rig.call("GET", "/api/status")
    rig.call("GET", "/api/status?password=" + "nothing-here")
    rig.control("/jadong/cue/next")
    for _ in range(5):
        rig.call("GET", "/api/status", password="a-wrong-guess-XYZ")
    rig.call("GET", "/api/events", password=None)
    time.sleep(0.2)  # the access log line is written after the answer
    access = [r for r in caplog.records if r.name == "installation.web.access"]
    assert access and any("/api/control" in r.getMessage() for r in access)
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert rig.password not in logged and "a-wrong-guess-XYZ" not in logged and "Bearer" not in logged
    assert "?password" not in logged  # the query is never logged


# --- paths that leave what is served -----------------------------------------------------------

ESCAPES = [
    "/captures/../secret.txt", "/captures/..%2fsecret.txt", "/captures/..%2Fsecret.txt",
    "/captures/%2e%2e%2fsecret.txt", "/captures/%2e%2e/secret.txt", "/captures/.%2e/secret.txt",
    "/captures/..%5csecret.txt", "/captures/..\\secret.txt",
    "/captures/%252e%252e%252fsecret.txt", "/captures/link.txt", "/captures/link.png", "/captures/%2e%2e",
    "/captures//etc/passwd", "/captures/%2fetc%2fpasswd", "/captures/secret.txt%00.png", "/captures/inner%2fdeep.png",
    "/static/../secret.txt", "/static/..%2f..%2fserver.py", "/static/%2e%2e/%2e%2e/show.py", "/static/.%2e/bridge.py",
    "/%2e%2e/%2e%2e/etc/passwd", "/../../../../etc/passwd", "//etc/passwd", "/api/../secret.txt",
    "/shows/../secret.txt", "/shows/test.toml", "/api/shows/..%2f..%2fsecret.txt", "/captures/..;/secret.txt",
    "/captures/%c0%ae%c0%ae/secret.txt", "/static/app.js/../../secret.txt",
]


@pytest.fixture
def escape_rig(rig):
    (rig.tmp / "secret.txt").write_bytes(SECRET)
    (rig.tmp / "captures" / "link.txt").symlink_to(rig.tmp / "secret.txt")
    (rig.tmp / "captures" / "link.png").symlink_to(rig.tmp / "secret.txt")
    (rig.tmp / "captures" / "inner").mkdir()
    (rig.tmp / "captures" / "inner" / "deep.png").write_bytes(SECRET)
    (rig.tmp / "captures" / "ok.png").write_bytes(b"fine")
    return rig


@pytest.mark.parametrize("path", ESCAPES)
def test_a_path_that_leaves_what_is_served_never_gets_a_file(escape_rig, path):
    r = escape_rig.call("GET", path)
    assert r.status in (400, 403, 404) and SECRET not in r.body, (path, r.status)
    assert b"import " not in r.body  # no source file either


@given(st.lists(st.sampled_from(["..", "%2e%2e", ".%2e", "%2f", "%5c", "/", "secret.txt", "captures", "static",
                                 "inner", "deep.png", "link.png", "%00", ".", "%252e"]), min_size=1, max_size=8))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_combination_of_escapes_reaches_a_file_outside(escape_rig, parts):
    for prefix in ("/captures/", "/static/"):
        r = escape_rig.call("GET", prefix + "".join(parts))
        assert r.status != 200 or SECRET not in r.body, parts
        assert SECRET not in r.body


def test_the_capture_that_exists_is_still_served(escape_rig):
    assert escape_rig.call("GET", "/captures/ok.png").body == b"fine"


# --- floods ------------------------------------------------------------------------------------


async def _flood(url: str, password: str, *, n: int | None = None, seconds: float = 0.0,
                 connections: int = 8) -> list[tuple[int, str, str]]:
    """GET /api/status over `connections` connections: `n` requests, or as many as fit in `seconds`."""
    results: list[tuple[int, str, str]] = []
    end = time.monotonic() + seconds
    sent = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while (sent < n) if n is not None else (time.monotonic() < end):
            sent += 1
            try:
                async with session.get(f"{url}api/status", headers={"Authorization": f"Bearer {password}"}) as r:
                    body = await r.json()
                    results.append((r.status, r.headers.get("Retry-After", ""), body.get("reason", "")))
            except aiohttp.ClientError:
                results.append((0, "", "closed"))  # a connection the server closed under the flood

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return results


def test_a_flood_from_one_address_is_rate_limited(make_rig):
    rig = make_rig(limits=WebLimits(per_client=RateLimit(per_s=20.0, burst=20.0), tarpit_s=0.02))
    results = asyncio.run(_flood(rig.server.url, rig.password, n=200))
    ok = [r for r in results if r[0] == 200]
    limited = [r for r in results if r[0] == 429]
    assert len(ok) + len(limited) == 200 and 20 <= len(ok) < 120 and limited
    assert limited[0][1] == "1" and "too many requests from this address" in limited[0][2]
    time.sleep(1.1)
    assert rig.call("GET", "/healthz", password=None).status == 200  # it recovers by itself
    assert metric(rig, "jadong_web_rate_limited_total") == len(limited)


def test_the_rate_limit_is_per_address_with_a_bound_for_everyone():
    now = [0.0]
    buckets = TokenBuckets(RateLimit(per_s=2.0, burst=3.0), clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5) and buckets.take("b") == 0.0
    now[0] = 0.5
    assert buckets.take("a") == 0.0 and buckets.take("a") > 0


def test_the_display_keeps_its_rate_during_a_flood(make_rig):
    """A thread paced like the presenter (60 Hz, some Python and numpy work a frame, so it needs
    the GIL as the render loop does) keeps most of its frames while 64 connections flood the
    server from this same process; the flood is answered with 429s (held, or closed)."""
    rig = make_rig(limits=WebLimits(per_client=RateLimit(per_s=20.0, burst=20.0)))
    frame = np.zeros((360, 640, 3), np.uint8)

    def present(seconds: float) -> int:
        frames, period = 0, 1 / 60
        next_t = time.perf_counter()
        end = next_t + seconds
        while next_t < end:
            np.clip(frame.astype(np.int16) + 1, 0, 255, out=frame, casting="unsafe")  # a blit's worth
            sum(i * i for i in range(3000))  # the loop's own Python: events, HUD, slots
            frames += 1
            next_t += period
            time.sleep(max(0.0, next_t - time.perf_counter()))
        return frames

    quiet = present(1.0)
    counted: list[int] = []
    display = threading.Thread(target=lambda: counted.append(present(2.0)))
    display.start()
    results = asyncio.run(_flood(rig.server.url, rig.password, seconds=2.0, connections=64))
    display.join()
    refused = sum(1 for r in results if r[0] in (0, 429))
    rate = counted[0] / 2.0
    print(f"display: {quiet} fps quiet, {rate:.1f} fps during a flood of {len(results)} requests ({refused} refused)")
    assert refused > 0 and rate >= 0.6 * quiet
