"""MRCR breakdown of a finished run: per bin x needle count, per needle count, per bin, overall,
the "128K" / "1M" numbers (each with its definition), and the requests skipped as over the context
window. The run's metrics average the grade over all samples; this reads the run's records and
results and splits the same grade (mean SequenceMatcher score) by bin and needle count.

Only the records of the run in results.json count: same model, suite version, sampling and
per-sample seed, latest record of each (problem, sample).

    python -m m1bench.suites.mrcr.report runs/NAME          # writes runs/NAME/mrcr.json, prints tables
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from m1bench.harness.core.records import RecordsError, read_records, select_records
from m1bench.suites import get_suite

MRCR_SUITES = ("openai_mrcr", "mrcr")


def run_breakdown(run_dir: str | Path) -> dict[str, Any]:
    """{suite name: breakdown} for the MRCR suites of the run in `run_dir`."""
    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    names = [n for n in results["suites"] if n in MRCR_SUITES]
    latest: dict[str, dict[tuple[str, int], dict[str, Any]]] = {n: {} for n in names}
    for rec in select_records(results, read_records(run_dir / "records.jsonl")):  # the latest record of each sample wins
        name = rec["suite"]
        if name in latest and rec["status"] == "ok" and rec.get("score") is not None:
            latest[name][(rec["problem_id"], rec["sample"])] = rec["score"]["details"]
    out = {}
    for name in names:
        s = results["suites"][name]
        out[name] = get_suite(name).breakdown(list(latest[name].values()), s["options"], s["data"])
    return out


def _pct(cell: dict[str, Any] | None) -> str:
    return "—" if not cell or cell["score"] is None else f"{100 * cell['score']:.1f} (n={cell['n']})"


def print_tables(breakdowns: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    for name, b in breakdowns.items():
        needles = sorted({n for cells in b["per_bin_needles"].values() for n in cells}, key=int)
        t = Table(title=f"{name}: {b['metric']}, % (samples)")
        t.add_column("bin")
        for n in needles:
            t.add_column(f"{n} needles", justify="right")
        t.add_column("all", justify="right")
        for label, cells in b["per_bin_needles"].items():
            t.add_row(label, *[_pct(cells.get(n)) for n in needles], _pct(b["per_bin"][label]))
        t.add_section()
        t.add_row("all", *[_pct(b["per_needles"].get(n)) for n in needles], _pct(b["overall"]))
        console.print(t)
        for agg, cell in b["aggregates"].items():
            console.print(f"  [bold]{agg}[/] = {_pct(cell)}: {cell['definition']}")
        skipped = b.get("skipped_over_context_window") or {}
        if skipped.get("count"):
            console.print(f"  skipped over the context window ({skipped['context_window']} tokens, "
                          f"{skipped['counted_as']}): {skipped['count']} {skipped['by_bin_needles']}")
        note = (b.get("token_counter") or {}).get("note")
        if note:
            console.print(f"  [yellow]note:[/] {note}")


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    p = argparse.ArgumentParser(prog="python -m m1bench.suites.mrcr.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a run's output directory (records.jsonl, results.json)")
    p.add_argument("-o", "--output", help="where to write the JSON (default RUN_DIR/mrcr.json)")
    args = p.parse_args(argv)
    console = Console(stderr=True)
    try:
        breakdowns = run_breakdown(args.run_dir)
    except (FileNotFoundError, RecordsError) as e:
        console.print(f"[red]error:[/] {e}")
        return 2
    if not breakdowns:
        console.print(f"[red]error:[/] {args.run_dir}: no MRCR suite in results.json")
        return 2
    out = Path(args.output or Path(args.run_dir) / "mrcr.json")
    out.write_text(json.dumps(breakdowns, indent=2) + "\n")
    print_tables(breakdowns, console)
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
