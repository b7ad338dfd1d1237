"""`m1bench suites [NAME...]`: every registered suite with its version, default samples (k) and
the options its `[suites.NAME]` table takes, each as `name = default` (as it would be written in
the run config; "unset" when the suite decides), its type and what it does."""
from __future__ import annotations

import argparse
import json
from typing import Any

from m1bench.harness.core.files import InputError
from m1bench.suites import get_suite, suite_names
from m1bench.suites.base import COMMON_OPTIONS, Option


def option_line(name: str, option: Option) -> str:
    types = option.type if isinstance(option.type, tuple) else (option.type,)
    setting = f"{name} = {json.dumps(option.default, default=str)}" if option.default is not None else f"{name} (unset)"
    choices = f" (one of {', '.join(map(json.dumps, option.choices))})" if option.choices else ""
    return f"  {setting:<28} {' or '.join(t.__name__ for t in types)}: {option.help}{choices}"


def cmd_suites(args: argparse.Namespace) -> None:
    known = suite_names()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise InputError(f"suite {unknown[0]!r}: no such suite (known: {', '.join(known)})")
    print("every suite takes (in its [suites.NAME] table of a run config):")
    print(*(option_line(name, opt) for name, opt in COMMON_OPTIONS.items()), sep="\n")
    for name in args.names or known:
        suite = get_suite(name)
        grader = f", graded by {suite.grader}" if suite.grader else ""
        print(f"\n{name}: version {suite.version}, default samples (k) {suite.default_samples}{grader}")
        print(*[option_line(o, opt) for o, opt in suite.options.items()] or ["  (no options of its own)"], sep="\n")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("suites", help="list the evaluation suites with their options and defaults", description=__doc__)
    p.add_argument("names", nargs="*", metavar="NAME", help="only these suites (default: all)")
    p.set_defaults(func=cmd_suites)
    return p
