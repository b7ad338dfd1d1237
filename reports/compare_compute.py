"""Baseline vs candidate on what the answers cost: per suite, the mean generated tokens and FLOPs per
sample, paired over the problems both reports scored (a problem's value is the mean over its samples;
paired bootstrap, reports/stats.py). A checkpoint that thinks 30% longer for the same score is a
regression when gated: `max_increase` is the relative increase of the mean the candidate may show
before it can count as one, and the paired test must also reject "no change" at alpha.

Tokens come from each sample's completion (every report schema has them); FLOPs from the sample's
`compute` (report schema 2, a known architecture). A quantity either report lacks is "not compared",
which never fails the gate: a schema-1 baseline has no FLOPs to hold a candidate to.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from m1bench.reports.load import LoadedReport
from m1bench.reports.stats import paired_test


@dataclass
class ComputeResult:
    suite: str
    quantity: str  # "generated tokens" | "FLOPs"
    gated: bool
    max_increase: float | None  # relative, e.g. 0.10
    baseline: float | None = None  # means per sample over the shared problems
    candidate: float | None = None
    n_shared: int = 0
    delta: float | None = None  # mean paired difference per problem, candidate - baseline
    relative: float | None = None  # candidate / baseline - 1
    ci95: list[float] | None = None
    test: str | None = None
    p_value: float | None = None
    status: str = "not compared"  # regression | within limit | increase | decrease | not significant | unchanged | not compared
    note: str = ""


def _generated(rec: dict[str, Any]) -> float:
    return float(rec["completion"]["completion_tokens"])


def _flops(rec: dict[str, Any]) -> float | None:
    f = (rec.get("compute") or {}).get("flops")
    return None if f is None else float(f)


QUANTITIES: dict[str, Callable[[dict[str, Any]], float | None]] = {"generated tokens": _generated, "FLOPs": _flops}


def per_problem(loaded: LoadedReport, suite: str, value: Callable[[dict[str, Any]], float | None]) -> dict[str, float] | None:
    """Mean of `value` over each problem's answered samples; None when some answered sample lacks it."""
    if loaded.samples is None:
        return None
    by_problem: dict[str, list[float]] = defaultdict(list)
    for rec in loaded.samples:
        if rec["suite"] != suite or rec["status"] != "ok" or not rec.get("completion"):
            continue
        v = value(rec)
        if v is None:
            return None
        by_problem[str(rec["problem_id"])].append(v)
    return {p: float(np.mean(v)) for p, v in by_problem.items()} or None


def compare_quantity(base: LoadedReport, cand: LoadedReport, suite: str, quantity: str, max_increase: float | None,
                     alpha: float) -> ComputeResult:
    res = ComputeResult(suite, quantity, max_increase is not None, max_increase)
    vb, vc = per_problem(base, suite, QUANTITIES[quantity]), per_problem(cand, suite, QUANTITIES[quantity])
    if vb is None or vc is None:
        which = " and ".join(w for w, v in (("baseline", vb), ("candidate", vc)) if v is None)
        res.note = f"the {which} has no per-sample {quantity}"
        return res
    shared = sorted(set(vb) & set(vc))
    res.n_shared = len(shared)
    if not shared:
        res.note = "no problem answered in both reports"
        return res
    b, c = np.array([vb[p] for p in shared]), np.array([vc[p] for p in shared])
    t = paired_test(b, c)
    res.baseline, res.candidate = float(b.mean()), float(c.mean())
    res.delta, res.ci95, res.test, res.p_value = t["delta"], t["ci95"], t["test"], t["p_value"]
    res.relative = res.candidate / res.baseline - 1 if res.baseline else None
    if res.relative is None:
        res.note = "the baseline's mean is zero"
        return res
    if t["p_value"] >= alpha:
        res.status = "unchanged" if res.delta == 0 else "not significant"
    elif res.relative < 0:
        res.status = "decrease"
    elif not res.gated:
        res.status = "increase"
    else:
        res.status = "regression" if res.relative > max_increase else "within limit"
    return res


def compare_compute(base: LoadedReport, cand: LoadedReport, suites: list[str], *, alpha: float,
                    max_token_increase: float | None = None, max_flops_increase: float | None = None) -> list[ComputeResult]:
    limits = {"generated tokens": max_token_increase, "FLOPs": max_flops_increase}
    return [compare_quantity(base, cand, s, q, limits[q], alpha) for s in suites for q in QUANTITIES]
