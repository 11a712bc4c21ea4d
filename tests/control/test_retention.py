"""The retention janitor ([privacy]): old event-log files pruned by age and by total size, never
the one being written; visitors' words scrubbed from closed files past words_days while every
other line stays; captures past captures_days deleted with their sidecars and index lines. Then
a show that keeps no words, end to end: espeak-ng speech through tiny.en into the event log."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from installation.app import RunOptions
from installation.control.archive import Archive, CaptureJob, read_index
from installation.control.retention import DAY_S, Janitor, RetentionPolicy
from installation.core import events as events_module
from installation.core.events import EventLog
from installation.harness import start_show_thread, stop_show_thread
from installation.show import parse_show
from media import wishes_wav

NOW = time.time()


class Events(list):
    def __call__(self, event: str, **fields) -> None:
        self.append((event, fields))


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def day_file(folder: Path, days_ago: float, size: int = 0, part: int = 0) -> Path:
    """A log file of the day `days_ago` days back, last written then, `size` bytes of lines."""
    t = NOW - days_ago * DAY_S
    name = f"events-{time.strftime('%Y%m%d', time.localtime(t))}{f'.{part}' if part else ''}.jsonl"
    path = folder / name
    line = json.dumps({"time": "x", "event": "error", "stage": "camera", "reason": "lost"}) + "\n"
    path.write_text(line * max(1, size // len(line)), encoding="utf-8")
    os.utime(path, (t, t))
    return path


def janitor(log: EventLog, tmp_path: Path, events: Events | None = None, **policy) -> Janitor:
    return Janitor(log, tmp_path / "captures", RetentionPolicy(**policy), on_event=events)


# --- pruning -------------------------------------------------------------------------------

def test_log_files_past_logs_days_are_deleted_and_the_current_one_never(tmp_path):
    old = [day_file(tmp_path, d) for d in (200, 120, 91)]
    young = [day_file(tmp_path, d) for d in (89, 3, 1)]
    other = tmp_path / "notes.txt"  # not the log's: never touched
    other.write_text("staff notes")
    os.utime(other, (0, 0))
    log = EventLog(tmp_path / "events-{day}.jsonl")
    log.write("start", show="gallery")
    os.utime(log.path, (0, 0))  # even if its clock says 1970, the file being written stays
    events = Events()
    report = janitor(log, tmp_path, events, logs_days=90).run_once(NOW)
    assert sorted(report.logs_deleted) == sorted(p.name for p in old)
    assert all(p.exists() for p in young) and log.path.exists() and other.exists()
    (event, fields), = events
    assert event == "retention" and sorted(fields["logs_deleted"]) == sorted(p.name for p in old)
    log.write("stop", hung=[])  # still writing where it was
    log.close()
    assert [r["event"] for r in lines_of(log.path)] == ["start", "stop"]


def test_the_oldest_go_first_past_logs_max_mb_but_never_the_one_being_written(tmp_path):
    files = [day_file(tmp_path, d, size=100_000) for d in (5, 4, 3)] + [day_file(tmp_path, 2, 100_000, part=1)]
    log = EventLog(tmp_path / "events-{day}.jsonl")
    log.write("osc", address="/x", args=["y" * 200_000])  # today's file alone is over the cap
    cap = 250_000
    report = janitor(log, tmp_path, logs_days=0, logs_max_bytes=cap).run_once(NOW)
    assert report.logs_deleted == [p.name for p in files]  # oldest first, all of them
    assert [p.name for p in tmp_path.glob("events-*")] == [log.path.name]
    log.close()
    log.path.unlink()
    files = [day_file(tmp_path, d, size=100_000) for d in (5, 4, 3)]
    log = EventLog(tmp_path / "events-{day}.jsonl")
    report = janitor(log, tmp_path, logs_days=0, logs_max_bytes=cap).run_once(NOW)
    assert report.logs_deleted == [files[0].name]  # 2 × 100 kB and today's fit
    log.close()


# --- scrubbing words -------------------------------------------------------------------------

def write_day(monkeypatch, log: EventLog, day: str, *events: tuple[str, dict]) -> None:
    real = events_module.time.strftime
    monkeypatch.setattr(events_module.time, "strftime", lambda fmt, *a: day if fmt == "%Y%m%d" else real(fmt, *a))
    for event, fields in events:
        log.write(event, **fields)
    monkeypatch.setattr(events_module.time, "strftime", real)


VISITOR_DAY = [
    ("transcript", {"text": "a paper boat on a river", "english": "a paper boat on a river", "language": "en"}),
    ("prompt", {"text": "a paper boat on a river, woodcut", "source": "speech", "negative": "blurry"}),
    ("prompt", {"text": "an empty stage", "source": "show"}),
    ("error", {"stage": "generator", "reason": "CUDA out of memory"}),
]


def test_words_older_than_words_days_are_scrubbed_and_the_rest_of_each_line_stays(tmp_path, monkeypatch):
    log = EventLog(tmp_path / "events-{day}.jsonl")
    old_day = time.strftime("%Y%m%d", time.localtime(NOW - 40 * DAY_S))
    recent_day = time.strftime("%Y%m%d", time.localtime(NOW - 2 * DAY_S))
    write_day(monkeypatch, log, old_day, *VISITOR_DAY)
    write_day(monkeypatch, log, recent_day, *VISITOR_DAY)
    log.write(VISITOR_DAY[0][0], **VISITOR_DAY[0][1])  # today's file
    old, recent = tmp_path / f"events-{old_day}.jsonl", tmp_path / f"events-{recent_day}.jsonl"
    os.utime(old, (NOW - 40 * DAY_S, NOW - 40 * DAY_S))
    os.utime(recent, (NOW - 2 * DAY_S, NOW - 2 * DAY_S))
    before = lines_of(old)
    events = Events()
    jan = janitor(log, tmp_path, events, words_days=30)
    report = jan.run_once(NOW)
    assert report.files_scrubbed == [old.name] and report.lines_scrubbed == 2
    after = lines_of(old)
    assert len(after) == len(before) and "boat" not in old.read_text(encoding="utf-8")
    assert after[0]["text_words"] == 6 and after[0]["language"] == "en" and after[0]["time"] == before[0]["time"]
    assert after[1]["text_words"] == 7 and after[1]["negative"] == "blurry"
    assert after[2:] == before[2:]  # the show's prompt and the error, as they were
    assert old.stat().st_mtime == pytest.approx(NOW - 40 * DAY_S)  # pruning still sees its age
    assert "boat" in recent.read_text(encoding="utf-8") and "boat" in log.path.read_text(encoding="utf-8")
    assert events[0][0] == "retention" and events[0][1]["lines_scrubbed"] == 2
    assert not jan.run_once(NOW).did_something  # remembered: not read again
    assert len(events) == 1
    log.close()


def test_a_show_keeping_no_words_scrubs_every_closed_file_at_once(tmp_path, monkeypatch):
    log = EventLog(tmp_path / "events-{day}.jsonl")
    yesterday = time.strftime("%Y%m%d", time.localtime(NOW - DAY_S))
    write_day(monkeypatch, log, yesterday, *VISITOR_DAY)
    log.write(VISITOR_DAY[0][0], **VISITOR_DAY[0][1])
    report = janitor(log, tmp_path, keep_words=False, words_days=30).run_once(NOW)
    assert report.files_scrubbed == [f"events-{yesterday}.jsonl"]
    # The file being written is never rewritten under the writer (its lines from before the show
    # switch keep their words until it closes); what is written now has none.
    assert "boat" in log.path.read_text(encoding="utf-8")
    log.close()


def test_a_file_that_cannot_be_scrubbed_is_reported_once_and_left_whole(tmp_path, monkeypatch):
    log = EventLog(tmp_path / "events-{day}.jsonl")
    old_day = time.strftime("%Y%m%d", time.localtime(NOW - 40 * DAY_S))
    write_day(monkeypatch, log, old_day, *VISITOR_DAY)
    log.write("start", show="gallery")  # today's file: the old one is closed
    old = tmp_path / f"events-{old_day}.jsonl"
    os.utime(old, (NOW - 40 * DAY_S, NOW - 40 * DAY_S))
    (tmp_path / f".{old.name}.scrub").mkdir()  # the temporary file's name taken: the rewrite fails
    before = old.read_bytes()
    events = Events()
    jan = janitor(log, tmp_path, events, words_days=30)
    jan.run_once(NOW)
    jan.run_once(NOW)
    errors = [f for e, f in events if e == "error"]
    assert len(errors) == 1 and errors[0]["stage"] == "retention" and old.name in errors[0]["reason"]
    assert old.read_bytes() == before
    (tmp_path / f".{old.name}.scrub").rmdir()
    assert jan.run_once(NOW).files_scrubbed == [old.name]
    log.close()


# --- captures ----------------------------------------------------------------------------------

def take(archive: Archive, when: float, prompt: str) -> str:
    stem = archive.reserve(now=when)
    image = np.random.default_rng(int(when) % 1000).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    archive.submit(CaptureJob(stem, image, {"time": "t", "show": "gallery", "prompt": prompt}))
    assert archive.flush(10)
    return stem


def test_captures_past_captures_days_go_with_their_sidecars_and_index_lines(tmp_path):
    folder = tmp_path / "captures"
    archive = Archive(folder, quota_bytes=10**9)
    old = [take(archive, NOW - d * DAY_S, f"wish {d}") for d in (30, 8)]
    kept = [take(archive, NOW - d * DAY_S, f"wish {d}") for d in (6, 0)]
    assert len(read_index(folder)) == 4
    log = EventLog(None)
    events = Events()
    report = Janitor(log, folder, RetentionPolicy(captures_days=7), on_event=events).run_once(NOW)
    assert report.captures_deleted == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["index.jsonl"] + [f"{s}.{ext}" for s in kept for ext in ("png", "json")])
    assert [line["image"] for line in read_index(folder)] == [f"{s}.png" for s in kept]
    assert not any((folder / f"{s}.png").exists() for s in old)
    assert events[-1] == ("retention", {**events[-1][1], "captures_deleted": 2})
    # captures_days = 0: kept until the quota removes them.
    assert Janitor(log, folder, RetentionPolicy(captures_days=0)).run_once(NOW + 100 * DAY_S).captures_deleted == 0



def test_expiring_captures_on_a_slow_disk_never_holds_up_a_capture_on_the_main_thread(tmp_path, monkeypatch):
    # The janitor deletes a month of captures on a slow card (each delete 30 ms) while a
    # performer takes a capture: reserving its name (the main thread) must not wait for the pass.
    folder = tmp_path / "captures"
    archive = Archive(folder, quota_bytes=10**9)
    for i in range(30):
        take(archive, NOW - (40 + i / 100) * DAY_S, f"wish {i}")
    unlink = Path.unlink

    def slow_unlink(self, missing_ok=False):
        time.sleep(0.03)
        unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", slow_unlink)
    janitor_ = Janitor(EventLog(None), folder, RetentionPolicy(captures_days=7))
    passing = threading.Thread(target=janitor_.run_once, args=(NOW,))
    passing.start()
    waits = []
    while passing.is_alive():
        t0 = time.monotonic()
        archive._release(archive.reserve())
        waits.append(time.monotonic() - t0)
        time.sleep(0.01)
    passing.join()
    assert len(read_index(folder)) == 0 and not list(folder.glob("*.png"))
    assert max(waits) < 0.3, f"the main thread waited {max(waits):.2f} s for the janitor"


# --- the thread ----------------------------------------------------------------------------------

def test_the_janitor_runs_on_its_own_thread_and_stops(tmp_path, no_thread_leak):
    day_file(tmp_path, 100)
    log = EventLog(tmp_path / "events-{day}.jsonl")
    jan = Janitor(log, tmp_path / "captures", RetentionPolicy(logs_days=90), interval_s=0.05, first_pass_s=0.01)
    passed_on: list[str] = []
    real = jan.run_once
    jan.run_once = lambda now=None: (passed_on.append(threading.current_thread().name), real(now))[1]
    jan.start()
    deadline = time.monotonic() + 5
    while jan.passes < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    jan.stop()
    log.close()
    assert jan.passes >= 3 and set(passed_on) == {"retention"}
    assert [p.name for p in tmp_path.glob("events-*")] == [log.path.name]


# --- a show that keeps no words, end to end ----------------------------------------------------------

WISHES = ["a red fox in the snow"]


@pytest.mark.slow
def test_a_show_keeping_no_words_logs_what_was_heard_as_counts(tmp_path):
    wav = wishes_wav(WISHES, tmp_path, pause_s=1.5)
    log_path = tmp_path / "events.jsonl"
    show = parse_show({
        "show": {"name": "no-words"},
        "camera": {"source": "none"},
        "microphone": {"source": str(wav)},
        "speech": {"model": "tiny.en", "language": "en", "vad": "energy", "end_silence_ms": 500},
        "prompt": {"template": "{speech}, woodcut", "initial": "an empty stage"},
        "generator": {"kind": "preview", "width": 128, "height": 128, "max_fps": 10},
        "display": {"mode": "headless", "width": 320, "height": 180, "fps": 20},
        "osc": {"enabled": False},
        "privacy": {"keep_words": False},
    }, tmp_path / "no-words.toml")
    assert show.capture.keep_words is False  # one switch for the log and captures
    app, thread = start_show_thread(show, RunOptions(log_path=log_path, seconds=40))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            records = lines_of(log_path)
            if any(r["event"] == "presented" and r.get("source") == "speech" for r in records):
                break
            time.sleep(0.1)
        painted = app.prompt_slot.get()
    finally:
        assert stop_show_thread(app, thread)
    records = lines_of(log_path)
    heard = [r for r in records if r["event"] in ("heard", "transcript")]
    assert [r["event"] for r in heard] == ["heard", "transcript"], records[-10:]
    assert all(r["text_words"] >= 3 and "text" not in r and "english" not in r for r in heard), heard
    speech = [r for r in records if r.get("source") == "speech"]
    assert {r["event"] for r in speech} == {"prompt", "presented"}
    assert all("text" not in r and "prompt" not in r for r in speech), speech
    assert painted.source == "speech" and "woodcut" in painted.text  # the words were painted, not kept
    text = log_path.read_text(encoding="utf-8").lower()
    for word in set(painted.text.lower().replace(",", " ").split()) - {"a", "in", "the", "woodcut"}:
        assert word not in text, word
    assert "an empty stage" in text  # the show's own words stay
