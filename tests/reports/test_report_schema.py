"""report.json against its committed JSON Schema: every report the project writes validates
(crafted runs, with profiling attached, the committed baseline, paper data, compare output);
older/newer schema versions are read or refused naming the versions; malformed reports fail
naming the wrong field; the report directory has everything the issue lists."""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from m1bench.harness.cli import main as cli_main
from m1bench.reports import schema
from m1bench.reports.load import load_report, read_samples
from m1bench.reports.schema import SCHEMA_VERSION, ReportError, check, check_report, upgrade
from tests.support import REPO
from tests.support.crafted_runs import crafted_report, make_run, rates

PROVENANCE = {
    "top": ["run_id", "created", "m1bench", "python", "packages", "hardware", "engine", "model", "run", "suites",
            "samples", "plots", "profiling"],
    "packages": ["torch", "triton", "vllm", "transformers", "datasets", "lm-eval", "math-verify", "swebench"],
    "hardware": ["cpu", "gpus", "gpu_driver", "cuda"],
    "suite": ["suite_version", "dataset", "filters", "prompts", "sampling", "k", "seeds", "grader", "metrics", "counts",
              "tokens", "time"],
}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reports")
    return crafted_report(tmp, "r", {"aime2024": rates(20, [2] * 10 + [0] * 10, 2),
                                     "livecodebench": rates(5, [1, 1, 0, 0, 1], 1)},
                          options={"start_date": "2024-08-01", "end_date": "2025-05-01", "exclude": ["p004"]})


def test_report_directory_has_everything(report_dir):
    for name in ("report.json", "samples.jsonl", "report.md", "report.html", "plots/metrics.png"):
        assert (report_dir / name).is_file(), name
    doc = json.loads((report_dir / "report.json").read_text())
    check_report(doc)
    assert doc["schema_version"] == SCHEMA_VERSION
    for key in PROVENANCE["top"]:
        assert key in doc
    for key in PROVENANCE["packages"]:
        assert key in doc["packages"]
    for key in PROVENANCE["hardware"]:
        assert key in doc["hardware"]
    s = doc["suites"]["aime2024"]
    for key in PROVENANCE["suite"]:
        assert key in s
    assert s["dataset"]["content_hash"] == "0123456789abcdef"
    assert s["prompts"]["system_prompts"][0]["text"].startswith("Please reason step by step")
    assert s["primary_metric"] == "avg@2" and s["metrics"][0]["ci95"] is not None and s["metrics"][0]["n_problems"] == 20
    lcb = doc["suites"]["livecodebench"]["filters"]
    assert lcb["window"] == ["2024-08-01", "2025-05-01"]
    assert lcb["excluded"] == [{"id": "p004", "reason": "excluded by configuration"}]
    samples = read_samples(report_dir / "samples.jsonl", doc["samples"]["sha256"])
    assert len(samples) == doc["samples"]["count"] == 45
    assert {p["file"] for p in doc["plots"]} == {"plots/metrics.png", "plots/problem_rates.png", "plots/completion_tokens.png"}


def test_profiling_results_are_attached(tmp_path):
    import matplotlib.pyplot as plt

    prof = tmp_path / "prof"
    prof.mkdir()
    (prof / "profile_flops.json").write_text(json.dumps({"model": "m1", "ratio_at_64k": 0.47, "ratio_at_100k": 0.25}))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    fig.savefig(prof / "profile_flops.png")
    plt.close(fig)
    from m1bench.reports.write import write_report

    out = write_report(make_run(tmp_path / "run", {"aime2024": rates(4, [1, 0, 1, 1], 1)}), out_dir=tmp_path / "r",
                       profiling=[prof])
    doc = load_report(out).report
    [entry] = doc["profiling"]
    assert entry["name"] == "profile_flops" and entry["data"]["ratio_at_100k"] == 0.25
    assert entry["plots"] == [{"name": "profile_flops", "file": "profiling/profile_flops.png", "title": "profile flops"}]
    assert (out / "profiling/profile_flops.png").is_file()
    assert "ratio_at_64k" in (out / "report.md").read_text() and "Profiling" in (out / "report.html").read_text()


