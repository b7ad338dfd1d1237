"""Write a run's report directory: runs/reports/<model>/<run-id>/ with report.json (validated against the
committed schema before it is written), samples.jsonl, report.md, report.html (self-contained) and
plots/. Profiling results (JSON + PNG plots from `m1bench profile …`) are attached when given."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from m1bench.harness.core.records import select_records
from m1bench.reports.build import build_report, latest_records, slug, sort_samples
from m1bench.reports.load import read_json
from m1bench.reports.plots import make_plots
from m1bench.reports.render import report_html, report_markdown
from m1bench.reports.schema import ReportError, check_report, check_sample

DEFAULT_ROOT = "runs/reports"  # with the run output (runs/), out of git
REPORTS_DIR_ENV = "M1BENCH_REPORTS_DIR"


def default_root() -> Path:
    return Path(os.environ.get(REPORTS_DIR_ENV) or DEFAULT_ROOT)


def _atomic_write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)


def _unique_dir(parent: Path, name: str) -> Path:
    path, i = parent / name, 2
    while path.exists():
        path, i = parent / f"{name}-{i}", i + 1
    return path


# ---- profiling --------------------------------------------------------------------------------
def profiling_entries(paths: Iterable[str | Path], out_dir: Path) -> list[dict[str, Any]]:
    """Each JSON file becomes an entry; PNG plots beside it whose name starts with its stem are
    copied under out_dir/profiling/ and attached. A directory contributes all its JSON files (and
    PNGs no JSON claims, as an entry of their own)."""
    entries = []
    for p in map(Path, paths):
        if p.is_dir():
            jsons = sorted(p.glob("*.json"))
            pngs = sorted(p.glob("*.png"))
        elif p.suffix == ".json":
            jsons, pngs = [p], sorted(p.parent.glob(p.stem + "*.png"))
        else:
            raise ReportError(f"{p}: profiling input must be a JSON file or a directory of them")
        claimed: set[Path] = set()
        for j in jsons:
            mine = [g for g in pngs if g.name.startswith(j.stem)]
            claimed.update(mine)
            entries.append({"name": j.stem, "source": str(j), "data": read_json(j), "plots": _copy_plots(mine, out_dir)})
        rest = [g for g in pngs if g not in claimed]
        if rest:
            entries.append({"name": p.name, "source": str(p), "data": {}, "plots": _copy_plots(rest, out_dir)})
    return entries


def _copy_plots(pngs: list[Path], out_dir: Path) -> list[dict[str, str]]:
    out = []
    for g in pngs:
        rel = f"profiling/{slug(g.name)}"
        (out_dir / "profiling").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(g, out_dir / rel)
        out.append({"name": g.stem, "file": rel, "title": g.stem.replace("_", " ")})
    return out


# ---- the report directory ---------------------------------------------------------------------
def write_report(run_dir: str | Path, results: dict[str, Any] | None = None,
                 records: Iterable[dict[str, Any]] | None = None, *, reports_root: str | Path | None = None,
                 profiling: Iterable[str | Path] = (), run_id: str | None = None, out_dir: str | Path | None = None) -> Path:
    """Write the report of the run in `run_dir` and return its directory.

    results: the run's results (default: run_dir/results.json). records: the run's per-sample
    records (the runner passes exactly the ones it planned; default: selected from
    run_dir/records.jsonl). The directory is <reports_root>/<model>/<run-id>/ (reports_root
    default: $M1BENCH_REPORTS_DIR or ./runs/reports) unless out_dir is given."""
    run_dir = Path(run_dir)
    if results is None:
        results = read_json(run_dir / "results.json")
    records_path = run_dir / "records.jsonl"
    if records is None:
        records = select_records(results, latest_records(records_path).values()) if records_path.exists() else []
    samples = sort_samples(records)
    for rec in samples:
        check_sample(rec, f"{records_path} (record {rec.get('hash')})")
    report = build_report(results, samples, run_id=run_id, records_path=str(records_path))
    if out_dir is None:
        root = Path(reports_root) if reports_root is not None else default_root()
        out = _unique_dir(root / slug(report["model"]["name"]), report["run_id"])
    else:
        out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    lines = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in samples).encode("utf-8")
    _atomic_write(out / "samples.jsonl", lines)
    report["samples"] = {"file": "samples.jsonl", "count": len(samples), "sha256": hashlib.sha256(lines).hexdigest()}
    report["plots"] = make_plots(report, samples, out)
    report["profiling"] = profiling_entries(profiling, out)
    check_report(report, str(out / "report.json"))  # never write a report that its own reader would refuse
    _atomic_write(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    _atomic_write(out / "report.md", report_markdown(report))
    _atomic_write(out / "report.html", report_html(report, out))
    return out
