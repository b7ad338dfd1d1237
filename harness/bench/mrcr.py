"""MRCR benchmarks, each writing JSON (reports/bench/mrcr_*.json):

  generator   time and peak memory to write one 1,048,576-token sample, o200k_base and the tiny
              model's tokenizer; length error (goal: <= 10 s on this CPU, within 1%)
  rss         peak RSS of the harness (load -> plan -> hash -> send -> grade -> record) for one
              1M-token request, with a client that prepares the prompt exactly as the reference
              engine does (chat template, token ids, tensor) but runs no model
  gpu         both MRCR suites through the runner and the reference engine (lazy causal bias, no mask) on a
              GPU at 128K and 1M tokens: time, GPU and host memory, scores, per request

    python -m m1bench.harness.bench.mrcr generator --out reports/bench/mrcr_generator.json
    python -m m1bench.harness.bench.mrcr rss --out reports/bench/mrcr_harness_rss.json
    python -m m1bench.harness.bench.mrcr gpu --preset small --out $OUT/mrcr_gpu_small.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from m1bench.harness.core.provenance import environment

MIB = 1 << 20
ONE_M = 1 << 20


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def rss_bytes() -> int:
    return _status("VmRSS")


def peak_rss_bytes() -> int:
    """This process's peak RSS. VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over
    from the parent through fork and exec, so a child started by a big parent would report the
    parent's size."""
    return _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def machine() -> dict[str, Any]:
    return environment()


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _child(args: list[str]) -> dict[str, Any]:
    """Run a measurement in a fresh interpreter (clean peak RSS); it prints one JSON line last."""
    out = subprocess.run([sys.executable, "-m", "m1bench.harness.bench.mrcr", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- generator -------------------------------------------------------------------------------

def _gen_once(tokenizer: str, measure: str, seed: int, needles: int) -> dict[str, Any]:
    from m1bench.suites.mrcr.generator import Measure, SampleSpec, counter_for, write_sample

    t0 = time.perf_counter()
    m = Measure(counter_for(tokenizer), measure)
    setup = time.perf_counter() - t0
    base = rss_bytes()
    with tempfile.TemporaryDirectory() as d, open(Path(d) / "s.jsonl", "w") as out:
        t0 = time.perf_counter()
        meta = write_sample(out, SampleSpec(ONE_M, needles, seed), m)
        secs = time.perf_counter() - t0
        size = out.tell()
    return {"seconds": secs, "setup_s": setup, "tokens": meta["n_tokens"], "messages": meta["total_messages"],
            "file_bytes": size, "rss_before_mib": base / MIB, "peak_rss_mib": peak_rss_bytes() / MIB}


def bench_generator(args: argparse.Namespace) -> dict[str, Any]:
    from m1bench.model.tiny import ensure_tiny

    tiny = str(ensure_tiny())
    cases = []
    for name, tok, measure in (("o200k_base", "o200k_base", "content"), ("tiny model tokenizer", tiny, "chat")):
        runs = [_child(["_gen", tok, measure, str(seed), "8"]) for seed in range(args.repeats)]
        secs = [r["seconds"] for r in runs]
        cases.append({"tokenizer": name, "measure": measure, "target_tokens": ONE_M, "needles": 8,
                      "median_s": statistics.median(secs), "max_s": max(secs), "runs": runs,
                      "max_rel_error": max(abs(r["tokens"] - ONE_M) / ONE_M for r in runs),
                      "goal_s": 10.0, "meets_goal": max(secs) <= 10.0})
    return {"benchmark": "mrcr generator, one 1,048,576-token sample (one process per run)", "machine": machine(),
            "cases": cases}


# ---- harness RSS -------------------------------------------------------------------------------

class PromptOnlyClient:
    """Prepares each prompt as EngineClient does (chat template, token ids, a tensor), answers
    without running a model."""

    def __init__(self, tokenizer: Any):
        self.tokenizer, self.model_id, self.seen = tokenizer, "prompt-only", []

    def describe(self) -> dict[str, Any]:
        return {"engine": "prompt-only", "model_id": self.model_id}

    async def complete(self, request: Any) -> Any:
        import torch

        from m1bench.harness.core.types import Completion

        before = peak_rss_bytes()  # the harness so far: load, plan, hash
        text = self.tokenizer.render_chat(list(request.messages), add_generation_prompt=True)
        rendered = peak_rss_bytes()
        ids = self.tokenizer.encode(text)
        encoded = peak_rss_bytes()
        batch = torch.zeros(1, len(ids), dtype=torch.long)
        batch[0] = torch.tensor(ids)
        self.seen.append({"prompt_tokens": len(ids), "peak_before_prompt_mib": before / MIB,
                          "peak_after_render_mib": rendered / MIB, "peak_after_encode_mib": encoded / MIB,
                          "peak_after_tensor_mib": peak_rss_bytes() / MIB})
        return Completion(text="no model here", prompt_tokens=len(ids), completion_tokens=3)

    async def aclose(self) -> None:
        pass


class WholeTextEncoder:
    """The tokenizer encoding the whole prompt in one call (what ChatTokenizer.encode avoids), for comparison."""

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.tokenizer.encode(text, add_special_tokens=False).ids


def _rss_child(data: str, tokenizer_dir: str, out_dir: str, chunked: bool) -> dict[str, Any]:
    from rich.console import Console

    from m1bench.harness.eval.config import validate
    from m1bench.harness.eval.runner import Runner
    from m1bench.model.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    client = PromptOnlyClient(tok if chunked else WholeTextEncoder(tok))
    cfg = validate({"run": {"output_dir": out_dir}, "sampling": {"max_tokens": 16},
                    "suites": {"mrcr": {"data": data, "lengths": [ONE_M], "needles": [8], "per_cell": 1,
                                        "model": tokenizer_dir}}})
    base = rss_bytes()
    samples, stop = [], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(rss_bytes())
            time.sleep(0.002)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    results = asyncio.run(Runner(cfg, client=client, console=Console(file=open(os.devnull, "w"))).run())
    wall = time.perf_counter() - t0
    stop.set()
    t.join()
    first = asyncio.run(_resume(cfg, client))  # resume reads the records back: nothing sent
    return {"baseline_rss_mib": base / MIB, "peak_rss_mib": peak_rss_bytes() / MIB,
            "sampled_peak_rss_mib": max(samples) / MIB, "wall_s": wall, "client": client.seen,
            "graded": results["suites"]["mrcr"]["counts"]["graded"], "resume_sent": first}


async def _resume(cfg: Any, client: Any) -> int:
    from rich.console import Console

    from m1bench.harness.eval.runner import Runner

    n = len(client.seen)
    await Runner(cfg, client=client, console=Console(file=open(os.devnull, "w"))).run()
    return len(client.seen) - n


def bench_rss(args: argparse.Namespace) -> dict[str, Any]:
    from m1bench.model.tiny import ensure_tiny
    from m1bench.suites.mrcr.generator import Measure, SampleSpec, generate_file
    from m1bench.suites.mrcr.tokens import load_model_counter

    tiny = str(ensure_tiny())
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "mrcr_1m.jsonl"
        meta = generate_file(data, [SampleSpec(ONE_M, 8, 0)], Measure(load_model_counter(tiny), "chat"))[0]
        variants = {}
        for name in ("stock", "chunked"):
            r = _child(["_rss", str(data), tiny, str(Path(d) / name), name])
            c = r["client"][0]
            variants[name] = {
                "baseline_rss_mib": r["baseline_rss_mib"], "peak_rss_mib": r["peak_rss_mib"],
                "peak_minus_baseline_mib": r["peak_rss_mib"] - r["baseline_rss_mib"],
                "phases_peak_rss_mib": {"harness_load_plan_hash": c["peak_before_prompt_mib"],
                                        "chat_template_render": c["peak_after_render_mib"],
                                        "tokenizer_encode": c["peak_after_encode_mib"],
                                        "ids_tensor": c["peak_after_tensor_mib"]},
                "harness_prompt_copies": (c["peak_before_prompt_mib"] - r["baseline_rss_mib"]) / (meta["n_chars"] / MIB),
                "prompt_tokens": c["prompt_tokens"], "graded": r["graded"], "resume_requests_sent": r["resume_sent"],
                "wall_s": r["wall_s"]}
        records = (Path(d) / "stock" / "records.jsonl").stat().st_size
        row_bytes = data.stat().st_size
    return {
        "benchmark": "peak RSS of the harness for one 1M-token MRCR request (runner + mrcr suite + prompt "
                     "preparation as the reference engine does it; no forward pass)",
        "machine": machine(), "prompt_tokens": meta["n_tokens"], "prompt_chars_mib": meta["n_chars"] / MIB,
        "row_file_mib": row_bytes / MIB, "records_file_mib": records / MIB,
        "whole_text_encode": variants["stock"], "engine_encode_by_message": variants["chunked"],
        "note": ("harness_prompt_copies = (peak before the prompt is rendered - baseline) / prompt size: what the "
                 "runner and the suite hold (the parsed messages, the transient JSON of the request hash). "
                 "The rest of the peak is the reference engine's prompt preparation: the rendered chat text, "
                 "and above all the `tokenizers` Encoding of 1M tokens (ids, offsets, token strings, masks) "
                 "before its ids become a Python list and a tensor: `whole_text` encodes the prompt in one call, "
                 "`by_message` is ChatTokenizer.encode, message by message (same ids)."),
    }


# ---- GPU -------------------------------------------------------------------------------------

def bench_gpu(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from rich.console import Console

    from m1bench.harness.clients.long_context import long_context_client
    from m1bench.harness.eval.config import validate
    from m1bench.harness.eval.runner import Runner
    from m1bench.model.tiny import create_checkpoint
    from m1bench.suites.mrcr import report as mrcr_report
    from m1bench.suites.mrcr.tokens import TokenizerUnavailable, load_o200k

    report: dict[str, Any] = {"benchmark": "MRCR suites through the runner + reference engine (lazy causal bias, no mask)",
                              "machine": machine(), "torch": torch.__version__, "preset": args.preset,
                              "device": args.device, "dtype": args.dtype, "requests": [], "phases": {}}
    if args.device == "cuda":
        report["gpu"] = torch.cuda.get_device_name(0)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mrcr_gpu_"))
    os.environ.setdefault("M1BENCH_HOME", str(work / "home"))
    t0 = time.perf_counter()
    ckpt = create_checkpoint(work / args.preset, args.preset, seed=args.seed)
    report["phases"]["checkpoint_s"] = time.perf_counter() - t0
    report["note"] = f"{args.preset} preset with seeded random weights: scores are those of an untrained model (~0)"

    suites: dict[str, Any] = {"mrcr": {"lengths": args.lengths, "needles": args.needles, "per_cell": 1, "model": str(ckpt),
                                       "context_window": args.context_window}}
    try:  # OpenAI-MRCR-layout rows at o200k lengths (the hub is out of reach)
        o200k = load_o200k()
        from m1bench.suites.mrcr.generator import Measure, SampleSpec, write_sample

        rows = work / "openai_mrcr" / "rows.jsonl"
        rows.parent.mkdir(parents=True, exist_ok=True)
        with open(rows, "w") as f:
            for i, target in enumerate(args.openai_targets):
                write_sample(f, SampleSpec(target, 2, 100 + i), Measure(o200k, "content"))
        suites["openai_mrcr"] = {"data": str(rows), "needles": [2], "model": str(ckpt),
                                 "context_window": args.context_window,
                                 "bins": ["<4K", "4K-8K", "8K-16K", "16K-32K", "32K-64K", "64K-128K", "128K-256K",
                                          "256K-512K", "512K-1M", ">1M"]}
    except TokenizerUnavailable as e:
        report["openai_mrcr_skipped"] = str(e)

    client = long_context_client(str(ckpt), dtype=args.dtype, device=args.device)
    t0 = time.perf_counter()  # kernels compile on first use: keep that out of the first request's time
    from m1bench.model.generate import SamplingParams, generate

    generate(client.engine.model, client.engine.tokenizer, [[i % 256 for i in range(4096)]],
             SamplingParams(max_new_tokens=2, temperature=0))
    report["phases"]["warmup_s"] = time.perf_counter() - t0
    inner = client.complete

    async def measured(request: Any) -> Any:
        if args.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        c = await inner(request)
        entry = {"key": request.key, "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                 "ttft_s": c.ttft_s, "total_s": time.perf_counter() - t, "finish_reason": c.finish_reason,
                 "host_peak_rss_mib": peak_rss_bytes() / MIB}
        if args.device == "cuda":
            entry["gpu_peak_allocated_gib"] = torch.cuda.max_memory_allocated() / (1 << 30)
        report["requests"].append(entry)
        write_json(args.out, report)  # what finished survives a timeout
        return c

    client.complete = measured
    cfg = validate({"run": {"output_dir": str(work / "run"), "concurrency": 1},
                    "sampling": {"max_tokens": args.max_tokens}, "suites": suites})
    t0 = time.perf_counter()
    results = asyncio.run(Runner(cfg, client=client, console=Console(stderr=True)).run())
    report["phases"]["run_s"] = time.perf_counter() - t0
    report["results"] = {name: {k: s[k] for k in ("counts", "tokens", "latency", "metrics")} |
                         {"data": {k: s["data"].get(k) for k in ("skipped_over_context_window", "token_counter",
                                                                  "to_send", "aggregates")}}
                         for name, s in results["suites"].items()}
    report["mrcr"] = mrcr_report.run_breakdown(work / "run")
    report["engine"] = results["engine"]
    report["host_peak_rss_mib"] = peak_rss_bytes() / MIB
    write_json(args.out, report)
    return report


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if "cases" in report:
        t = Table(title=report["benchmark"])
        for col in ("tokenizer", "measure", "median s", "max s", "max error %", "peak RSS MiB", "≤10 s"):
            t.add_column(col)
        for c in report["cases"]:
            t.add_row(c["tokenizer"], c["measure"], f"{c['median_s']:.2f}", f"{c['max_s']:.2f}",
                      f"{100 * c['max_rel_error']:.3f}", f"{max(r['peak_rss_mib'] for r in c['runs']):.0f}",
                      str(c["meets_goal"]))
        console.print(t)
    elif "requests" in report:
        t = Table(title=report["benchmark"])
        for col in ("request", "prompt tokens", "prefill s", "total s", "GPU peak GiB", "host RSS MiB"):
            t.add_column(col)
        for r in report["requests"]:
            t.add_row(r["key"], str(r["prompt_tokens"]), f"{r['ttft_s']:.2f}", f"{r['total_s']:.2f}",
                      f"{r.get('gpu_peak_allocated_gib', 0):.1f}", f"{r['host_peak_rss_mib']:.0f}")
        console.print(t)
    else:
        console.print_json(data={k: v for k, v in report.items() if k != "machine"})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_gen":  # child processes
        print(json.dumps(_gen_once(argv[1], argv[2], int(argv[3]), int(argv[4]))))
        return 0
    if argv and argv[0] == "_rss":
        print(json.dumps(_rss_child(argv[1], argv[2], argv[3], argv[4] == "chunked")))
        return 0
    p = argparse.ArgumentParser(prog="python -m m1bench.harness.bench.mrcr", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    g = sub.add_parser("generator", help="1M-token sample generation time")
    g.add_argument("--repeats", type=int, default=3)
    g.add_argument("--out", default="reports/bench/mrcr_generator.json")
    r = sub.add_parser("rss", help="harness peak RSS for a 1M-token request")
    r.add_argument("--out", default="reports/bench/mrcr_harness_rss.json")
    u = sub.add_parser("gpu", help="both suites on the reference engine at 128K and 1M tokens")
    u.add_argument("--preset", default="small")
    u.add_argument("--device", default="cuda")
    u.add_argument("--dtype", default="bfloat16")
    u.add_argument("--lengths", type=int, nargs="+", default=[131072, ONE_M], help="mrcr lengths (model tokens)")
    u.add_argument("--needles", type=int, nargs="+", default=[2, 8])
    u.add_argument("--openai-targets", type=int, nargs="+", default=[120_000, 1_000_000],
                   help="o200k lengths of the OpenAI-MRCR-layout rows (bins 64K-128K, 512K-1M)")
    u.add_argument("--context-window", type=int, default=ONE_M)
    u.add_argument("--max-tokens", type=int, default=32)
    u.add_argument("--seed", type=int, default=1234)
    u.add_argument("--workdir")
    u.add_argument("--out", default="reports/bench/mrcr_gpu_small.json")
    args = p.parse_args(argv)
    report = {"generator": bench_generator, "rss": bench_rss, "gpu": bench_gpu}[args.what](args)
    write_json(args.out, report)
    _print(report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
