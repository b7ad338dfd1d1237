"""Published results tables as data (reports/paper/): the M1 paper's Table 2 with every column, and
the mapping from its rows to the m1bench suite + metric that measures each one."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from m1bench.harness.core.files import read_json
from m1bench.reports.schema import ReportError, check

DEFAULT_TABLE = "m1_table2.json"
DEFAULT_MAPPING = "m1_table2_mapping.json"
_CELL = re.compile(r"^(?P<value>[0-9]+(?:\.[0-9]+)?)(?P<marks>\**)$")


@dataclass(frozen=True)
class Column:
    id: str
    name: str
    extended_thinking: str
    m1: bool


@dataclass(frozen=True)
class Official:
    """The set a paper row was measured on: the problem counts it may have, the paper's samples per
    problem and content hashes of known copies of its rows (hash -> which copy)."""
    problems: tuple[int, ...]
    k: int | None = None
    content_hashes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    category: str
    task: str
    cells: tuple[str, ...]  # as published
    values: tuple[float | None, ...]  # percent; None where the paper reports nothing ("--")
    official: Official | None = None


@dataclass(frozen=True)
class Measure:
    """Which report value measures a paper row: suite and metric patterns (metric None: the suite's
    primary metric) and, optionally, patterns the suite's dataset id must match."""
    suite: str
    metric: str | None
    dataset: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaperTable:
    id: str
    title: str
    source: dict[str, Any]
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]

    def column(self, col_id: str) -> int:
        for i, c in enumerate(self.columns):
            if c.id == col_id:
                return i
        raise KeyError(f"{self.id}: no column {col_id!r} (columns: {', '.join(c.id for c in self.columns)})")

    @property
    def m1_columns(self) -> list[Column]:
        return [c for c in self.columns if c.m1]


def paper_dir() -> Path:
    return Path(str(resources.files("m1bench.reports") / "paper"))


def parse_cell(text: str) -> float | None:
    if text == "--":
        return None
    m = _CELL.match(text)
    if not m:
        raise ValueError(f"not a published value: {text!r}")
    return float(m.group("value"))


def load_table(path: str | Path | None = None) -> PaperTable:
    path = Path(path) if path else paper_dir() / DEFAULT_TABLE
    doc = read_json(path, ReportError)
    check(doc, "paper_table.v1.schema.json", str(path))
    columns = tuple(Column(**c) for c in doc["columns"])
    rows = []
    for i, r in enumerate(doc["rows"]):
        if len(r["cells"]) != len(columns):
            raise ReportError(f"{path}: field rows[{i}].cells: {len(r['cells'])} cells for {len(columns)} columns "
                              f"(task {r['task']!r})")
        off = r.get("official")
        official = Official(tuple(off["problems"]), off.get("k"), off.get("content_hashes", {})) if off else None
        rows.append(Row(r["category"], r["task"], tuple(r["cells"]), tuple(parse_cell(c) for c in r["cells"]), official))
    return PaperTable(doc["id"], doc["title"], doc["source"], columns, tuple(rows))


def load_mapping(path: str | Path | None = None, table: PaperTable | None = None) -> dict[str, list[Measure]]:
    """task -> how to measure it, in preference order."""
    path = Path(path) if path else paper_dir() / DEFAULT_MAPPING
    doc = read_json(path, ReportError)
    check(doc, "paper_mapping.v1.schema.json", str(path))
    if table is not None:
        unknown = sorted(set(doc["rows"]) - {r.task for r in table.rows})
        if unknown:
            raise ReportError(f"{path}: field rows.{unknown[0]}: no such task in table {table.id}")
    return {task: [Measure(m["suite"], m["metric"], tuple(m.get("dataset", ()))) for m in ms]
            for task, ms in doc["rows"].items()}
