"""The report's compute section through `m1bench report RUN_DIR`: a scripted run served as M1 gets the
budget and FLOPs curves as plots and the counterfactual table, its ratios priced here from the
samples' own token counts with model/flops.py; a run without compute gets no such section."""
from __future__ import annotations

import asyncio
import json
import re

import pytest
from rich.console import Console

from m1bench.harness.cli import main as cli_main
from m1bench.harness.eval.config import load_config
from m1bench.harness.eval.runner import Runner
from m1bench.model.arch import load_spec
from m1bench.model.flops import request_flops
from tests.support.crafted_runs import make_run, rates
from tests.support.scripted_client import ScriptedClient


def cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as e:
        cli_main(list(argv))
    return e.value.code


def scripted_m1_run(out):
    def edit(raw):
        raw["run"]["output_dir"] = str(out)
        raw.setdefault("model", {})["architecture"] = "m1"
        del raw["suites"]["livecodebench"]
    asyncio.run(Runner(load_config(None, edit), client=ScriptedClient(), console=Console(file=open("/dev/null", "w"))).run())
    return out


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compute")
    run = scripted_m1_run(tmp / "run")
    with pytest.raises(SystemExit) as e:
        cli_main(["report", str(run), "-o", str(tmp / "report")])
    assert e.value.code == 0
    return tmp / "report"


def test_report_shows_both_curves_as_plots(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    plots = {p["name"]: p for p in report["plots"]}
    assert {"budget_curve", "flops_curve"} <= set(plots)
    for name in ("budget_curve", "flops_curve"):
        assert (report_dir / plots[name]["file"]).stat().st_size > 5000
    md = (report_dir / "report.md").read_text()
    compute = md.split("## Compute", 1)[1].split("\n## ", 1)[0]
    assert "(plots/budget_curve.png)" in compute and "(plots/flops_curve.png)" in compute
    assert "finished within B tokens" in compute  # the rule is on the plot's caption
    html = (report_dir / "report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') == len(report["plots"])


def test_counterfactual_ratios_are_the_samples_tokens_priced_on_each_architecture(report_dir):
    samples = [json.loads(line) for line in (report_dir / "samples.jsonl").read_text().splitlines()]
    turns = [(s["completion"]["prompt_tokens"], s["completion"]["completion_tokens"]) for s in samples]
    total = {name: sum(request_flops(load_spec(name), p, n) for p, n in turns)
             for name in ("m1", "m1-softmax", "deepseek-r1", "qwen3-235b")}
    md = (report_dir / "report.md").read_text()
    line = re.search(r"this aime2024 run: m1 = ([0-9.e+-]+)% of deepseek-r1's FLOPs", md)
    assert line and float(line.group(1)) == pytest.approx(100 * total["m1"] / total["deepseek-r1"], rel=5e-3)
    for name in ("m1-softmax", "deepseek-r1", "qwen3-235b"):
        row = re.search(rf"\| {name} \| ([0-9.e+]+) \| ([0-9.e+]+) \| (\d+)% \|", md)
        assert row, name
        assert float(row.group(1)) == pytest.approx(total[name], rel=1e-2)
        assert int(row.group(3)) == round(100 * total["m1"] / total[name])


def test_a_run_without_compute_has_no_compute_section(tmp_path):
    run = make_run(tmp_path / "run", {"aime2024": rates(4, [1, 0, 1, 1], 1)})
    assert cli("report", str(run), "-o", str(tmp_path / "report")) == 0
    assert "## Compute" not in (tmp_path / "report" / "report.md").read_text()
    assert not (tmp_path / "report" / "plots" / "budget_curve.png").exists()
