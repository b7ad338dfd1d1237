"""report.json -> the sections of report.md / report.html: results, plots, the paper rows this run
measured, counts/tokens/time, what makes it comparable, software and hardware, profiling."""
from __future__ import annotations

import json
from typing import Any

from m1bench.reports.doc import Details, Plot, Section, Table, Text, render_html, render_md

_MAX_INLINE_JSON = 20000


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{100 * x:.1f}"


def _ci(ci: list[float] | None) -> str | None:
    return None if ci is None else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _secs(x: float | None) -> str | None:
    return None if x is None else f"{x:.3g}"


def title(report: dict[str, Any]) -> str:
    return f"m1bench report — {report['model']['name']} — {report['run_id']}"


def results_section(report: dict[str, Any]) -> Section:
    rows = []
    for name, s in report["suites"].items():
        for m in s["metrics"]:
            rows.append([name, m["metric"] + (" (primary)" if m["metric"] == s["primary_metric"] else ""),
                         _pct(m["value"]), _ci(m["ci95"]), m["n_problems"], m["n_samples"]])
    t = Table(["suite", "metric", "value (%)", "95% CI (%)", "problems", "samples"], rows, align=["l", "l", "r", "r", "r", "r"],
              caption="Metrics; confidence intervals by percentile bootstrap over problems unless stated in report.json")
    return Section("Results", [t])


def counts_section(report: dict[str, Any]) -> Section:
    rows = []
    for name, s in report["suites"].items():
        c, tok, t = s["counts"], s["tokens"], s["time"]
        rows.append([name, c["planned"], c["graded"], c["request_errors"], c["grading_errors"], c["truncated"],
                     c.get("truncated_in_reasoning"), c.get("secrets_redacted"), c["empty_answers"], tok["prompt"],
                     tok["completion"],
                     None if tok.get("mean_completion") is None else f"{tok['mean_completion']:.1f}",
                     _secs(t["generation_s"]), _secs(t["mean_ttft_s"]), _secs(t["mean_tpot_s"])])
    t = Table(["suite", "planned", "graded", "request errors", "grading errors", "truncated", "in reasoning",
               "secrets redacted", "empty answers",
               "prompt tokens", "completion tokens", "mean completion", "generation wall s", "mean TTFT s", "mean TPOT s"],
              rows, caption=f"Counts, tokens and time (run wall time {_secs(report['run']['wall_s'])} s)")
    return Section("Errors, truncation, tokens and time", [t])


def comparability_section(report: dict[str, Any]) -> Section:
    rows = []
    for name, s in report["suites"].items():
        d, f, p, sp = s["dataset"], s["filters"], s["prompts"], s["sampling"]
        filt = ", ".join(f"{k}={v}" for k, v in f.items() if v not in (None, [], {})) or "none"
        rows.append([name, s["suite_version"], d["id"], d.get("revision"), d["content_hash"], filt,
                     (p["messages_sha256"] or "")[:16] or None, (p["template_sha256"] or "")[:16] or None,
                     f"T={sp['temperature']} top_p={sp['top_p']} top_k={sp['top_k']} max_tokens={sp['max_tokens']}",
                     s["k"], s["seeds"]["base"], s["grader"]])
    t = Table(["suite", "version", "dataset", "revision", "content hash", "filters", "prompts sha256", "template sha256",
               "sampling", "k", "seed", "grader"], rows, align=["l"] * 12)
    blocks: list[Any] = [t]
    for name, s in report["suites"].items():
        excluded = s["filters"]["excluded"]
        if excluded:
            blocks.append(Table(["excluded id", "reason"], [[e["id"], e["reason"]] for e in excluded],
                                caption=f"{name}: excluded problems", align=["l", "l"]))
        for sp in s["prompts"]["system_prompts"]:
            blocks.append(Text(f"{name} system prompt ({sp['sha256'][:12]}): {sp['text']}"))
    return Section("What makes this comparable", blocks)


