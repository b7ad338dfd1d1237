"""Where a suite's rows come from: a local file or directory (jsonl, json, parquet), or a Hugging
Face dataset id at a pinned revision (resolved to a commit and recorded when none is given).
Every load reports a content hash of the rows, so a report says exactly what was evaluated."""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
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


def _is_commit(revision: str | None) -> bool:
    return bool(revision) and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE


def resolve_revision(dataset_id: str, revision: str | None) -> str:
    """The commit a hub dataset is read at: the given one, or today's head of main, pinned. Offline
    (HF_HUB_OFFLINE=1) a branch or tag is resolved from the local hub cache instead."""
    if _is_commit(revision):
        return revision
    with hub_errors(dataset_id, revision):
        if _offline():
            return _cached_ref(dataset_id, revision or "main")
        from huggingface_hub import HfApi

        return HfApi().dataset_info(dataset_id, revision=revision or "main").sha


def _cached_ref(dataset_id: str, ref: str) -> str:
    """The commit `ref` pointed at when the dataset was last fetched: the hub cache's refs/<ref>,
    else the one commit `datasets` prepared it at (several: which one is ambiguous, so say so)."""
    import datasets
    from huggingface_hub import constants

    refs = Path(constants.HF_HUB_CACHE) / f"datasets--{dataset_id.replace('/', '--')}" / "refs" / ref
    if refs.is_file():
        return refs.read_text().strip()
    commits = sorted({d.name for d in _prepared_dirs(Path(datasets.config.HF_DATASETS_CACHE), dataset_id)})
    if len(commits) == 1 and ref == "main":
        return commits[0]
    found = f"cached at {', '.join(commits)}: pin one as the suite's revision" if commits else "not in the local cache"
    raise DataError(f"{dataset_id} (revision {ref}): offline (HF_HUB_OFFLINE=1) and {found}; "
                    f"or give a local copy with --data SUITE=PATH")


def _prepared_dirs(cache: Path, dataset_id: str, config: str | None = None) -> list[Path]:
    """<cache>/<namespace>___<name>/<config>/<version>/<commit>: where `datasets` keeps a prepared hub dataset."""
    from datasets.naming import camelcase_to_snakecase

    *namespace, name = dataset_id.split("/")
    root = cache / "___".join([*namespace, camelcase_to_snakecase(name)])
    return [d for d in root.glob(f"{config or '*'}/*/*") if d.is_dir()]


@contextmanager
def hub_errors(dataset_id: str, revision: str | None):
    """A hub that cannot be reached, or that lacks the dataset or revision, is one line naming both
    and what to do instead (the libraries' own errors are tracebacks through their HTTP stack)."""
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import HTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        yield
    except (OSError, HTTPError) as e:
        missing = isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError, DatasetNotFoundError))
        why = "not found on the Hugging Face hub" if missing else "the Hugging Face hub cannot be reached"
        detail = (str(e).strip().splitlines() or [""])[0][:160]
        raise DataError(f"{dataset_id} (revision {revision or 'main'}): {why} ({type(e).__name__}: {detail}); "
                        "give a local copy with --data SUITE=PATH, or set HF_HUB_OFFLINE=1 to read the local cache") from None


def _load_prepared(dataset_id: str, name: str | None, split: str, rev: str):
    """Offline: the split `datasets` prepared at commit `rev`, read from its cache (its own offline
    fallback takes the most recently prepared commit, whichever that is)."""
    import datasets
    from datasets.packaged_modules.cache.cache import Cache

    cache = Path(datasets.config.HF_DATASETS_CACHE)
    # a config's dir is its name, or its name and a hash of its options: "default" first
    dirs = sorted((d for d in _prepared_dirs(cache, dataset_id, name) if d.name == rev), key=lambda d: d.parts[-3] != "default")
    if not dirs:
        raise DataError(f"{dataset_id} (revision {rev}): offline (HF_HUB_OFFLINE=1) and not prepared in {cache} "
                        f"at this revision; give a local copy with --data SUITE=PATH")
    d = dirs[0]
    builder = Cache(cache_dir=str(cache), dataset_name=dataset_id.split("/")[-1], repo_id=dataset_id,
                    config_name=d.parts[-3], version=d.parts[-2], hash=rev)
    try:
        return builder.as_dataset(split=split)
    except (ValueError, KeyError) as e:
        raise DataError(f"{dataset_id} (revision {rev}): no split {split!r} in the cache ({e})") from None


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
    with hub_errors(data, rev):
        if data_files:  # script-free reading of the repository's own files at that commit (cached: offline too)
            from huggingface_hub import hf_hub_download

            paths = [hf_hub_download(data, f, repo_type="dataset", revision=rev) for f in data_files]
            ds = datasets.load_dataset("json", data_files={split: paths}, split=split)
        elif _offline():
            ds = _load_prepared(data, name, split, rev)
        else:
            ds = datasets.load_dataset(data, name=name, split=split, revision=rev)
    rows = ds.to_list()
    return rows, {"source": data, "config": name, "split": split, "revision": rev,
                  "data_files": data_files, "rows": len(rows), "content_hash": content_hash(rows)}
