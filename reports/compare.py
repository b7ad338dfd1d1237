"""Baseline vs candidate: are the reports comparable, and per suite and metric, how did the score
move on the items both scored (paired test, tolerance)?

Comparable means: every baseline suite is in the candidate with the same suite version, dataset
content, filters, prompts and chat template, sampling parameters, k, grader and scoring options.
Everything else (run id, time, commit, packages, hardware, engine, checkpoint, seeds, wall time)
may differ: that is what a comparison is for. Exit codes: 0 pass, 1 regression, 2 not comparable.

A gated metric regresses when the candidate is worse by more than the tolerance AND the paired
test rejects "no change" at alpha. Gated metrics: each suite's primary metric, or the ones named.
A gated metric the gate cannot pair item by item (no per-item values in either report) makes the
reports not comparable, naming it: the gate never passes what it could not test.

Beside the scores, each suite's mean generated tokens and FLOPs per sample are compared the same
way (reports/compare_compute.py) and gate when a maximum increase is given.

Per-item values come from the metrics registry (core/metrics.py) over the samples' scores, from
a suite's own per-item values in its results (`per_item`, e.g. lm-eval's per-document metrics),
or, for MRCR's named aggregates, from its breakdown.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from typing import Any

import numpy as np

from m1bench.harness.core.metrics import per_item as registry_per_item
from m1bench.harness.core.metrics import per_item_from_counts
from m1bench.harness.core.types import Score
from m1bench.reports.compare_compute import ComputeResult, compare_compute
from m1bench.reports.load import LoadedReport
from m1bench.reports.stats import paired_test

PASS, REGRESSION, INCOMPARABLE = 0, 1, 2
DEFAULT_TOLERANCE = 0.02
DEFAULT_ALPHA = 0.05

# Suite options that do not change a score (or are compared through another field).
_OPTIONS_IGNORED = {"data", "revision", "split", "samples", "limit", "max_tokens", "isolation"}


@dataclass
class MetricResult:
    suite: str
    metric: str
    gated: bool
    baseline: float | None  # the reports' own values (all their items)
    candidate: float | None
    n_shared: int = 0
    delta: float | None = None  # on shared items, candidate - baseline
    ci95: list[float] | None = None
    test: str | None = None
    p_value: float | None = None
    status: str = "untested"  # regression | improvement | within tolerance | not significant | untested | missing
    note: str = ""


@dataclass
class Comparison:
    baseline: str
    candidate: str
    tolerance: float
    alpha: float
    reasons: list[str] = field(default_factory=list)  # why not comparable
    ignored: list[str] = field(default_factory=list)  # differences that do not matter
    metrics: list[MetricResult] = field(default_factory=list)
    compute: list[ComputeResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.reasons:
            return INCOMPARABLE
        return REGRESSION if any(m.gated and m.status == "regression" for m in self.metrics + self.compute) else PASS

    @property
    def verdict(self) -> str:
        return {PASS: "pass", REGRESSION: "regression", INCOMPARABLE: "not comparable"}[self.exit_code]

    def to_json(self) -> dict[str, Any]:
        return {"kind": "m1bench-comparison", "verdict": self.verdict, "exit_code": self.exit_code,
                **{k: v for k, v in asdict(self).items()}}


# ---- comparability ----------------------------------------------------------------------------
def _dataset_key(s: dict[str, Any]) -> Any:
    d = s["dataset"]
    return d["content_hash"] if d.get("content_hash") else (d.get("id"), d.get("revision"))


def _options(s: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s["options"].items() if k not in _OPTIONS_IGNORED}


_SUITE_FIELDS = (
    ("suite version", lambda s: s["suite_version"]),
    ("dataset (content hash)", _dataset_key),
    ("filters", lambda s: s["filters"]),
    ("sampling", lambda s: s["sampling"]),
    ("k (samples per problem)", lambda s: s["k"]),
    ("grader", lambda s: s["grader"]),
    ("scoring options", _options),
)


def suite_differences(name: str, b: dict[str, Any], c: dict[str, Any]) -> list[str]:
    out = []
    for label, get in _SUITE_FIELDS:
        vb, vc = get(b), get(c)
        if vb != vc:
            out.append(f"suite {name}: {label} differs: baseline {_short(vb)} vs candidate {_short(vc)}")
    pb, pc = b["prompts"]["per_problem_sha256"], c["prompts"]["per_problem_sha256"]
    changed = sorted(p for p in set(pb) & set(pc) if pb[p] != pc[p])
    if changed:
        out.append(f"suite {name}: prompts (messages hash) differ on {len(changed)} of {len(set(pb) & set(pc))} shared "
                   f"problems (e.g. {changed[0]})")
    tb, tc = b["prompts"]["template_sha256"], c["prompts"]["template_sha256"]
    if tb and tc and tb != tc:
        out.append(f"suite {name}: chat template differs: baseline {tb[:12]} vs candidate {tc[:12]}")
    return out


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 90 else s[:87] + "..."


def ignored_differences(b: dict[str, Any], c: dict[str, Any]) -> list[str]:
    out = []
    for label, get in (("model", lambda r: r["model"]["name"]), ("checkpoint", lambda r: r["model"]["checkpoint_hash"]),
                       ("engine", lambda r: r["engine"]["engine"]), ("m1bench commit", lambda r: r["m1bench"]["commit"]),
                       ("packages", lambda r: r["packages"]), ("hardware", lambda r: r["hardware"]["cpu"]),
                       ("base seed", lambda r: r["run"]["seed"])):
        if get(b) != get(c):
            out.append(f"{label} differs (not a comparability condition)")
    return out


# ---- per-item scores --------------------------------------------------------------------------
def _scores(samples: list[dict[str, Any]], suite: str) -> dict[str, list[Score]]:
    by_problem: dict[str, list[Score]] = defaultdict(list)
    for rec in samples:
        if rec["suite"] == suite and rec["status"] == "ok" and rec.get("score") is not None:
            by_problem[str(rec["problem_id"])].append(Score.from_record(rec["score"]))
    return by_problem


def _mrcr_item(loaded: LoadedReport, suite: str, aggregate: str) -> dict[str, float] | None:
    cell = ((loaded.report["suites"][suite]["extra"].get("breakdown") or {}).get("aggregates") or {}).get(aggregate)
    if cell is None or loaded.samples is None:
        return None
    per_problem: dict[str, list[float]] = defaultdict(list)
    for rec in loaded.samples:
        d = (rec.get("score") or {}).get("details") or {}
        if rec["suite"] == suite and rec["status"] == "ok" and d.get("bin") in cell["bins"] and int(d.get("n_needles", -1)) in cell["needles"]:
            per_problem[str(rec["problem_id"])].append(float(d["score"]))
    return {p: float(np.mean(v)) for p, v in per_problem.items()}


def per_item(loaded: LoadedReport, suite: str, metric: str) -> dict[str, float] | None:
    """Per-problem values of a metric; None when neither report part can give them."""
    s = loaded.report["suites"][suite]
    own = (s["extra"].get("per_item") or {}).get(metric)
    if own is not None:  # the suite scored itself and kept its per-item values
        return {str(p): float(v) for p, v in own.items()}
    if metric.startswith("mrcr@"):
        return _mrcr_item(loaded, suite, metric.removeprefix("mrcr@"))
    if loaded.samples is not None:
        return registry_per_item(metric, _scores(loaded.samples, suite))
    return per_item_from_counts(metric, s["per_problem"]) if s["per_problem"] else None


def _judge(m: MetricResult, tolerance: float, alpha: float) -> None:
    significant = m.p_value is not None and m.p_value < alpha
    if significant and m.delta < -tolerance:
        m.status = "regression"
    elif significant and m.delta > tolerance:
        m.status = "improvement"
    elif abs(m.delta) <= tolerance:
        m.status = "within tolerance"
    else:
        m.status = "not significant"


def compare_metric(base: LoadedReport, cand: LoadedReport, suite: str, metric: str, gated: bool,
                   tolerance: float, alpha: float) -> MetricResult:
    mb = next(m for m in base.report["suites"][suite]["metrics"] if m["metric"] == metric)
    mc = next((m for m in cand.report["suites"][suite]["metrics"] if m["metric"] == metric), None)
    res = MetricResult(suite, metric, gated, mb["value"], mc["value"] if mc else None)
    if mc is None:
        res.status, res.note = "missing", "metric absent from the candidate"
        return res
    vb, vc = per_item(base, suite, metric), per_item(cand, suite, metric)
    if vb is None or vc is None:
        res.note = "no per-item scores, so no paired test"
        if mb["value"] is not None and mc["value"] is not None:
            res.delta = mc["value"] - mb["value"]
        return res
    shared = sorted(set(vb) & set(vc))
    res.n_shared = len(shared)
    if not shared:
        res.status, res.note = "missing", "no item scored in both reports"
        return res
    t = paired_test(np.array([vb[p] for p in shared]), np.array([vc[p] for p in shared]))
    res.delta, res.ci95, res.test, res.p_value = t["delta"], t["ci95"], t["test"], t["p_value"]
    notes = [f"{t['worse']} items worse, {t['better']} better"] if t["test"] == "mcnemar-exact" else []
    if len(shared) < len(vb):
        notes.append(f"{len(shared)} of the baseline's {len(vb)} items scored in both")
    res.note = "; ".join(notes)
    _judge(res, tolerance, alpha)
    return res


def incomplete(name: str, which: str, suite: dict[str, Any]) -> str | None:
    """Why a report's suite is not a whole run (fewer samples scored than planned), or None."""
    c = suite["counts"]
    if not c.get("planned") or c.get("graded", 0) >= c["planned"]:
        return None
    return (f"suite {name}: the {which} scored {c['graded']} of {c['planned']} planned samples "
            f"({c.get('request_errors', 0)} request errors, {c.get('grading_errors', 0)} grading errors)")


