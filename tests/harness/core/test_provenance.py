"""One provenance: a run's results.json, its report and a profile JSON record the same code
version and packages ($M1BENCH_COMMIT stands in for git where the tree has no .git)."""
import json

import pytest

from m1bench.harness.cli import main
from m1bench.harness.core.provenance import RESULT_PACKAGES


def test_results_report_and_profile_agree_on_the_code_and_packages(tmp_path, monkeypatch, tiny_dir):
    commit = "c0ffee" * 6 + "abcd"
    monkeypatch.setenv("M1BENCH_COMMIT", commit)
    reports = tmp_path / "reports"
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(reports))
    with pytest.raises(SystemExit) as done:
        main(["run", "--model", str(tiny_dir), "--suite", "aime2024", "--limit", "1", "--samples", "1",
              "--max-tokens", "2", "-o", str(tmp_path / "run")])
    assert done.value.code == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    report = json.loads(next(reports.rglob("report.json")).read_text())
    assert results["m1bench"]["commit"] == report["m1bench"]["commit"] == commit
    assert set(results["packages"]) == set(RESULT_PACKAGES) <= set(report["packages"])
    main(["profile", "flops", "--out", str(tmp_path / "flops"), "--max-gen", "4096", "--points", "4"])
    assert json.loads((tmp_path / "flops.json").read_text())["environment"]["commit"] == commit
