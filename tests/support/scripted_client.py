"""A client that answers from a script (no model): known right/wrong answers per sample, injected
errors, optional delay. Used to test the runner's bookkeeping exactly."""
from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Callable

from m1bench.harness.core.types import Completion, Request
from tests.support.fixtures.lcb_fixture import SOLUTIONS, rows

SUITES = Path(__file__).resolve().parents[2] / "suites"


def demo_answers() -> dict[str, str]:
    """problem text -> a right answer, for the shipped demo data."""
    out = {}
    for line in (SUITES / "aime" / "demo.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[r["problem"]] = f"<think>easy</think>The answer is \\boxed{{{r['answer']}}}."
    for r in rows():
        if r["question_id"] in SOLUTIONS:
            out[r["question_content"]] = f"```python\n{SOLUTIONS[r['question_id']]['right']}```"
    return out


def sample_of(req: Request) -> int:
    return int(req.key.rsplit("/", 1)[1])


def even_right(req: Request) -> str:
    """Right answer on even samples, wrong on odd ones."""
    user = req.messages[-1]["content"]
    answers = demo_answers()
    for text, ans in answers.items():
        if text in user:
            return ans if sample_of(req) % 2 == 0 else "<think>hmm</think>\\boxed{999}"
    raise KeyError(user[:80])


class ScriptedClient:
    def __init__(self, answer: Callable[[Request], str | Exception] = even_right, delay: float = 0.0,
                 model_id: str = "scripted"):
        self.answer, self.delay, self.model_id = answer, delay, model_id
        self.calls: list[Request] = []

    def describe(self):
        return {"engine": "scripted", "model_id": self.model_id}

    async def complete(self, request: Request) -> Completion:
        self.calls.append(request)
        if self.delay:
            await asyncio.sleep(random.uniform(0, self.delay))
        out = self.answer(request)
        if isinstance(out, Exception):
            raise out
        from m1bench.harness.core.m1_output import split_reasoning

        reasoning, text = split_reasoning(out)
        return Completion(text=text, reasoning=reasoning, prompt_tokens=10, completion_tokens=len(out),
                          ttft_s=0.001, total_s=0.002)

    async def aclose(self):
        pass
