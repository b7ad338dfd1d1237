"""Results of a run: per suite metrics with CIs, error/truncation/empty counts, tokens and time,
plus what makes the numbers comparable (versions, commit, engine, data, sampling, seeds).
Written as results.json beside records.jsonl and summarised as a terminal table."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from m1bench import __version__
from m1bench.harness.core.metrics import Outcome
from m1bench.model.routing import aggregate as aggregate_routing

if TYPE_CHECKING:
    from m1bench.harness.eval.runner import Runner

SCHEMA_VERSION = 1
_PACKAGES = ("torch", "transformers", "math-verify", "datasets", "openai", "lm-eval", "vllm")


def git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty if commit else None}


def package_versions() -> dict[str, str | None]:
    out = {}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def suite_results(runner: "Runner", name: str, items: list, n_problems: int, data: dict) -> dict[str, Any]:
    suite, opts = runner.suites[name], runner.cfg.suites[name]
    by_problem: dict[str, list[Outcome]] = defaultdict(list)
    req_errors, counts, finish = Counter(), Counter(), Counter()
    prompt_tok = completion_tok = 0
    ttft, tpot, routing = [], [], []
    for it in items:
        rec = runner.records.get(it.hash)
        if rec is None:
            counts["missing"] += 1
            continue
        if rec["status"] != "ok":
            req_errors[rec["error"]["kind"]] += 1
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
        if rec["score"] is None:
            counts["grading_errors"] += 1
            continue
        by_problem[it.problem.id].append(Outcome(rec["score"]["correct"], rec["score"]["answer"], rec["score"].get("value")))
    metrics = suite.aggregate(list(by_problem.values()), k=opts["samples"], seed=runner.cfg.run["seed"])
    return {
        "suite_version": suite.version, "grader": suite.grader, "data": data, "options": opts,
        "environment": suite.environment(opts), "k": opts["samples"], "n_problems": n_problems,
        "metrics": metrics,
        "counts": {"planned": len(items), "graded": sum(len(v) for v in by_problem.values()),
                   "request_errors": sum(req_errors.values()), "request_errors_by_kind": dict(req_errors),
                   "grading_errors": counts["grading_errors"], "missing": counts["missing"],
                   "truncated": counts["truncated"], "empty_answers": counts["empty_answer"],
                   "finish_reasons": dict(finish),
                   **runner.stats[name]},
        "tokens": {"prompt": prompt_tok, "completion": completion_tok},
        "latency": {"mean_ttft_s": _mean(ttft), "mean_tpot_s": _mean(tpot)},
        "per_problem": {pid: {"n": len(v), "correct": sum(o.correct for o in v)} for pid, v in by_problem.items()},
        **({"routing": aggregate_routing(routing)} if routing else {}),
    }


def external_results(runner: "Runner", name: str, items: list, data: dict, metrics: list[dict]) -> dict[str, Any]:
    """Results of a suite that scored itself (lm-eval): its metrics, our request counts."""
    suite, opts = runner.suites[name], runner.cfg.suites[name]
    recs = [runner.records[it.hash] for it in items if it.hash in runner.records]
    errors = Counter(r["error"]["kind"] for r in recs if r["status"] != "ok")
    done = [r["completion"] for r in recs if r["status"] == "ok"]
    return {
        "suite_version": suite.version, "grader": suite.grader, "data": data, "options": opts,
        "environment": {}, "k": None, "n_problems": None, "metrics": metrics,
        "counts": {"planned": len(items), "graded": len(done), "request_errors": sum(errors.values()),
                   "request_errors_by_kind": dict(errors), "grading_errors": 0, "missing": 0,
                   "truncated": sum(c["finish_reason"] == "length" for c in done),
                   "empty_answers": sum(not c["text"].strip() for c in done), **runner.stats[name]},
        "tokens": {"prompt": sum(c["prompt_tokens"] for c in done), "completion": sum(c["completion_tokens"] for c in done)},
    }


def build_results(runner: "Runner", plans: dict, problems: dict, data_info: dict, wall_s: float) -> dict[str, Any]:
    cfg = runner.cfg
    suites = {name: suite_results(runner, name, plans[name], len(problems[name]), data_info[name]) for name in plans}
    suites.update(runner.external_results)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "m1bench": {"version": __version__, **git_state()},
        "packages": package_versions(),
        "hardware": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "config": {"source": cfg.source, "run": cfg.run, "model": asdict(cfg.model), "sampling": cfg.sampling},
        "engine": runner.client.describe(),
        "wall_s": wall_s,
        "suites": suites,
    }


def write_results(path: Path, results: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _fmt(x: float | None) -> str:
    return "—" if x is None or x != x else f"{100 * x:.1f}"


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
                          str(m.get("n_problems", "")), str(m.get("n_samples", "")),
                          errs if first else "", str(c.get("truncated", "")) if first else "",
                          str(c.get("empty_answers", "")) if first else "")
            first = False
        table.add_section()
    notes = [f"{name}: sandbox isolation {s['environment']['sandbox']['isolation']}"
             for name, s in results["suites"].items() if "sandbox" in s.get("environment", {})]
    table.caption = "; ".join(notes) or None
    console.print(table)
