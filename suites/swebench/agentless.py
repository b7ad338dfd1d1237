"""An Agentless-style scaffold for one SWE-bench instance, as the M1 paper describes it: two-stage
localisation without embedding retrieval, then repair, k samples and a simple selection.

1. Files: the problem statement and the repository structure (a tree of its Python files) → the
   files to edit, most important first (at most `max_files`).
2. Elements: the skeletons of those files (classes, functions, methods, module-level names, with
   line spans) → the classes, functions and lines to edit.
3. Repair: the code of those locations (with `context_lines` around them) → SEARCH/REPLACE edits,
   sampled `repair_samples` times (each its own seed) and turned into unified diffs.
4. Selection: majority vote over the usable patches normalised by syntax tree (patches that do
   not apply or break the syntax are dropped); ties go to the earliest sample.

The prompts are m1bench's; the shape (file list, then class/function/line locations, then
SEARCH/REPLACE edits) follows Agentless (OpenAutoCoder/Agentless).
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import replace
from typing import Any

from m1bench.harness.core.client import Client
from m1bench.harness.core.types import Completion, Request
from m1bench.suites.base import sub_seed
from m1bench.suites.swebench.code import (
    excerpt,
    render_skeleton,
    render_tree,
    source_files,
    source_lines,
    spans_for,
)
from m1bench.suites.swebench.edits import build_candidate, select
from m1bench.suites.swebench.repo import Snapshot

FILES_PROMPT = """The following GitHub issue must be fixed in the repository shown below.

### Issue
{problem}

### Repository structure
{tree}

Which files need to be edited to fix the issue? Give their full paths exactly as in the structure, \
at most {max_files}, most important first, one per line, inside a single ``` block. For example:
```
path/to/first.py
path/to/second.py
```"""

ELEMENTS_PROMPT = """The following GitHub issue must be fixed.

### Issue
{problem}

### Skeletons of the candidate files
Each line shows the line span of a class, function, method or module-level name, and its first line.
{skeletons}

Which locations need to be edited to fix the issue? Inside a single ``` block, write each file's \
path on its own line, followed by its locations, one per line, as `class: Name`, `function: name` \
(methods as `function: Class.method`), `variable: NAME` or `line: N`. For example:
```
path/to/file.py
function: Parser.parse
line: 120

path/to/other.py
class: Config
```"""

REPAIR_PROMPT = """The following GitHub issue must be fixed.

### Issue
{problem}

### Relevant code
Excerpts of the files to edit; '...' marks lines left out.
{code}

Fix the issue with SEARCH/REPLACE edits. Each edit names its file on a `### path` line, then \
copies one or more whole consecutive lines exactly as they are in the file (indentation included) \
between `<<<<<<< SEARCH` and `=======`, then gives the lines to put in their place before \
`>>>>>>> REPLACE`. Keep each SEARCH block short but unique in its file. For example:

```python
### mathweb/flask/app.py
<<<<<<< SEARCH
from flask import Flask
=======
import math
from flask import Flask
>>>>>>> REPLACE
```"""

_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
_LOCATION = re.compile(r"^(class|function|method|variable|line)s?\s*:\s*(.+)$", re.I)


def _block(text: str) -> str:
    """The last fenced block of an answer, or the whole answer when it has none."""
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else text


_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def match_file(name: str, files: list[str], file_set: set[str]) -> str | None:
    name = _LIST_MARK.sub("", name).strip().strip("`'\"").removeprefix("./").removeprefix("a/").removeprefix("b/")
    if name in file_set:
        return name
    tail = [f for f in files if f.endswith("/" + name)]
    return tail[0] if len(tail) == 1 else None


def parse_files(answer: str, files: list[str], max_files: int) -> list[str]:
    """The answer's file paths that exist in the repository (exactly, or by a unique path suffix), in order."""
    file_set, out = set(files), []
    for line in _block(answer).splitlines():
        f = match_file(line, files, file_set) if line.strip() else None
        if f and f not in out:
            out.append(f)
    return out[:max_files]


