"""Fault tolerance of `m1bench run` against a misbehaving endpoint, written to
reports/bench/fault_tolerance.json:

    m1bench bench faults [--rates 0,0.01,0.05,0.2] [--concurrency 8,64]

Each case is one `m1bench run` (a child process, as a user runs it) of an AIME-layout suite of
synthetic problems against the stub endpoint on 127.0.0.1, which injects a seeded mix of faults
(harness/bench/stub_server.FaultPlan: drops, mid-stream cuts and clean early ends, 429 with
Retry-After 1, 500, 503, error events, slow headers and trickling streams past the request
timeout, malformed JSON) at the given rate of attempts. The run asks for 3 retries and a 3 s
request timeout. Per case: the run's own wall time and its ratio to the fault-free run at the same
concurrency, the share of planned samples with a record, the faults the client recorded by kind
against those injected, and the exit status. Then a dead endpoint (it lists its model, and fails
every completion): the time to the run's non-zero exit.

Samples scale with concurrency (`--samples-per-slot`) so that every fault-free run lasts about as
long: the goal (wall time at 5% faults <= 1.5x fault-free) compares the cost of faults, not of
a run too short to absorb one request timeout.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from m1bench.harness.bench.eval import ANSWER, OUT_DIR, write_synthetic_aime
from m1bench.harness.bench.stub_server import FaultPlan, StubServer
from m1bench.harness.core.provenance import environment

MODEL = "stub"


def run_case(work: Path, plan: FaultPlan | None, problems: int, samples: int, concurrency: int,
             timeout_s: float = 3.0, max_retries: int = 3, ttft_s: float = 0.3) -> dict[str, Any]:
    """One `m1bench run` against a stub endpoint with `plan`'s faults; what it recorded and took."""
    data = write_synthetic_aime(work / "problems.jsonl", problems)
    out = work / "run"
    config = work / "run.toml"
    config.write_text(f"[run]\nprogress_every_s = 5\n[model]\nbackoff_s = 0.5\n"
                      f'[suites.aime2024]\ndata = "{data}"\nsamples = {samples}\n')
    with StubServer(lambda body: {"content": ANSWER}, faults=plan, ttft_s=ttft_s, models={MODEL: 65536}) as stub:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "m1bench.harness.cli", "run", str(config), "--endpoint", stub.url, "--model", MODEL,
             "--concurrency", str(concurrency), "--timeout", str(timeout_s), "--max-retries", str(max_retries),
             "-o", str(out)], capture_output=True, text=True, env=_env(work))
        process_s = time.perf_counter() - t0
    if not (out / "results.json").exists():
        raise RuntimeError(f"m1bench run wrote no results (exit {proc.returncode}): {proc.stderr[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    counts = results["suites"]["aime2024"]["counts"]
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    recorded = {r["hash"] for r in records}
    injected = Counter() if plan is None else plan.injected
    expected = Counter()
    for name, n in injected.items():
        expected[FaultPlan.CLIENT_KIND[name]] += n
    return {"exit": proc.returncode, "wall_s": results["wall_s"], "process_s": process_s,
            "planned": counts["planned"], "recorded": len(recorded), "request_errors": counts["request_errors"],
            "request_errors_by_kind": counts["request_errors_by_kind"],
            "injected": dict(injected), "expected_client_errors": dict(expected),
            "client_errors": results["engine"]["endpoints"][0]["errors"],
            "retries": results["engine"].get("retries", 0), "stderr_tail": proc.stderr[-600:]}


def _env(work: Path) -> dict[str, str]:
    return {**os.environ, "M1BENCH_REPORTS_DIR": str(work / "reports")}


def bench(rates: list[float], concurrencies: list[int], problems: int, samples_per_slot: int, seed: int) -> dict:
    cases = []
    for conc in concurrencies:
        samples = max(1, samples_per_slot * conc // problems)
        base = None
        for rate in rates:
            with tempfile.TemporaryDirectory() as d:
                row = run_case(Path(d), FaultPlan(rate, seed) if rate else None, problems, samples, conc)
            base = row["wall_s"] if rate == 0 else base
            row.update(rate=rate, concurrency=conc, samples=samples,
                       wall_vs_fault_free=row["wall_s"] / base if base else None,
                       all_recorded=row["recorded"] == row["planned"],
                       faults_recorded_as_injected=row["client_errors"] == row["expected_client_errors"])
            cases.append(row)
    with tempfile.TemporaryDirectory() as d:
        dead = run_case(Path(d), FaultPlan(1.0, seed, names=("http_500",)), problems, 4, 8)
    goal = [c for c in cases if c["rate"] == 0.05]
    return {"benchmark": "fault_tolerance", **environment(), "seed": seed, "problems": problems,
            "request_timeout_s": 3.0, "max_retries": 3, "stub_ttft_s": 0.3,
            "cases": cases, "dead_endpoint": {**dead, "goal_s": 60, "meets_goal": dead["process_s"] <= 60 and dead["exit"] != 0},
            "goal": "at 5% faults: wall <= 1.5x fault-free, every sample recorded, every fault recorded as what it was",
            "meets_goal": bool(goal) and all(c["wall_vs_fault_free"] <= 1.5 and c["all_recorded"]
                                             and c["faults_recorded_as_injected"] for c in goal)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="m1bench bench faults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="0,0.01,0.05,0.2", help="fault rates per attempt (default: %(default)s)")
    p.add_argument("--concurrency", default="8,64", help="requests in flight (default: %(default)s)")
    p.add_argument("--problems", type=int, default=50, help="synthetic problems (default: %(default)s)")
    p.add_argument("--samples-per-slot", type=int, default=25,
                   help="samples per unit of concurrency: 8 -> 200 samples (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="fault plan seed (default: %(default)s)")
    p.add_argument("-o", "--out", default=str(OUT_DIR / "fault_tolerance.json"), help="(default: %(default)s)")
    args = p.parse_args(argv)
    res = bench([float(x) for x in args.rates.split(",")], [int(x) for x in args.concurrency.split(",")],
                args.problems, args.samples_per_slot, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    table = Table(title="m1bench run against a faulty endpoint")
    for col in ("conc", "fault rate", "samples", "recorded", "errors", "wall s", "vs 0%", "faults as injected", "exit"):
        table.add_column(col, justify="right")
    for c in res["cases"]:
        table.add_row(str(c["concurrency"]), f"{c['rate']:.0%}", str(c["planned"]), str(c["recorded"]),
                      str(c["request_errors"]), f"{c['wall_s']:.1f}", f"{c['wall_vs_fault_free']:.2f}",
                      "yes" if c["faults_recorded_as_injected"] else "NO", str(c["exit"]))
    d = res["dead_endpoint"]
    table.caption = f"dead endpoint: exit {d['exit']} after {d['process_s']:.1f} s; goal met: {res['meets_goal']}"
    Console().print(table)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
