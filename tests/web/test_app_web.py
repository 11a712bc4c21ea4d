"""The operator's page on the real app: health, status and a GO that changes the cue, as the
event log shows; controls from the page need no OSC reply."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from installation.app import App, RunOptions
from installation.show import load_show

PASSWORD = "gallery-staff-7"
pytestmark = pytest.mark.slow


def _request(url: str, body: dict | None = None, password: str | None = PASSWORD) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if password:
        request.add_header("Authorization", f"Bearer {password}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_page_reads_the_running_show_and_its_go_changes_the_cue(tmp_path, monkeypatch):
    monkeypatch.setenv("JADONG_WEB_PASSWORD", PASSWORD)
    show = load_show("performance").model_copy(deep=True)
    show.display.mode = "headless"
    show.osc.port = 0
    show.osc.status_targets = []
    show.microphone.source = "none"
    log = tmp_path / "events.jsonl"
    app = App(show, RunOptions(log_path=log, seconds=60, web_port=0))
    seen: dict = {}

    def operator():
        deadline = time.monotonic() + 30
        while (app.web is None or app.presenter is None or app.presenter.first_frame_t is None) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        base = app.web.url.rstrip("/")
        seen["health"] = _request(base + "/healthz", password=None)
        seen["status"] = json.loads(_request(base + "/api/status")[1])
        seen["go"] = _request(base + "/api/control", {"address": "/jadong/cue/next", "args": []})
        seen["bad"] = _request(base + "/api/control", {"address": "/jadong/cue/go", "args": ["nowhere"]})
        seen["wrong"] = _request(base + "/api/control", {"address": "/jadong/cue/next", "args": []}, password="x")
        time.sleep(0.5)
        seen["after"] = json.loads(_request(base + "/api/status")[1])
        seen["metrics"] = _request(base + "/metrics", password=None)
        _request(base + "/api/control", {"address": "/jadong/quit", "args": []})

    thread = threading.Thread(target=operator)
    thread.start()
    assert app.run() == 0
    thread.join(10)
    assert seen["health"][0] == 200
    assert seen["status"]["show"] == "performance" and seen["status"]["cue"]["number"] == 0
    assert seen["go"][0] == 200 and json.loads(seen["go"][1])["ok"] is True
    assert seen["bad"][0] == 422 and "nowhere" in json.loads(seen["bad"][1])["reason"]
    assert seen["wrong"][0] == 403
    assert seen["after"]["cue"] == {"index": 0, "number": 1, "name": "dawn", "time_left_s": None}
    assert seen["metrics"][0] == 200 and b"jadong" in seen["metrics"][1]
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert any(r["event"] == "cue" and r.get("name") == "dawn" for r in records)
    assert any(r["event"] == "quit" for r in records)
    assert PASSWORD not in log.read_text(encoding="utf-8")
