"""Repositories of SWE-bench instances: a local directory of checkouts, or clones made there when
a network is available.

A repository `owner/name` lives at `<repos_dir>/owner__name` (SWE-bench's naming) or
`<repos_dir>/name`. Files are read at the instance's base commit straight from git (ls-tree,
cat-file, archive), so a checkout is never modified and instances of one repository can be worked
on side by side.
"""
from __future__ import annotations

import subprocess
import threading
from functools import lru_cache
from pathlib import Path

from m1bench.suites.source import DataError

DEFAULT_CLONE_URL = "https://github.com/{repo}.git"
_clone_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class RepoError(DataError):
    pass


def _git(path: Path | None, *args: str, timeout: float = 600, input: bytes | None = None) -> subprocess.CompletedProcess:
    cmd = ["git", "-c", "safe.directory=*", *(["-C", str(path)] if path else []), *args]
    return subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)


def checkout_path(repos_dir: Path, repo: str) -> Path:
    owner_name = repos_dir / repo.replace("/", "__")
    name_only = repos_dir / repo.split("/")[-1]
    return name_only if not owner_name.exists() and name_only.exists() else owner_name


def has_commit(path: Path, commit: str) -> bool:
    return _git(path, "cat-file", "-e", f"{commit}^{{commit}}", timeout=60).returncode == 0


def ensure_repo(repos_dir: str | Path, repo: str, commit: str, clone: bool, clone_url: str = DEFAULT_CLONE_URL) -> Path:
    """The checkout of `repo` holding `commit`: found in repos_dir, else cloned (or fetched) there
    when `clone` is on. Errors name the repository, commit and directory."""
    repos_dir = Path(repos_dir).expanduser()
    path = checkout_path(repos_dir, repo)
    with _locks_guard:
        lock = _clone_locks.setdefault(str(path), threading.Lock())
    with lock:
        if not (path / ".git").exists() and not (path / "HEAD").exists():
            if not clone:
                raise RepoError(f"{repo}: no checkout at {path} (clone is off; put a clone of {repo} there)")
            path.parent.mkdir(parents=True, exist_ok=True)
            url = clone_url.format(repo=repo)
            r = _git(None, "clone", "--quiet", url, str(path), timeout=3600)
            if r.returncode != 0:
                raise RepoError(f"{repo}: cloning {url} into {path} failed: {r.stderr.decode(errors='replace').strip()[-400:]}")
        if not has_commit(path, commit):
            if clone:
                _git(path, "fetch", "--quiet", "origin", commit, timeout=3600)
            if not has_commit(path, commit):
                raise RepoError(f"{repo}: commit {commit} is not in the checkout at {path}"
                                + ("" if clone else " (clone is off, so it was not fetched)"))
    return path


class Snapshot:
    """One repository at one commit, read-only."""

    def __init__(self, path: Path, commit: str):
        self.path, self.commit = Path(path), commit

    def files(self) -> list[str]:
        return _list_files(str(self.path), self.commit)

    def read(self, file: str) -> str | None:
        """The file's text at the commit, or None when it does not exist there."""
        return _read(str(self.path), self.commit, file)

    def archive(self) -> bytes:
        """The whole tree at the commit, as a tar archive."""
        r = _git(self.path, "archive", "--format=tar", self.commit)
        if r.returncode != 0:
            raise RepoError(f"{self.path}: git archive {self.commit} failed: {r.stderr.decode(errors='replace')[-400:]}")
        return r.stdout


@lru_cache(maxsize=64)
def _list_files(path: str, commit: str) -> list[str]:
    r = _git(Path(path), "ls-tree", "-r", "-z", "--name-only", commit)
    if r.returncode != 0:
        raise RepoError(f"{path}: cannot list the files of {commit}: {r.stderr.decode(errors='replace')[-400:]}")
    return sorted(f for f in r.stdout.decode().split("\0") if f)


@lru_cache(maxsize=4096)
def _read(path: str, commit: str, file: str) -> str | None:
    r = _git(Path(path), "cat-file", "blob", f"{commit}:{file}", timeout=60)
    return r.stdout.decode(errors="replace") if r.returncode == 0 else None
