"""Aggregate metrics over problems × samples, with bootstrap confidence intervals.

Input everywhere: one list per problem of per-sample outcomes (correct: bool, answer: the
normalised final answer used for majority voting, or None). Samples that errored are not
outcomes; the runner counts them apart.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Outcome:
    correct: bool
    answer: str | None = None
    value: float | None = None  # partial credit; avg@k averages it (None: the 0/1 of `correct`)

    @property
    def credit(self) -> float:
        return float(self.correct) if self.value is None else self.value


Problems = Sequence[Sequence[Outcome]]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples, c of them correct (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k), as a stable product."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k for one task with n trials, c of them successful (tau-bench): the chance that k
    trials drawn without replacement all succeed, C(c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass^{k} needs at least {k} trials, got {n}")
    return math.comb(c, k) / math.comb(n, k)


def per_problem_avg(problems: Problems) -> np.ndarray:
    return np.array([np.mean([o.credit for o in p]) for p in problems], dtype=float)


def per_problem_pass(problems: Problems, k: int) -> np.ndarray:
    return np.array([pass_at_k(len(p), sum(o.correct for o in p), k) for p in problems], dtype=float)


def per_problem_pass_hat(problems: Problems, k: int) -> np.ndarray:
    return np.array([pass_hat_k(len(p), sum(o.correct for o in p), k) for p in problems], dtype=float)


def per_problem_majority(problems: Problems) -> np.ndarray:
    """Majority vote over the samples' answers (samples without an answer do not vote; ties go
    to the answer seen first); a problem scores 1 when the winning answer is correct."""
    scores = []
    for p in problems:
        votes = Counter(o.answer for o in p if o.answer is not None)
        if not votes:
            scores.append(0.0)
            continue
        top = max(votes.values())
        winner = next(o for o in p if o.answer is not None and votes[o.answer] == top)
        scores.append(float(winner.correct))
    return np.array(scores, dtype=float)


def bootstrap_ci(per_problem: np.ndarray, iters: int = 2000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap over problems of the mean of per-problem scores."""
    if len(per_problem) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_problem), size=(iters, len(per_problem)))
    means = per_problem[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _metric(name: str, per_problem: np.ndarray, n_samples: int, seed: int) -> dict:
    lo, hi = bootstrap_ci(per_problem, seed=seed)
    return {"metric": name, "value": float(per_problem.mean()) if len(per_problem) else float("nan"),
            "ci95": [lo, hi], "n_problems": int(len(per_problem)), "n_samples": n_samples}


def summarize(problems: Problems, k: int, majority: bool, seed: int = 0) -> list[dict]:
    """avg@k, pass@k for k in 1, 2, 4, … up to the smallest sample count, and maj@k when the suite
    has comparable final answers. Problems with no successful sample are left out (and counted
    as errors by the caller)."""
    problems = [p for p in problems if len(p)]
    if not problems:
        return []
    n_min = min(len(p) for p in problems)
    n_samples = sum(len(p) for p in problems)
    out = [_metric(f"avg@{k}", per_problem_avg(problems), n_samples, seed)]
    ks = sorted({1, *[2 ** i for i in range(1, 20) if 2 ** i <= n_min]} | ({n_min} if n_min > 1 else set()))
    for kk in ks:
        out.append(_metric(f"pass@{kk}", per_problem_pass(problems, kk), n_samples, seed))
    if majority:
        out.append(_metric(f"maj@{k}", per_problem_majority(problems), n_samples, seed))
    return out



def summarize_pass_hat(problems: Problems, seed: int = 0) -> list[dict]:
    """Agent reliability (tau-bench): average reward (success) over all trials, and pass^k for
    k = 1 … the smallest trial count, each the mean over tasks."""
    problems = [p for p in problems if len(p)]
    if not problems:
        return []
    n_min = min(len(p) for p in problems)
    n_samples = sum(len(p) for p in problems)
    out = [_metric("avg_reward", per_problem_avg(problems), n_samples, seed)]
    for k in range(1, n_min + 1):
        out.append(_metric(f"pass^{k}", per_problem_pass_hat(problems, k), n_samples, seed))
    return out
