"""Follows the app's event log while the soak runs: every new complete line, parsed.

The app appends one JSON object per line; a restarted app appends to the same file. When a
file passes the log's size cap the app goes on in numbered parts beside it (`soak.jsonl`, then
`soak.1.jsonl`, `soak.2.jsonl`: core/logfiles.py), so the tail moves on to the next part once
it exists and the current one is read to its end. A half-written last line waits for its end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any


def part_path(path: Path, part: int) -> Path:
    """The log's `part`-th file (0: the path itself)."""
    if part == 0:
        return path
    return path.with_name(f"{path.stem}.{part}{path.suffix}") if path.suffix else path.with_name(f"{path.name}.{part}")


class LogTail:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.part = 0
        self._file: IO[bytes] | None = None
        self._pending = b""
        self.bad_lines = 0  # lines that were not JSON objects (a torn write after a full disk)

    def read(self) -> list[dict[str, Any]]:
        """The lines completed since the last call."""
        out: list[dict[str, Any]] = []
        while True:
            if self._file is None:
                try:
                    self._file = part_path(self.path, self.part).open("rb")
                except FileNotFoundError:
                    return [e for e in out if e]
            chunk = self._file.read()
            if chunk:
                self._pending += chunk
                *lines, self._pending = self._pending.split(b"\n")
                out.extend(self._parse(line) for line in lines if line.strip())
                continue
            nxt = part_path(self.path, self.part + 1)
            if not nxt.exists():
                return [e for e in out if e]
            # The app moved on to the next part: whatever is left here is complete by now.
            chunk = self._file.read()
            self._pending += chunk
            if self._pending.strip():
                out.append(self._parse(self._pending))
            self._pending = b""
            self._file.close()
            self._file = None
            self.part += 1

    def _parse(self, line: bytes) -> dict[str, Any]:
        try:
            value = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            value = None
        if not isinstance(value, dict):
            self.bad_lines += 1
            return {}
        return value

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


__all__ = ["LogTail", "part_path"]
