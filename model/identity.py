"""Content identity of a checkpoint directory: sha256 over config.json and every weight file.

Hashing a 900 GB checkpoint takes minutes, so digests are cached per file by (path, size, mtime)
under $M1BENCH_HOME; a changed file is hashed again."""
import hashlib
import json
import os
from pathlib import Path

CHUNK = 16 << 20


def _file_digest(path: Path, cache: dict) -> str:
    st = path.stat()
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if key not in cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
        cache[key] = h.hexdigest()
    return cache[key]


def checkpoint_hash(directory) -> str:
    from m1bench.model.tiny import default_home
    directory = Path(directory)
    files = sorted([directory / "config.json", *directory.glob("*.safetensors")])
    cache_file = default_home() / "checkpoint-digests.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        cache = {}
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{_file_digest(f, cache)}\n".encode())
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache))
    os.replace(tmp, cache_file)
    return "sha256:" + h.hexdigest()
