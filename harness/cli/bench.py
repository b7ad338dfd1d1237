"""`m1bench bench NAME [ARGS]`: run one benchmark of the registry (harness/bench); `--help` after
the name shows that benchmark's own options."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from m1bench.harness.bench import BENCHMARKS


def cmd_bench(args: argparse.Namespace) -> None:
    code = importlib.import_module(BENCHMARKS[args.name][0]).main(args.args)
    sys.exit(code or 0)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<11} {what}" for name, (_, what) in BENCHMARKS.items())
    p = sub.add_parser("bench", help="run a benchmark (writes JSON under reports/bench/)",
                       description=f"{__doc__}\nbenchmarks:\n{listing}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=list(BENCHMARKS), metavar="NAME", help="the benchmark (listed above)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the benchmark's own arguments")
    p.set_defaults(func=cmd_bench)
    return p