def parse_locations(answer: str, files: list[str]) -> dict[str, list[tuple[str, str]]]:
    """{file: [(kind, name or line number)]} for files among `files`."""
    file_set, out, current = set(files), {}, None
    for line in _block(answer).splitlines():
        s = line.strip()
        if not s:
            continue
        m = _LOCATION.match(s)
        if m:
            kind = m.group(1).lower()
            kind = "function" if kind == "method" else kind
            for value in (v.strip() for v in m.group(2).split(",")):
                if value and current is not None:
                    out[current].append((kind, value.split("(")[0].strip()))
            continue
        current = match_file(s, files, file_set)  # a file outside the candidates: its locations are dropped
        if current is not None:
            out.setdefault(current, [])
    return out


def repair_context(snapshot: Snapshot, files: list[str], locations: dict[str, list[tuple[str, str]]],
                   context_lines: int, fallback_lines: int) -> str:
    """Code shown to the repair step: each file's located spans (with context), or, for a file
    with no usable location, its first `fallback_lines` lines."""
    parts = []
    for f in files:
        src = snapshot.read(f)
        if src is None:
            continue
        spans = spans_for(src, locations.get(f, []))
        if not spans:
            spans = [(1, min(len(source_lines(src)), fallback_lines))]
        parts.append(f"### {f}\n```python\n{excerpt(src, spans, context_lines)}\n```")
    return "\n\n".join(parts)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def solve(problem_statement: str, snapshot: Snapshot, client: Client, request: Request,
                opts: dict[str, Any]) -> Completion:
    t0 = time.perf_counter()
    usage = {"prompt": 0, "completion": 0}
    first_ttft: list[float] = []

    async def ask(prompt: str, tag: str) -> Completion:
        c = await client.complete(replace(request, messages=({"role": "user", "content": prompt},),
                                          key=f"{request.key}/{tag}",
                                          sampling=replace(request.sampling, seed=sub_seed(request.sampling.seed, tag))))
        usage["prompt"] += c.prompt_tokens
        usage["completion"] += c.completion_tokens
        if c.ttft_s is not None and not first_ttft:
            first_ttft.append(c.ttft_s)
        return c

    def step(stage: str, prompt: str, c: Completion, /, **extra: Any) -> dict[str, Any]:
        return {"stage": stage, "prompt_sha256": _digest(prompt), "prompt_chars": len(prompt), "answer": c.text,
                "reasoning": c.reasoning, "finish_reason": c.finish_reason,
                "tokens": [c.prompt_tokens, c.completion_tokens], **extra}

    trajectory: list[dict[str, Any]] = []
    files = source_files(snapshot.files())
    prompt = FILES_PROMPT.format(problem=problem_statement, tree=render_tree(files), max_files=opts["max_files"])
    c = await ask(prompt, "files")
    found = parse_files(c.text, files, opts["max_files"])
    trajectory.append(step("files", prompt, c, files=found))

    patch, chosen = "", None
    if found:
        skeletons = "\n\n".join(f"### {f}\n{render_skeleton(snapshot.read(f) or '')}" for f in found)
        prompt = ELEMENTS_PROMPT.format(problem=problem_statement, skeletons=skeletons)
        c = await ask(prompt, "elements")
        locations = parse_locations(c.text, found)
        trajectory.append(step("elements", prompt, c, locations={f: [list(x) for x in v] for f, v in locations.items()}))

        targets = [f for f in found if locations.get(f)] or found
        code = repair_context(snapshot, targets, locations, opts["context_lines"], opts["fallback_lines"])
        prompt = REPAIR_PROMPT.format(problem=problem_statement, code=code)
        answers = await asyncio.gather(*(ask(prompt, f"repair{j}") for j in range(opts["repair_samples"])))
        candidates = [build_candidate(snapshot.read, a.text) for a in answers]
        for j, (a, cand) in enumerate(zip(answers, candidates, strict=True)):
            trajectory.append(step("repair", prompt, a, sample=j, edits=len(cand.edits), patch=cand.patch,
                                   problem=cand.problem, key=cand.key, **({"prompt": prompt} if j == 0 else {})))
        chosen, votes = select(candidates)
        patch = candidates[chosen].patch if chosen is not None else ""
        trajectory.append({"stage": "select", "chosen": chosen, "votes": votes})
    else:
        trajectory.append({"stage": "select", "chosen": None, "votes": {}, "problem": "no file of the repository was named"})
    return Completion(text=patch, finish_reason="stop", prompt_tokens=usage["prompt"],
                      completion_tokens=usage["completion"], ttft_s=first_ttft[0] if first_ttft else None,
                      total_s=time.perf_counter() - t0, trajectory=trajectory)
