"""`m1bench report`, `m1bench table`, `m1bench compare`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

from m1bench.reports.schema import ReportError

# Messages stay one line (CI logs, grep); tables get room in logs, where there is no terminal width.
console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


def _fail(e: Exception, code: int) -> int:
    console.print(f"[red]error:[/] {e}")
    return code


# ---- report -----------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from m1bench.reports.load import load_report
    from m1bench.reports.write import write_report

    if args.check:
        bad = 0
        for p in args.paths:
            try:
                loaded = load_report(p)
                console.print(f"[green]ok[/] {loaded.where} (schema version {loaded.report['schema_version']}, "
                              f"{len(loaded.report['suites'])} suites, {len(loaded.samples or [])} samples)")
            except ReportError as e:
                bad += 1
                console.print(f"[red]invalid[/] {e}")
        return 1 if bad else 0
    if len(args.paths) != 1:
        return _fail(ValueError("give one run directory (records.jsonl + results.json) to write a report for"), 2)
    try:
        out = write_report(args.paths[0], reports_root=args.reports_dir, out_dir=args.output,
                           profiling=args.profiling or (), run_id=args.run_id)
    except (ReportError, FileNotFoundError) as e:
        return _fail(e, 2)
    print_written(out)
    return 0


def print_written(out: Path) -> None:
    console.print(f"report: {out / 'report.json'}\n        {out / 'report.md'}\n        {out / 'report.html'}")


# ---- table ------------------------------------------------------------------------------------
FORMATS = ("md", "html", "csv", "json")  # of `m1bench table`


def cmd_table(args: argparse.Namespace) -> int:
    from m1bench.reports.load import load_report
    from m1bench.reports.paper import load_mapping, load_table
    from m1bench.reports.table import caveat_notes, compare_rows, labels_for, parse_overrides, render

    fmt = args.format or (Path(args.output).suffix.lstrip(".").replace("markdown", "md") if args.output else "md")
    if fmt not in FORMATS:
        return _fail(ValueError(f"cannot tell the format from {args.output!r}: pass --format {'|'.join(FORMATS)}"), 2)
    try:
        table = load_table(args.paper)
        mapping = load_mapping(args.mapping, table=table)
        overrides = parse_overrides(args.map)
        unknown = sorted(set(overrides) - {r.task for r in table.rows})
        if unknown:
            raise ValueError(f"--map {unknown[0]!r}: no such task (tasks: {', '.join(r.task for r in table.rows)})")
        mapping.update(overrides)
        loaded = [load_report(p) for p in args.reports]
        reports, samples = [r.report for r in loaded], [r.samples for r in loaded]
        text = render(table, reports, mapping, fmt, samples)
    except (ReportError, ValueError) as e:
        return _fail(e, 2)
    for note in caveat_notes(compare_rows(table, reports, mapping, samples), labels_for(reports)):
        console.print(f"[yellow]warning:[/] not the paper's measurement: {note}")
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        console.print(f"table ({fmt}): {args.output}")
    else:
        sys.stdout.write(text)
    return 0


# ---- compare ----------------------------------------------------------------------------------
def _pct(x: float | None, signed: bool = False) -> str:
    return "—" if x is None else (f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}")


def comparison_rows(cmp: Any) -> list[list[str]]:
    rows = []
    for m in cmp.metrics:
        ci = "—" if m.ci95 is None else f"[{100 * m.ci95[0]:+.1f}, {100 * m.ci95[1]:+.1f}]"
        rows.append([m.suite, m.metric, "yes" if m.gated else "", _pct(m.baseline), _pct(m.candidate),
                     _pct(m.delta, signed=True), ci, m.test or "—", "—" if m.p_value is None else f"{m.p_value:.3g}",
                     str(m.n_shared), m.status + (f" ({m.note})" if m.note else "")])
    return rows


_HEADERS = ["suite", "metric", "gated", "baseline %", "candidate %", "Δ pts", "95% CI of Δ", "test", "p",
            "shared items", "status"]


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


_COMPUTE_HEADERS = ["suite", "per sample", "gated", "baseline", "candidate", "change", "95% CI of Δ", "p",
                    "shared problems", "status"]


def compute_rows(cmp: Any) -> list[list[str]]:
    """Mean generated tokens / FLOPs per sample, paired over the problems both answered."""
    rows = []
    for c in cmp.compute:
        ci = "—" if c.ci95 is None else f"[{c.ci95[0]:+.4g}, {c.ci95[1]:+.4g}]"
        limit = f"max +{100 * c.max_increase:g}%" if c.gated else ""
        rows.append([c.suite, c.quantity, limit, _num(c.baseline), _num(c.candidate),
                     "—" if c.relative is None else f"{100 * c.relative:+.1f}%", ci,
                     "—" if c.p_value is None else f"{c.p_value:.3g}", str(c.n_shared),
                     c.status + (f" ({c.note})" if c.note else "")])
    return rows


def comparison_markdown(cmp: Any) -> str:
    from m1bench.reports.doc import Section, Table, Text, render_md

    blocks: list[Any] = [Text(f"Baseline: `{cmp.baseline}`  \nCandidate: `{cmp.candidate}`  \n"
                              f"Tolerance {100 * cmp.tolerance:.1f} points, alpha {cmp.alpha}. "
                              f"**Verdict: {cmp.verdict}** (exit {cmp.exit_code}).")]
    blocks += [Text(f"- not comparable: {r}") for r in cmp.reasons]
    if cmp.metrics:
        blocks.append(Table(_HEADERS, comparison_rows(cmp), align=["l", "l", "c"] + ["r"] * 7 + ["l"]))
    if cmp.compute:
        blocks.append(Table(_COMPUTE_HEADERS, compute_rows(cmp), align=["l", "l", "c"] + ["r"] * 6 + ["l"],
                            caption="Compute: mean per sample, paired bootstrap over shared problems"))
    blocks += [Text(f"- ignored: {r}") for r in cmp.ignored]
    return render_md("m1bench compare", [Section("Result", blocks)])


def print_comparison(cmp: Any, out: Console) -> None:
    if cmp.metrics:
        t = RichTable(title=f"m1bench compare (tolerance {100 * cmp.tolerance:.1f} pts, alpha {cmp.alpha})")
        for h in _HEADERS:
            t.add_column(h, justify="left" if h in ("suite", "metric", "status", "test") else "right", overflow="fold")
        style = {"regression": "red", "improvement": "green"}
        for m, row in zip(cmp.metrics, comparison_rows(cmp)):
            t.add_row(*row, style=style.get(m.status) if m.gated else "dim")
        out.print(t)
    if cmp.compute:
        t = RichTable(title="compute per sample (paired over shared problems)")
        for h in _COMPUTE_HEADERS:
            t.add_column(h, justify="left" if h in ("suite", "per sample", "status") else "right", overflow="fold")
        for c, row in zip(cmp.compute, compute_rows(cmp)):
            t.add_row(*row, style="red" if c.status == "regression" else (None if c.gated else "dim"))
        out.print(t)
    for r in cmp.ignored:
        out.print(f"[dim]ignored: {r}[/]")
    for r in cmp.reasons:
        out.print(f"[yellow]not comparable:[/] {r}")
    color = {0: "green", 1: "red", 2: "yellow"}[cmp.exit_code]
    regressions = [f"{m.suite}:{m.metric}" for m in cmp.metrics if m.gated and m.status == "regression"]
    regressions += [f"{c.suite}:{c.quantity} {100 * c.relative:+.1f}%" for c in cmp.compute if c.status == "regression"]
    why = f": {', '.join(regressions)}" if regressions else ""
    out.print(f"[bold {color}]verdict: {cmp.verdict}{why}[/] (exit {cmp.exit_code})")


def cmd_compare(args: argparse.Namespace) -> int:
    from m1bench.reports.compare import INCOMPARABLE, compare
    from m1bench.reports.load import load_report

    try:
        base, cand = load_report(args.baseline), load_report(args.candidate)
    except ReportError as e:
        console.print(f"[yellow]not comparable:[/] {e}")
        return INCOMPARABLE
    cmp = compare(base, cand, tolerance=args.tolerance, alpha=args.alpha, metrics=args.metric,
                  allow_incomplete=args.allow_incomplete, max_token_increase=args.max_token_increase,
                  max_flops_increase=args.max_flops_increase)
    print_comparison(cmp, console)
    if args.json:
        from m1bench.reports.schema import check

        doc = cmp.to_json()
        check(doc, "comparison.v1.schema.json", args.json)
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if args.md:
        with open(args.md, "a", encoding="utf-8") as f:  # append: $GITHUB_STEP_SUMMARY collects several steps
            f.write(comparison_markdown(cmp))
    return cmp.exit_code


# ---- parsers ----------------------------------------------------------------------------------
def percent(text: str) -> float:
    """'10%' or '10' -> 0.10."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 10%, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative percentage, got {text!r}")
    return value / 100


