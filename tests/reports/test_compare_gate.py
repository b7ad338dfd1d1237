"""The CI regression gate end to end: `m1bench run` of reports/baselines/tiny/gate.toml with the committed
tiny-gate checkpoint, its report, `m1bench compare` against the committed baseline. The unchanged
checkpoint passes; a deliberately degraded one (noise on every weight matrix) fails with exit 1."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from m1bench.harness.bench.gate_model import gate_problems, perturb
from m1bench.harness.cli import main as cli_main
from m1bench.model.identity import checkpoint_hash
from m1bench.reports.load import load_report
from m1bench.reports.write import write_report
from tests.support import REPO

CONFIG = REPO / "reports/baselines/tiny/gate.toml"
CHECKPOINT = REPO / "reports/baselines/tiny/tiny-gate"
BASELINE = REPO / "reports/baselines/tiny/baseline"


def cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as e:
        cli_main(list(argv))
    return e.value.code


def gate_report(checkpoint: Path, tmp: Path, monkeypatch) -> Path:
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(tmp / "reports"))  # keep the runner's own report out of the repo
    assert cli("run", str(CONFIG), "--model", str(checkpoint), "-o", str(tmp / "run")) == 0
    return write_report(tmp / "run", out_dir=tmp / "report")


def test_gate_files_are_consistent():
    rows = [json.loads(line) for line in (REPO / "reports/baselines/tiny/gate_problems.jsonl").read_text().splitlines()]
    assert rows == gate_problems()
    base = load_report(BASELINE)
    s = base.report["suites"]["aime2024"]
    assert s["dataset"]["rows"] == len(rows) == 50 and s["k"] == 2
    assert s["metrics"][0]["metric"] == "avg@2" and s["metrics"][0]["value"] >= 0.8  # the gate has a score to lose
    assert base.report["model"]["checkpoint_hash"] == checkpoint_hash(CHECKPOINT)  # made from the committed weights
    assert subprocess.run(["bash", "-n", str(REPO / "examples/ci/gate.sh")]).returncode == 0


def test_unchanged_checkpoint_passes_the_gate(tmp_path, monkeypatch, capsys):
    report = gate_report(CHECKPOINT, tmp_path, monkeypatch)
    assert cli("compare", str(BASELINE), str(report), "--json", str(tmp_path / "cmp.json")) == 0
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    [primary] = [m for m in cmp["metrics"] if m["gated"]]
    assert primary["metric"] == "avg@2" and primary["n_shared"] == 50
    assert primary["status"] in ("within tolerance", "not significant", "improvement")
    assert "verdict: pass" in capsys.readouterr().err
    [own] = (tmp_path / "reports").glob("tiny-gate/*/report.json")  # the report the runner itself wrote
    assert load_report(own).report["suites"]["aime2024"]["metrics"][0]["value"] >= 0.8


def test_degraded_checkpoint_fails_the_gate(tmp_path, monkeypatch, capsys):
    degraded = perturb(CHECKPOINT, tmp_path / "degraded", scale=1.0)
    report = gate_report(degraded, tmp_path, monkeypatch)
    assert cli("compare", str(BASELINE), str(report), "--json", str(tmp_path / "cmp.json")) == 1
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    [primary] = [m for m in cmp["metrics"] if m["gated"]]
    assert primary["status"] == "regression" and primary["delta"] < -0.3 and primary["p_value"] < 0.01
    assert any("checkpoint differs" in r for r in cmp["ignored"])  # a different model is what the gate compares
    assert "verdict: regression: aime2024:avg@2" in capsys.readouterr().err
