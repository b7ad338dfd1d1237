"""The verifiable task: `a+b=` → the decimal sum, graded by the AIME suite's math-verify grader.

Small enough that the tiny byte-level model can learn it on CPU in minutes: the answer is one or two
digit bytes followed by the end-of-sentence token. A response must end (EOS) within the token budget to
score: math-verify evaluates expressions, so an unfinished echo of the prompt such as `3+4` would
otherwise count as the answer 7.
"""
from dataclasses import dataclass
from functools import lru_cache

from m1bench.suites.aime.suite import grade_math


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str


def addition_problems(max_operand: int) -> list[Problem]:
    """Every `a+b=` with 0 <= a, b <= max_operand, in a fixed order."""
    if max_operand < 1:
        raise ValueError(f"max_operand must be >= 1, got {max_operand}")
    return [Problem(f"{a}+{b}=", str(a + b)) for a in range(max_operand + 1) for b in range(max_operand + 1)]


@lru_cache(maxsize=65536)
def is_correct(response: str, answer: str) -> bool:
    """math-verify's verdict (the AIME suite's grader), memoised: rollouts of a short-answer task repeat
    the same (response, answer) pairs constantly and math-verify parses take milliseconds."""
    return grade_math(response, answer).correct


def reward(response: str, finished: bool, answer: str) -> float:
    """1.0 for a finished response that math-verify accepts, else 0.0."""
    return float(finished and is_correct(response, answer))