def run_section(report: dict[str, Any]) -> Section:
    m, model, run = report["m1bench"], report["model"], report["run"]
    rows = [["run id", report["run_id"]], ["created", report["created"]],
            ["m1bench", f"{m['version']} @ {m['commit'] or 'unknown'}" + (" (dirty)" if m["dirty"] else "")],
            ["config", run["config_source"]], ["run name", run["name"]], ["concurrency", run["concurrency"]],
            ["model", model["name"]], ["checkpoint", model["checkpoint"]], ["checkpoint hash", model["checkpoint_hash"]],
            ["records", run["records"]]]
    rows += [[f"engine.{k}", json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in report["engine"].items()]
    blocks: list[Any] = [Table(["field", "value"], rows, align=["l", "l"])]
    if model["config"]:
        blocks.append(Details("model config.json", json.dumps(model["config"], indent=2)))
    return Section("Run, engine and model", blocks)


def environment_section(report: dict[str, Any]) -> Section:
    hw = report["hardware"]
    gpus = ", ".join(f"{g['name']} ({g['memory_gb']} GB)" for g in hw["gpus"]) or "none"
    rows = [["python", f"{report['python']['implementation']} {report['python']['version']}"],
            ["platform", hw["platform"]], ["cpu", f"{hw['cpu']} × {hw['cpu_count']}"], ["memory", f"{hw['memory_gb']} GB"],
            ["gpus", gpus], ["gpu driver", hw["gpu_driver"]], ["cuda", hw["cuda"]]]
    rows += [[f"package {k}", v or "not installed"] for k, v in report["packages"].items()]
    return Section("Software and hardware", [Table(["field", "value"], rows, align=["l", "l"])])


def _flat_table(data: Any) -> Table | None:
    """A list of flat records or a flat mapping as a table; None for anything nested."""
    scalar = (str, int, float, bool, type(None))
    if isinstance(data, dict) and data and all(isinstance(v, scalar) for v in data.values()):
        return Table(["field", "value"], [[k, v] for k, v in data.items()], align=["l", "l"])
    if isinstance(data, list) and data and all(isinstance(r, dict) and all(isinstance(v, scalar) for v in r.values()) for r in data):
        cols = list(dict.fromkeys(k for r in data for k in r))
        return Table(cols, [[r.get(c) for c in cols] for r in data[:200]])
    return None


def _score_cell(cell: dict[str, Any] | None) -> str | None:
    return None if not cell or cell.get("score") is None else f"{100 * cell['score']:.1f} (n={cell['n']})"


def breakdown_blocks(name: str, b: dict[str, Any]) -> list[Any]:
    """MRCR-style breakdown: score per token bin × needle count, and the named aggregates with
    their definitions (which needles, which bins, how they are combined)."""
    needles = sorted({n for cells in b.get("per_bin_needles", {}).values() for n in cells}, key=int)
    rows = [[label, *[_score_cell(cells.get(n)) for n in needles], _score_cell(b["per_bin"].get(label))]
            for label, cells in b.get("per_bin_needles", {}).items()]
    rows.append(["all", *[_score_cell(b["per_needles"].get(n)) for n in needles], _score_cell(b.get("overall"))])
    blocks: list[Any] = [Table(["bin", *[f"{n} needles" for n in needles], "all"], rows,
                               caption=f"{name}: {b.get('metric', 'score')}, % (samples)")]
    aggs = [[agg, _score_cell(cell), cell.get("definition")] for agg, cell in b.get("aggregates", {}).items()]
    if aggs:
        blocks.append(Table(["aggregate", "score % (samples)", "definition"], aggs, align=["l", "r", "l"],
                            caption=f"{name}: aggregates"))
    return blocks


def extras_section(report: dict[str, Any]) -> Section | None:
    blocks: list[Any] = []
    for name, s in report["suites"].items():
        extra = dict(s["extra"])
        if "breakdown" in extra:
            blocks += breakdown_blocks(name, extra.pop("breakdown"))
        for key, value in extra.items():
            blocks.append(Details(f"{name}: {key}", json.dumps(value, indent=1)[:_MAX_INLINE_JSON]))
    return Section("Suite details", blocks) if blocks else None


def profiling_section(report: dict[str, Any]) -> Section | None:
    if not report["profiling"]:
        return None
    blocks: list[Any] = []
    for entry in report["profiling"]:
        blocks.append(Text(f"{entry['name']} (from {entry['source']})"))
        blocks += [Plot(p["file"], p["title"]) for p in entry["plots"]]
        table = _flat_table(entry["data"])
        if table is not None:
            blocks.append(table)
        else:
            text = json.dumps(entry["data"], indent=1)
            blocks.append(Details(f"{entry['name']} data", text if len(text) <= _MAX_INLINE_JSON
                                  else text[:_MAX_INLINE_JSON] + "\n… (truncated; full data in report.json)"))
    return Section("Profiling", blocks)


def _sci(x: float | None) -> str | None:
    return None if x is None else f"{x:.3g}"


def _dist_row(label: str, d: dict[str, float] | None) -> list[Any]:
    return [label, *(None if d is None else _sci(d[k]) for k in ("mean", "p10", "p50", "p90", "max", "total"))]


def counterfactual_line(suite: str, c: dict[str, Any]) -> str | None:
    """"this aime2024 run: m1 = 31% of deepseek-r1's FLOPs" for the served architecture and, when that
    is not M1, for M1 on the same tokens."""
    total = {r["architecture"]: r["flops_total"] for r in c["counterfactual"]}
    ref = total.get("deepseek-r1")
    if not ref:
        return None
    names = [c["architecture"]] + (["m1"] if c["architecture"] != "m1" else [])
    parts = [f"{n} = {100 * total[n] / ref:.3g}% of deepseek-r1's FLOPs" for n in names if n in total]
    return f"this {suite} run: " + "; ".join(parts) + " (the same prompts and generated tokens priced on each)"


def compute_section(report: dict[str, Any], plots: list[dict[str, str]]) -> Section | None:
    """Tokens and FLOPs per sample, the score against a generation budget and against FLOPs, and the
    same tokens priced on other architectures."""
    computed = {name: s["compute"] for name, s in report["suites"].items() if s.get("compute")}
    if not computed:
        return None
    blocks: list[Any] = [Plot(p["file"], p["title"]) for p in plots]
    for name, c in computed.items():
        t = c["tokens"]
        rows = [_dist_row(f"{k} tokens", t.get(k)) for k in ("prompt", "generated", "reasoning", "answer")]
        rows.append(_dist_row("FLOPs", c["flops"]))
        blocks.append(Table(["per sample", "mean", "p10", "p50", "p90", "max", "total"], rows,
                            caption=f"{name}: tokens and FLOPs per sample on {c['architecture'] or 'an unknown architecture'} "
                                    f"({c['architecture_source']})"))
        if c["counterfactual"]:
            blocks.append(Table(["architecture", "FLOPs total", "FLOPs per problem", f"{c['architecture']} / this"],
                                [[r["architecture"], _sci(r["flops_total"]), _sci(r["flops_per_problem"]),
                                  None if r["served_over_this"] is None else f"{100 * r['served_over_this']:.0f}%"]
                                 for r in c["counterfactual"]],
                                caption=f"{name}: the run's tokens priced on other architectures"))
            line = counterfactual_line(name, c)
            if line:
                blocks.append(Text(line))
        blocks.append(Text(f"{name}: {c['flops_note']}; {c['curve_rule']}."))
    return Section("Compute", blocks)


def paper_section(report: dict[str, Any]) -> Section | None:
    """The rows of the paper's table this run measured (none for runs on non-paper suites)."""
    from m1bench.reports.paper import load_mapping, load_table
    from m1bench.reports.table import compare_rows, display_table, thinking_budgets

    table = load_table()
    rows = [r for r in compare_rows(table, [report], load_mapping(table=table)) if r.measured[0] is not None]
    if not rows:
        return None
    return Section("Against the paper (Table 2)", [
        display_table(table, rows, [report["model"]["name"]], thinking_budgets([report])),
        Text(f"Published values from {table.source['url']}; Δ = measured − published (points); "
             "CI ∋ = the measured 95% CI contains the published value."),
    ])


def sections(report: dict[str, Any]) -> list[Section]:
    from m1bench.reports.plots import COMPUTE_PLOTS

    secs = [results_section(report)]
    general = [p for p in report["plots"] if p["name"] not in COMPUTE_PLOTS]
    if general:
        secs.append(Section("Plots", [Plot(p["file"], p["title"]) for p in general]))
    secs += [s for s in (paper_section(report),) if s is not None]
    secs += [s for s in (compute_section(report, [p for p in report["plots"] if p["name"] in COMPUTE_PLOTS]),) if s is not None]
    secs += [s for s in (extras_section(report),) if s is not None]
    secs += [counts_section(report), comparability_section(report), run_section(report), environment_section(report)]
    secs += [s for s in (profiling_section(report),) if s is not None]
    return secs


def report_markdown(report: dict[str, Any]) -> str:
    return render_md(title(report), sections(report))


def report_html(report: dict[str, Any], report_dir) -> str:
    return render_html(title(report), sections(report), base_dir=report_dir)
