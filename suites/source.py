"""Where a suite's rows come from: a local file or directory (jsonl, json, parquet), or a Hugging
Face dataset id at a pinned revision (resolved to a commit and recorded when none is given).
Every load reports a content hash of the rows, so a report says exactly what was evaluated."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

from m1bench.harness.core import files

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


class DataError(files.InputError):
    pass


def content_hash(rows: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, sort_keys=True, default=str, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; errors name the file and line."""
    return files.iter_jsonl(path, DataError)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in iter_jsonl(path)]


def _read_json(path: Path) -> list[dict[str, Any]]:
    data = files.read_json(path, DataError)
    if isinstance(data, dict):  # {"data": [...]} or column-oriented {"col": [...]}
        if isinstance(data.get("data"), list):
            data = data["data"]
        elif data and all(isinstance(v, list) for v in data.values()):
            cols = list(data)
            data = [dict(zip(cols, vals)) for vals in zip(*data.values())]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a list of objects")
    return data


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


_READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".parquet": _read_parquet}


def read_local(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in LOCAL_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no {'/'.join(LOCAL_SUFFIXES)} files in this directory")
        return [r for f in files for r in _READERS[f.suffix](f)]
    if path.suffix not in _READERS:
        raise DataError(f"{path}: unsupported file type (use {', '.join(LOCAL_SUFFIXES)})")
    return _READERS[path.suffix](path)


def is_local(data: str) -> bool:
    return Path(data).exists() or data.endswith(LOCAL_SUFFIXES) or data.startswith((".", "/", "~"))


def resolve_revision(dataset_id: str, revision: str | None) -> str:
    """The commit a hub dataset is read at: the given one, or today's head of main, pinned."""
    if revision and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision
    from huggingface_hub import HfApi

    return HfApi().dataset_info(dataset_id, revision=revision or "main").sha


def load_rows(data: str, *, revision: str | None = None, split: str = "test", name: str | None = None,
              data_files: list[str] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows plus facts for the report: source, revision, content hash."""
    if is_local(data):
        path = Path(data).expanduser()
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
        rows = read_local(path)
        return rows, {"source": str(path), "revision": None, "rows": len(rows), "content_hash": content_hash(rows)}
    import datasets

    rev = resolve_revision(data, revision)
    if data_files:  # script-free reading of the repository's own files at that commit
        urls = [f"hf://datasets/{data}@{rev}/{f}" for f in data_files]
        ds = datasets.load_dataset("json", data_files={split: urls}, split=split)
    else:
        ds = datasets.load_dataset(data, name=name, split=split, revision=rev)
    rows = ds.to_list()
    return rows, {"source": data, "config": name, "split": split, "revision": rev,
                  "data_files": data_files, "rows": len(rows), "content_hash": content_hash(rows)}
