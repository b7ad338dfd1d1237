"""LiveCodeBench grading, following the official harness's rules (lcb_runner/evaluation/testing_util.py):

- The program gets the official convenience prelude (`from math import *`, `import collections`, …,
  recursion limit 50000), so solutions that rely on it are graded as officially.
- stdin/stdout: the whole output and the expected output are stripped and split into lines, each
  line stripped; the line counts must match; each line must match exactly or, failing that, as a
  whitespace-separated list of numbers compared with `Decimal` (so "0.50" equals "0.5" and "1e3"
  equals "1000", but 0.3333333 does not equal 0.333333 — there is no epsilon).
- functional (LeetCode): each input line is one JSON argument; the method `fn_name` of
  `Solution()` (or the module-level function when there is no `class Solution`) is called with
  them; a tuple result counts as a list; the result must `==` the JSON-decoded expected output.
- A sample passes only if every test passes; grading stops at the first failure.

Each test runs in its own sandboxed process (harness/core/sandbox.py) with the per-test timeout.
"""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from m1bench.harness.core.sandbox import Sandbox

_MODULES = ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
            "statistics", "itertools", "functools", "operator", "io", "sys", "json")
PRELUDE = "\n".join([*(f"from {m} import *" for m in _MODULES), "from builtins import *", "from typing import *",
                     *(f"import {m}" for m in _MODULES), "sys.setrecursionlimit(50000)", ""])

# Runs inside the sandbox next to program.py; writes its verdict to _result.json.
FUNCTIONAL_DRIVER = r'''
import json, sys, types
def main():
    src = open("program.py").read()
    fn_name, expected = json.load(open("_call.json"))
    args = [json.loads(line) for line in open("_args.txt").read().split("\n")]
    mod = types.ModuleType("solution")
    sys.modules["solution"] = mod
    exec(compile(src, "program.py", "exec"), mod.__dict__)
    target = mod.Solution() if "class Solution" in src else mod
    method = getattr(target, fn_name, None)
    if method is None:
        verdict = {"ok": False, "error": f"no function {fn_name!r}"}
    else:
        got = method(*args)
        if isinstance(got, tuple):
            got = list(got)
        verdict = {"ok": got == expected, "got": repr(got)[:300]}
    with open("_result.json", "w") as f:
        json.dump(verdict, f)
main()
'''


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(x) for x in line.split()]
    except InvalidOperation:
        return None


def stdout_matches(got: str, expected: str) -> bool:
    got_lines = [ln.strip() for ln in got.strip().split("\n")]
    exp_lines = [ln.strip() for ln in expected.strip().split("\n")]
    if len(got_lines) != len(exp_lines):
        return False
    for g, e in zip(got_lines, exp_lines):
        if g == e:
            continue
        gd, ed = _decimals(g), _decimals(e)
        if gd is None or ed is None or gd != ed:
            return False
    return True


def _verdict(r, ok: bool, test: int, detail: str = "") -> dict[str, Any]:
    if r.timed_out:
        return {"ok": False, "test": test, "error": "time limit exceeded"}
    if r.returncode != 0:
        return {"ok": False, "test": test, "error": f"runtime error (exit {r.returncode})", "stderr": r.stderr[-500:]}
    return {"ok": ok, "test": test, **({} if ok else {"error": detail or "wrong answer"})}


def run_tests(code: str, tests: list[dict[str, str]], fn_name: str | None, sandbox: Sandbox,
              timeout_s: float) -> dict[str, Any]:
    """Grade one program against all tests; returns {"passed": bool, "n_passed", "n_tests", "failure"}."""
    program = PRELUDE + "\n" + code
    n_ok = 0
    for i, t in enumerate(tests):
        if fn_name is None:
            r = sandbox.run_python(program, stdin=t["input"], wall_s=timeout_s)
            v = _verdict(r, stdout_matches(r.stdout, t["output"]), i)
        else:
            call = json.dumps([fn_name, json.loads(t["output"])])
            r = sandbox.run_python(program, wall_s=timeout_s, main="_driver.py", collect=("_result.json",),
                                   files={"_driver.py": FUNCTIONAL_DRIVER, "_call.json": call, "_args.txt": t["input"]})
            try:
                res = json.loads((r.files or {}).get("_result.json", ""))
            except json.JSONDecodeError:
                res = {"ok": False, "error": "no verdict"}
            v = _verdict(r, bool(res.get("ok")), i, res.get("error", ""))
        if not v["ok"]:
            return {"passed": False, "n_passed": n_ok, "n_tests": len(tests), "failure": v}
        n_ok += 1
    return {"passed": True, "n_passed": n_ok, "n_tests": len(tests), "failure": None}
