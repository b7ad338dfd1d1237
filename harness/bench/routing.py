"""Benchmark: the cost of expert-routing statistics on the tiny model (off vs on), as JSON.

    python -m m1bench.harness.bench.routing --out reports/bench/routing_overhead.json
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from m1bench.harness.core.provenance import environment
from m1bench.model.checkpoint import load_model
from m1bench.model.generate import SamplingParams, generate
from m1bench.model.tiny import ensure_tiny
from m1bench.model.tokenizer import load_tokenizer


def time_generate(model, tok, prompts, params, record: bool, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate(model, tok, prompts, params, routing=model.routing_recorder() if record else None)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="reports/bench/routing_overhead.json")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    path = ensure_tiny()
    model, tok = load_model(path), load_tokenizer(path)
    prompts = [tok.encode(f"prompt number {i}: " + "lorem ipsum " * (4 + i)) for i in range(args.batch)]
    params = SamplingParams(max_new_tokens=args.new_tokens, temperature=1.0, seed=1)
    time_generate(model, tok, prompts, params, record=True, repeats=1)  # warm-up
    runs = {}
    for _ in range(2):  # interleave off/on so drift hits both
        for record in (False, True):
            runs.setdefault(record, []).extend(time_generate(model, tok, prompts, params, record, args.repeats))
    off, on = statistics.median(runs[False]), statistics.median(runs[True])
    tokens = args.batch * args.new_tokens
    result = {
        "benchmark": "routing_overhead", "model": "tiny", "batch": args.batch, "new_tokens": args.new_tokens,
        "repeats": 2 * args.repeats, "median_s_off": off, "median_s_on": on, "overhead": on / off - 1,
        "tokens_per_s_off": tokens / off, "tokens_per_s_on": tokens / on,
        "environment": environment(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"routing statistics overhead (tiny, batch {args.batch}, {args.new_tokens} new tokens)")
    for col in ("recording", "median s", "tokens/s"):
        table.add_column(col)
    table.add_row("off", f"{off:.3f}", f"{tokens / off:,.0f}")
    table.add_row("on", f"{on:.3f}", f"{tokens / on:,.0f}")
    Console().print(table)
    Console().print(f"overhead {result['overhead']:+.1%}; wrote {args.out}")


if __name__ == "__main__":
    main()
