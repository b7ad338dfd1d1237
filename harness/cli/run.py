"""`m1bench run [CONFIG.toml] [flags]`: run suites against a model and print the results table.

Without a config file it runs the embedded demo (small AIME + LiveCodeBench fixtures against the
tiny reference model, in-process, CPU, no network). Flags override the config; everything is
validated, and the endpoints checked, before the first request. The results table goes to stdout
(`--json`: results.json instead), progress and messages to stderr.

Exit status: 0 done; 1 a suite's share of errored samples is above run.max_error_rate (default 0:
any request or grading error; the first errors are printed, the records name them all), or the
run's deadline cut it short; 2 a config, data or endpoint error before any request; 130
interrupted (Ctrl-C). The finished samples are always kept: the same command resumes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from rich.console import Console

from m1bench.harness.eval.config import TABLES, ConfigError, load_config, merge
from m1bench.suites import get_suite, suite_names


def overrides_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Translate flags into a nested dict merged over the config (so errors name config keys)."""
    o: dict[str, Any] = {"run": {}, "model": {}, "sampling": {}}
    if args.serve:
        o["server"] = {"engine": args.serve, "model": args.model or "tiny"}
    elif args.endpoint:
        o["model"].update(engine="openai", endpoints=args.endpoint)
    if args.model and not args.serve:
        o["model"]["name" if args.endpoint else "checkpoint"] = args.model
        if not args.endpoint:
            o["model"]["engine"] = "reference"
    for table, flag, key in (("run", "name", "name"), ("run", "output", "output_dir"),
                             ("run", "concurrency", "concurrency"), ("run", "seed", "seed"),
                             ("run", "deadline", "deadline_s"), ("run", "max_error_rate", "max_error_rate"),
                             ("model", "timeout", "request_timeout_s"), ("model", "max_retries", "max_retries")):
        if getattr(args, flag) is not None:
            o[table][key] = getattr(args, flag)
    for flag in ("max_tokens", "temperature", "top_p", "top_k"):
        if getattr(args, flag) is not None:
            o["sampling"][flag] = getattr(args, flag)
    return {k: v for k, v in o.items() if v}


def apply_suite_flags(raw: dict[str, Any], args: argparse.Namespace) -> None:
    suites = raw.setdefault("suites", {})
    if args.suite:
        raw["suites"] = suites = {name: suites.get(name, {}) for name in args.suite}
    for spec in args.data or []:
        name, sep, path = spec.partition("=")
        if not sep:
            raise ConfigError(f"--data {spec!r}: expected SUITE=PATH")
        suites.setdefault(name, {})["data"] = path
    for name in suites:
        if args.limit is not None:
            suites[name]["limit"] = args.limit
        if args.samples is not None:
            suites[name]["samples"] = args.samples


def cmd_run(args: argparse.Namespace) -> int:
    from m1bench.harness.eval.preflight import EndpointError
    from m1bench.harness.eval.results import print_summary
    from m1bench.harness.eval.runner import Runner
    from m1bench.harness.serve.hook import ServerConfigError, served_for_run, spec_from_table
    from m1bench.harness.serve.launcher import LaunchError
    from m1bench.reports import write_report

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)  # logs keep whole columns

    def edit(raw: dict[str, Any]) -> None:
        merge(raw, overrides_from_flags(args))
        apply_suite_flags(raw, args)

    try:
        cfg = load_config(args.config, edit)
        if cfg.server is not None:
            try:
                spec_from_table(cfg.server)
            except ServerConfigError as e:
                raise ConfigError(str(e)) from None
        plan = ", ".join(f"{n}(k={o['samples']})" for n, o in cfg.suites.items())
        console.print(f"[bold]m1bench run[/] config={cfg.source} engine={cfg.model.engine} suites={plan} -> {cfg.output_dir}")
        with served_for_run(cfg.server, cfg.output_dir) as endpoint:
            if endpoint is not None:
                cfg.model = endpoint.model_config(cfg.model)
                console.print(f"server: {endpoint.base_url} ({endpoint.model}), log {endpoint.log_path}")
            runner = Runner(cfg, console=console)
            results = asyncio.run(runner.run())
    except (LaunchError, EndpointError) as e:  # bad input (config, data, records) is the CLI entry's to print
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every finished sample is already on disk (fsync'd as it finished)
        console.print(f"[yellow]interrupted:[/] the finished samples are in {cfg.output_dir / 'records.jsonl'}; "
                      "re-run the same command to resume")
        return 130
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print_summary(results, Console(width=None if sys.stdout.isatty() else 160))
    try:  # the results are on disk either way; `m1bench report RUN_DIR` writes the report again
        report_dir = write_report(cfg.output_dir, results, runner.run_records())
        console.print(f"report: {report_dir / 'report.html'} (report.json, report.md, samples.jsonl beside it)")
    except Exception as e:
        console.print(f"[red]report not written:[/] {type(e).__name__}: {e}")
    console.print(f"records: {cfg.output_dir / 'records.jsonl'}\nresults: {cfg.output_dir / 'results.json'}")
    problems = run_problems(results, runner.run_records(), cfg.run["max_error_rate"])
    for line in problems:
        console.print(f"[red]error:[/] {line}", highlight=False, soft_wrap=True)
    return 1 if problems else 0


def run_problems(results: dict[str, Any], records: list[dict[str, Any]], max_error_rate: float) -> list[str]:
    """Why the run failed, a line each: suites whose errored share is above `max_error_rate` (with
    the first distinct errors, HTTP status and body included), and samples the deadline cut off."""
    lines = []
    for name, s in results["suites"].items():
        c = s["counts"]
        errored = c.get("request_errors", 0) + c.get("grading_errors", 0)
        if c.get("planned") and errored / c["planned"] > max_error_rate:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(c.get("request_errors_by_kind", {}).items()))
            lines.append(f"{name}: {errored} of {c['planned']} samples errored ({kinds or 'grading'}), "
                         f"above run.max_error_rate = {max_error_rate:g}")
    if lines:
        seen: dict[str, str] = {}
        for r in records:
            what = r["error"]["message"] if r.get("error") else r.get("grade_error")
            if what and what not in seen and len(seen) < 3:
                seen[what] = f"  e.g. {r['suite']}/{r['problem_id']}#{r['sample']}: {what}"
        lines += seen.values()
    if results.get("unfinished"):
        u = results["unfinished"]
        lines.append(f"run.deadline_s = {u['deadline_s']:g} reached with {u['samples']} samples unfinished; "
                     "re-run the same command to resume")
    return lines


