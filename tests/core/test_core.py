"""Worker threads, the event log and the prompter."""

import json
import threading
import time

from installation.core.events import EventLog, FloodSummary
from installation.core.text import clean_words
from installation.core.worker import RateMeter, Worker, stop_all


class Counting(Worker):
    def __init__(self, fail_on=(), **kw):
        super().__init__("counting", **kw)
        self.steps = 0
        self.fail_on = set(fail_on)
        self.setups = 0
        self.torn_down = threading.Event()

    def setup(self):
        self.setups += 1

    def step(self):
        self.steps += 1
        self.rate_meter.tick()
        if self.steps in self.fail_on:
            raise RuntimeError(f"boom at {self.steps}")
        self.sleep(0.005)

    def teardown(self):
        self.torn_down.set()


def test_worker_reports_errors_and_keeps_running(no_thread_leak):
    errors = []
    w = Counting(fail_on={3}, on_error=lambda name, exc: errors.append((name, str(exc))))
    w.backoff_s = (0.01,)
    w.start()
    deadline = time.monotonic() + 5
    while w.steps < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stop_all([w], timeout=2) == []
    assert errors == [("counting", "boom at 3")]
    assert w.steps >= 10 and w.setups == 1
    st = w.status()
    assert st.errors == 1 and "boom at 3" in st.last_error and not st.alive
    assert w.torn_down.is_set()


def test_worker_reruns_setup_when_failure_asks():
    class Flaky(Counting):
        def on_failure(self, exc):
            return True

    w = Flaky(fail_on={2})
    w.backoff_s = (0.01,)
    w.start()
    deadline = time.monotonic() + 5
    while w.steps < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop_all([w])
    assert w.setups == 2


def test_stop_all_names_a_hung_worker():
    release = threading.Event()

    class Stuck(Worker):
        def step(self):
            release.wait(5)

    w = Stuck("stuck")
    w.start()
    time.sleep(0.05)
    assert stop_all([w], timeout=0.1) == ["stuck"]
    release.set()
    w.join(2)
    assert not w.is_alive()


def test_rate_meter():
    m = RateMeter(window_s=1.0)
    t = time.monotonic()
    for i in range(11):
        m.tick(t - 0.5 + i * 0.05)
    assert 15 < m.rate() <= 25


def test_event_log_writes_json_lines(tmp_path):
    path = tmp_path / "sub" / "events.jsonl"
    log = EventLog(path)
    log.write("transcript", text="빨간 여우", score=0.5)
    log.write("prompt", text="a red fox", path=tmp_path)
    log.close()
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [r["event"] for r in lines] == ["transcript", "prompt"]
    assert lines[0]["text"] == "빨간 여우" and "time" in lines[0] and "mono" in lines[0]
    assert lines[1]["path"] == str(tmp_path)


def test_flood_is_summarised(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    flood = FloodSummary(log, "osc", burst=5, window_s=60)
    for i in range(1000):
        flood.write("/jadong/strength", address="/jadong/strength", args=[i / 1000])
    flood.flush()
    log.close()
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["event"] for r in records].count("osc") == 5
    summary = [r for r in records if r["event"] == "osc_flood"]
    assert len(summary) == 1 and summary[0]["suppressed"] == 995
    assert summary[0]["by"] == {"/jadong/strength": 995}


def test_prompt_words_are_cleaned():
    assert clean_words("  A red fox in the snow. ") == "A red fox in the snow"
    assert clean_words("hello   world!!") == "hello world"
    assert clean_words("눈 속의 빨간 여우。") == "눈 속의 빨간 여우"
    assert clean_words(" ... ") == ""


def test_a_repeated_error_is_counted_but_reported_once_per_interval():
    errors = []
    w = Counting(fail_on={2, 3, 4}, on_error=lambda name, exc: errors.append(str(exc)))
    w.backoff_s = (0.01,)
    w.report(RuntimeError("camera gone"))
    w.report(RuntimeError("camera gone"))
    w.report(RuntimeError("another reason"))
    assert errors == ["camera gone", "another reason"]
    assert w.status().errors == 3
    w.repeat_report_s = 0.0
    w.report(RuntimeError("another reason"))
    assert errors[-1] == "another reason" and len(errors) == 3


def test_event_log_starts_a_new_file_each_day(tmp_path, monkeypatch):
    from installation.core import events as events_module

    day = {"value": "20261128"}
    real_strftime = events_module.time.strftime
    monkeypatch.setattr(events_module.time, "strftime",
                        lambda fmt, *a: day["value"] if fmt == "%Y%m%d" else real_strftime(fmt, *a))
    log = EventLog(tmp_path / "events-{day}.jsonl")
    log.write("prompt", text="first day")
    day["value"] = "20261129"
    log.write("prompt", text="second day")
    log.close()
    first = (tmp_path / "events-20261128.jsonl").read_text()
    second = (tmp_path / "events-20261129.jsonl").read_text()
    assert "first day" in first and "second day" not in first
    assert "second day" in second
