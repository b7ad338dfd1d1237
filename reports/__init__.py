"""Versioned run reports (report.json + samples.jsonl + Markdown/HTML + plots), the paper's tables
with measured values beside the published ones, and the baseline/candidate regression gate."""
from m1bench.reports.schema import SCHEMA_VERSION, ReportError

__all__ = ["SCHEMA_VERSION", "ReportError", "write_report", "load_report"]


def write_report(*args, **kwargs):
    """See m1bench.reports.write.write_report (imported lazily: matplotlib is slow to import)."""
    from m1bench.reports.write import write_report as _write

    return _write(*args, **kwargs)


def load_report(path):
    from m1bench.reports.load import load_report as _load

    return _load(path)
