"""A completion cut at the token limit inside its <think> has no answer: through `m1bench run` it
is graded wrong and counted apart (results, the report's counts and the terminal table), so a
generation limit too small for the model's reasoning does not pass for wrong answers."""
import json

import pytest

from m1bench.harness.bench.stub_server import StubServer
from m1bench.harness.cli import main
from tests.support import REPO


def test_cut_inside_reasoning_is_a_failure_counted_apart(tmp_path, monkeypatch, capsys):
    reports = tmp_path / "reports"
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(reports))

    cut = {"content": "<think>so the answer is \\boxed{47}, but let me check that", "finish": "length"}
    with StubServer(lambda body: cut) as stub, pytest.raises(SystemExit) as done:
        main(["run", "--endpoint", stub.url, "--model", "stub", "--suite", "aime2024", "--data",
              f"aime2024={REPO / 'suites/aime/demo.jsonl'}", "--limit", "2", "--samples", "1", "-o", str(tmp_path / "run")])
    assert done.value.code == 0
    s = json.loads((tmp_path / "run" / "results.json").read_text())["suites"]["aime2024"]
    assert s["counts"]["truncated"] == s["counts"]["truncated_in_reasoning"] == 2
    assert next(m for m in s["metrics"] if m["metric"] == "avg@1")["value"] == 0.0  # no answer: wrong
    report = json.loads(next(reports.rglob("report.json")).read_text())
    assert report["suites"]["aime2024"]["counts"]["truncated_in_reasoning"] == 2
    assert "2 (2 think)" in capsys.readouterr().err


def test_a_run_whose_every_request_failed_exits_1_naming_why(tmp_path, capsys):
    with StubServer(faults=lambda body: ("status", 400)) as stub, pytest.raises(SystemExit) as done:
        main(["run", "--endpoint", stub.url, "--model", "stub", "--suite", "aime2024", "--data",
              f"aime2024={REPO / 'suites/aime/demo.jsonl'}", "--limit", "2", "--samples", "1", "-o", str(tmp_path / "run")])
    assert done.value.code == 1
    err = capsys.readouterr().err.replace("\n", "")
    assert "every request failed: 2 errors (client), e.g. HTTP 400" in err
