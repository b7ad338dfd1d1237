"""Rows in the openai/mrcr layout, read one at a time, and the Problems built from them.

Layout (parquet files `2needle/2needle_0.parquet`, … in the hub repository; the MRCR generator
writes the same fields to JSONL): `prompt` (a JSON list of {role, content} messages, ending with the
question), `answer` (the random prefix + the requested text), `random_string_to_prepend`,
`n_needles`, `desired_msg_index`, `total_messages`, `n_chars`; extra columns are kept as facts.

Memory: a row is parsed, counted and turned into a Problem before the next is read; neither the
raw JSON text nor an Arrow table of the file stays behind, so each prompt is held once (the
runner then holds it until the run ends). Token counts, the slow part for the 2,400 official rows
(~2.3 GB of text), are cached by row content under $M1BENCH_HOME/mrcr/.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from m1bench.suites.base import Problem
from m1bench.suites.source import DataError, iter_jsonl

FIELDS = ("prompt", "answer", "random_string_to_prepend", "n_needles", "desired_msg_index", "total_messages", "n_chars")
SUFFIXES = (".parquet", ".jsonl")
ROLES = ("system", "user", "assistant")


@dataclass
class Row:
    where: str  # "file:row" for error messages and problem ids
    messages: list[dict[str, str]]
    answer: str
    prefix: str
    n_needles: int
    digest: str  # content hash of the row (token-count cache key)
    extra: dict[str, Any] = field(default_factory=dict)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{path}: no {'/'.join(SUFFIXES)} files under this directory")
        return files
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: unsupported file type (use {', '.join(SUFFIXES)} or a directory of them)")
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    return [path]


def _raw_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as e:  # pyarrow raises several types for a broken file
            raise DataError(f"{path}: not a readable parquet file ({e})") from None
        missing = [f for f in FIELDS if f not in pf.schema_arrow.names]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(pf.schema_arrow.names)})")
        i = 0
        for batch in pf.iter_batches(batch_size=8):
            for row in batch.to_pylist():
                yield i, row
                i += 1
        return
    yield from iter_jsonl(path)


def parse_row(raw: dict[str, Any], where: str) -> Row:
    for name in FIELDS:
        if raw.get(name) is None:
            raise DataError(f"{where}: field {name!r} is missing")
    for name in ("prompt", "answer", "random_string_to_prepend"):
        if not isinstance(raw[name], str):
            raise DataError(f"{where}: field {name!r} must be a string, got {type(raw[name]).__name__}")
    for name in ("n_needles", "desired_msg_index", "total_messages", "n_chars"):
        if isinstance(raw[name], bool) or not isinstance(raw[name], int):
            raise DataError(f"{where}: field {name!r} must be an integer, got {raw[name]!r}")
    h = hashlib.sha256()
    for name in ("prompt", "answer", "random_string_to_prepend"):
        h.update(raw[name].encode())
        h.update(b"\0")
    try:
        messages = json.loads(raw["prompt"])
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: field 'prompt' is not a JSON list of messages ({e.msg} at char {e.pos})") from None
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field 'prompt' must be a non-empty JSON list of messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: prompt message {i} must be {{'role': one of {ROLES}, 'content': string}}, got "
                            f"{str(m)[:80]!r}")
    extra = {k: v for k, v in raw.items() if k not in FIELDS and isinstance(v, (str, int, float, bool, list))}
    return Row(where, messages, raw["answer"], raw["random_string_to_prepend"], raw["n_needles"], h.hexdigest(), extra)


def iter_rows(data: str, revision: str | None = None) -> tuple[Iterator[Row], dict[str, Any]]:
    """Rows of a local file/directory or of a hub dataset at a pinned revision, and the facts
    (source, revision, files). The facts dict gains `rows` and `content_hash` once the iterator is
    exhausted."""
    from m1bench.suites.source import is_local, resolve_revision

    info: dict[str, Any] = {"source": data, "revision": None}
    if is_local(data):
        root = Path(data).expanduser()
        if not root.exists():
            raise DataError(f"{root}: no such file or directory")
    else:
        from huggingface_hub import snapshot_download

        try:
            rev = resolve_revision(data, revision)
            # the sharded layout ({n}needle/{n}needle_{i}.parquet); a repository without it: every parquet file
            root = Path(snapshot_download(data, repo_type="dataset", revision=rev, allow_patterns=["*needle/*.parquet"]))
            if not any(root.rglob("*.parquet")):
                root = Path(snapshot_download(data, repo_type="dataset", revision=rev, allow_patterns=["*.parquet"]))
        except Exception as e:  # no network, no such repository or revision: say what to do instead
            raise DataError(f"{data}: cannot read it from the Hugging Face hub ({type(e).__name__}: {str(e)[:200]}); "
                            f"give a local copy of its parquet files as option data") from None
        info["revision"] = rev
    files = _files(root)
    base = root if root.is_dir() else root.parent
    info["files"] = [str(f.relative_to(base)) for f in files]

    def rows() -> Iterator[Row]:
        h, n = hashlib.sha256(), 0
        for f in files:
            rel = f.relative_to(base)
            for i, raw in _raw_rows(f):
                row = parse_row(raw, f"{rel}:{i}")
                h.update(row.digest.encode())
                n += 1
                yield row
        info["rows"], info["content_hash"] = n, h.hexdigest()[:16]

    return rows(), info


class CountCache:
    """Token counts by (row digest, what was counted), one JSONL file per tokenizer key."""

    def __init__(self, key: str):
        home = Path(os.environ.get("M1BENCH_HOME", "~/.cache/m1bench")).expanduser()
        self.path = home / "mrcr" / f"token-counts-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsonl"
        self.values: dict[str, int] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        self.values.update(json.loads(line))
                    except json.JSONDecodeError:  # a line cut by a crash: recount that row
                        continue
        self._new: dict[str, int] = {}

    def get(self, key: str, compute: Callable[[], int]) -> int:
        if key not in self.values:
            self.values[key] = self._new[key] = compute()
        return self.values[key]

    def flush(self) -> None:
        if self._new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(self._new) + "\n")
            self._new = {}


def counter_key(counter: Any) -> str:
    tok = getattr(counter, "tokenizer", None)
    if tok is not None and hasattr(tok, "tokenizer"):  # ChatTokenizer over a `tokenizers` Tokenizer
        return "model:" + hashlib.sha256(tok.tokenizer.to_str().encode()).hexdigest()
    return counter.name


@dataclass
class Selection:
    """Which rows become problems, and what the results must say about the others."""

    needles: tuple[int, ...]
    bins: tuple[str, ...]
    limit: int | None
    context_window: int | None

    def facts(self) -> dict[str, Any]:
        return {"needles": list(self.needles), "bins": list(self.bins), "limit": self.limit,
                "context_window": self.context_window}


def build_problems(rows: Iterator[Row], sel: Selection, bin_of: Callable[[Row, int], str],
                   tokens_of: Callable[[Row], int], window_tokens: Callable[[Row], int] | None,
                   window_note: str) -> tuple[list[Problem], dict[str, Any]]:
    """Select rows by needle count and bin, skip (and count) those whose prompt is over the
    context window, and turn the rest into Problems. `tokens_of` gives a row's bin measure,
    `window_tokens` its prompt length as the window is counted."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    problems: list[Problem] = []
    seen = Counter()
    skipped: Counter = Counter()
    progress = Progress(SpinnerColumn(), TextColumn("MRCR rows: {task.completed} read (token counts cached)"),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    with progress:
        task = progress.add_task("rows", total=None)
        for row in rows:
            progress.advance(task)
            _select(row, sel, bin_of, tokens_of, window_tokens, problems, seen, skipped)
    if len({p.id for p in problems}) != len(problems):
        raise DataError("problem ids (file:row) are not unique")
    return problems, {
        "selected": sum(seen.values()) if sel.limit is None else min(sel.limit, sum(seen.values())),
        "skipped_over_context_window": {"count": sum(skipped.values()), "by_bin_needles": dict(skipped),
                                        "context_window": sel.context_window, "counted_as": window_note},
        "to_send": len(problems),
    }


def _select(row: Row, sel: Selection, bin_of: Callable[[Row, int], str], tokens_of: Callable[[Row], int],
            window_tokens: Callable[[Row], int] | None, problems: list[Problem], seen: Counter,
            skipped: Counter) -> None:
    """One row: dropped by needles/bin/limit, skipped (counted) over the window, or a Problem."""
    if row.n_needles not in sel.needles:
        return
    tokens = tokens_of(row)
    label = bin_of(row, tokens)
    if label not in sel.bins:
        return
    seen[label] += 1
    if sel.limit is not None and sum(seen.values()) > sel.limit:
        return
    meta = {"bin": label, "n_needles": row.n_needles, "tokens": tokens, "row": row.where, **row.extra}
    if window_tokens is not None and sel.context_window is not None:
        meta["window_tokens"] = n = window_tokens(row)
        if n > sel.context_window:
            skipped[f"{label}/{row.n_needles}"] += 1
            return
    problems.append(Problem(id=row.where, messages=row.messages,
                            target={"answer": row.answer, "prefix": row.prefix}, meta=meta))
