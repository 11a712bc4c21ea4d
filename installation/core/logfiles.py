"""The event log's files on disk: how a log path names its files (a day's file, its numbered
parts), which files belong to one log, and rewriting an old file without its visitors' words.

A log path may hold "{day}" (YYYYMMDD) in its file name: `logs/events-{day}.jsonl` writes
`logs/events-20250101.jsonl`, and when that file passes its size cap it goes on in
`logs/events-20250101.1.jsonl`, `.2.jsonl`, ... A path without "{day}" (`--log run.jsonl`)
has parts the same way (`run.1.jsonl`). The files of one log are what the retention janitor
prunes and scrubs (control/retention.py); "{day}" in a folder name instead of the file name
still writes a folder a day, but only the current day's folder is then seen for pruning.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .visitor_words import OSC_WORDS_ADDRESSES, PROMPT_WORDS, VISITOR_WORDS, withhold

DAY = "{day}"  # in a log path: replaced by the date, and a new file is opened each day


@dataclass(frozen=True)
class LogFile:
    path: Path
    day: str  # YYYYMMDD from the name; "" for a path without "{day}"
    part: int  # 0 for the day's first file, then 1, 2, ...
    size: int
    mtime: float  # the last write: every line in the file is at least this old


class LogFamily:
    """The files one log path (with or without "{day}") writes."""

    def __init__(self, template: Path) -> None:
        self.template = template
        name = template.name
        self.has_day = DAY in str(template)
        # The part number goes before the extension, which is whatever follows the last dot
        # after "{day}" ("events-{day}.jsonl" -> "events-{day}" + ".jsonl").
        after = name.rfind(DAY) + len(DAY) if DAY in name else 0
        dot = name.rfind(".")
        self._base, self._ext = (name[:dot], name[dot:]) if dot >= after and dot > 0 else (name, "")
        if DAY in self._base:
            head, tail = self._base.split(DAY, 1)
            day = r"(?P<day>\d{8})"
        else:
            head, tail, day = self._base, "", ""
        self._pattern = re.compile(
            "^" + re.escape(head) + day + re.escape(tail) + r"(?:\.(?P<part>[1-9]\d*))?" + re.escape(self._ext) + "$")

    def path(self, day: str, part: int = 0) -> Path:
        base = self._base.replace(DAY, day)
        name = f"{base}.{part}{self._ext}" if part else f"{base}{self._ext}"
        return Path(str(self.template.parent).replace(DAY, day)) / name

    def part_of(self, path: Path) -> int:
        m = self._pattern.match(path.name)
        return int(m.group("part") or 0) if m else 0

    def files(self, day: str) -> list[LogFile]:
        """The log's files on disk, oldest first (by day, then part). `day` is today's: where a
        "{day}" folder is looked in."""
        folder = Path(str(self.template.parent).replace(DAY, day))
        found: list[LogFile] = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    m = self._pattern.match(entry.name)
                    if m is None or not entry.is_file(follow_symlinks=False):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # removed meanwhile
                        continue
                    found.append(LogFile(Path(entry.path), m.groupdict().get("day") or "", int(m.group("part") or 0),
                                         st.st_size, st.st_mtime))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found.sort(key=lambda f: (f.day, f.part))
        return found

    def writable(self, day: str, max_bytes: int) -> Path:
        """The file to append to on `day`: its last part, or the next one if that is full."""
        parts = [f for f in self.files(day) if f.day == day] if self.has_day else self.files(day)
        if not parts:
            return self.path(day)
        last = max(parts, key=lambda f: f.part)
        return last.path if last.size < max_bytes else self.path(day, last.part + 1)


@dataclass(frozen=True)
class Scrubbed:
    lines: int  # lines whose visitor's words were replaced by counts
    unreadable: int  # lines that were not JSON (a line cut short by a crash): dropped, they may hold words
    changed: bool


def scrub_file(path: Path) -> Scrubbed:
    """Rewrite `path` with every visitor's words replaced by counts (visitor_words.withhold),
    the other lines as they were. Written to a temporary file beside it, synced and renamed over
    it, so the log is never half scrubbed; its times are kept, so pruning by age still sees
    when it was written. A file with nothing to scrub is left untouched. Raises OSError."""
    tmp = path.with_name(f".{path.name}.scrub")
    try:
        st = path.stat()
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            lines, unreadable = _scrub_lines(src, dst)
            if lines or unreadable:
                dst.flush()
                os.fsync(dst.fileno())
        if not (lines or unreadable):
            tmp.unlink()
            return Scrubbed(0, 0, False)
        os.chmod(tmp, st.st_mode & 0o7777)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Scrubbed(lines, unreadable, True)


# The event's name as EventLog writes it, read without parsing the line: most lines (osc,
# presented, generator...) hold no words and are copied as they are, several times faster.
_EVENT = re.compile(rb'^\{"time": "[^"]*", "mono": [-0-9.e]+, "event": "([a-z_]+)"')
_WORDY = {name.encode() for name in (*VISITOR_WORDS, *PROMPT_WORDS)}
_OSC_WORDY = tuple(address.encode() for address in OSC_WORDS_ADDRESSES)


def _may_hold_words(raw: bytes) -> bool:
    m = _EVENT.match(raw)
    if m is None or not raw.rstrip().endswith(b"}"):
        return True  # not as EventLog writes a line: parse it to know
    if m.group(1) == b"osc":
        lowered = raw.lower()
        return any(address in lowered for address in _OSC_WORDY)
    return m.group(1) in _WORDY


def _scrub_lines(src: BinaryIO, dst: BinaryIO) -> tuple[int, int]:
    """Copy the lines of `src` to `dst`, words withheld; (lines changed, unreadable dropped)."""
    lines = unreadable = 0
    for raw in src:
        if not _may_hold_words(raw):
            dst.write(raw if raw.endswith(b"\n") else raw + b"\n")
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            unreadable += bool(raw.strip())
            continue
        if not isinstance(record, dict):
            unreadable += 1
            continue
        kept = withhold(str(record.get("event", "")), record)
        if kept is record:
            dst.write(raw if raw.endswith(b"\n") else raw + b"\n")
        else:
            lines += 1
            dst.write((json.dumps(kept, ensure_ascii=False) + "\n").encode("utf-8"))
    return lines, unreadable


__all__ = ["DAY", "LogFamily", "LogFile", "Scrubbed", "scrub_file"]
