"""The paper's Table 2 as data (faithful to the M1 README's table) and
`m1bench table`: paper layout, measured beside published, deltas, CI containment; Markdown, HTML, CSV."""
from __future__ import annotations

import csv
import io
import json

import pytest

from m1bench.harness.cli import main as cli_main
from m1bench.reports.load import load_report
from m1bench.reports.paper import load_mapping, load_table, paper_dir, parse_cell
from m1bench.reports.schema import ReportError
from m1bench.reports.table import compare_rows, parse_overrides, render
from tests.support.crafted_runs import crafted_report, rates

# The M1 numbers (80k / 40k) of the published table, which the data must carry.
PUBLISHED_M1 = {"AIME 2024": (86.0, 83.3), "AIME 2025": (76.9, 74.6), "LiveCodeBench (24/8~25/5)": (65.0, 62.3),
             "SWE-bench Verified": (56.0, 55.6), "TAU-bench (airline)": (62.0, 60.0), "TAU-bench (retail)": (63.5, 67.8),
             "OpenAI-MRCR (128k)": (73.4, 76.1), "OpenAI-MRCR (1M)": (56.2, 58.6)}
COLUMNS = ["MiniMax-M1-80K", "MiniMax-M1-40K", "Qwen3-235B-A22B", "DeepSeek-R1-0528", "DeepSeek-R1",
           "Seed-Thinking-v1.5", "Claude 4 Opus", "Gemini 2.5 Pro (06-05)", "OpenAI-o3"]
TASKS = ["AIME 2024", "AIME 2025", "MATH-500", "LiveCodeBench (24/8~25/5)", "FullStackBench", "GPQA Diamond",
         "HLE (no tools)", "ZebraLogic", "MMLU-Pro", "SWE-bench Verified", "OpenAI-MRCR (128k)", "OpenAI-MRCR (1M)",
         "LongBench-v2", "TAU-bench (airline)", "TAU-bench (retail)", "SimpleQA", "MultiChallenge"]


@pytest.fixture(scope="module")
def table():
    return load_table()


def row(table, task):
    return next(r for r in table.rows if r.task == task)


def test_paper_table_is_complete_and_matches_design(table):
    assert [c.name for c in table.columns] == COLUMNS
    assert [c.extended_thinking for c in table.columns] == ["80K", "40K", "32k", "64k", "32k", "32k", "64k", "64k", "100k"]
    assert [r.task for r in table.rows] == TASKS
    assert all(len(r.cells) == 9 for r in table.rows)
    for task, (m80, m40) in PUBLISHED_M1.items():
        assert row(table, task).values[:2] == (m80, m40), task
    # spot checks of competitor columns, "--" and footnotes, as published
    assert row(table, "AIME 2024").cells == ("86.0", "83.3", "85.7", "91.4", "79.8", "86.7", "76.0", "92.0", "91.6")
    assert row(table, "OpenAI-MRCR (1M)").values == (56.2, 58.6, None, None, None, None, None, 58.8, None)
    assert row(table, "HLE (no tools)").cells[:5] == ("8.4*", "7.2*", "7.6*", "17.7*", "8.6*")
    assert row(table, "TAU-bench (retail)").values[6] == 81.4
    assert table.source["url"].startswith("https://github.com/MiniMax-AI/MiniMax-M1")
    assert table.source["footnotes"]["*"] == "conducted on the text-only HLE subset."
    assert {r.category for r in table.rows} == {"Mathematics", "General Coding", "Reasoning & Knowledge",
                                                "Software Engineering", "Long Context", "Agentic Tool Use",
                                                "Factuality", "General Assistant"}


def test_mapping_names_the_registered_suites(table):
    """Every paper row an m1bench suite measures points at a suite that exists (guards renames)."""
    from fnmatch import fnmatch

    from m1bench.suites import suite_names

    names = suite_names()
    mapping = load_mapping(table=table)
    expected = {"AIME 2024": "aime2024", "AIME 2025": "aime2025", "LiveCodeBench (24/8~25/5)": "livecodebench",
                "SWE-bench Verified": "swebench-verified", "TAU-bench (airline)": "tau-airline",
                "TAU-bench (retail)": "tau-retail", "OpenAI-MRCR (128k)": "openai_mrcr", "OpenAI-MRCR (1M)": "openai_mrcr"}
    for task, suite in expected.items():
        assert suite in names
        assert any(fnmatch(suite, m.suite) for m in mapping[task]), task


def test_cells_parse_and_bad_data_is_refused(tmp_path):
    assert parse_cell("8.4*") == 8.4 and parse_cell("--") is None and parse_cell("100") == 100.0
    doc = json.loads((paper_dir() / "m1_table2.json").read_text())
    doc["rows"][3]["cells"][2] = "65,9"
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ReportError, match=r"field rows\[3\]\.cells\[2\]: '65,9' does not match"):
        load_table(p)
    doc["rows"][3]["cells"] = ["65.0"] * 8
    p.write_text(json.dumps(doc))
    with pytest.raises(ReportError, match=r"field rows\[3\]\.cells: 8 cells for 9 columns"):
        load_table(p)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("table")
    # AIME 2024: 26/30 problems always right -> 86.7% with a CI around it; LCB 2/10 -> 20%
    a = crafted_report(tmp, "a", {"aime2024": rates(30, [2] * 26 + [0] * 4, 2), "livecodebench": rates(10, [1, 1] + [0] * 8, 1)})
    b = crafted_report(tmp, "b", {"aime2024": rates(30, [2] * 15 + [0] * 15, 2)}, checkpoint_hash="b0b0b0b0b0b0b0b0")
    return load_report(a).report, load_report(b).report