def test_the_profiling_commands_output_is_attached(tmp_path):
    """What `m1bench profile flops` wrote (committed under reports/bench/) goes into a report as is."""
    from m1bench.reports.write import write_report

    flops = REPO / "reports/bench/profile_flops.json"
    if not flops.exists():
        pytest.skip("no committed profiling output")
    out = write_report(make_run(tmp_path / "run", {"aime2024": rates(2, [1, 0], 1)}), out_dir=tmp_path / "r",
                       profiling=[flops])
    [entry] = load_report(out).report["profiling"]
    assert entry["data"] == json.loads(flops.read_text())
    assert "profiling/profile_flops.png" in [p["file"] for p in entry["plots"]]
    assert (out / "report.html").read_text().count('<img src="data:image/png;base64,') == 3 + len(entry["plots"])


def test_reports_land_in_model_and_run_id_directories(tmp_path, monkeypatch):
    from m1bench.reports.write import write_report

    run = make_run(tmp_path / "run", {"aime2024": rates(3, [1, 1, 1], 1)}, run_name="nightly")
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(tmp_path / "reports"))
    first, second = write_report(run), write_report(run)
    assert first == tmp_path / "reports" / "reference-c0ffee0000000000" / "20260101T000000Z-nightly"
    assert second.name == "20260101T000000Z-nightly-2"  # never overwrites an earlier report


def test_committed_reports_and_paper_data_validate():
    reports = sorted(REPO.glob("reports/**/report.json"))
    assert any("reports/baselines/tiny/baseline" in str(p) for p in reports), "the tiny baseline is committed"
    for p in reports:
        loaded = load_report(p)
        assert loaded.samples is not None and loaded.samples
    check(json.loads((REPO / "reports/paper/m1_table2.json").read_text()), "paper_table.v1.schema.json", "table")
    check(json.loads((REPO / "reports/paper/m1_table2_mapping.json").read_text()), "paper_mapping.v1.schema.json", "map")


def test_compare_output_validates(tmp_path, report_dir):
    out = tmp_path / "cmp.json"
    with pytest.raises(SystemExit) as e:
        cli_main(["compare", str(report_dir), str(report_dir), "--json", str(out)])
    assert e.value.code == 0
    check(json.loads(out.read_text()), "comparison.v1.schema.json", str(out))


# ---- versions ---------------------------------------------------------------------------------
def _doc(report_dir) -> dict:
    return json.loads((report_dir / "report.json").read_text())


@pytest.mark.parametrize("version, message", [
    (SCHEMA_VERSION + 1, f"report schema version {SCHEMA_VERSION + 1} is newer than this m1bench reads (1, 2)"),
    (0, "report schema version 0 is no longer readable; this m1bench reads report schema versions 1, 2"),
    ("1", "field schema_version: expected an integer schema version, got '1'"),
    (None, "field schema_version: expected an integer schema version, got None"),
])
def test_unreadable_versions_fail_naming_the_versions(report_dir, version, message):
    doc = _doc(report_dir)
    doc["schema_version"] = version
    with pytest.raises(ReportError) as e:
        upgrade(doc, "report.json")
    assert message in str(e.value)


def test_the_committed_version_1_baseline_reads_as_version_2():
    doc = json.loads((REPO / "reports/baselines/tiny/baseline/report.json").read_text())
    assert doc["schema_version"] == 1
    assert upgrade(doc, "baseline")["schema_version"] == 2


def test_an_older_version_with_a_migration_is_read(report_dir, monkeypatch):
    """The reader lifts older documents step by step, then validates the result as the current
    version (exercised with a stand-in migration from a hypothetical version 0 that had no `kind`)."""
    old = _doc(report_dir)
    old["schema_version"] = 0
    del old["kind"]
    monkeypatch.setitem(schema.MIGRATIONS, 0, lambda d: {**d, "kind": "m1bench-report"})
    doc = upgrade(copy.deepcopy(old), "report.json")
    assert doc["schema_version"] == SCHEMA_VERSION and doc["kind"] == "m1bench-report"
    monkeypatch.setitem(schema.MIGRATIONS, 0, lambda d: d)  # a migration that forgets the field is caught
    with pytest.raises(ReportError, match="'kind' is a required property"):
        upgrade(copy.deepcopy(old), "report.json")