def add_parser(sub: Any) -> None:
    from m1bench.reports.compare import DEFAULT_ALPHA, DEFAULT_TOLERANCE

    p = sub.add_parser("report", help="write a run's report (runs/reports/<model>/<run-id>/), or --check reports",
                       description="Write report.json (schema-versioned), samples.jsonl, report.md and a "
                       "self-contained report.html with plots for a run directory (records.jsonl + results.json); "
                       "with --check, validate existing reports instead.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="run directory (or, with --check, reports to validate)")
    p.add_argument("--check", action="store_true", help="validate reports: schema version, every field, samples.jsonl")
    p.add_argument("--reports-dir", help="root of the report tree (default: $M1BENCH_REPORTS_DIR or ./runs/reports)")
    p.add_argument("-o", "--output", help="write into this directory instead of <reports-dir>/<model>/<run-id>/")
    p.add_argument("--profiling", action="append", metavar="PATH",
                   help="profiling JSON (with its PNG plots beside it) or a directory of them; repeatable")
    p.add_argument("--run-id", help="run id (default: <UTC time>-<run name>)")
    p.set_defaults(func=lambda a: sys.exit(cmd_report(a)))

    t = sub.add_parser("table", help="the M1 paper's Table 2 with measured values beside the published ones",
                       description="Render the paper's table (all published columns) with each report's measured "
                       "value, 95% CI and n, the delta to MiniMax-M1-80K/40K and whether the CI contains the "
                       "published value. Reports: report directories, report.json files or run directories.")
    t.add_argument("reports", nargs="+", metavar="REPORT")
    t.add_argument("--format", choices=FORMATS, help="default: from -o's suffix, else md (csv and json: one "
                   "line per row and report, raw numbers)")
    t.add_argument("-o", "--output", help="write here instead of stdout")
    t.add_argument("--paper", help="published table JSON (default: reports/paper/m1_table2.json)")
    t.add_argument("--mapping", help="row -> suite/metric mapping JSON (default: reports/paper/m1_table2_mapping.json)")
    t.add_argument("--map", action="append", metavar="TASK=SUITE[:METRIC]", help="measure a row with this suite/metric")
    t.set_defaults(func=lambda a: sys.exit(cmd_table(a)))

    c = sub.add_parser("compare", help="gate a candidate report against a baseline (exit 0 pass, 1 regression, 2 not comparable)",
                       description=__import__("m1bench.reports.compare", fromlist=["x"]).__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("baseline")
    c.add_argument("candidate")
    c.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"absolute score drop (fraction, {DEFAULT_TOLERANCE} = {100 * DEFAULT_TOLERANCE:g} points) a "
                   "gated metric may lose before it can count as a regression")
    c.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="significance level of the paired test")
    c.add_argument("--metric", action="append", metavar="PATTERN",
                   help="gate on these metrics (e.g. 'pass@1', 'aime2024:avg@*'); default: each suite's primary metric")
    c.add_argument("--allow-incomplete", action="store_true",
                   help="gate on a suite that scored fewer samples than planned (pairs what both scored); "
                   "default: such a run is not comparable (exit 2)")
    for flag, what in (("--max-token-increase", "generated tokens"), ("--max-flops-increase", "FLOPs")):
        c.add_argument(flag, type=percent, metavar="PCT",
                       help=f"fail (exit 1) when the mean {what} per sample grows by more than PCT (e.g. 10%%) "
                       "and the paired test says it grew; default: shown, not gated")
    c.add_argument("--json", metavar="FILE", help="write the comparison as JSON")
    c.add_argument("--md", metavar="FILE", help="append the comparison as Markdown (e.g. $GITHUB_STEP_SUMMARY)")
    c.set_defaults(func=lambda a: sys.exit(cmd_compare(a)))