def test_measured_values_deltas_and_ci_containment(table, reports):
    a, _ = reports
    rows = {r.row.task: r for r in compare_rows(table, [a], load_mapping(table=table))}
    aime = rows["AIME 2024"].measured[0]
    assert (aime.suite, aime.metric) == ("aime2024", "avg@2")
    assert aime.value == pytest.approx(100 * 26 / 30) and aime.n_problems == 30 and aime.n_samples == 60
    assert aime.delta["m1-80k"] == pytest.approx(100 * 26 / 30 - 86.0)
    assert aime.delta["m1-40k"] == pytest.approx(100 * 26 / 30 - 83.3)
    lo, hi = aime.ci95
    assert lo < 83.3 < 86.0 < hi and aime.contains == {"m1-80k": True, "m1-40k": True}
    lcb = rows["LiveCodeBench (24/8~25/5)"].measured[0]
    assert lcb.value == pytest.approx(20.0) and lcb.contains == {"m1-80k": False, "m1-40k": False}
    assert rows["SWE-bench Verified"].measured == [None]  # not in the report: published only
    assert rows["OpenAI-MRCR (1M)"].measured == [None]


def test_a_suite_run_on_other_data_does_not_measure_the_paper_row(table, tmp_path):
    gate = load_report(crafted_report(tmp_path, "gate", {"aime2024": rates(5, [1] * 5, 1)},
                                      data_source="/repo/reports/baselines/tiny/gate_problems.jsonl")).report
    rows = {r.row.task: r.measured[0] for r in compare_rows(table, [gate], load_mapping(table=table))}
    assert rows["AIME 2024"] is None
    mapping = load_mapping(table=table)
    mapping.update(parse_overrides(["AIME 2024=aime2024"]))  # asked for explicitly, it is shown
    rows = {r.row.task: r.measured[0] for r in compare_rows(table, [gate], mapping)}
    assert rows["AIME 2024"].metric == "avg@1" and rows["AIME 2024"].value == 100.0


def test_markdown_layout(table, reports):
    a, _ = reports
    md = render(table, [a], load_mapping(table=table), "md")
    table2 = md.split("*Cost of the measured rows*")[0]  # the cost table below it: test_table_compute.py
    lines = [ln for ln in table2.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:5] == ["Category", "Task", f"Measured ({a['model']['name']})", "95% CI", "n"]
    assert header[5:8] == ["MiniMax-M1-80K", "Δ M1-80K", "CI ∋ M1-80K"]
    assert header[8:11] == ["MiniMax-M1-40K", "Δ M1-40K", "CI ∋ M1-40K"]
    assert header[11:] == COLUMNS[2:]
    assert len(lines) == 2 + 1 + 17  # header, rule, "Extended Thinking", 17 rows
    aime = [c.strip() for c in lines[3].strip("|").split("|")]
    assert aime[:3] == ["Mathematics", "AIME 2024", "86.7 †"] and aime[4] == "30 × 2"  # crafted data, k 2
    assert aime[5:11] == ["86.0", "+0.7", "yes", "83.3", "+3.4", "yes"]
    assert aime[11:] == ["85.7", "91.4", "79.8", "86.7", "76.0", "92.0", "91.6"]
    hle = next(ln for ln in lines if "HLE" in ln)
    assert "8.4*" in hle and "| — | — | — |" in hle
    assert "*: conducted on the text-only HLE subset." in md