def compare(base: LoadedReport, cand: LoadedReport, *, tolerance: float = DEFAULT_TOLERANCE,
            alpha: float = DEFAULT_ALPHA, metrics: list[str] | None = None,
            allow_incomplete: bool = False, max_token_increase: float | None = None,
            max_flops_increase: float | None = None) -> Comparison:
    """`metrics`: patterns (`avg@*`, `aime2024:pass@1`) of the metrics to gate on; default: each
    suite's primary metric. Every shared metric is still compared and shown. A suite that scored
    fewer samples than it planned, in either report, is not comparable unless `allow_incomplete`
    (then the items both scored are paired, and the shortfall is listed as ignored).
    `max_token_increase` / `max_flops_increase`: relative increases (0.1 = 10%) of the mean generated
    tokens / FLOPs per sample beyond which a significant increase is a regression; None: shown, not gated."""
    out = Comparison(base.where, cand.where, tolerance, alpha)
    rb, rc = base.report, cand.report
    for name in rb["suites"]:
        if name not in rc["suites"]:
            out.reasons.append(f"suite {name}: in the baseline, missing from the candidate")
    for name in rc["suites"]:
        if name not in rb["suites"]:
            out.ignored.append(f"suite {name}: only in the candidate (not compared)")
    shared = [n for n in rb["suites"] if n in rc["suites"]]
    for name in shared:
        out.reasons += suite_differences(name, rb["suites"][name], rc["suites"][name])
        for which, r in (("baseline", rb), ("candidate", rc)):
            why = incomplete(name, which, r["suites"][name])
            if why and allow_incomplete:
                out.ignored.append(f"{why}: --allow-incomplete")
            elif why:
                out.reasons.append(f"{why}: an incomplete run (--allow-incomplete gates on what was scored)")
    out.ignored += ignored_differences(rb, rc)
    if out.reasons:
        return out
    for name in shared:
        s = rb["suites"][name]
        for m in s["metrics"]:
            gated = (m["metric"] == s["primary_metric"]) if not metrics else any(
                fnmatch(m["metric"], p) or fnmatch(f"{name}:{m['metric']}", p) for p in metrics)
            res = compare_metric(base, cand, name, m["metric"], gated, tolerance, alpha)
            if gated and res.status in ("missing", "untested"):
                out.reasons.append(f"suite {name}: gated metric {m['metric']}: {res.note}: cannot gate on it")
            out.metrics.append(res)
    out.compute = compare_compute(base, cand, shared, alpha=alpha, max_token_increase=max_token_increase,
                                  max_flops_increase=max_flops_increase)
    if metrics and not any(m.gated for m in out.metrics):
        out.reasons.append(f"no metric matches --metric {' '.join(metrics)}")
    return out
