"""Append-only per-sample records: one JSON object per line, fsync'd as it is written.

The file is the run's cache, keyed by request hash: re-running the same config reads it back and
sends only what is missing. A crash can leave a partial last line; reading tolerates exactly that
(and reports it), while a malformed line anywhere else is an error naming the file and line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, TypedDict

from m1bench.harness.core.files import InputError, iter_jsonl
from m1bench.harness.core.types import sample_seed


class Record(TypedDict, total=False):
    """One line of records.jsonl: one sample of one request, as the runner writes it. `request`,
    `completion` and `score` are Request.to_dict(), Completion.to_record() and Score.to_record()
    (rebuild them with Completion.from_record / Score.from_record); the latest record of a hash wins."""

    hash: str  # Request.hash(model_id): the cache key
    suite: str
    suite_version: str
    problem_id: str
    sample: int
    model_id: str
    status: str  # "ok" | "error"
    time: str  # ISO 8601, UTC
    request: dict[str, Any]
    completion: dict[str, Any] | None
    grader: str
    score: dict[str, Any] | None
    grade_error: str | None  # the grader crashed: an error of its own, not a wrong answer
    error: dict[str, Any] | None  # {kind, message, attempts} of a request that got no completion
    regraded: bool


class RecordsError(InputError):
    pass


def read_records(path: Path) -> Iterator[Record]:
    """The records of a file, read-only. A partial last line (a crash mid-write) is skipped; a
    malformed line anywhere else is an error naming the file and line."""
    for _, rec in iter_jsonl(path, RecordsError, partial_tail=True):
        yield rec


def select_records(results: dict[str, Any], records: Iterable[Record]) -> list[Record]:
    """The records that belong to a run's results.json when the runner did not hand them over (a
    records file is a cache shared by every run into that directory): same model, suite version,
    sampling and per-sample seed as the results' config, a sample index below k, a problem the
    results counted."""
    cfg = results.get("config") or {}
    want, base_seed = cfg.get("sampling") or {}, (cfg.get("run") or {}).get("seed", 0)
    model_id = (results.get("engine") or {}).get("model_id")
    out = []
    for rec in records:
        s = results["suites"].get(rec.get("suite"))
        if s is None or rec.get("suite_version") != s.get("suite_version"):
            continue
        if model_id and rec.get("model_id") not in (None, model_id):
            continue
        if s.get("k") is not None and rec.get("sample", 0) >= s["k"]:
            continue
        if rec.get("status") == "ok" and s.get("per_problem") and rec.get("problem_id") not in s["per_problem"]:
            continue
        got = (rec.get("request") or {}).get("sampling")
        if got and want:
            max_tokens = (s.get("options") or {}).get("max_tokens") or want["max_tokens"]
            if (got.get("max_tokens"), got.get("temperature"), got.get("top_p"), got.get("top_k")) != (
                    max_tokens, float(want["temperature"]), float(want["top_p"]), want["top_k"]):
                continue
            if got.get("seed") is not None and got["seed"] != sample_seed(base_seed, rec["suite"], rec["problem_id"], rec["sample"]):
                continue
        out.append(rec)
    return out


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

    def read(self) -> Iterator[Record]:
        return read_records(self.path)

    def append(self, record: Record) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()
