"""Repair output → patch: SEARCH/REPLACE edits parsed from the model's answer, applied to the files
at the base commit, turned into a unified diff that `git apply` takes; and the simple selection
among k repair samples (majority vote over patches normalised by their syntax tree).

Edit format (per edit):
    ### path/to/file.py
    <<<<<<< SEARCH
    lines copied exactly from the file
    =======
    the lines to put instead
    >>>>>>> REPLACE
"""
from __future__ import annotations

import ast
import difflib
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

_PATH_LINE = re.compile(r"^#{2,4}\s*(?:File:\s*)?`?([^\s`]+?)`?\s*$")
SEARCH, DIVIDER, REPLACE = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"


@dataclass(frozen=True)
class Edit:
    path: str
    search: str
    replace: str


@dataclass
class Candidate:
    """One repair sample's outcome."""
    edits: list[Edit] = field(default_factory=list)
    patch: str = ""
    problem: str | None = None  # why this sample produced no usable patch
    key: str | None = None  # normalised identity, for voting


def parse_edits(text: str) -> list[Edit]:
    """Every SEARCH/REPLACE block, with the file named by the nearest '### path' line above it."""
    edits, path = [], None
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _PATH_LINE.match(line.strip())
        if m:
            path = m.group(1).removeprefix("a/").removeprefix("b/").removeprefix("./")
        elif line.strip() == SEARCH:
            j = i + 1
            while j < len(lines) and lines[j].strip() != DIVIDER:
                j += 1
            k = j + 1
            while k < len(lines) and lines[k].strip() != REPLACE:
                k += 1
            if k >= len(lines):  # unterminated block: not an edit
                break
            if path is not None:
                edits.append(Edit(path, "\n".join(lines[i + 1:j]), "\n".join(lines[j + 1:k])))
            i = k
        i += 1
    return edits


def _replace_lines_loosely(content: str, search: str, replace: str) -> str | None:
    """Match SEARCH against whole lines ignoring trailing whitespace; only a unique match counts."""
    lines, want = content.split("\n"), [s.rstrip() for s in search.split("\n")]
    hits = [i for i in range(len(lines) - len(want) + 1)
            if [x.rstrip() for x in lines[i:i + len(want)]] == want]
    if len(hits) != 1:
        return None
    i = hits[0]
    return "\n".join(lines[:i] + replace.split("\n") + lines[i + len(want):])


def apply_edits(read: Callable[[str], str | None], edits: list[Edit]) -> tuple[dict[str, str | None], dict[str, str], str | None]:
    """(original files, edited files, problem). `read(path)` gives a file at the base commit (None:
    absent). An empty SEARCH creates a file that does not exist yet."""
    old: dict[str, str | None] = {}
    new: dict[str, str] = {}
    for e in edits:
        if e.path not in old:
            old[e.path] = read(e.path)
        content = new.get(e.path, old[e.path])
        if content is None:
            if e.search.strip():
                return old, new, f"edit of {e.path}: no such file in the repository"
            new[e.path] = e.replace + "\n"
            continue
        if not e.search.strip():
            return old, new, f"edit of {e.path}: empty SEARCH block for an existing file"
        if e.search in content:
            new[e.path] = content.replace(e.search, e.replace, 1)
            continue
        loose = _replace_lines_loosely(content, e.search, e.replace)
        if loose is None:
            return old, new, f"edit of {e.path}: the SEARCH block is not in the file"
        new[e.path] = loose
    return old, new, None


def _keep_ends(text: str) -> list[str]:
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def file_diff(path: str, old: str | None, new: str) -> str:
    """A git-style unified diff of one file ('' when nothing changed)."""
    body = list(difflib.unified_diff(_keep_ends(old or ""), _keep_ends(new), n=3))[2:]
    if not body:
        return ""
    head = [f"diff --git a/{path} b/{path}\n"]
    head += ["new file mode 100644\n", "--- /dev/null\n"] if old is None else [f"--- a/{path}\n"]
    head.append(f"+++ b/{path}\n")
    return "".join(head) + "".join(x if x.endswith("\n") else x + "\n\\ No newline at end of file\n" for x in body)


def make_patch(old: dict[str, str | None], new: dict[str, str]) -> str:
    return "".join(file_diff(p, old.get(p), new[p]) for p in sorted(new))


def normalized_key(new: dict[str, str], old: dict[str, str | None]) -> tuple[str | None, str | None]:
    """(key, problem): a hash of the edited files' syntax trees (comments and layout do not count),
    or why the patch is unusable (a Python file that no longer parses)."""
    h = hashlib.sha256()
    for path in sorted(new):
        if new[path] == old.get(path):
            continue
        if path.endswith(".py"):
            try:
                tree = ast.dump(ast.parse(new[path]))
            except (SyntaxError, ValueError) as e:
                return None, f"{path} does not parse after the edit ({type(e).__name__}: {e.msg if hasattr(e, 'msg') else e})"
            h.update(f"{path}\0{tree}\0".encode())
        else:
            h.update(f"{path}\0{new[path].strip()}\0".encode())
    return h.hexdigest()[:16], None


def build_candidate(read: Callable[[str], str | None], answer: str) -> Candidate:
    edits = parse_edits(answer)
    if not edits:
        return Candidate(problem="no SEARCH/REPLACE edit in the answer")
    old, new, problem = apply_edits(read, edits)
    if problem:
        return Candidate(edits, problem=problem)
    patch = make_patch(old, new)
    if not patch:
        return Candidate(edits, problem="the edits change nothing")
    key, problem = normalized_key(new, old)
    return Candidate(edits, patch=patch, problem=problem, key=key)


def select(candidates: list[Candidate]) -> tuple[int | None, dict[str, int]]:
    """Majority vote over usable candidates' normalised patches; ties go to the earliest sample."""
    usable = [i for i, c in enumerate(candidates) if c.patch and c.problem is None]
    votes = Counter(candidates[i].key for i in usable)
    if not votes:
        return None, {}
    top = max(votes.values())
    return next(i for i in usable if votes[candidates[i].key] == top), dict(votes)