# ---- malformed --------------------------------------------------------------------------------
@pytest.mark.parametrize("edit, field", [
    (lambda d: d["suites"]["aime2024"]["metrics"][0].update(ci95=[0.1]), "suites.aime2024.metrics[0].ci95"),
    (lambda d: d["suites"]["aime2024"]["sampling"].update(temperature="hot"), "suites.aime2024.sampling.temperature"),
    (lambda d: d["suites"]["aime2024"]["counts"].pop("truncated"), "suites.aime2024.counts"),
    (lambda d: d["m1bench"].update(commit="not-a-commit"), "m1bench.commit"),
    (lambda d: d["hardware"].update(gpus=[{"name": "H100"}]), "hardware.gpus[0]"),
    (lambda d: d.update(created="yesterday"), "created"),
    (lambda d: d["suites"].update(aime2024=[]), "suites.aime2024"),
    (lambda d: d.update(surprise=1), "(top level)"),
    (lambda d: d["packages"].pop("vllm"), "packages"),
])
def test_malformed_reports_fail_naming_the_field(tmp_path, report_dir, edit, field):
    doc = _doc(report_dir)
    edit(doc)
    p = tmp_path / "report.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ReportError) as e:
        load_report(p)
    assert f"{p}: field {field}:" in str(e.value)


def test_broken_json_and_samples_name_the_line(tmp_path, report_dir):
    p = tmp_path / "report.json"
    p.write_text('{"schema_version": 1,\n "kind": }')
    with pytest.raises(ReportError, match=r"report.json:2: invalid JSON"):
        load_report(p)
    lines = (report_dir / "samples.jsonl").read_text().splitlines()
    bad = tmp_path / "samples.jsonl"
    bad.write_text("\n".join([lines[0], lines[1].replace('"status": "ok"', '"status": "fine"')]) + "\n")
    with pytest.raises(ReportError, match=r"samples.jsonl:2: field status: 'fine' is not one of"):
        read_samples(bad)
    with pytest.raises(ReportError, match="does not match its report.json"):
        read_samples(bad, hashlib.sha256(b"other").hexdigest())


def test_report_check_command(tmp_path, report_dir, capsys):
    bad = tmp_path / "bad.json"
    doc = _doc(report_dir)
    doc["run_id"] = "has spaces"
    bad.write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as e:
        cli_main(["report", "--check", str(report_dir), str(bad)])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "ok" in err and "field run_id: 'has spaces' does not match" in err


def test_crafted_run_metrics_match_the_outcomes(tmp_path):
    run = make_run(tmp_path / "r", {"s": {"a": [True, False], "b": [True, True]}})
    res = json.loads((run / "results.json").read_text())
    avg = next(m for m in res["suites"]["s"]["metrics"] if m["metric"] == "avg@2")
    assert avg["value"] == 0.75 and avg["n_problems"] == 2 and avg["n_samples"] == 4


def test_reports_carry_no_absolute_path_of_the_machine_that_made_them():
    """Committed reports are portable: paths inside the repository are repository-relative, those
    in a home directory start with "~/"; what they pointed at is pinned by the content hashes."""
    home = str(Path.home())
    for path in sorted(REPO.glob("reports/**/report.json")):
        text = path.read_text()
        assert str(REPO) not in text and f'"{home}/' not in text, path
    doc = json.loads((REPO / "reports/baselines/tiny/baseline/report.json").read_text())
    assert doc["suites"]["aime2024"]["dataset"]["id"] == "reports/baselines/tiny/gate_problems.jsonl"
    assert doc["model"]["checkpoint"] == "reports/baselines/tiny/tiny-gate"
