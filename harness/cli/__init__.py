"""The `m1bench` command. Each subcommand lives in a module of this package exposing
`add_parser(subparsers)`; a module is imported only when one of its commands runs, so `m1bench
--help` (and every command's start) pays for no torch or matplotlib it does not use.

Bad input (an InputError: a malformed model file, config, data row; or a file the system cannot
open) ends here as one line, `error: <file>: <what>` and maybe a `hint:` line, and exit status 2;
`--debug` (or M1BENCH_DEBUG=1) shows the traceback instead."""
import argparse
import copy
import importlib
import os
import sys

from m1bench import __version__
from m1bench.harness.core.files import InputError

BAD_INPUT_EXIT = 2

# command -> (module that defines it, one-line help for `m1bench --help`)
COMMANDS = {
    "model": ("m1bench.harness.cli.model", "create or describe a model checkpoint"),
    "generate": ("m1bench.harness.cli.model", "generate from a chat prompt with the reference model"),
    "demo": ("m1bench.harness.cli.demo", "the quickstart: the gate model's facts, a generation, an evaluation run "
                                         "and its report"),
    "run": ("m1bench.harness.cli.run", "run evaluation suites (default: the embedded AIME + LiveCodeBench demo)"),
    "serve": ("m1bench.harness.cli.serve", "serve a checkpoint over an OpenAI-compatible HTTP API (embedded or vLLM)"),
    "profile": ("m1bench.harness.cli.profile", "FLOPs and latency profiling (flops, count, latency, server, replot)"),
    "report": ("m1bench.harness.cli.report", "write a run's report, or --check reports"),
    "table": ("m1bench.harness.cli.report", "the M1 paper's Table 2 with measured values beside the published ones"),
    "compare": ("m1bench.harness.cli.report", "gate a candidate report against a baseline (exit 0 pass, 1 regression, "
                                              "2 not comparable)"),
    "rl": ("m1bench.harness.cli.rl", "compare CISPO, GRPO and DAPO on a verifiable task with the tiny model (CPU)"),
    "bench": ("m1bench.harness.cli.bench", "run a benchmark (writes JSON under reports/bench/)"),
    "suites": ("m1bench.harness.cli.suites", "list the evaluation suites with their options and defaults"),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option that has a default says it in its help."""

    @staticmethod
    def _has_default(action: argparse.Action) -> bool:
        return bool(action.option_strings) and action.default not in (None, False, [], (), argparse.SUPPRESS)

    def _format_action(self, action: argparse.Action) -> str:
        if action.help is None and self._has_default(action):
            action = copy.copy(action)
            action.help = "default: %(default)s"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or "%(default)" in text or not self._has_default(action):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """Every m1bench parser: its help lists the defaults, and it takes --debug wherever it stands
    (subcommand parsers are of this class too; theirs sets `debug` only when given)."""

    def __init__(self, *args, **kwargs):
        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="on an error, show the Python traceback (also: M1BENCH_DEBUG=1)")


def build_parser(*commands: str) -> argparse.ArgumentParser:
    """The parser with the full arguments of `commands` (of every command when none is named)."""
    return _parser(commands or tuple(COMMANDS))


def _parser(full: tuple[str, ...]) -> argparse.ArgumentParser:
    """Full arguments for the commands in `full`, a one-line entry for each of the others."""
    parser = Parser(prog="m1bench", description="Benchmark and evaluation harness for "
                    "MiniMax-M1-class hybrid lightning-attention MoE models.")
    parser.add_argument("--version", action="version", version=f"m1bench {__version__}")
    parser.set_defaults(debug=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in dict.fromkeys(COMMANDS[c][0] for c in full):
        importlib.import_module(module).add_parser(sub)
    for name, (_, help_text) in COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_text)
    sub._choices_actions.sort(key=lambda a: list(COMMANDS).index(a.dest))  # `--help` lists them in COMMANDS order
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    # `m1bench --help`, no command or an unknown one: the list of commands is all argparse needs
    args = _parser((command,) if command in COMMANDS else ()).parse_args(argv)
    try:
        args.func(args)
    except BrokenPipeError:  # `m1bench ... | head` stopped reading: nothing to report (as Python's docs advise)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except (InputError, OSError) as e:
        line = bad_input_line(e)
        if line is None or args.debug or os.environ.get("M1BENCH_DEBUG", "0") not in ("", "0"):
            raise
        print(line, file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT)


def bad_input_line(e: Exception) -> str | None:
    """The one line (and hint) for an error the user can fix; None for any other (a bug: traceback)."""
    if isinstance(e, InputError):
        return f"error: {e}" + (f"\nhint: {e.hint}" if e.hint else "")
    if isinstance(e, OSError) and e.filename is not None:  # a path given on the command line or in a config
        return f"error: {e.filename}: {e.strerror or e}"
    return None
