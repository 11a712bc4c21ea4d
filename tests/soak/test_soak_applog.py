"""Following the app's event log while it is written (soak/applog.py): the real EventLog,
including its numbered parts once a file passes its size cap, and a restart appending."""

from __future__ import annotations

from pathlib import Path

from installation.core.events import EventLog
from installation.core.logfiles import LogFamily
from installation.soak.applog import LogTail, part_path


def test_the_tail_reads_new_lines_across_parts_and_restarts(tmp_path):
    path = tmp_path / "soak.jsonl"
    tail = LogTail(path)
    assert tail.read() == []  # nothing written yet
    log = EventLog(path, max_file_bytes=2000)
    log.write("start", n=0)
    assert [e["event"] for e in tail.read()] == ["start"]
    for i in range(40):  # ~40 lines of ~100 bytes: two parts and more
        log.write("heartbeat", seq=i, pad="x" * 40)
    log.close()
    assert part_path(path, 1).exists()
    seqs = [e["seq"] for e in tail.read()]
    assert seqs == list(range(40))
    assert tail.part >= 1
    again = EventLog(path, max_file_bytes=2000)  # a restarted app appends to the last part
    again.write("start", n=1)
    again.close()
    assert [(e["event"], e["n"]) for e in tail.read()] == [("start", 1)]
    assert tail.bad_lines == 0
    tail.close()


def test_a_half_written_line_waits_for_its_end_and_junk_is_counted(tmp_path):
    path = tmp_path / "soak.jsonl"
    tail = LogTail(path)
    with path.open("ab") as f:
        f.write(b'{"event": "a", "mono": 1}\n{"event": "b", "mo')
        f.flush()
        assert [e["event"] for e in tail.read()] == ["a"]
        f.write(b'no": 2}\nnot json\n[1, 2]\n')
    assert [e["event"] for e in tail.read()] == ["b"]
    assert tail.bad_lines == 2
    tail.close()


def test_part_names_follow_the_event_logs():
    for name in ("soak.jsonl", "soak", "a.log.jsonl"):
        path = Path("/x") / name
        family = LogFamily(path)
        assert part_path(path, 0) == family.path("", 0)
        assert part_path(path, 3) == family.path("", 3)
