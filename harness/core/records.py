"""Append-only per-sample records: one JSON object per line, fsync'd as it is written.

The file is the run's cache, keyed by request hash: re-running the same config reads it back and
sends only what is missing. A crash can leave a partial last line; reading tolerates exactly that
(and reports it), while a malformed line anywhere else is an error naming the file and line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator


class RecordsError(ValueError):
    pass


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a file, read-only. A partial last line (a crash mid-write) is skipped; a
    malformed line anywhere else is an error naming the file and line."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                if not line.endswith("\n"):
                    return
                raise RecordsError(f"{path}:{lineno}: not a JSON record ({e.msg})") from None


class RecordStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dropped_partial_line = False
        self._repair_tail()
        self._fh = open(self.path, "a", encoding="utf-8")

    def _repair_tail(self) -> None:
        """Cut a partial last line (no trailing newline) left by a crash mid-write."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return
            f.seek(0)
            cut = f.read().rfind(b"\n") + 1
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        self.dropped_partial_line = True

    def read(self) -> Iterator[dict[str, Any]]:
        return read_records(self.path)

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()
