"""The plan of a run: one request per (suite, problem, sample), each with its own seed and the
hash that keys its record."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from m1bench.harness.core.types import Request, Sampling, sample_seed
from m1bench.suites.base import Problem, Suite


@dataclass
class Planned:
    suite: str
    problem: Problem
    sample: int
    request: Request
    hash: str


def plan_suite(name: str, suite: Suite, problems: list[Problem], opts: dict[str, Any], sampling: dict[str, Any],
               seed: int, model_id: str) -> list[Planned]:
    out = []
    for p in problems:
        for k in range(opts["samples"]):
            params = Sampling(max_tokens=opts.get("max_tokens") or sampling["max_tokens"],
                              temperature=float(sampling["temperature"]), top_p=float(sampling["top_p"]),
                              top_k=sampling["top_k"], seed=sample_seed(seed, name, p.id, k))
            req = Request(messages=tuple(p.messages), sampling=params, key=f"{name}/v{suite.version}/{p.id}/{k}")
            out.append(Planned(name, p, k, req, req.hash(model_id)))
    return out
