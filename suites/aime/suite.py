"""AIME 2024 / 2025: 30 integer-answer problems each, M1's math prompt, avg@32, graded with
math-verify on the answer left after the reasoning is removed."""
from __future__ import annotations

from typing import Any, ClassVar

from m1bench.harness.core.types import Completion, Score
from m1bench.suites import register
from m1bench.suites.base import Problem, Suite
from m1bench.suites.source import DataError, load_rows

MATH_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."

# Column spellings of the common AIME dataset layouts (HuggingFaceH4/aime_2024: problem/answer/id,
# Maxwell-Jia/AIME_2024: Problem/Answer/ID, opencompass/AIME2025: question/answer).
_PROBLEM_COLS = ("problem", "Problem", "question", "Question")
_ANSWER_COLS = ("answer", "Answer", "expected_answer")
_ID_COLS = ("id", "ID", "problem_idx", "question_id")


def _pick(row: dict[str, Any], cols: tuple[str, ...], what: str, where: str) -> Any:
    for c in cols:
        if c in row and row[c] is not None:
            return row[c]
    raise DataError(f"{where}: no {what} column (looked for {', '.join(cols)}; row has {', '.join(row)})")


def grade_math(answer_text: str, gold: str) -> Score:
    """math-verify: parse the gold (as LaTeX/expression) and the model's answer, then verify in
    that order (the order matters to math-verify)."""
    from math_verify import parse, verify

    gold_parsed = parse(f"${gold}$")
    if not gold_parsed:
        raise ValueError(f"math-verify cannot parse the gold answer {gold!r}")
    pred = parse(answer_text)
    correct = bool(pred) and verify(gold_parsed, pred)
    voted = str(pred[0]) if pred else None
    return Score(correct=correct, answer=voted, details={"extracted": [str(p) for p in pred]})


class AIME(Suite):
    version: ClassVar[str] = "1"
    default_samples: ClassVar[int] = 32
    majority: ClassVar[bool] = True
    default_data: ClassVar[str]
    default_split: ClassVar[str] = "train"

    @property
    def grader(self) -> str:  # type: ignore[override]
        from importlib.metadata import version

        return f"math-verify=={version('math-verify')}"

    def load(self, opts: dict[str, Any]) -> tuple[list[Problem], dict[str, Any]]:
        data = opts.get("data") or self.default_data
        rows, info = load_rows(data, revision=opts.get("revision"), split=opts.get("split") or self.default_split)
        problems = []
        for i, row in enumerate(rows):
            where = f"{info['source']} row {i}"
            text = _pick(row, _PROBLEM_COLS, "problem", where)
            gold = str(_pick(row, _ANSWER_COLS, "answer", where)).strip()
            pid = next((str(row[c]) for c in _ID_COLS if row.get(c) is not None), str(i))
            problems.append(Problem(id=pid, target=gold, messages=[
                {"role": "system", "content": MATH_SYSTEM_PROMPT},
                {"role": "user", "content": text},
            ]))
        if len({p.id for p in problems}) != len(problems):
            raise DataError(f"{info['source']}: problem ids are not unique")
        if opts.get("limit") is not None:
            problems = problems[: opts["limit"]]
        return problems, info

    def score(self, problem: Problem, completion: Completion, opts: dict[str, Any]) -> Score:
        return grade_math(completion.text, problem.target)


@register
class AIME2024(AIME):
    name = "aime2024"
    default_data = "HuggingFaceH4/aime_2024"


@register
class AIME2025(AIME):
    name = "aime2025"
    default_data = "yentinglin/aime_2025"
