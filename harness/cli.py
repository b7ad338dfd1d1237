"""The `m1bench` command. Each subcommand lives in its own module exposing `add_parser(subparsers)`."""
import argparse
import importlib

from .. import __version__

# Modules (relative to m1bench.harness) that contribute subcommands.
COMMAND_MODULES = ["model_cmd", "demo_cmd", "run_cmd", "profiling.cli", "reports.commands", "rl.experiment", "serving.serve_cmd"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m1bench", description="Benchmark and evaluation harness for "
                                     "MiniMax-M1-class hybrid lightning-attention MoE models.")
    parser.add_argument("--version", action="version", version=f"m1bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
