"""The `m1bench` command. Each subcommand lives in its own module exposing `add_parser(subparsers)`."""
import argparse
import importlib

from m1bench import __version__

# Modules that contribute subcommands.
COMMAND_MODULES = ["m1bench.harness.cli.model", "m1bench.harness.cli.demo", "m1bench.harness.cli.run",
                   "m1bench.harness.cli.profile", "m1bench.harness.cli.report", "m1bench.harness.rl.experiment",
                   "m1bench.harness.cli.serve"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m1bench", description="Benchmark and evaluation harness for "
                                     "MiniMax-M1-class hybrid lightning-attention MoE models.")
    parser.add_argument("--version", action="version", version=f"m1bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)

