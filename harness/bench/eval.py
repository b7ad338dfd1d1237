"""Benchmarks of the evaluation core, written as JSON under reports/bench/:

    python -m m1bench.harness.bench.eval runner    # runner throughput against a zero-latency client
    python -m m1bench.harness.bench.eval sandbox   # sandboxed program executions per second

`runner`: an AIME-layout suite of synthetic problems, a client that answers instantly; measures
requests/s for a fresh run (plan, send, math-verify grading, fsync'd record per sample), the same
fresh run through the OpenAI client against a zero-latency HTTP stub, and a resumed run (every
record reused), plus the fsync'd append rate alone.
`sandbox`: a trivial stdin program and a LiveCodeBench functional test, sequentially and with
parallel workers, for each isolation mode that works here.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest.mock import patch

from rich.console import Console

from m1bench.harness.core.provenance import environment

OUT_DIR = Path("reports/bench")
ANSWER = "The answer is \\boxed{7}."


class InstantClient:
    """Zero-latency stub: answers every request at once with a fixed, correct-looking answer."""
    model_id = "instant-stub"

    def describe(self):
        return {"engine": "instant-stub", "model_id": self.model_id}

    async def complete(self, request):
        from m1bench.harness.core.types import Completion

        return Completion(text=ANSWER, reasoning="", prompt_tokens=10, completion_tokens=8,
                          ttft_s=0.0, total_s=0.0)

    async def aclose(self):
        pass


def write_synthetic_aime(path: Path, problems: int) -> Path:
    """An AIME-layout file of `problems` problems, every answer 7 (what ANSWER gives)."""
    path.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"Compute {i} + 7 - {i}.", "answer": "7"}) + "\n"
                            for i in range(problems)))
    return path


def _env() -> dict:
    return environment()


def bench_runner(problems: int, samples: int, concurrency: int) -> dict:
    from m1bench.harness.bench.zero_stub import StubProcess
    from m1bench.harness.clients.openai_compat import OpenAIClient
    from m1bench.harness.core.records import RecordStore
    from m1bench.harness.eval.config import validate
    from m1bench.harness.eval.runner import Runner
    from m1bench.harness.serve.launcher import free_port

    # the runs' reports go to the temp dir, not ./reports
    with tempfile.TemporaryDirectory() as d, patch.dict(os.environ, {"M1BENCH_REPORTS_DIR": str(Path(d) / "reports")}):
        data = write_synthetic_aime(Path(d) / "synthetic_aime.jsonl", problems)
        cfg = validate({"run": {"output_dir": str(Path(d) / "out"), "concurrency": concurrency},
                        "suites": {"aime2024": {"data": str(data), "samples": samples}}})
        quiet = Console(file=open(os.devnull, "w"))
        n = problems * samples
        t = time.perf_counter()
        res = asyncio.run(Runner(cfg, client=InstantClient(), console=quiet).run())
        fresh = time.perf_counter() - t
        assert res["suites"]["aime2024"]["counts"]["graded"] == n
        t = time.perf_counter()
        res = asyncio.run(Runner(cfg, client=InstantClient(), console=quiet).run())
        resumed = time.perf_counter() - t
        assert res["suites"]["aime2024"]["counts"]["reused"] == n
        http_cfg = validate({"run": {"output_dir": str(Path(d) / "out_http"), "concurrency": concurrency},
                             "suites": {"aime2024": {"data": str(data), "samples": samples}}})
        with StubProcess(free_port(), content=ANSWER) as stub:  # the same run through the real HTTP client
            client = OpenAIClient([stub.url], model="stub", timeout_s=30, max_retries=0)
            t = time.perf_counter()
            res = asyncio.run(Runner(http_cfg, client=client, console=quiet).run())
            fresh_http = time.perf_counter() - t
        assert res["suites"]["aime2024"]["counts"]["graded"] == n
        store = RecordStore(Path(d) / "append.jsonl")
        rec = json.loads((Path(d) / "out" / "records.jsonl").read_text().splitlines()[0])
        t = time.perf_counter()
        for _ in range(1000):
            store.append(rec)
        appends = 1000 / (time.perf_counter() - t)
        store.close()
    return {"benchmark": "runner_throughput", **_env(), "problems": problems, "samples": samples, "requests": n,
            "concurrency": concurrency, "client": "zero-latency stub",
            "fresh_run_s": fresh, "fresh_requests_per_s": n / fresh,
            "fresh_http_run_s": fresh_http, "fresh_http_requests_per_s": n / fresh_http,
            "http_client": "OpenAIClient against the zero-latency HTTP stub in another process (harness/bench/zero_stub.py)",
            "resumed_run_s": resumed, "resumed_requests_per_s": n / resumed,
            "fsync_appends_per_s": appends,
            "note": "fresh includes math-verify grading of every answer and one fsync per record"}


def bench_sandbox(runs: int) -> dict:
    from m1bench.harness.core.sandbox import Limits, Sandbox, probe_isolation
    from m1bench.suites.livecodebench.grading import run_tests

    modes = [probe_isolation()] + (["rlimits"] if probe_isolation() != "rlimits" else [])
    workers = [1, os.cpu_count() or 1, 2 * (os.cpu_count() or 1)]
    call = [{"input": "[3, 1, 2]\n2", "output": "[2, 6]"}]
    code = "class Solution:\n    def minMax(self, nums, k):\n        return [min(nums) * k, max(nums) * k]\n"
    out = {"benchmark": "sandbox_executions", **_env(), "runs_per_case": runs, "results": []}
    for mode in modes:
        sb = Sandbox(Limits(wall_s=10, cpu_s=10, memory_mb=512), isolation=mode)
        cases = {
            "stdin_echo": lambda: sb.run_python("print(input())", stdin="hello\n").ok,
            "lcb_functional_test": lambda: run_tests(code, call, "minMax", sb, 10)["passed"],
        }
        for name, fn in cases.items():
            for w in workers:
                t = time.perf_counter()
                with ThreadPoolExecutor(w) as pool:
                    ok = list(pool.map(lambda _: fn(), range(runs)))
                dt = time.perf_counter() - t
                assert all(ok), f"{name} failed under {mode}"
                out["results"].append({"isolation": mode, "case": name, "workers": w, "runs": runs,
                                       "executions_per_s": runs / dt, "mean_latency_ms": 1000 * dt * w / runs})
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m m1bench.harness.bench.eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=["runner", "sandbox"])
    p.add_argument("--problems", type=int, default=200)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--runs", type=int, default=60)
    p.add_argument("-o", "--out-dir", default=str(OUT_DIR))
    args = p.parse_args(argv)
    if args.which == "runner":
        res, name = bench_runner(args.problems, args.samples, args.concurrency), "eval_runner_throughput.json"
    else:
        res, name = bench_sandbox(args.runs), "eval_sandbox_executions.json"
    out = Path(args.out_dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    Console().print_json(json.dumps(res))
    Console().print(f"wrote {out}")


if __name__ == "__main__":
    main()
