"""The report's figures (matplotlib, PNG): metrics with their 95% CIs, per-problem success rates,
completion lengths against the generation limit, score against a generation budget and against
FLOPs per problem (runs that recorded compute), and expert-utilisation heatmaps when a run
recorded routing statistics."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from m1bench.reports.routing import plot_heatmap  # noqa: E402

DPI = 110
BUDGET_CURVE_TITLE = "Score vs generation budget B (solved at B only if the sample finished within B tokens)"
FLOPS_CURVE_TITLE = "Score vs FLOPs per sample (solved only if the sample finished within the FLOPs)"
COMPUTE_PLOTS = ("budget_curve", "flops_curve")


def _save(fig, path: Path, footer: str, empty: str | None = None) -> None:
    """empty: why the chart has nothing to show, written across it (and into the PNG's Description)
    so an empty chart is not read as a blank one."""
    fig.text(0.01, 0.01, footer, fontsize=6.5, color="0.4", ha="left", va="bottom")
    if empty:
        fig.text(0.5, 0.5, empty, fontsize=11, color="#B03030", ha="center", va="center", wrap=True,
                 bbox={"facecolor": "white", "edgecolor": "#B03030"})
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Description": empty} if empty else None)
    plt.close(fig)


def metrics_plot(report: dict[str, Any], path: Path, footer: str) -> bool:
    listed = [(f"{suite} {m['metric']}", m) for suite, s in report["suites"].items() for m in s["metrics"]]
    rows = [(label, m) for label, m in listed if m["value"] is not None]
    if not listed:
        return False
    empty = None
    if not rows:  # every metric missing: draw their names, say why there are no bars
        rows, empty = listed, "No metric has a value: no sample was graded."
    elif all(m["value"] == 0 for _, m in rows):
        empty = "Every metric is 0.0%: no sample was graded correct."
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(rows) + 1.4))
    ys = list(range(len(rows)))[::-1]
    values = [100 * (m["value"] or 0.0) for _, m in rows]
    ax.barh(ys, values, color="#4C72B0", height=0.6)
    for y, (_, m) in zip(ys, rows):
        if m["ci95"] is not None:
            lo, hi = 100 * m["ci95"][0], 100 * m["ci95"][1]
            ax.plot([lo, hi], [y, y], color="black", lw=1.5)
            ax.plot([lo, lo], [y - 0.15, y + 0.15], color="black", lw=1.5)
            ax.plot([hi, hi], [y - 0.15, y + 0.15], color="black", lw=1.5)
    ax.set_yticks(ys, [label for label, _ in rows], fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("score (%), bars: value, whiskers: 95% confidence interval")
    ax.set_title(f"Metrics — {report['model']['name']}")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path, footer, empty)
    return True


def problem_rate_plot(report: dict[str, Any], path: Path, footer: str) -> bool:
    suites = {name: s["per_problem"] for name, s in report["suites"].items() if s["per_problem"]}
    if not suites:
        return False
    rates = [[p["correct"] / p["n"] for p in pp.values() if p["n"]] for pp in suites.values()]
    _histogram(rates, list(suites), [i / 10 for i in range(11)], "fraction of a problem's samples that were correct",
               "problems", "Per-problem success rate", path, footer)
    return True


def completion_tokens_plot(report: dict[str, Any], samples: list[dict[str, Any]], path: Path, footer: str) -> bool:
    lengths: dict[str, list[int]] = defaultdict(list)
    for rec in samples:
        if rec.get("completion"):
            lengths[rec["suite"]].append(rec["completion"]["completion_tokens"])
    if not lengths:
        return False
    _histogram(list(lengths.values()), list(lengths), 20,
               "completion tokens per sample (dashed: max_tokens; samples there were truncated)", "samples",
               "Completion length", path, footer,
               marks=[report["suites"][name]["sampling"]["max_tokens"] for name in lengths])
    return True


def _histogram(data, labels, bins, xlabel: str, ylabel: str, title: str, path: Path, footer: str, marks=()) -> None:
    """One histogram per suite on shared axes; `marks` are dashed vertical lines (limits)."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.hist(data, bins=bins, label=labels, rwidth=0.9)
    for x in marks:
        ax.axvline(x, color="#C44E52", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path, footer)


def _curve_plot(report: dict[str, Any], curve: str, x_key: str, xlabel: str, title: str, path: Path,
                footer: str, limit_key: str | None = None) -> bool:
    """One step line per suite: score (%) against a per-sample budget (log axis)."""
    suites = {name: s["compute"][curve] for name, s in report["suites"].items()
              if (s.get("compute") or {}).get(curve)}
    if not suites:
        return False
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for name, c in suites.items():
        ax.step(c[x_key], [100 * v for v in c["score"]], where="post", label=name, lw=1.6)
        if limit_key:
            ax.axvline(report["suites"][name]["sampling"][limit_key], color="#C44E52", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("score (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    _save(fig, path, footer)
    return True


def budget_curve_plot(report: dict[str, Any], path: Path, footer: str) -> bool:
    return _curve_plot(report, "budget_curve", "budget_tokens",
                       "generation budget B (tokens per sample; dashed: max_tokens)",
                       "Score vs generation budget: a sample counts as solved at B only if it finished within B tokens",
                       path, footer, limit_key="max_tokens")


def flops_curve_plot(report: dict[str, Any], path: Path, footer: str) -> bool:
    return _curve_plot(report, "flops_curve", "flops_per_problem", "FLOPs budget per sample (analytic forward FLOPs)",
                       "Score vs FLOPs: a sample counts as solved only if it finished within the FLOPs budget",
                       path, footer)


def make_plots(report: dict[str, Any], samples: list[dict[str, Any]], out_dir: Path) -> list[dict[str, str]]:
    """Write the plots under out_dir/plots/; returns the report's `plots` entries (paths relative to out_dir)."""
    m = report["m1bench"]
    footer = (f"m1bench {m['version']} @ {(m['commit'] or 'unknown')[:10]}{'-dirty' if m['dirty'] else ''} · "
              f"run {report['run_id']} · model {report['model']['name']}")
    made = []
    for name, title, draw in (
        ("metrics", "Metrics with 95% confidence intervals", lambda p: metrics_plot(report, p, footer)),
        ("problem_rates", "Per-problem success rate", lambda p: problem_rate_plot(report, p, footer)),
        ("completion_tokens", "Completion length", lambda p: completion_tokens_plot(report, samples, p, footer)),
        ("budget_curve", BUDGET_CURVE_TITLE, lambda p: budget_curve_plot(report, p, footer)),
        ("flops_curve", FLOPS_CURVE_TITLE, lambda p: flops_curve_plot(report, p, footer)),
    ):
        if draw(out_dir / "plots" / f"{name}.png"):
            made.append({"name": name, "file": f"plots/{name}.png", "title": title})
    for suite, s in report["suites"].items():  # runs with model.routing_stats = true
        routing = (s.get("extra") or {}).get("routing")
        if routing:
            name, title = f"routing_{suite}", f"{suite}: expert utilisation per MoE layer"
            plot_heatmap(routing, out_dir / "plots" / f"{name}.png", title=title)
            made.append({"name": name, "file": f"plots/{name}.png", "title": title})
    return made
