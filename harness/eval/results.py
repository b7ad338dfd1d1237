"""Results of a run, built from its plan and its records: per suite metrics with CIs,
error/truncation/empty counts, tokens and time, plus what makes the numbers comparable (versions,
commit, engine, data, sampling, seeds). Written as results.json beside records.jsonl and
summarised as a terminal table."""
from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from m1bench.harness.core.provenance import code_version, hardware, package_versions
from m1bench.harness.core.records import Record
from m1bench.harness.core.types import Completion, Score
from m1bench.harness.eval.compute import Architecture, sample_compute, suite_compute
from m1bench.harness.eval.config import RunConfig
from m1bench.harness.eval.plan import Planned
from m1bench.model.routing import aggregate as aggregate_routing
from m1bench.suites.base import Suite

SCHEMA_VERSION = 1
Records = dict[str, Record]  # request hash -> the latest record of that request


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def suite_results(suite: Suite, opts: dict[str, Any], items: list[Planned], records: Records, n_problems: int,
                  data: dict, stats: dict[str, int], seed: int, arch: Architecture | None = None,
                  max_tokens: int = 0) -> dict[str, Any]:
    by_problem: dict[str, list[Score]] = defaultdict(list)
    req_errors, counts, finish = Counter(), Counter(), Counter()
    prompt_tok = completion_tok = 0
    ttft, tpot, routing, costs = [], [], [], []
    for it in items:
        rec = records.get(it.hash)
        if rec is None:
            counts["missing"] += 1
            continue
        if rec["status"] != "ok":
            req_errors[rec["error"]["kind"]] += 1
            if suite.errors_count_as_failures:
                by_problem[it.problem.id].append(Score(False, details={"error": rec["error"]["kind"]}))
            continue
        c = rec["completion"]
        prompt_tok += c["prompt_tokens"]
        completion_tok += c["completion_tokens"]
        if c.get("ttft_s") is not None:
            ttft.append(c["ttft_s"])
        if c.get("tpot_s") is not None:
            tpot.append(c["tpot_s"])
        if c.get("routing"):
            routing.append(c["routing"])
        counts["truncated"] += c["finish_reason"] == "length"
        finish[c["finish_reason"]] += 1
        counts["empty_answer"] += not c["text"].strip()
        # cut at the token limit inside <think>: no answer to grade (a failure), counted apart so a
        # generation limit too small for the model's reasoning does not pass for wrong answers
        counts["truncated_in_reasoning"] += (c["finish_reason"] == "length" and not c["text"].strip()
                                             and bool(c.get("reasoning")))
        if rec["score"] is None:
            counts["grading_errors"] += 1
            if suite.errors_count_as_failures:
                by_problem[it.problem.id].append(Score(False, details={"error": "grading"}))
            continue
        counts["graded"] += 1
        score = Score.from_record(rec["score"])
        by_problem[it.problem.id].append(score)
        if arch is not None:
            completion = Completion.from_record(c)
            costs.append({"problem_id": it.problem.id, "credit": score.credit, "finished": c["finish_reason"] != "length",
                          "completion": completion, "compute": rec.get("compute") or sample_compute(completion, arch)})
    metrics = suite.aggregate(list(by_problem.values()), k=opts["samples"], seed=seed)
    return {
        "suite_version": suite.version, "grader": suite.grader, "data": data, "options": opts,
        "environment": suite.environment(opts), "k": opts["samples"], "n_problems": n_problems,
        "metrics": metrics,
        "counts": {"planned": len(items), "graded": counts["graded"],
                   "request_errors": sum(req_errors.values()), "request_errors_by_kind": dict(req_errors),
                   "grading_errors": counts["grading_errors"], "missing": counts["missing"],
                   "truncated": counts["truncated"], "truncated_in_reasoning": counts["truncated_in_reasoning"],
                   "empty_answers": counts["empty_answer"],
                   "finish_reasons": dict(finish),
                   **stats},
        "tokens": {"prompt": prompt_tok, "completion": completion_tok},
        "latency": {"mean_ttft_s": _mean(ttft), "mean_tpot_s": _mean(tpot)},
        "per_problem": {pid: {"n": len(v), "correct": sum(o.correct for o in v)} for pid, v in by_problem.items()},
        **({"routing": aggregate_routing(routing)} if routing else {}),
        **({"compute": suite_compute(costs, arch, opts.get("max_tokens") or max_tokens)} if arch is not None else {}),
    }


