"""Monitoring against a real App (issue #14): /healthz turns 503 while the generator stage stalls
for real, and 200 again after, /metrics saying the same through a Prometheus text-format
parser; and a flood of requests, good and bad, from another process gets clear answers while
the display keeps its frame rate.

One App serves both tests (live_app.page_show, on a thread; the test's thread asks it).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from installation import web_bridge
from web.live_app import PASSWORD, Answer, LiveApp, page_show, stalled_generator, start_app, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    tmp = tmp_path_factory.mktemp("health")
    running = start_app(page_show(tmp / "page-test.toml"), tmp / "events.jsonl")
    yield running
    running.stop()


def metric(live: LiveApp, name: str) -> float:
    """One sample of GET /metrics, read with prometheus_client's own text-format parser."""
    answer = live.request("GET", "/metrics", password=None)
    assert answer.status == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"no {name} in /metrics:\n{answer.text}")


def healthz(live: LiveApp) -> Answer:
    return live.request("GET", "/healthz", password=None)


def test_healthz_turns_503_while_the_generator_stalls_and_200_after(live, monkeypatch):
    monkeypatch.setattr(web_bridge, "HEALTH_STALL_S", 1.0)  # 10 s in a show: 1 s here
    assert (healthz(live).status, healthz(live).text) == (200, "ok\n")
    assert metric(live, "jadong_healthy") == 1.0
    presenter = live.app.presenter

    with stalled_generator(live.app):
        unwell = wait_until(lambda: (a := healthz(live)).status == 503 and a, 10.0, "/healthz 503", every=0.1)
        assert unwell.text.startswith("the generator stage has not worked for "), unwell.text
        assert unwell.headers["cache-control"] == "no-store"
        assert metric(live, "jadong_healthy") == 0.0
        # Only the generator stalls: no new picture, but the display goes on at its pace (the last frame).
        assert live.app.generator_worker.status().seconds_since_beat > 1.0
        assert presenter.fps >= 0.8 * live.app.show.display.fps, presenter.fps

    wait_until(lambda: healthz(live).status == 200, 10.0, "/healthz 200 again once the generator beats", every=0.1)
    assert healthz(live).text == "ok\n"
    assert metric(live, "jadong_healthy") == 1.0
    # Well inside the supervisor's 60 s: nothing was restarted, the stage recovered by itself.
    assert not [r for r in live.events() if r["event"] == "restart"]


# --- a flood ----------------------------------------------------------------------------------
# Another process floods the server (in-process threads would take the display's GIL and measure
# the test, not the server). A real flood comes from another machine: its client's own CPU is not
# this machine's. Here it shares two cores with the app, so it runs at the lowest priority (nice
# 19): the app pays for every request it answers, not for the client's 64 threads. (A CI run with
# the client at normal priority once measured the display at 20 fps of 30 for the whole flood;
# it did not come back here: a whole suite, and 14 runs idle, with one or two busy cores, or pinned
# to one core.) Each thread cycles through these, on keep-alive connections,
# reconnecting whenever the server closes one. (name, method, path, credential?, content type, body)
FLOOD_S = 4.0
FLOOD_THREADS = 64
FLOOD = r"""
import collections, http.client, json, sys, threading, time
port, password, seconds, threads = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
KINDS = [
    ("status", "GET", "/api/status", True, None, None),
    ("no-password", "GET", "/api/status", False, None, None),
    ("dotdot", "GET", "/static/..%2f..%2fserver.py", False, None, None),
    ("dotdot-raw", "GET", "/static/../../web/server.py", False, None, None),
    ("capture-dotdot", "GET", "/captures/..%2F..%2Fshows%2Fperformance.toml", True, None, None),
    ("bad-json", "POST", "/api/control", True, "application/json", b'{"address": "/jadong/cue/next", '),
    ("huge", "POST", "/api/control", True, "application/json", b"[" + b"1," * 40000 + b"1]"),
    ("not-json", "POST", "/api/control", True, "text/plain", b"GO"),
    ("nowhere", "GET", "/wp-admin/setup.php", False, None, None),
    ("healthz", "GET", "/healthz", False, None, None),
]
counts = collections.Counter()
lock = threading.Lock()

def flood(offset):
    conn, i, end = None, offset, time.monotonic() + seconds
    while time.monotonic() < end:
        name, method, path, auth, ctype, body = KINDS[i % len(KINDS)]
        i += 1
        headers = {}
        if auth:
            headers["Authorization"] = "Bearer " + password
        if ctype:
            headers["Content-Type"] = ctype
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request(method, path, body=body, headers=headers)
            answer = conn.getresponse()
            answer.read()
            key = name + " " + str(answer.status)
            if answer.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            key = name + " closed"
            if conn is not None:
                conn.close()
            conn = None
        with lock:
            counts[key] += 1

workers = [threading.Thread(target=flood, args=(n,)) for n in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
print(json.dumps(counts))
"""
# What each kind may be answered: its clear refusal, or 429 from the rate limit ("closed": the
# server closed the connection, as it does beyond the answers it holds back, or for a body too big).
ALLOWED = {
    "status": {"200", "429", "closed"},
    "no-password": {"401", "429", "closed"},
    "dotdot": {"400", "403", "404", "429", "closed"},
    "dotdot-raw": {"400", "403", "404", "429", "closed"},
    "capture-dotdot": {"400", "403", "404", "429", "closed"},
    "bad-json": {"400", "429", "closed"},
    "huge": {"413", "429", "closed"},
    "not-json": {"415", "429", "closed"},
    "nowhere": {"404", "429", "closed"},
    "healthz": {"200", "429", "closed"},
}


