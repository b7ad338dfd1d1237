"""Suites scored by per-sample details (OpenAI-MRCR: SequenceMatcher ratio per token bin and needle
count): the report carries the breakdown, the paper's "128K"/"1M" aggregates become metrics with
CIs, the paper table measures its MRCR rows with them, and compare pairs them per problem."""
from __future__ import annotations

import pytest

from m1bench.reports.compare import compare
from m1bench.reports.load import load_report
from m1bench.reports.paper import load_mapping, load_table
from m1bench.reports.table import compare_rows
from tests.support.crafted_runs import crafted_report

BIN_128K, BIN_1M, OTHER = "64K-128K", "512K-1M", "8K-16K"


def mrcr_run(tmp, name, score_128k: float, n: int = 12, **kw):
    """n problems in the 128K bin (2 needles), 4 in the 1M bin, 4 in a short bin with 8 needles."""
    outcomes, details = {}, {}
    cells = [(BIN_128K, 2, score_128k)] * n + [(BIN_1M, 2, 0.5)] * 4 + [(OTHER, 8, 0.9)] * 4
    for i, (b, needles, score) in enumerate(cells):
        pid = f"q{i:02d}"
        s = round(score + 0.01 * (i % 3), 4)
        outcomes[pid] = [s == 1.0]
        details[(pid, 0)] = {"score": s, "bin": b, "n_needles": needles}
    return crafted_report(tmp, name, {"openai_mrcr": outcomes}, details={"openai_mrcr": details},
                          grader="openai-mrcr-grading v1", **kw)


def test_breakdown_and_aggregate_metrics(tmp_path):
    rep = load_report(mrcr_run(tmp_path, "a", 0.7)).report
    s = rep["suites"]["openai_mrcr"]
    m = {x["metric"]: x for x in s["metrics"]}
    assert s["primary_metric"] == "mrcr@128K"
    assert m["mrcr@128K"]["value"] == pytest.approx(0.71) and m["mrcr@128K"]["n_samples"] == 12
    lo, hi = m["mrcr@128K"]["ci95"]
    assert lo < 0.71 < hi and m["mrcr@1M"]["n_problems"] == 4
    b = s["extra"]["breakdown"]
    assert b["aggregates"]["128K"]["bins"] == [BIN_128K] and b["aggregates"]["128K"]["needles"] == [2]
    assert set(b["per_bin_needles"][OTHER]) == {"8"}
    md = (tmp_path / "a" / "report.md").read_text()
    assert "openai_mrcr: aggregates" in md and "8 needles" in md  # a report states needles, bins, aggregation


def test_paper_rows_and_compare_use_the_aggregates(tmp_path):
    a = load_report(mrcr_run(tmp_path, "a", 0.7))
    b = load_report(mrcr_run(tmp_path, "b", 0.3, checkpoint_hash="ffff000000000000"))
    table = load_table()
    rows = {r.row.task: r.measured[0] for r in compare_rows(table, [a.report], load_mapping(table=table))}
    assert rows["OpenAI-MRCR (128k)"].metric == "mrcr@128K" and rows["OpenAI-MRCR (128k)"].value == pytest.approx(71.0)
    assert rows["OpenAI-MRCR (1M)"].metric == "mrcr@1M"
    cmp = compare(a, b)
    [gated] = [x for x in cmp.metrics if x.gated]
    assert gated.metric == "mrcr@128K" and gated.test == "paired-bootstrap" and gated.n_shared == 12
    assert gated.delta == pytest.approx(-0.4) and gated.status == "regression" and cmp.exit_code == 1
