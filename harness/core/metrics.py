"""Metrics over problems x samples, with bootstrap confidence intervals: one registry of metric
kinds (avg@k, pass@k, maj@k, pass^k, avg_reward), each with the one per-problem function that both
the run's aggregate and the regression gate's per-item values come from.

Input everywhere: one list per problem of the samples' `Score`s (correct, the normalised answer
majority voting compares, partial credit). Samples that errored are not scores; the runner counts
them apart.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from m1bench.harness.core.types import Score

Problems = Sequence[Sequence[Score]]


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


def majority(scores: Sequence[Score]) -> float:
    """Majority vote over the samples' answers (samples without an answer do not vote; ties go
    to the answer seen first); 1 when the winning answer is correct."""
    votes = Counter(s.answer for s in scores if s.answer is not None)
    if not votes:
        return 0.0
    top = max(votes.values())
    return float(next(s for s in scores if s.answer is not None and votes[s.answer] == top).correct)


def _mean_credit(scores: Sequence[Score], k: int) -> float:
    return float(np.mean([s.credit for s in scores]))


@dataclass(frozen=True)
class MetricKind:
    """A family of metrics: its name pattern (k in the first group, if any), the value of one
    problem from its scores at k, and how many samples a problem needs for it."""

    pattern: str
    of_scores: Callable[[Sequence[Score], int], float]
    of_counts: Callable[[int, int, int], float] | None  # (n, correct, k) -> value, when counts suffice
    needs: Callable[[int], int] = lambda k: 1

    def match(self, name: str) -> int | None:
        m = re.fullmatch(self.pattern, name)
        return None if m is None else int(m.group(1)) if m.groups() else 1


KINDS: dict[str, MetricKind] = {
    "avg": MetricKind(r"avg@(\d+)", _mean_credit, lambda n, c, k: c / n),
    "avg_reward": MetricKind(r"avg_reward", _mean_credit, lambda n, c, k: c / n),
    "pass": MetricKind(r"pass@(\d+)", lambda s, k: pass_at_k(len(s), sum(x.correct for x in s), k), pass_at_k,
                       needs=lambda k: k),
    "pass_hat": MetricKind(r"pass\^(\d+)", lambda s, k: pass_hat_k(len(s), sum(x.correct for x in s), k), pass_hat_k,
                           needs=lambda k: k),
    "maj": MetricKind(r"maj@(\d+)", lambda s, k: majority(s), None),
}


def metric_kind(name: str) -> tuple[MetricKind, int] | None:
    """The registered kind of a metric name and its k; None for a name no kind claims."""
    for kind in KINDS.values():
        k = kind.match(name)
        if k is not None:
            return kind, k
    return None


def per_item(name: str, by_problem: Mapping[str, Sequence[Score]]) -> dict[str, float] | None:
    """Per-problem values of a registered metric from the samples' scores (problems with fewer
    samples than it needs are left out); None when no kind claims the name."""
    found = metric_kind(name)
    if found is None:
        return None
    kind, k = found
    return {p: kind.of_scores(s, k) for p, s in by_problem.items() if len(s) >= kind.needs(k)}


def per_item_from_counts(name: str, counts: Mapping[str, Mapping[str, int]]) -> dict[str, float] | None:
    """The same from per-problem (n, correct) counts, for the kinds that counts determine."""
    found = metric_kind(name)
    if found is None or found[0].of_counts is None:
        return None
    kind, k = found
    return {p: kind.of_counts(c["n"], c["correct"], k) for p, c in counts.items() if c["n"] >= kind.needs(k)}


def _values(kind: str, problems: Problems, k: int) -> np.ndarray:
    return np.array([KINDS[kind].of_scores(p, k) for p in problems], dtype=float)


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
    out = [_metric(f"avg@{k}", _values("avg", problems, k), n_samples, seed)]
    ks = sorted({1, *[2 ** i for i in range(1, 20) if 2 ** i <= n_min]} | ({n_min} if n_min > 1 else set()))
    for kk in ks:
        out.append(_metric(f"pass@{kk}", _values("pass", problems, kk), n_samples, seed))
    if majority:
        out.append(_metric(f"maj@{k}", _values("maj", problems, k), n_samples, seed))
    return out


def summarize_pass_hat(problems: Problems, seed: int = 0) -> list[dict]:
    """Agent reliability (tau-bench): average reward (success) over all trials, and pass^k for
    k = 1 … the smallest trial count, each the mean over tasks."""
    problems = [p for p in problems if len(p)]
    if not problems:
        return []
    n_min = min(len(p) for p in problems)
    n_samples = sum(len(p) for p in problems)
    out = [_metric("avg_reward", _values("avg_reward", problems, 1), n_samples, seed)]
    for k in range(1, n_min + 1):
        out.append(_metric(f"pass^{k}", _values("pass_hat", problems, k), n_samples, seed))
    return out
