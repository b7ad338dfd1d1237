"""LiveCodeBench code generation (code_generation_lite layout): problems in a contest-date window
(default 2024-08-01 … 2025-05-01, bounded at those midnights as lcb_runner bounds it), the official chat prompt, the program taken from the
last fenced code block of the answer, run against public + private tests in the sandbox; a sample
passes only if every test passes; avg of 16 samples."""
from __future__ import annotations

import base64
import json
import pickle
import zlib
from datetime import date, datetime
from typing import Any, ClassVar

from m1bench.harness.core.sandbox import Limits, Sandbox
from m1bench.harness.core.types import Completion, Score
from m1bench.suites import register
from m1bench.suites.base import Option, Problem, Suite
from m1bench.suites.livecodebench.grading import run_tests
from m1bench.suites.source import DataError, load_rows

SYSTEM_PROMPT = ("You are an expert Python programmer. You will be given a question (problem specification) "
                 "and will generate a correct Python program that matches the specification and passes all "
                 "tests. You will NOT return anything except for the program.")
WITH_STARTER = "You will use the following starter code to write the solution to the problem and enclose your code within delimiters."
WITHOUT_STARTER = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly "
                   "test on the sample inputs). Enclose your code within delimiters as follows.")

# code_generation_lite ships one JSONL file per release increment.
_RELEASE_FILES = ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl"]


def release_files(release: str) -> list[str]:
    """"release_v3" -> files of v1..v3; "v3" -> only the files added in v3."""
    try:
        if release.startswith("release_v"):
            return _RELEASE_FILES[: int(release.removeprefix("release_v"))]
        if release.startswith("v"):
            return [_RELEASE_FILES[int(release[1:]) - 1]]
    except (ValueError, IndexError):
        pass
    raise DataError(f"unknown LiveCodeBench release {release!r} (release_v1…release_v{len(_RELEASE_FILES)} or v1…v{len(_RELEASE_FILES)})")


def decode_tests(raw: Any, where: str) -> list[dict[str, str]]:
    """Test cases as plain JSON, or (private tests) base64 → zlib → pickle → JSON text."""
    if isinstance(raw, list):
        return raw
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        pass
    try:
        return json.loads(pickle.loads(zlib.decompress(base64.b64decode(raw.encode()))))
    except Exception as e:
        raise DataError(f"{where}: test cases are neither JSON nor base64/zlib/pickle JSON ({type(e).__name__})") from None


def contest_time(value: Any) -> datetime:
    """A row's contest_date as a naive datetime (LeetCode dates carry a time of day, AtCoder's are midnight)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value)).replace(tzinfo=None)


def in_window(when: datetime, start: date, end: date) -> bool:
    """lcb_runner's rule (benchmarks/code_generation.py): both dates are midnights and both bounds
    are inclusive, so the end date keeps only what is dated at its very start."""
    return datetime(start.year, start.month, start.day) <= when <= datetime(end.year, end.month, end.day)


def user_prompt(question: str, starter_code: str) -> str:
    out = f"### Question:\n{question}\n\n"
    if starter_code:
        out += f"### Format: {WITH_STARTER}\n```python\n{starter_code}\n```\n\n"
    else:
        out += f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return out + "### Answer: (use the provided format with backticks)\n\n"


def extract_code(answer: str) -> str | None:
    """The last complete fenced code block (``` lines), or None when there is none."""
    lines = answer.split("\n")
    fences = [i for i, ln in enumerate(lines) if ln.strip().startswith("```")]
    if len(fences) < 2:
        return None
    # pair fences from the start, then take the last pair
    pairs = [(fences[i], fences[i + 1]) for i in range(0, len(fences) - 1, 2)]
    a, b = pairs[-1]
    return "\n".join(lines[a + 1:b])


@register
class LiveCodeBench(Suite):
    name = "livecodebench"
    version = "2"  # 2: lcb_runner's window (the end date keeps only problems dated at its midnight)
    default_samples = 16
    grader = "lcb-official-rules/1"
    thread_safe_scoring = True  # sandboxed subprocesses; threads just wait on them
    default_data: ClassVar[str] = "livecodebench/code_generation_lite"
    options = {
        "release": Option(str, "release_v6", "code_generation_lite release (hub data only)"),
        "start_date": Option(str, "2024-08-01", "window start (YYYY-MM-DD): problems from its midnight on"),
        "end_date": Option(str, "2025-05-01", "window end (YYYY-MM-DD): problems up to its midnight, as "
                                              "lcb_runner (a LeetCode problem at 06:30 that day is out)"),
        "test_timeout_s": Option((int, float), 6, "wall-clock limit per test case"),
        "memory_mb": Option(int, 2048, "address-space limit per program"),
        "isolation": Option(str, "auto", "sandbox isolation", choices=("auto", "unshare", "userns", "rlimits")),
    }

    def _sandbox(self, opts: dict[str, Any]) -> Sandbox:
        t = opts.get("test_timeout_s", 6)
        return Sandbox(Limits(wall_s=t, cpu_s=int(t) + 1, memory_mb=opts.get("memory_mb", 2048)),
                       isolation=opts.get("isolation", "auto"))

    def environment(self, opts: dict[str, Any]) -> dict[str, Any]:
        return {"sandbox": self._sandbox(opts).describe()}

    def load(self, opts: dict[str, Any]) -> tuple[list[Problem], dict[str, Any]]:
        data = opts.get("data") or self.default_data
        files = None if data != self.default_data else release_files(opts.get("release", "release_v6"))
        rows, info = load_rows(data, revision=opts.get("revision"), split=opts.get("split") or "test", data_files=files)
        try:
            start = date.fromisoformat(opts.get("start_date", "2024-08-01"))
            end = date.fromisoformat(opts.get("end_date", "2025-05-01"))
        except ValueError as e:
            raise DataError(f"suites.livecodebench.start_date/end_date: {e}") from None
        problems = []
        for i, row in enumerate(rows):
            where = f"{info['source']} row {i} ({row.get('question_id', '?')})"
            try:
                when = contest_time(row["contest_date"])
                if not in_window(when, start, end):
                    continue
                meta = row.get("metadata") or "{}"
                meta = json.loads(meta) if isinstance(meta, str) else meta
                tests = decode_tests(row["public_test_cases"], where) + decode_tests(row["private_test_cases"], where)
                starter = row.get("starter_code") or ""
                problems.append(Problem(
                    id=str(row["question_id"]),
                    messages=[{"role": "system", "content": SYSTEM_PROMPT},
                              {"role": "user", "content": user_prompt(row["question_content"], starter)}],
                    target={"tests": [{"input": t["input"], "output": t["output"]} for t in tests],
                            "fn_name": meta.get("func_name")},
                    meta={"contest_date": when.isoformat(), "platform": row.get("platform"),
                          "difficulty": row.get("difficulty"), "n_tests": len(tests)},
                ))
            except KeyError as e:
                raise DataError(f"{where}: missing field {e}") from None
        info.update(window=[start.isoformat(), end.isoformat()], in_window=len(problems))
        if opts.get("limit") is not None:
            problems = problems[: opts["limit"]]
        return problems, info

    def score(self, problem: Problem, completion: Completion, opts: dict[str, Any]) -> Score:
        code = extract_code(completion.text)
        if code is None:
            return Score(correct=False, details={"error": "no fenced code block"})
        res = run_tests(code, problem.target["tests"], problem.target["fn_name"], self._sandbox(opts),
                        timeout_s=opts.get("test_timeout_s", 6))
        return Score(correct=res["passed"], details=res)