def fps_samples(live: LiveApp, seconds: float, every: float = 0.2) -> list[float]:
    """The display's frames per second (a 2 s sliding window), read every `every` seconds."""
    samples, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(live.app.presenter.fps)
        time.sleep(every)
    return samples


def test_a_request_flood_gets_clear_answers_and_the_display_keeps_its_frame_rate(live):
    wait_until(lambda: live.app.presenter.fps > 0, 5.0, "the display's frame rate")
    time.sleep(2.0)  # a full window of the rate meter
    before = fps_samples(live, 2.0)
    presented = live.app.presenter.presented_frames
    flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(live.port), PASSWORD, str(FLOOD_S), str(FLOOD_THREADS)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.nice(19))
    try:
        time.sleep(1.0)  # the flood under way, the rate meter's window filling with it
        during = fps_samples(live, FLOOD_S - 1.5)
        out, err = flood.communicate(timeout=30)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
    assert flood.returncode == 0, err
    counts: dict[str, int] = json.loads(out)
    total = sum(counts.values())
    target = live.app.show.display.fps
    print(f"display fps before {statistics.median(before):.1f}, during {statistics.median(during):.1f} "
          f"(min {min(during):.1f}, target {target:g}); {total} flood requests: {dict(sorted(counts.items()))}")

    # The display kept its pace: at least 80 % of its rate before, at every sample.
    assert statistics.median(before) >= 0.8 * target, before
    assert min(during) >= 0.8 * statistics.median(before), (before, during)
    # New pictures kept reaching the screen too (the preview paints up to 10 a second).
    assert live.app.presenter.presented_frames - presented >= 2 * FLOOD_S, live.app.presenter.presented_frames

    # Every answer was a clear one for what was asked: never a 5xx, never a file outside what is served.
    assert total >= 300, counts
    for key, n in counts.items():
        name, status = key.rsplit(" ", 1)
        assert status in ALLOWED[name], f"{name} answered {status} ({n} times): {counts}"
    assert any(key.endswith(" 429") for key in counts), f"the rate limit never answered: {counts}"

    # And the operator gets in again as soon as the flood stops (the rate limit refills).
    status = wait_until(lambda: (a := live.request("GET", "/api/status")).status == 200 and a, 10.0,
                        "/api/status 200 after the flood", every=0.5)
    assert status.json()["show"] == "page-test"
    wait_until(lambda: healthz(live).status == 200, 5.0, "/healthz 200 after the flood", every=0.2)
