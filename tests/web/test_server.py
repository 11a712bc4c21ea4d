"""The web server over real HTTP against a real ShowControl (conftest.py): health, metrics,
the page shell, the API, controls through the address table, live updates and stopping."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import aiohttp
import cv2
import numpy as np
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from installation.control.addresses import lookup, validate_args
from installation.show import WebConfig
from installation.web.bridge import MetricsSnapshot
from installation.web.server import WebError, WebServer

# --- health and metrics --------------------------------------------------------------------


def test_healthz_answers_ok_while_the_loop_presents(rig):
    r = rig.call("GET", "/healthz", password=None)
    assert (r.status, r.text) == (200, "ok\n")


def test_healthz_is_503_when_the_status_stops_coming(make_rig):
    rig = make_rig(start_loop=False)
    rig.bridge.publish_status({"t": time.monotonic() - 5.0, "show": "test"})
    r = rig.call("GET", "/healthz", password=None)
    assert r.status == 503 and "the display loop is not presenting" in r.text
    rig.bridge.publish_status({"t": time.monotonic(), "show": "test"})
    assert rig.call("GET", "/healthz", password=None).status == 200


def test_healthz_says_the_apps_reason_and_recovers(rig):
    rig.bridge.publish_health(False, "the generator has not painted for 12 s")
    r = rig.call("GET", "/healthz", password=None)
    assert (r.status, r.text) == (503, "the generator has not painted for 12 s\n")
    rig.bridge.publish_health(True)
    assert rig.call("GET", "/healthz", password=None).status == 200


def test_metrics_parse_and_hold_no_visitor_words(rig):
    words = "a purple elephant whispering"
    assert rig.control("/jadong/prompt", words).status == 200
    rig.bridge.publish_metrics(MetricsSnapshot(
        frames_presented=1234, rates={"display": 59.9, "generator": 12.0}, drops={"audio": 3, words: 1},
        transcripts=5, rejections=2, errors={"camera": 1}, restarts={"speech": 1}, model_load_s=4.5, uptime_s=60.0))
    r = rig.call("GET", "/metrics", password=None)
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(r.text) for s in family.samples}
    assert samples[("jadong_frames_presented_total", ())] == 1234
    assert samples[("jadong_stage_fps", (("stage", "display"),))] == pytest.approx(59.9)
    assert samples[("jadong_channel_dropped_total", (("channel", "audio"),))] == 3
    assert samples[("jadong_transcripts_rejected_total", ())] == 2
    assert samples[("jadong_errors_total", (("stage", "camera"),))] == 1
    assert samples[("jadong_restarts_total", (("stage", "speech"),))] == 1
    assert samples[("jadong_model_load_seconds", ())] == 4.5
    assert samples[("jadong_healthy", ())] == 1
    assert samples[("jadong_web_controls_total", (("outcome", "ok"),))] == 1
    # The process's own memory, for staff watching it over weeks: this very process's RSS.
    rss = psutil.Process().memory_info().rss
    assert 0.5 * rss < samples[("process_resident_memory_bytes", ())] < 2 * rss
    assert samples[("process_open_fds", ())] > 0
    assert "elephant" not in r.text and "purple" not in r.text  # a label made of words is dropped


# --- the page and the API ----------------------------------------------------------------------


def test_the_page_shell_answers_without_a_password(rig):
    page = rig.call("GET", "/", password=None)
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    for element in ('id="login"', 'id="password"', 'id="preview"', 'id="go"', 'src="/static/app.js"'):
        assert element in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from outside
    assert page.headers["x-content-type-options"] == "nosniff" and "frame-ancestors 'none'" in \
        page.headers["content-security-policy"]
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        r = rig.call("GET", f"/static/{name}", password=None)
        assert r.status == 200 and r.headers["content-type"].startswith(kind)
    assert rig.call("GET", "/static/server.py", password=None).status == 404


def test_the_api_needs_the_password(rig):
    r = rig.call("GET", "/api/status", password=None)
    assert r.status == 401 and r.headers["www-authenticate"] == "Bearer" and "password" in r.json()["reason"]
    assert rig.call("GET", "/api/status", password="guess").status == 403
    assert rig.call("GET", "/api/status", headers={"Authorization": f"Basic {PASSWORD_B64}"}, password=None).status \
        == 401
    r = rig.call("GET", "/api/status")
    assert r.status == 200 and r.headers["cache-control"] == "no-store"
    status = r.json()
    assert status["show"] == "untitled" and [c["name"] for c in status["cues"]] == ["dawn", "night"]
    assert status["prompt"] == "an empty stage" and status["web"] == {"controls": True, "reason": "",
                                                                      "show_words": True}
    assert 0 <= status["age_s"] < 3 and "t" not in status
    for path in ("/api/events", "/api/preview.jpg", "/api/shows", "/api/captures", "/captures/x.png"):
        assert rig.call("GET", path, password=None).status == 401, path


PASSWORD_B64 = "dXNlcjpjb3JyZWN0IGhvcnNlIGJhdHRlcnkgc3RhcGxl"


def test_status_leaves_out_the_visitors_words_when_the_show_says_so(make_rig):
    rig = make_rig(cfg=WebConfig(show_words=False))
    status = rig.call("GET", "/api/status").json()
    assert "words" not in status and status["web"]["show_words"] is False
    assert "words" in make_rig().call("GET", "/api/status").json()


def test_shows_lists_the_show_files_by_name(rig):
    (rig.tmp / "shows" / "notes.txt").write_text("not a show", encoding="utf-8")
    assert rig.call("GET", "/api/shows").json() == {"shows": ["other", "test"]}


def test_the_preview_is_a_small_jpeg_of_the_newest_frame(rig):
    assert rig.call("GET", "/api/preview.jpg").status == 204  # no frame yet
    frame = np.zeros((512, 768, 3), np.uint8)
    frame[:, :384] = (255, 0, 0)  # left half red (RGB)
    rig.bridge.publish_preview(frame)
    r = rig.call("GET", "/api/preview.jpg")
    assert r.status == 200 and r.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(r.body, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (213, 320, 3)
    b, g, red = image[100, 50]
    assert red > 200 and b < 60  # colours arrive the right way round
    for _ in range(5):
        rig.call("GET", "/api/preview.jpg")
    assert rig.server.preview.encodes == 1  # the same frame is encoded once, whoever asks


def test_captures_lists_and_serves_only_files_directly_in_the_folder(rig):
    captures = rig.tmp / "captures"
    (captures / "20250101-120000.png").write_bytes(b"\x89PNG fake")
    (captures / "20250101-120000.json").write_text('{"prompt": "a red fox"}', encoding="utf-8")
    (captures / "notes.txt").write_text("not a capture", encoding="utf-8")
    (captures / "inner").mkdir()
    (captures / "inner" / "deep.png").write_bytes(b"deep")
    (rig.tmp / "secret.png").write_bytes(b"SECRET")
    (captures / "link.png").symlink_to(rig.tmp / "secret.png")
    names = sorted(c["name"] for c in rig.call("GET", "/api/captures").json()["captures"])
    assert names == ["20250101-120000.json", "20250101-120000.png"]
    r = rig.call("GET", "/captures/20250101-120000.png")
    assert (r.status, r.body, r.headers["content-type"]) == (200, b"\x89PNG fake", "image/png")
    for name in ("link.png", "notes.txt", "inner", "missing.png"):
        r = rig.call("GET", f"/captures/{name}")
        assert r.status in (400, 404) and b"SECRET" not in r.body, name


def test_a_capture_json_holds_words_and_is_hidden_when_the_show_hides_words(make_rig):
    rig = make_rig(cfg=WebConfig(show_words=False))
    (rig.tmp / "captures" / "a.json").write_text('{"prompt": "a red fox"}', encoding="utf-8")
    (rig.tmp / "captures" / "a.png").write_bytes(b"png")
    assert [c["name"] for c in rig.call("GET", "/api/captures").json()["captures"]] == ["a.png"]
    assert rig.call("GET", "/captures/a.json").status == 404


# --- controls ---------------------------------------------------------------------------------


def test_a_valid_control_changes_the_show_and_answers_ok(rig):
    r = rig.control("/jadong/cue/go", "dawn")
    assert (r.status, r.json()) == (200, {"ok": True, "values": []})
    cues = [fields for event, fields in rig.host.events if event == "cue"]
    assert rig.ctl.state.cue_index == 0 and cues and cues[-1]["name"] == "dawn" and cues[-1]["by"] == "web"
    assert rig.control("/jadong/strength", 0.8).status == 200
    assert rig.ctl.state.params.strength == 0.8
    assert rig.control("/jadong/strength").json() == {"ok": True, "values": [0.8]}  # a query
    assert rig.control("/JADONG/CUE/NEXT").status == 200 and rig.ctl.state.cue_index == 1  # case, as OSC
    assert rig.control("/jadong/listen", True).status == 200 and rig.ctl.state.listening is True
    assert rig.control("/jadong/show", "default").status == 200 and rig.host.shows[-1].name == "default.toml"


def test_a_refused_control_answers_the_shows_reason(rig):
    r = rig.control("/jadong/cue/go", "nowhere")
    assert r.status == 422 and r.json() == {"ok": False, "reason": "no cue 'nowhere' (cues: dawn, night)"}
    assert rig.ctl.state.cue_index == -1


@pytest.mark.parametrize("address, args", [
    ("/jadong/strength", [2]),
    ("/jadong/strength", ["loud"]),
    ("/jadong/steps", [1.5]),
    ("/jadong/listen", [2]),
    ("/jadong/prompt", ["x" * 1001]),
    ("/jadong/cue/go", [None]),
    ("/jadong/blackout", [1, 2]),
    ("/jadong/mode", ["sideways"]),
    ("/jadong/strength", [1e999]),
])
def test_bad_arguments_get_400_with_the_address_tables_reason(rig, address, args):
    r = rig.control(address, *args)
    row = lookup(address)
    with pytest.raises(ValueError) as table:
        validate_args(row, json.loads(json.dumps(args)))
    assert r.status == 400 and r.json()["reason"] == f"{row.path}: {table.value} (usage: {row.signature})"
    assert rig.loop.handled == 0  # nothing reached the show


def test_unknown_addresses_and_patterns_get_400(rig):
    r = rig.control("/jadong/nope")
    assert r.status == 400 and r.json()["reason"].startswith("unknown address '/jadong/nope'; known: /jadong/prompt")
    assert "patterns" in rig.control("/jadong/cue/*").json()["reason"]
    assert rig.call("POST", "/api/control", {"address": "/jadong/go", "args": 1}).status == 400
    assert "unknown field" in rig.call("POST", "/api/control", {"address": "/jadong/cue/next", "x": 1}).json()["reason"]


@pytest.mark.parametrize("body, reason", [
    ("{not json", "the body is not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"args": []}', "expected a JSON object"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
    (b"\xff\xfe", "not UTF-8"),
    ('{"address": "/jadong/seed", "args": [1' + "0" * 5000 + "]}", "not valid JSON"),
])
def test_malformed_json_gets_400_with_a_clear_reason(rig, body, reason):
    r = rig.call("POST", "/api/control", body, headers={"Content-Type": "application/json"})
    assert r.status == 400 and reason in r.json()["reason"]


def test_a_post_must_say_it_is_json(rig):
    r = rig.call("POST", "/api/control", '{"address": "/jadong/cue/next"}', headers={"Content-Type": "text/plain"})
    assert r.status == 415 and "application/json" in r.json()["reason"]
    assert rig.ctl.state.cue_index == -1


def test_an_oversized_body_gets_413(rig):
    big = {"address": "/jadong/prompt", "args": ["x" * 20_000]}
    r = rig.call("POST", "/api/control", big)
    assert r.status == 413 and "16384 bytes" in r.json()["reason"]

    async def chunked() -> tuple[int, str]:  # no Content-Length: the limit holds while reading
        async def body():
            for _ in range(40):
                yield b"x" * 1024

        async with aiohttp.ClientSession() as session:
            async with session.post(f"{rig.server.url}api/control", data=body(), headers={
                    "Authorization": f"Bearer {rig.password}", "Content-Type": "application/json"}) as resp:
                return resp.status, (await resp.json())["reason"]

    status, reason = asyncio.run(chunked())
    assert status == 413 and "over 16384 bytes" in reason


def test_a_cross_site_post_is_refused(rig):
    r = rig.control("/jadong/cue/next", headers={"Origin": "http://evil.example"})
    assert r.status == 403 and "cross-site" in r.json()["reason"]
    assert rig.control("/jadong/cue/next", headers={"Origin": "null"}).status == 403
    assert rig.ctl.state.cue_index == -1
    same = rig.control("/jadong/cue/next", headers={"Origin": f"http://127.0.0.1:{rig.port}"})
    assert same.status == 200 and rig.ctl.state.cue_index == 0


def test_a_control_the_show_does_not_answer_gets_503(make_rig):
    rig = make_rig(start_loop=False)  # nothing drains the queue: a stalled main thread
    started = time.monotonic()
    r = rig.control("/jadong/cue/next")
    assert r.status == 503 and "did not answer within 1 s" in r.json()["reason"]
    assert time.monotonic() - started < 5
    queued = rig.bridge.controls.get_nowait()
    assert queued is not None and queued.outcome is not None and queued.outcome.cancelled()
    rig.bridge.close()  # the show is stopping
    r = rig.control("/jadong/cue/next")
    assert r.status == 503 and "stopping or restarting" in r.json()["reason"]


def test_no_password_refuses_every_control_but_serves_the_rest(make_rig):
    rig = make_rig(password=None, environ={})
    r = rig.control("/jadong/cue/next", password=None)
    reason = "no password is set: set [web] password or JADONG_WEB_PASSWORD"
    assert r.status == 403 and r.json()["reason"] == reason
    assert rig.control("/jadong/cue/next", password="anything").status == 403
    assert rig.ctl.state.cue_index == -1
    for path in ("/healthz", "/metrics", "/"):
        assert rig.call("GET", path, password=None).status == 200, path
    status = rig.call("GET", "/api/status", password=None).json()  # the page shows status, read-only
    assert status["web"] == {"controls": False, "reason": reason, "show_words": True}


def test_the_password_comes_from_the_show_or_the_environment(make_rig):
    rig = make_rig(password=None, environ={"JADONG_WEB_PASSWORD": "from-env"})
    assert rig.control("/jadong/cue/next", password="from-env").status == 200
    rig = make_rig(password=None, cfg=WebConfig(password="from-show"), environ={"JADONG_WEB_PASSWORD": "from-env"})
    assert rig.control("/jadong/cue/next", password="from-show").status == 200
    assert rig.control("/jadong/cue/next", password="from-env").status == 403


# --- live updates -----------------------------------------------------------------------------


async def _read_events(url: str, password: str, until, timeout: float = 10.0) -> list[tuple[str, dict]]:
    """Events from /api/events until `until(events)` is true."""
    events: list[tuple[str, dict]] = []
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}api/events", headers={"Authorization": f"Bearer {password}"},
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    lines = block.decode().split("\n")
                    name = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), "")
                    data = "\n".join(ln[5:].strip() for ln in lines if ln.startswith("data:"))
                    if name:
                        events.append((name, json.loads(data)))
                    if until(events):
                        return events
    return events


def test_the_event_stream_delivers_a_change(rig):
    def fire_after_first_status():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and rig.server._streams == 0:
            time.sleep(0.02)
        time.sleep(0.3)
        rig.control("/jadong/cue/go", "night")

    firing = threading.Thread(target=fire_after_first_status)
    firing.start()
    events = asyncio.run(_read_events(rig.server.url, rig.password,
                                      lambda ev: any(e[1].get("cue", {}).get("name") == "night" for e in ev)))
    firing.join()
    statuses = [data for name, data in events if name == "status"]
    assert statuses[0]["cue"]["name"] == "" and statuses[-1]["cue"]["name"] == "night"
    assert statuses[-1]["blackout"] is True  # the cue's blackout, as the show control applied it


def test_the_event_stream_sends_heartbeats_with_health(make_rig):
    rig = make_rig(start_loop=False)  # the status does not change: only heartbeats follow
    events = asyncio.run(_read_events(rig.server.url, rig.password, lambda ev: any(n == "heartbeat" for n, _ in ev)))
    beat = next(data for name, data in events if name == "heartbeat")
    assert beat == {"healthy": True, "reason": "ok"}


# --- life -----------------------------------------------------------------------------------


def test_the_server_stops_cleanly_and_can_start_again(rig, no_thread_leak):
    port = rig.port
    assert any(t.name == f"web-server:{port}" for t in threading.enumerate())
    rig.server.stop()
    rig.server.stop()  # twice is fine
    assert not any(t.name.startswith("web-server") for t in threading.enumerate())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    rig.server.start()
    assert rig.call("GET", "/healthz", password=None).status == 200


def test_the_server_stops_with_a_live_page_open(rig):
    async def hold_stream() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{rig.server.url}api/events",
                                   headers={"Authorization": f"Bearer {rig.password}"}) as resp:
                await resp.content.readline()
                await asyncio.get_running_loop().run_in_executor(None, rig.server.stop)
                await resp.read()  # the server ended the stream

    started = time.monotonic()
    asyncio.run(hold_stream())
    assert time.monotonic() - started < 4 and not rig.server.running


def test_a_taken_port_is_a_clear_error(rig, no_thread_leak):
    other = WebServer(rig.bridge, WebConfig(), port=rig.port, password="x")
    with pytest.raises(WebError, match=rf"cannot listen on 127.0.0.1:{rig.port}.*--web-port"):
        other.start()
    assert not other.running
