"""The event log on disk: numbered parts under a size cap, no visitor's words when the show
keeps none, and a full disk (injected, and a real 64 KiB tmpfs) costing counted lines, never
the show, with one recovery event when it writes again."""

from __future__ import annotations

import ast
import errno
import json
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from installation.core import events as events_module
from installation.core.events import RETRY_S, STAGES, EventLog
from installation.core.faults import DISK_FULL_S, FaultInjector
from installation.core.logfiles import LogFamily, scrub_file
from installation.core.visitor_words import PROMPT_WORDS, VISITOR_WORDS, withhold

PACKAGE = Path(__file__).resolve().parents[2] / "installation"


def lines_of(path: Path) -> list[dict]:
    """Every line of `path`, each of which must be a JSON object."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def all_lines(folder: Path) -> list[dict]:
    return [r for p in sorted(folder.glob("*.jsonl")) for r in lines_of(p)]


# --- parts under a size cap -----------------------------------------------------------------

def test_a_flood_rolls_over_into_numbered_parts_none_past_the_cap(tmp_path):
    cap = 16_000
    log = EventLog(tmp_path / "events-{day}.jsonl", max_file_bytes=cap)
    day = time.strftime("%Y%m%d")

    def flood(n: int) -> None:
        for i in range(500):
            log.write("osc", address="/jadong/strength", args=[i / 500], sender=f"thread {n}")

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    files = LogFamily(tmp_path / "events-{day}.jsonl").files(day)
    assert len(files) >= 8, [f.path.name for f in files]
    assert [f.part for f in files] == list(range(len(files)))
    assert files[0].path.name == f"events-{day}.jsonl" and files[1].path.name == f"events-{day}.1.jsonl"
    assert all(f.size <= cap for f in files), [(f.path.name, f.size) for f in files]
    records = all_lines(tmp_path)  # each line whole: four threads never split one
    assert len(records) == 2000 and log.lines_lost == 0
    assert sorted(r["args"][0] for r in records if r["sender"] == "thread 3") == [i / 500 for i in range(500)]


def test_a_restart_goes_on_in_the_last_part_and_a_path_without_a_day_has_parts_too(tmp_path):
    path = tmp_path / "run.jsonl"
    log = EventLog(path, max_file_bytes=1000)
    for i in range(30):
        log.write("prompt", text=f"line {i}", source="show")
    log.close()
    assert log.path == tmp_path / f"run.{LogFamily(path).part_of(log.path)}.jsonl"
    last = log.path
    again = EventLog(path, max_file_bytes=1000)
    assert again.path == last  # not back to run.jsonl
    again.write("start", show="x")
    again.close()
    assert lines_of(last)[-1]["event"] == "start"
    assert len(all_lines(tmp_path)) == 31


# --- no visitor's words -----------------------------------------------------------------------

def test_a_show_keeping_no_words_logs_counts_in_their_place(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", keep_words=False)
    log.write("transcript", text="a red fox in the snow", language="en", english="a red fox in the snow",
              latency_s=0.4)
    log.write("moderated", text="a damn fox", english="a damn fox", words=["damn"], action="replace")
    log.write("prompt", text="a red fox in the snow, ink wash", source="speech", negative="blurry")
    log.write("prompt", text="a quiet garden at dawn", source="show", negative="")
    log.write("prompt", text="a red fox, and a moon", source="osc")  # /append builds on the visitor's words
    log.write("presented", prompt="a red fox in the snow, ink wash", source="speech", generator="preview")
    log.write("presented", prompt="the attract cycle's words", source="attract", generator="preview")
    log.write("curation", state="painted", id=3, text="a red fox", caption="a red fox", heard="a red fax")
    log.write("osc", address="/jadong/queue/edit", args=[3, "a red fox"], sender="10.0.0.5:9000")
    log.write("osc", address="/jadong/prompt/append", args=["and a moon"], sender="10.0.0.5:9000")
    log.write("capture", trigger="osc", prompt="a red fox in the snow")  # an older line: no source
    log.write("error", stage="camera", reason="lost")
    log.close()
    text = (tmp_path / "events.jsonl").read_text(encoding="utf-8")
    for visitor in ("fox", "damn", "fax"):
        assert visitor not in text
    records = lines_of(tmp_path / "events.jsonl")
    by = {(r["event"], r.get("source", r.get("address"))): r for r in records}
    transcript = by[("transcript", None)]
    assert transcript["text_words"] == 6 and transcript["english_words"] == 6 and "text" not in transcript
    assert transcript["language"] == "en" and transcript["latency_s"] == 0.4
    assert by[("moderated", None)]["words_words"] == 1 and by[("moderated", None)]["action"] == "replace"
    assert by[("prompt", "speech")] == {**by[("prompt", "speech")], "text_words": 8, "negative": "blurry"}
    assert by[("prompt", "show")]["text"] == "a quiet garden at dawn"  # the artist's words stay
    assert by[("presented", "attract")]["prompt"] == "the attract cycle's words"
    assert "text" not in by[("prompt", "osc")]
    assert by[("osc", "/jadong/queue/edit")]["args_words"] == 3
    assert by[("osc", "/jadong/prompt/append")]["args"] == ["and a moon"]  # the operator's own words
    assert by[("error", None)]["reason"] == "lost"
    # Withheld in place: the line keeps its order of fields, and withholding twice changes nothing.
    assert list(transcript)[:5] == ["time", "mono", "event", "text_words", "language"]
    assert withhold("transcript", transcript) is transcript


def test_every_event_the_package_writes_with_words_is_in_the_table():
    """A new event carrying words (text=, prompt=, ...) must say whose they are in
    core/visitor_words.py, or a show keeping no words would keep them."""
    word_keys = {"text", "english", "prompt", "words", "caption", "heard"}
    artists: dict[str, str] = {}  # events whose words are the artist's: none so far
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            at = 1 if isinstance(f, ast.Name) and f.id == "emit" else (
                0 if isinstance(f, ast.Attribute) and f.attr in ("on_event", "_on_event", "write") else None)
            if at is None or len(node.args) <= at or not isinstance(node.args[at], ast.Constant):
                continue
            keys = {k.arg for k in node.keywords if k.arg} & word_keys
            if keys and isinstance(node.args[at].value, str):
                found.append((path.relative_to(PACKAGE), node.lineno, node.args[at].value, keys))
    assert len(found) >= 8  # the scan sees the speech and control events
    for where, line, event, keys in found:
        listed = set(VISITOR_WORDS.get(event, ())) | set(PROMPT_WORDS.get(event, ()))
        assert event in artists or keys <= listed, (
            f"{where}:{line} writes {sorted(keys)} in a {event!r} event: list them in core/visitor_words.py")


# --- a full disk ---------------------------------------------------------------------------------

class Told(list):
    def __call__(self, event: str, fields: dict) -> None:
        self.append((event, fields))


def test_an_injected_full_disk_loses_counted_lines_and_says_so_once_when_it_writes_again(tmp_path, caplog):
    faults = FaultInjector(enabled=True)
    told = Told()
    log = EventLog(tmp_path / "events.jsonl", observer=told, faults=faults)
    log.write("start", show="soak")
    caplog.set_level(logging.WARNING, logger=events_module.__name__)
    faults.arm("disk_full")
    t0 = time.monotonic()
    for i in range(25):
        log.write("presented", prompt=f"frame {i}", source="show")
    assert log.in_outage and log.lines_lost == 25
    outage_warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(outage_warnings) == 1 and "No space left on device" in outage_warnings[0].getMessage()
    while time.monotonic() - t0 < DISK_FULL_S + 0.05:
        log.tick()  # tried at most every RETRY_S, still full
        time.sleep(0.02)
    assert not log.in_outage  # tick wrote the recovery without waiting for an event
    log.write("stop", hung=[])
    log.close()
    records = lines_of(tmp_path / "events.jsonl")
    assert [r["event"] for r in records] == ["start", "error", "stop"]
    recovery = records[1]
    assert recovery["stage"] == "events" and recovery["recovered"] is True and recovery["lost"] == 25
    assert DISK_FULL_S - 0.1 <= recovery["outage_s"] <= DISK_FULL_S + RETRY_S + 0.3
    assert "25 lines lost" in recovery["reason"] and "events" in STAGES
    # The counters (the operator's page, /metrics) heard both ends even though the file could not.
    errors = [f for e, f in told if e == "error"]
    assert len(errors) == 2 and "cannot be written" in errors[0]["reason"] and errors[1]["lost"] == 25
    assert len([r for r in caplog.records if "writes again" in r.getMessage()]) == 1


def test_a_log_folder_that_cannot_be_made_is_retried_and_recovers(tmp_path):
    blocked = tmp_path / "logs"
    blocked.write_text("a file where the folder should be")
    log = EventLog(blocked / "events-{day}.jsonl")  # no traceback: the show goes on
    log.write("start", show="x")
    log.write("error", stage="camera", reason="lost")
    assert log.lines_lost == 2 and log.in_outage
    blocked.unlink()
    time.sleep(RETRY_S + 0.05)
    log.write("stop", hung=[])
    log.close()
    records = lines_of(log.path)
    assert [r["event"] for r in records] == ["error", "stop"]
    assert records[0]["lost"] == 2 and records[0]["recovered"] is True


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 64 KiB file system (tmpfs), which fills up. Needs root and a kernel that lets this
    process mount (not in an unprivileged container): skipped elsewhere."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False) if os.geteuid() == 0 else None
    if done is None or done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() if done else 'not root'}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_real_full_disk_keeps_every_line_whole_and_recovers_when_space_is_freed(tiny_disk):
    filler = tiny_disk / "filler"
    told = Told()
    log = EventLog(tiny_disk / "events.jsonl", observer=told)
    try:
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # the disk full
            while True:
                try:
                    os.write(fd, b"\0" * 4096)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
        finally:
            os.close(fd)
        # 64 KiB in 4 KiB pages: free one page, then lines of ~300 bytes fill it mid-line.
        os.truncate(filler, max(0, filler.stat().st_size - 4096))
        for i in range(40):
            log.write("transcript", text=f"wish {i} " + "x" * 250, language="en")
        assert 0 < log.lines_lost < 40
        written_before = 40 - log.lines_lost
        filler.unlink()  # staff free space
        log.write("stop", hung=[])
    finally:
        log.close()
    records = lines_of(tiny_disk / "events.jsonl")  # the line cut short by the full disk was cut off again
    assert [r["event"] for r in records] == ["transcript"] * written_before + ["error", "stop"]
    assert records[-2]["lost"] == 40 - written_before and records[-2]["recovered"] is True
    assert "No space left on device" in records[-2]["reason"]
    assert [e for e, _ in told].count("error") == 2


# --- scrubbing a file ------------------------------------------------------------------------

def test_scrubbing_a_file_keeps_other_lines_as_they_were_and_its_time(tmp_path):
    path = tmp_path / "events-20240101.jsonl"
    log = EventLog(path)
    log.write("start", show="gallery")
    log.write("heard", text="a paper boat", english="a paper boat", latency_s=0.3)
    log.write("error", stage="generator", reason="CUDA out of memory")
    log.write("osc", address="/jadong/strength", args=[0.5], sender="10.0.0.5:9000")
    log.write("osc", address="/Jadong/Queue/Edit", args=[3, "a paper boat"], sender="10.0.0.5:9000")
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"time": "2024-01-01", "event": "transcript", "text": "a paper bo')  # cut short by a crash
    before = path.read_text(encoding="utf-8").splitlines()
    os.utime(path, (1_700_000_000, 1_700_000_000))
    done = scrub_file(path)
    assert done.changed and done.lines == 2 and done.unreadable == 1
    after = path.read_text(encoding="utf-8").splitlines()
    assert after[0] == before[0] and after[2:4] == before[2:4]  # byte for byte
    assert json.loads(after[1])["text_words"] == 3 and json.loads(after[4])["args_words"] == 3
    assert "boat" not in path.read_text(encoding="utf-8")
    assert len(after) == 5 and path.stat().st_mtime == 1_700_000_000
    assert not scrub_file(path).changed
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_a_log_folder_that_cannot_be_listed_does_not_stop_the_start(tmp_path):
    # A folder the log cannot even list (here a symlink loop, ELOOP; for a service user, a
    # root-only logs/ folder, EACCES): lines are counted and dropped, never a traceback at start.
    loop = tmp_path / "logs"
    loop.symlink_to(loop)
    log = EventLog(loop / "events-{day}.jsonl")
    log.write("start", show="x")
    assert log.lines_lost == 1 and log.in_outage
    loop.unlink()
    time.sleep(RETRY_S + 0.05)
    log.write("stop", hung=[])
    log.close()
    assert [r["event"] for r in lines_of(log.path)] == ["error", "stop"]
