"""Crafted runs for the report/compare/table tests: a run directory (records.jsonl + results.json in
the runner's format, metrics from harness.core.metrics.summarize) from a table of per-sample outcomes,
so a test states exactly which items got better or worse."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from m1bench.harness.core.metrics import summarize
from m1bench.harness.core.types import Score, sample_seed

SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def make_run(run_dir: Path, outcomes: dict[str, dict[str, list[bool]]], *, suite_version: str = "1",
             temperature: float = 1.0, max_tokens: int = 16, data_hash: str = "0123456789abcdef",
             grader: str = "math-verify==0.9.0", checkpoint_hash: str = "c0ffee0000000000",
             created: str = "2026-01-01T00:00:00+00:00", run_name: str = "crafted", seed: int = 0,
             commit: str = "a" * 40, system: str = SYSTEM, data_source: str | None = None, options: dict[str, Any] | None = None,
             errors: dict[str, set[tuple[str, int]]] | None = None,
             details: dict[str, dict[tuple[str, int], dict[str, Any]]] | None = None,
             completion_tokens: Callable[[str, int], int] = lambda pid, i: 5) -> Path:
    """outcomes[suite][problem_id] = per-sample correctness. errors[suite] = {(problem_id, sample)}
    whose request failed instead; details[suite][(problem_id, sample)] = the grader's score details;
    completion_tokens(problem_id, sample) = the tokens that sample generated."""
    run_dir.mkdir(parents=True, exist_ok=True)
    records, suites = [], {}
    for suite, problems in outcomes.items():
        k = max(len(v) for v in problems.values())
        by_problem: dict[str, list[Score]] = {}
        failed = (errors or {}).get(suite, set())
        for pid, samples in problems.items():
            for i, ok in enumerate(samples):
                messages = [{"role": "system", "content": system}, {"role": "user", "content": f"Problem {pid}?"}]
                req = {"messages": messages, "sampling": {"max_tokens": max_tokens, "temperature": temperature, "top_p": 0.95,
                                                          "top_k": 0, "seed": sample_seed(seed, suite, pid, i), "stop": []},
                       "tools": None,
                       "key": f"{suite}/v{suite_version}/{pid}/{i}"}
                h = hashlib.sha256(json.dumps([checkpoint_hash, req], sort_keys=True).encode()).hexdigest()[:32]
                rec = {"hash": h, "suite": suite, "suite_version": suite_version, "problem_id": pid, "sample": i,
                       "model_id": f"reference:{checkpoint_hash}", "status": "ok", "time": created, "request": req,
                       "grader": grader, "grade_error": None, "error": None}
                if (pid, i) in failed:
                    rec.update(status="error", completion=None, score=None,
                               error={"kind": "timeout", "message": "crafted", "attempts": 1})
                else:
                    answer = "1" if ok else "0"
                    rec["completion"] = {"text": f"\\boxed{{{answer}}}", "reasoning": "", "tool_calls": [],
                                         "finish_reason": "stop", "prompt_tokens": 20,
                                         "completion_tokens": completion_tokens(pid, i),
                                         "ttft_s": 0.01, "total_s": 0.02, "endpoint": None, "tpot_s": 0.002}
                    score = Score(ok, answer, (details or {}).get(suite, {}).get((pid, i), {}))
                    rec["score"] = score.to_record()
                    by_problem.setdefault(pid, []).append(score)
                records.append(rec)
        n = sum(len(v) for v in problems.values())
        suites[suite] = {
            "suite_version": suite_version, "grader": grader,
            "data": {"source": data_source or f"/data/{suite}.jsonl", "revision": None, "rows": len(problems), "content_hash": data_hash},
            "options": {**_suite_defaults(suite), "samples": k, "limit": None, "data": f"/data/{suite}.jsonl",
                        "revision": None, "split": None, "max_tokens": None, **(options or {})},
            "environment": {}, "k": k, "n_problems": len(problems),
            "metrics": summarize(list(by_problem.values()), k=k, majority=True, seed=seed),
            "counts": {"planned": n, "graded": sum(len(v) for v in by_problem.values()), "request_errors": len(failed),
                       "request_errors_by_kind": {"timeout": len(failed)} if failed else {}, "grading_errors": 0,
                       "missing": 0, "truncated": 0, "empty_answers": 0, "sent": n, "reused": 0, "regraded": 0},
            "tokens": {"prompt": 20 * n, "completion": sum(completion_tokens(p, i) for p, v in problems.items()
                                                           for i in range(len(v)) if (p, i) not in failed)},
            "latency": {"mean_ttft_s": 0.01, "mean_tpot_s": 0.002},
            "per_problem": {pid: {"n": len(v), "correct": sum(o.correct for o in v)} for pid, v in by_problem.items()},
        }
    results = {
        "schema_version": 1, "created": created, "m1bench": {"version": "0.1.0", "commit": commit, "dirty": False},
        "packages": {"torch": "2.13.0+cpu"}, "hardware": {"machine": "x86_64", "cpus": 2, "python": "3.11.7"},
        "config": {"source": "crafted.toml", "run": {"name": run_name, "output_dir": str(run_dir), "concurrency": 4,
                                                       "seed": seed, "keep_token_times": False},
                   "sampling": {"max_tokens": max_tokens, "temperature": temperature, "top_p": 0.95, "top_k": 0}},
        "engine": {"engine": "reference", "model_id": f"reference:{checkpoint_hash}", "checkpoint": None,
                   "checkpoint_hash": checkpoint_hash, "dtype": "float32", "device": "cpu", "batch_size": 8},
        "wall_s": 1.0, "suites": suites,
    }
    with open(run_dir / "records.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    return run_dir


def _suite_defaults(name: str) -> dict[str, Any]:
    """A registered suite's own options at their defaults (what a validated config holds)."""
    from m1bench.suites import get_suite

    try:
        return {k: o.default for k, o in get_suite(name).options.items()}
    except KeyError:
        return {}


def crafted_report(tmp: Path, name: str, outcomes: dict[str, dict[str, list[bool]]], **kw) -> Path:
    from m1bench.reports.write import write_report

    return write_report(make_run(tmp / f"{name}-run", outcomes, **kw), out_dir=tmp / name)


def rates(n_problems: int, correct: list[int], k: int) -> dict[str, list[bool]]:
    """Problem p gets correct[p] of k samples right."""
    return {f"p{p:03d}": [i < correct[p] for i in range(k)] for p in range(n_problems)}

