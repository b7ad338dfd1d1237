"""Read a report for `compare` and `table`: a report directory (report.json + samples.jsonl), a
report.json path, or a run directory (records.jsonl + results.json, built into a report in memory).
Versions are checked and every field validated; errors name the file and the field or line."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m1bench.harness.core import files
from m1bench.reports.schema import ReportError, check_sample, upgrade


@dataclass
class LoadedReport:
    report: dict[str, Any]
    samples: list[dict[str, Any]] | None  # None when the report came without per-sample records
    where: str


def read_json(path: Path) -> Any:
    return files.read_json(path, ReportError)


def read_samples(path: Path, expected_sha256: str | None = None) -> list[dict[str, Any]]:
    data = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ReportError(f"{path}: does not match its report.json (field samples.sha256 says {expected_sha256[:12]}…, "
                          f"the file hashes to {hashlib.sha256(data).hexdigest()[:12]}…)")
    out = []
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ReportError(f"{path}:{lineno}: not a JSON record ({e.msg})") from None
        check_sample(rec, f"{path}:{lineno}")
        out.append(rec)
    return out


def load_report(path: str | Path) -> LoadedReport:
    path = Path(path)
    if path.is_dir() and (path / "report.json").exists():
        path = path / "report.json"
    elif path.is_dir() and (path / "results.json").exists():
        return _from_run_dir(path)
    elif path.is_dir():
        raise ReportError(f"{path}: neither a report directory (report.json) nor a run directory (results.json)")
    report = upgrade(read_json(path), str(path))
    samples_path = path.parent / report["samples"]["file"]
    samples = read_samples(samples_path, report["samples"]["sha256"]) if samples_path.exists() else None
    if samples is not None and len(samples) != report["samples"]["count"]:
        raise ReportError(f"{samples_path}: {len(samples)} records, report.json field samples.count says "
                          f"{report['samples']['count']}")
    return LoadedReport(report, samples, str(path))


def _from_run_dir(run_dir: Path) -> LoadedReport:
    from m1bench.harness.core.records import select_records
    from m1bench.reports.build import build_report, latest_records, sort_samples
    from m1bench.reports.schema import check_report

    results = read_json(run_dir / "results.json")
    if not isinstance(results, dict) or not isinstance(results.get("suites"), dict):
        raise ReportError(f"{run_dir / 'results.json'}: field suites: missing (not an m1bench results file)")
    records_path = run_dir / "records.jsonl"
    records = latest_records(records_path).values() if records_path.exists() else []
    samples = sort_samples(select_records(results, records))
    for i, rec in enumerate(samples):
        check_sample(rec, f"{records_path} (record {rec.get('hash', i)})")
    report = build_report(results, samples, records_path=str(records_path))
    report.update(samples={"file": "samples.jsonl", "count": len(samples), "sha256": "0" * 64}, plots=[], profiling=[])
    check_report(report, f"{run_dir} (report built from results.json)")
    return LoadedReport(report, samples, str(run_dir))
