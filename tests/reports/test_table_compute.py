"""`m1bench table` shows what each measured row cost: mean generated tokens per sample and FLOPs per
problem (one attempt: a problem's samples' FLOPs summed, divided by k, averaged over problems), per
report. Checked through the CLI on a scripted run served as M1 (schema 2, with compute; its FLOPs
priced again here from the samples' token counts with model/flops.py) beside the committed schema-1
baseline (tokens from its samples, no FLOPs)."""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from m1bench.harness.cli import main as cli_main
from m1bench.model.arch import load_spec
from m1bench.model.flops import request_flops
from tests.reports.test_report_compute import scripted_m1_run

BASELINE = Path(__file__).resolve().parents[2] / "reports" / "baselines" / "tiny" / "baseline"
MAP = ["--map", "AIME 2024=aime2024"]  # neither report ran the paper's AIME set: ask for the row explicitly


def samples_of(report_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (report_dir / "samples.jsonl").read_text().splitlines() if line.strip()]


def expected_cost(report_dir: Path, flops_spec: str | None) -> tuple[float, float | None]:
    """From the samples alone: mean completion tokens over answered aime2024 samples; the FLOPs of
    each problem's samples (prefill of the prompt + one decode per further token) / k, mean over problems."""
    recs = [s for s in samples_of(report_dir) if s["suite"] == "aime2024" and s["completion"]]
    tokens = float(np.mean([s["completion"]["completion_tokens"] for s in recs]))
    if flops_spec is None:
        return tokens, None
    spec, k = load_spec(flops_spec), json.loads((report_dir / "report.json").read_text())["suites"]["aime2024"]["k"]
    per_problem = defaultdict(float)
    for s in recs:
        per_problem[s["problem_id"]] += request_flops(spec, s["completion"]["prompt_tokens"], s["completion"]["completion_tokens"])
    return tokens, float(np.mean([f / k for f in per_problem.values()]))


@pytest.fixture(scope="module")
def m1_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("table_compute")
    with pytest.raises(SystemExit) as e:
        cli_main(["report", str(scripted_m1_run(tmp / "run")), "-o", str(tmp / "report")])
    assert e.value.code == 0
    return tmp / "report"


def table(tmp_path: Path, fmt: str, *reports: Path) -> str:
    out = tmp_path / f"table.{fmt}"
    with pytest.raises(SystemExit) as e:
        cli_main(["table", *map(str, reports), *MAP, "-o", str(out)])
    assert e.value.code == 0
    return out.read_text()


def test_csv_cost_columns_equal_the_samples(tmp_path, m1_report):
    rows = [r for r in csv.DictReader(io.StringIO(table(tmp_path, "csv", m1_report, BASELINE))) if r["task"] == "AIME 2024"]
    assert len(rows) == 2
    m1, base = rows
    tokens, flops = expected_cost(m1_report, "m1")
    assert flops > 0 and float(m1["generated_tokens_per_sample"]) == pytest.approx(tokens, rel=1e-12)
    assert float(m1["flops_per_problem"]) == pytest.approx(flops, rel=1e-9)
    tokens, _ = expected_cost(BASELINE, None)
    assert float(base["generated_tokens_per_sample"]) == pytest.approx(tokens, rel=1e-12)
    assert base["flops_per_problem"] == ""  # schema 1: no FLOPs
    other = next(r for r in csv.DictReader(io.StringIO(table(tmp_path, "csv", m1_report))) if r["task"] == "SWE-bench Verified")
    assert other["generated_tokens_per_sample"] == other["flops_per_problem"] == ""  # not measured


def cost_rows(md: str) -> list[list[str]]:
    part = md.split("*Cost of the measured rows*", 1)[1]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in part.splitlines() if ln.startswith("|")]


def test_markdown_cost_table_beside_the_marked_rows(tmp_path, m1_report):
    md = table(tmp_path, "md", m1_report, BASELINE)
    header, _, *body = cost_rows(md)
    assert len(header) == 5 and header[1].startswith("Generated tokens / sample [") and header[2].startswith("FLOPs / problem [")
    aime = next(r for r in body if r[0] == "AIME 2024")
    (m1_tokens, m1_flops), (base_tokens, _) = expected_cost(m1_report, "m1"), expected_cost(BASELINE, None)
    assert float(aime[1]) == pytest.approx(m1_tokens, abs=0.05) and float(aime[2]) == pytest.approx(m1_flops, rel=1e-3)
    assert float(aime[3]) == pytest.approx(base_tokens, abs=0.05) and aime[4] == "—"
    assert "divided by k" in md
    # Table 2 itself is unchanged: the row still carries its measured values and the † marks
    main = next(ln for ln in md.split("*Cost of the measured rows*")[0].splitlines() if "| AIME 2024 |" in ln)
    assert main.count("†") == 2


def test_html_has_the_cost_table(tmp_path, m1_report):
    html = table(tmp_path, "html", BASELINE)
    tokens, _ = expected_cost(BASELINE, None)
    assert "Cost of the measured rows" in html and f"<td class=\"r\">{tokens:.1f}</td>" in html
