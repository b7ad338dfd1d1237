"""The paper's table with measured values beside the published ones: for each row, the value a
report measured (with its 95% CI and n), every published column, the delta to each M1 column and
whether the measured CI contains the published value; below it, what each measured row cost (mean
generated tokens per sample, FLOPs per problem). Rendered as Markdown, HTML or CSV."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any

import numpy as np

from m1bench.reports.doc import Section, Table, Text, render_html, render_md, table_csv
from m1bench.reports.paper import Measure, Official, PaperTable, Row

Mapping = dict[str, list[Measure]]
COMPACT_CSS = ("body{max-width:1360px}table.m1-table{font-size:.74rem}"
               "table.m1-table th,table.m1-table td{padding:.2rem .3rem}")
NOT_OFFICIAL = "†"  # marks a measured value that is not the paper's measurement (other data, fewer samples)
COMPUTE_NOTE = ("Cost: generated tokens = completion tokens per answered sample, averaged over samples; "
                "FLOPs / problem = analytic forward FLOPs of one attempt on the served architecture "
                "(the FLOPs of a problem's samples summed and divided by k, averaged over problems), "
                "from the report's compute (schema 2); '—': the report has none (schema 1, or an unknown architecture).")
Samples = list[dict[str, Any]] | None  # a report's per-sample records, None when it came without them


@dataclass
class Measured:
    suite: str
    metric: str
    value: float  # percent
    ci95: tuple[float, float] | None  # percent
    n_problems: int | None
    n_samples: int | None
    delta: dict[str, float | None] = field(default_factory=dict)  # M1 column id -> measured - published (points)
    contains: dict[str, bool | None] = field(default_factory=dict)  # M1 column id -> published value inside the CI
    caveats: list[str] = field(default_factory=list)  # why this is not the paper's measurement; empty: it is
    generated_tokens: float | None = None  # mean completion tokens per answered sample
    flops_per_problem: float | None = None  # FLOPs of one attempt: a problem's samples' FLOPs / k, mean over problems


@dataclass
class ComparedRow:
    row: Row
    measured: list[Measured | None]  # one per report


def parse_overrides(specs: list[str] | None) -> Mapping:
    """`TASK=SUITE:METRIC` (METRIC optional: the suite's primary metric) -> mapping entries."""
    out: Mapping = {}
    for spec in specs or []:
        task, sep, target = spec.partition("=")
        if not sep or not target:
            raise ValueError(f"--map {spec!r}: expected TASK=SUITE[:METRIC]")
        suite, _, metric = target.partition(":")
        out.setdefault(task.strip(), []).append(Measure(suite.strip(), metric.strip() or None))
    return out


def find_measure(report: dict[str, Any], measures: list[Measure]) -> tuple[str, dict[str, Any]] | None:
    """The first (suite, metric) of the report that a measure matches, in preference order."""
    for want in measures:
        for name, s in report["suites"].items():
            if not fnmatch(name.lower(), want.suite.lower()):
                continue
            data_id = str(s["dataset"].get("id") or "").lower()
            if want.dataset and not any(fnmatch(data_id, p.lower()) for p in want.dataset):
                continue
            metric_pat = want.metric
            for m in s["metrics"]:
                wanted = (m["metric"] == s["primary_metric"]) if metric_pat is None else fnmatch(m["metric"].lower(), metric_pat.lower())
                if wanted and m["value"] is not None:
                    return name, m
    return None


def caveats(official: Official | None, mv: Measured, suite: dict[str, Any]) -> list[str]:
    """How a measurement departs from the paper's: another problem count, rows that are no known copy
    of the paper's set (content hash, where the suite records one), fewer samples per problem than k."""
    if official is None:
        return []
    out = []
    if mv.n_problems is not None and mv.n_problems not in official.problems:
        out.append(f"{mv.n_problems} problems, the paper's set has {' or '.join(map(str, official.problems))}")
    digest = (suite.get("dataset") or {}).get("content_hash")
    if official.content_hashes and digest and digest not in official.content_hashes:
        out.append(f"data content hash {digest} is no known copy of the paper's set")
    k = suite.get("k") or (mv.n_samples // mv.n_problems if mv.n_samples and mv.n_problems else None)
    if official.k and k and k < official.k:
        out.append(f"{k} samples per problem, the paper's k is {official.k}")
    return out


def caveat_notes(rows: list[ComparedRow], labels: list[str]) -> list[str]:
    return [f"{cr.row.task} ({lbl}): " + "; ".join(mv.caveats)
            for cr in rows for lbl, mv in zip(labels, cr.measured) if mv and mv.caveats]


def cost(suite: dict[str, Any], name: str, n_problems: int | None, samples: Samples) -> tuple[float | None, float | None]:
    """(mean generated tokens, FLOPs per problem) of a suite: from its compute (schema 2); without one
    (schema 1) the tokens from the samples' completions and no FLOPs."""
    compute = suite.get("compute")
    if compute:
        generated = (compute["tokens"].get("generated") or {}).get("mean")
        flops = compute["flops"]["total"] / (n_problems * suite["k"]) if compute["flops"] and n_problems else None
        return generated, flops
    tokens = [s["completion"]["completion_tokens"] for s in samples or [] if s["suite"] == name and s.get("completion")]
    return (float(np.mean(tokens)) if tokens else None), None


def compare_rows(table: PaperTable, reports: list[dict[str, Any]], mapping: Mapping,
                 samples: list[Samples] | None = None) -> list[ComparedRow]:
    m1 = [(c.id, table.column(c.id)) for c in table.m1_columns]
    samples = samples or [None] * len(reports)
    out = []
    for row in table.rows:
        measured: list[Measured | None] = []
        for report, recs in zip(reports, samples):
            hit = find_measure(report, mapping.get(row.task, []))
            if hit is None:
                measured.append(None)
                continue
            suite, m = hit
            ci = (100 * m["ci95"][0], 100 * m["ci95"][1]) if m["ci95"] is not None else None
            mv = Measured(suite, m["metric"], 100 * m["value"], ci, m["n_problems"], m["n_samples"])
            for col_id, i in m1:
                pub = row.values[i]
                mv.delta[col_id] = None if pub is None else mv.value - pub
                mv.contains[col_id] = None if pub is None or ci is None else (ci[0] - 1e-9 <= pub <= ci[1] + 1e-9)
            mv.caveats = caveats(row.official, mv, report["suites"][suite])
            mv.generated_tokens, mv.flops_per_problem = cost(report["suites"][suite], suite, mv.n_problems, recs)
            measured.append(mv)
        out.append(ComparedRow(row, measured))
    return out


def labels_for(reports: list[dict[str, Any]]) -> list[str]:
    names = [r["model"]["name"] for r in reports]
    return [f"{n} ({r['run_id']})" if names.count(n) > 1 else n for n, r in zip(names, reports)]


def _signed(x: float | None) -> str | None:
    return None if x is None else f"{x:+.1f}"


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{x:.1f}"


def _num(x: float | None, spec: str) -> str | None:
    return None if x is None else format(x, spec)


def _contains(x: bool | None) -> str | None:
    return None if x is None else ("yes" if x else "no")


def _short(col_name: str) -> str:
    return col_name.removeprefix("MiniMax-")


def display_table(table: PaperTable, rows: list[ComparedRow], labels: list[str], thinking: list[str]) -> Table:
    """Paper layout: category, task, measured (value, CI, n) per report, then the published columns;
    each M1 column is followed by the delta and CI check of every report."""
    many = len(labels) > 1
    tag = (lambda lbl: f" [{lbl}]") if many else (lambda lbl: "")
    headers = ["Category", "Task"]
    for lbl in labels:
        headers += [f"Measured{tag(lbl) or f' ({lbl})'}", f"95% CI{tag(lbl)}", f"n{tag(lbl)}"]
    for c in table.columns:
        headers.append(c.name)
        if c.m1:
            for lbl in labels:
                headers += [f"Δ {_short(c.name)}{tag(lbl)}", f"CI ∋ {_short(c.name)}{tag(lbl)}"]
    body = []
    think_row = ["", "Extended Thinking"]
    for t in thinking:
        think_row += [t, None, None]
    for c in table.columns:
        think_row.append(c.extended_thinking)
        if c.m1:
            think_row += [None, None] * len(labels)
    body.append(think_row)
    last_category = None
    for cr in rows:
        line = [cr.row.category if cr.row.category != last_category else "", cr.row.task]
        last_category = cr.row.category
        for mv in cr.measured:
            if mv is None:
                line += [None, None, None]
            else:
                ci = f"[{mv.ci95[0]:.1f}, {mv.ci95[1]:.1f}]" if mv.ci95 else None
                n = None if mv.n_problems is None else (f"{mv.n_problems}" + (f" × {mv.n_samples // mv.n_problems}"
                                                                             if mv.n_samples and mv.n_problems and mv.n_samples != mv.n_problems else ""))
                line += [f"{mv.value:.1f}" + (f" {NOT_OFFICIAL}" if mv.caveats else ""), ci, n]
        for i, c in enumerate(table.columns):
            line.append(cr.row.cells[i])
            if c.m1:
                for mv in cr.measured:
                    line += [None, None] if mv is None else [_signed(mv.delta[c.id]), _contains(mv.contains[c.id])]
        body.append(line)
    align = ["l", "l"] + ["r"] * (len(headers) - 2)
    return Table(headers, body, align=align)


def cost_table(rows: list[ComparedRow], labels: list[str]) -> Table:
    """The measured rows' cost, one pair of columns per report: a table of its own below Table 2,
    which has no width to spare."""
    tag = (lambda lbl: f" [{lbl}]") if len(labels) > 1 else (lambda lbl: "")
    headers = ["Task"] + [h for lbl in labels for h in (f"Generated tokens / sample{tag(lbl)}", f"FLOPs / problem{tag(lbl)}")]
    body = []
    for cr in rows:
        if any(cr.measured):
            line: list[Any] = [cr.row.task]
            for mv in cr.measured:
                line += [None, None] if mv is None else [_num(mv.generated_tokens, ".1f"), _num(mv.flops_per_problem, ".3e")]
            body.append(line)
    return Table(headers, body, caption="Cost of the measured rows")


def csv_table(table: PaperTable, rows: list[ComparedRow], labels: list[str]) -> Table:
    """One line per row and report, raw numbers (percent), for spreadsheets and scripts."""
    m1 = table.m1_columns
    headers = ["category", "task", "report", "suite", "metric", "measured", "ci95_low", "ci95_high", "n_problems",
               "n_samples", "generated_tokens_per_sample", "flops_per_problem"]
    for c in m1:
        headers += [f"delta_{c.id}", f"ci_contains_{c.id}"]
    headers += [f"published_{c.id}" for c in table.columns] + ["not_official"]
    out = []
    for cr in rows:
        for lbl, mv in zip(labels, cr.measured):
            line: list[Any] = [cr.row.category, cr.row.task, lbl]
            if mv is None:
                line += [None] * 9 + [None, None] * len(m1)
            else:
                line += [mv.suite, mv.metric, round(mv.value, 4), *(round(x, 4) for x in mv.ci95 or (None, None)),
                         mv.n_problems, mv.n_samples, mv.generated_tokens, mv.flops_per_problem]
                for c in m1:
                    d = mv.delta[c.id]
                    line += [None if d is None else round(d, 4), mv.contains[c.id]]
            line += list(cr.row.values) + ["; ".join(mv.caveats) if mv and mv.caveats else None]
            out.append(line)
    return Table(headers, out)


def thinking_budgets(reports: list[dict[str, Any]]) -> list[str]:
    return [f"{r['run']['sampling']['max_tokens']} tok" for r in reports]


def sections(table: PaperTable, reports: list[dict[str, Any]], mapping: Mapping,
             samples: list[Samples] | None = None) -> list[Section]:
    rows = compare_rows(table, reports, mapping, samples)
    labels = labels_for(reports)
    src = table.source
    notes = [Text("Published values: " + "; ".join(f"{s['name']} ({s['url']})" for s in src["sources"])
                  + f", retrieved {src['retrieved']}. Unit: percent. '--': not reported.")]
    notes += [Text(f"{NOT_OFFICIAL} not the paper's measurement: {note}") for note in caveat_notes(rows, labels)]
    notes += [Text(f"{mark}: {note}") for mark, note in src.get("footnotes", {}).items()]
    notes.append(Text("Measured: the report's metric (×100) with its 95% confidence interval and n = problems × samples; "
                      "Δ = measured − published (points); CI ∋: whether the measured 95% CI contains the published value."))
    for lbl, r in zip(labels, reports):
        used = [f"{cr.row.task} ← {mv.suite}:{mv.metric}" for cr in rows for mv in [cr.measured[labels.index(lbl)]] if mv]
        notes.append(Text(f"{lbl}: run {r['run_id']}, model {r['model']['name']} "
                          f"(checkpoint {r['model']['checkpoint_hash'] or 'n/a'}); measured rows: "
                          + (", ".join(used) if used else "none")))
    return [Section(table.title, [display_table(table, rows, labels, thinking_budgets(reports)), *notes,
                                  cost_table(rows, labels), Text(COMPUTE_NOTE)])]


def render(table: PaperTable, reports: list[dict[str, Any]], mapping: Mapping, fmt: str,
           samples: list[Samples] | None = None) -> str:
    if fmt in ("csv", "json"):  # the same lines: raw numbers for spreadsheets and scripts
        lines = csv_table(table, compare_rows(table, reports, mapping, samples), labels_for(reports))
        if fmt == "json":
            return json.dumps([dict(zip(lines.headers, row)) for row in lines.rows], indent=1) + "\n"
        return table_csv(lines)
    secs = sections(table, reports, mapping, samples)
    title = "m1bench: measured vs published"
    if fmt == "md":
        return render_md(title, secs)
    if fmt == "html":  # 18+ columns: tighter cells so the table fits a 1400 px window without scrolling sideways
        return render_html(title, secs).replace("</style>", COMPACT_CSS + "</style>", 1)
    raise ValueError(f"unknown format {fmt!r} (md, html, csv, json)")