def external_results(suite: Suite, opts: dict[str, Any], items: list[Planned], records: Records, data: dict,
                     metrics: list[dict], per_item: dict[str, dict[str, float]], stats: dict[str, int]) -> dict[str, Any]:
    """Results of a suite that scored itself (lm-eval): its metrics and their per-item values
    (what `compare` pairs), our request counts."""
    recs = [records[it.hash] for it in items if it.hash in records]
    errors = Counter(r["error"]["kind"] for r in recs if r["status"] != "ok")
    done = [r["completion"] for r in recs if r["status"] == "ok"]
    return {
        "suite_version": suite.version, "grader": suite.grader, "data": data, "options": opts,
        "environment": {}, "k": None, "n_problems": None, "metrics": metrics,
        "counts": {"planned": len(items), "graded": len(done), "request_errors": sum(errors.values()),
                   "request_errors_by_kind": dict(errors), "grading_errors": 0, "missing": 0,
                   "truncated": sum(c["finish_reason"] == "length" for c in done),
                   "empty_answers": sum(not c["text"].strip() for c in done), **stats},
        "tokens": {"prompt": sum(c["prompt_tokens"] for c in done), "completion": sum(c["completion_tokens"] for c in done)},
        "per_item": per_item,
    }


def build_results(cfg: RunConfig, suites: dict[str, Suite], plans: dict[str, list[Planned]], problems: dict,
                  data_info: dict, records: Records, stats: dict[str, dict[str, int]], external: dict[str, dict],
                  engine: dict[str, Any], wall_s: float, arch: Architecture | None = None) -> dict[str, Any]:
    """results.json of a run: `plans` of the suites the runner planned, `external` the results of
    suites that scored themselves, `records` every record read or written, `engine` what answered."""
    seed = cfg.run["seed"]
    out = {name: suite_results(suites[name], cfg.suites[name], plans[name], records, len(problems[name]),
                               data_info[name], stats[name], seed, arch, cfg.sampling["max_tokens"]) for name in plans}
    out.update(external)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "m1bench": code_version(),
        "packages": package_versions(),
        "hardware": hardware(),
        "config": {"source": cfg.source, "run": cfg.run, "model": asdict(cfg.model), "sampling": cfg.sampling},
        "engine": engine,
        "wall_s": wall_s,
        "suites": out,
    }


def write_results(path: Path, results: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _fmt(x: float | None) -> str:
    return "—" if x is None or x != x else f"{100 * x:.1f}"


def _of_planned(n: int | None, planned: int | None) -> str:
    """The samples a metric is over, and the planned count when fewer were scored."""
    if n is None:
        return ""
    return f"{n} of {planned}" if planned and n < planned else str(n)


def _truncated(c: dict[str, Any]) -> str:
    """Cut at the token limit, and how many of those inside their reasoning (no answer at all)."""
    n, in_reasoning = c.get("truncated", ""), c.get("truncated_in_reasoning")
    return f"{n} ({in_reasoning} think)" if in_reasoning else str(n)


def print_summary(results: dict[str, Any], console: Console) -> None:
    table = Table(title=f"m1bench results ({results['engine'].get('model_id', '?')})")
    for col in ("suite", "metric", "%", "95% CI", "probs", "samples", "errors", "trunc", "empty"):
        table.add_column(col, justify="left" if col in ("suite", "metric") else "right")
    for name, s in results["suites"].items():
        c = s["counts"]
        errs = f"{c.get('request_errors', 0)}+{c.get('grading_errors', 0)}g" if c.get("grading_errors") else str(c.get("request_errors", 0))
        first = True
        for m in s["metrics"] or [{"metric": "—", "value": None, "ci95": None, "n_problems": 0, "n_samples": 0}]:
            ci = m.get("ci95")
            table.add_row(name if first else "", m["metric"], _fmt(m["value"]),
                          f"{_fmt(ci[0])}–{_fmt(ci[1])}" if ci else "—",
                          str(m.get("n_problems", "")), _of_planned(m.get("n_samples"), c.get("planned")),
                          errs if first else "", _truncated(c) if first else "",
                          str(c.get("empty_answers", "")) if first else "")
            first = False
        table.add_section()
    notes = [f"{name}: sandbox isolation {s['environment']['sandbox']['isolation']}"
             for name, s in results["suites"].items() if "sandbox" in s.get("environment", {})]
    table.caption = "; ".join(notes) or None
    console.print(table)