def test_two_reports_and_csv(table, reports):
    text = render(table, list(reports), load_mapping(table=table), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 * 17
    a_aime, b_aime = [r for r in rows if r["task"] == "AIME 2024"]
    assert a_aime["report"] != b_aime["report"]
    assert float(b_aime["measured"]) == pytest.approx(50.0) and b_aime["ci_contains_m1-80k"] == "false"
    assert float(b_aime["delta_m1-40k"]) == pytest.approx(50.0 - 83.3, abs=1e-3)
    assert float(a_aime["published_openai-o3"]) == 91.6
    mrcr = next(r for r in rows if r["task"] == "OpenAI-MRCR (1M)")
    assert mrcr["published_qwen3-235b-a22b"] == "" and mrcr["measured"] == ""


def test_html_and_overrides(table, reports):
    a, _ = reports
    mapping = load_mapping(table=table)
    mapping.update(parse_overrides(["AIME 2025=aime2024:pass@1"]))
    html = render(table, [a], mapping, "html")
    assert html.startswith("<!DOCTYPE html>") and html.count("<tr>") + html.count("<tr ") >= 19
    assert "AIME 2025 ← aime2024:pass@1" in html
    with pytest.raises(ValueError, match="expected TASK=SUITE"):
        parse_overrides(["AIME 2024"])


def test_table_command(tmp_path, reports, capsys):
    a_dir = tmp_path / "a.json"
    a_dir.write_text(json.dumps(reports[0]))  # a bare report.json (no samples beside it) is enough for a table
    for fmt in ("md", "html", "csv"):
        out = tmp_path / f"t.{fmt}"
        with pytest.raises(SystemExit) as e:
            cli_main(["table", str(a_dir), "-o", str(out)])
        assert e.value.code == 0 and out.stat().st_size > 1000
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # --format json to stdout: the csv lines as objects, nothing else
        cli_main(["table", str(a_dir), "--format", "json"])
    lines = json.loads(capsys.readouterr().out)
    as_csv = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert e.value.code == 0 and [x["task"] for x in lines] == [x["task"] for x in as_csv]
    measured = [x for x in lines if x["measured"] is not None]
    assert measured and all(float(next(c for c in as_csv if c["task"] == x["task"])["measured"]) == x["measured"]
                            for x in measured)
    with pytest.raises(SystemExit) as e:
        cli_main(["table", str(a_dir), "--map", "Nonexistent=aime2024"])
    assert e.value.code == 2 and "no such task" in capsys.readouterr().err


OFFICIAL_AIME = {"aime2024": "/work/shared/realdata/aime2024/qwen25math_aime24_test.jsonl",
                 "aime2025": "/work/shared/realdata/aime2025/mathevalharness_aime25_test.jsonl"}


@pytest.mark.parametrize("suite,task", [("aime2024", "AIME 2024"), ("aime2025", "AIME 2025")])
def test_official_content_hashes_are_the_real_rows(table, suite, task):
    """The committed hashes are what the suite's own loader records for the real AIME rows."""
    from pathlib import Path

    from m1bench.suites import get_suite

    path = Path(OFFICIAL_AIME[suite])
    if not path.exists():
        pytest.skip(f"{path}: real rows not here")
    problems, info = get_suite(suite).load({"data": str(path)})
    assert len(problems) == 30 and info["content_hash"] in row(table, task).official.content_hashes


def _table_md(tmp_path, capsys, report_dir):
    with pytest.raises(SystemExit) as e:
        cli_main(["table", str(report_dir)])
    assert e.value.code == 0
    return capsys.readouterr()


def test_table_marks_the_demo_file_beside_the_paper(tmp_path, capsys):
    """The 2-problem demo file (its name contains "aime", so the dataset pattern lets it in) scored
    0.0 beside the paper's 86.0 with no warning; now the row is marked and the reasons printed."""
    from m1bench.suites.source import content_hash, read_local

    demo = paper_dir().parent.parent / "suites" / "aime" / "demo.jsonl"
    run = crafted_report(tmp_path, "demo", {"aime2024": rates(2, [0, 0], 1)}, data_source=str(demo),
                         data_hash=content_hash(read_local(demo)))
    out = _table_md(tmp_path, capsys, run)
    aime = next(ln for ln in out.out.splitlines() if "| AIME 2024 |" in ln)
    assert [c.strip() for c in aime.strip("|").split("|")][2] == "0.0 †"
    why = "2 problems, the paper's set has 30"
    assert why in out.out and "1 samples per problem, the paper's k is 32" in out.out
    assert "is no known copy of the paper's set" in out.out
    assert f"warning: not the paper's measurement: AIME 2024 (" in out.err and why in out.err


def test_table_does_not_mark_the_official_set_at_the_papers_k(tmp_path, capsys):
    run = crafted_report(tmp_path, "paper", {"aime2024": rates(30, [26] * 26 + [0] * 4, 32)},
                         data_hash="388d865df6bbe109")
    out = _table_md(tmp_path, capsys, run)
    aime = next(ln for ln in out.out.splitlines() if "| AIME 2024 |" in ln)
    cells = [c.strip() for c in aime.strip("|").split("|")]
    assert (cells[2], cells[4]) == ("70.4", "30 × 32")  # 26·26 of 30·32 samples right
    assert "†" not in out.out and "warning" not in out.err


def test_table_cites_minimax_own_sources(tmp_path, capsys, table):
    """The published values cited third-party copies of the README; now MiniMax's README, paper and model card."""
    assert [s["url"].split("/")[2] for s in table.source["sources"]] == ["github.com", "arxiv.org", "huggingface.co"]
    assert all(s["url"].startswith(("https://github.com/MiniMax-AI/MiniMax-M1", "https://arxiv.org/abs/2506.13585",
                                    "https://huggingface.co/MiniMaxAI/MiniMax-M1-80k")) for s in table.source["sources"])
    run = crafted_report(tmp_path, "cite", {"aime2024": rates(30, [1] * 30, 1)})
    out = _table_md(tmp_path, capsys, run).out
    for url in ("https://github.com/MiniMax-AI/MiniMax-M1", "https://arxiv.org/abs/2506.13585",
                "https://huggingface.co/MiniMaxAI/MiniMax-M1-80k"):
        assert url in out
    assert "Mind-Vault" not in out and "renegade" not in out and "read_from" not in json.dumps(table.source)