def add_parser(sub: Any) -> argparse.ArgumentParser:
    suites = "\n".join(f"  {name:<18} version {get_suite(name).version}" for name in suite_names())
    p = sub.add_parser("run", help="run evaluation suites (default: the embedded AIME + LiveCodeBench demo)",
                       description=__doc__, epilog=f"suites ([suites.NAME] tables, --suite NAME):\n{suites}")
    p.add_argument("config", nargs="?", help="run config TOML (default: the embedded demo config)")
    p.add_argument("--model", help="checkpoint dir or 'tiny' (reference engine), or the served model name with --endpoint")
    p.add_argument("--endpoint", action="append", metavar="URL", help="OpenAI-compatible base URL (…/v1); repeat for replicas")
    p.add_argument("--serve", choices=("embedded", "vllm"), help="start this server on --model for the run's duration "
                   "(a [server] table in the config sets more flags)")
    p.add_argument("--suite", action="append", metavar="NAME", help="run only these suites (repeatable)")
    p.add_argument("--data", action="append", metavar="SUITE=PATH", help="data file/dir or hub id for a suite")
    p.add_argument("--limit", type=int, help="first N problems of each suite")
    p.add_argument("--samples", type=int, help="samples per problem (k) for every suite")
    sampling = TABLES["sampling"]
    for flag, kind in (("max-tokens", int), ("temperature", float), ("top-p", float), ("top-k", int)):
        opt = sampling[flag.replace("-", "_")]
        p.add_argument(f"--{flag}", type=kind, help=f"{opt.help} (default: the config's, else {opt.default})")
    run_opts, model_opts = TABLES["run"], TABLES["model"]
    p.add_argument("--concurrency", type=int, help=f"requests in flight (default: the config's, else {run_opts['concurrency'].default})")
    p.add_argument("--seed", type=int, help=f"base seed (default: the config's, else {run_opts['seed'].default})")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds per request attempt "
                   f"(model.request_timeout_s; default: the config's, else {model_opts['request_timeout_s'].default})")
    p.add_argument("--max-retries", type=int, help="retries of a failed request "
                   f"(model.max_retries; default: the config's, else {model_opts['max_retries'].default})")
    p.add_argument("--deadline", type=float, metavar="S", help="stop the run after S seconds; the next run sends "
                   "what is unfinished (run.deadline_s; default: none)")
    p.add_argument("--max-error-rate", type=float, metavar="R", help="share of errored samples a suite may have "
                   f"before the run fails (run.max_error_rate; default: the config's, else {run_opts['max_error_rate'].default:g})")
    p.add_argument("--json", action="store_true", help="print results.json to stdout instead of the table")
    p.add_argument("--name", help="run name (default output dir: runs/<name>)")
    p.add_argument("-o", "--output", help="output directory (records.jsonl, results.json)")
    p.set_defaults(func=lambda a: sys.exit(cmd_run(a)))
    return p
