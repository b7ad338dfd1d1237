"""`compare` on crafted baseline/candidate pairs: regression, improvement, noise-level change,
incomparable reports, irrelevant differences; the paired tests against hand-computed values."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from m1bench.harness.cli import main as cli_main
from m1bench.reports.compare import compare
from m1bench.reports.load import load_report
from m1bench.reports.stats import mcnemar_exact, paired_test
from tests.support.crafted_runs import crafted_report, rates

N, K = 40, 4
BASE = [3] * 30 + [1] * 10  # 30 problems at 3/4, 10 at 1/4: avg 62.5%


def pair(tmp_path, cand_correct, base_correct=BASE, k=K, **cand_kw):
    b = crafted_report(tmp_path, "base", {"aime2024": rates(N, base_correct, k)})
    c = crafted_report(tmp_path, "cand", {"aime2024": rates(N, cand_correct, k)}, **cand_kw)
    return load_report(b), load_report(c)


def gated(cmp):
    return [m for m in cmp.metrics if m.gated]


def run_cli(*argv):
    with pytest.raises(SystemExit) as e:
        cli_main(list(argv))
    return e.value.code


# ---- the statistics ---------------------------------------------------------------------------
def test_mcnemar_exact_matches_the_binomial_tail():
    base = np.array([1] * 10 + [0] * 10)
    cand = np.array([0] * 8 + [1] * 2 + [0] * 9 + [1])  # 8 worse, 1 better
    p, worse, better = mcnemar_exact(base, cand)
    assert (worse, better) == (8, 1)
    # two-sided exact: 2 * P(X <= 1), X ~ Bin(9, 1/2) = 2 * (1 + 9) / 512
    assert p == pytest.approx(20 / 512)
    assert mcnemar_exact(base, base) == (1.0, 0, 0)


def test_paired_test_picks_the_test_by_the_metric_values():
    rng = np.random.default_rng(0)
    b = rng.integers(0, 2, 50).astype(float)
    assert paired_test(b, b)["test"] == "mcnemar-exact"
    graded = rng.random(50)
    t = paired_test(graded, graded - 0.2)
    assert t["test"] == "paired-bootstrap"
    assert t["delta"] == pytest.approx(-0.2)
    assert t["ci95"] == pytest.approx([-0.2, -0.2])  # constant difference: exact, no spread
    assert t["p_value"] == 0.0
    noisy = paired_test(graded, np.clip(graded + rng.normal(0, 0.01, 50), 0, 1))
    assert noisy["p_value"] > 0.05 and noisy["ci95"][0] < 0 < noisy["ci95"][1]


# ---- crafted pairs ----------------------------------------------------------------------------
def test_regression_is_flagged_with_a_paired_test(tmp_path):
    worse = [1] * 30 + [1] * 10  # the 30 good problems drop from 3/4 to 1/4
    b, c = pair(tmp_path, worse)
    cmp = compare(b, c)
    [m] = gated(cmp)
    assert (m.suite, m.metric) == ("aime2024", "avg@4")
    assert m.status == "regression" and m.test == "paired-bootstrap"
    assert m.delta == pytest.approx(-0.375) and m.n_shared == N
    assert m.ci95[1] < -cmp.tolerance and m.p_value < 0.001
    assert cmp.exit_code == 1
    pass1 = next(x for x in cmp.metrics if x.metric == "pass@1")
    assert not pass1.gated and pass1.status == "regression"  # shown, but only the primary metric gates
    assert run_cli("compare", str(b.where), str(c.where)) == 1


def test_improvement_passes(tmp_path):
    b, c = pair(tmp_path, [4] * 30 + [3] * 10)
    cmp = compare(b, c)
    [m] = gated(cmp)
    assert m.status == "improvement" and m.delta == pytest.approx(0.3125)
    assert cmp.exit_code == 0


def test_noise_level_change_passes(tmp_path):
    noisy = list(BASE)
    noisy[0], noisy[31] = 2, 2  # one problem loses a sample, another gains one: delta 0
    noisy[5] = 2  # and one more loss: -1/160 = -0.6 points
    b, c = pair(tmp_path, noisy)
    cmp = compare(b, c)
    [m] = gated(cmp)
    assert m.delta == pytest.approx(-1 / 160)
    assert m.status == "within tolerance" and cmp.exit_code == 0


def test_large_drop_on_too_few_items_is_not_significant(tmp_path):
    b = crafted_report(tmp_path, "b", {"aime2024": rates(3, [1, 1, 0], 1)})
    c = crafted_report(tmp_path, "c", {"aime2024": rates(3, [0, 0, 0], 1)})
    cmp = compare(load_report(b), load_report(c))
    [m] = gated(cmp)
    assert m.test == "mcnemar-exact" and m.p_value == pytest.approx(0.5)  # 2 discordant items, both worse
    assert m.delta < -0.5 and m.status == "not significant" and cmp.exit_code == 0


def test_binary_items_use_mcnemar_and_gate_named_metrics(tmp_path):
    base = [1] * 30 + [0] * 10
    cand = [0] * 12 + [1] * 18 + [0] * 10
    b, c = pair(tmp_path, cand, base_correct=base, k=1)
    cmp = compare(b, c, metrics=["pass@1"])
    [m] = gated(cmp)
    assert m.metric == "pass@1" and m.test == "mcnemar-exact" and m.note == "12 items worse, 0 better"
    assert m.p_value == pytest.approx(2 / 2**12)
    assert cmp.exit_code == 1
    assert compare(b, c, metrics=["nonexistent@1"]).exit_code == 2


def test_only_shared_items_are_paired(tmp_path):
    base = crafted_report(tmp_path, "b", {"aime2024": rates(N, BASE, K)})
    cand = crafted_report(tmp_path, "c", {"aime2024": rates(N, BASE, K)},
                          errors={"aime2024": {(f"p{p:03d}", i) for p in range(5) for i in range(K)}})
    cmp = compare(load_report(base), load_report(cand), allow_incomplete=True)
    [m] = gated(cmp)
    assert m.n_shared == N - 5 and m.delta == 0 and cmp.exit_code == 0
    assert m.note == f"{N - 5} of the baseline's {N} items scored in both"
    assert any("the candidate scored" in i and "--allow-incomplete" in i for i in cmp.ignored)


def test_an_incomplete_run_is_not_gated_unless_asked(tmp_path, capsys):
    """A candidate whose requests failed for 5 problems scores the same on the rest: the gate does
    not pass it silently, it says the run is incomplete (exit 2, naming the suite)."""
    from m1bench.harness.cli import main

    base = crafted_report(tmp_path, "b", {"aime2024": rates(N, BASE, K)})
    cand = crafted_report(tmp_path, "c", {"aime2024": rates(N, BASE, K)},
                          errors={"aime2024": {(f"p{p:03d}", i) for p in range(5) for i in range(K)}})
    with pytest.raises(SystemExit) as done:
        main(["compare", str(base), str(cand)])
    out = capsys.readouterr()
    assert done.value.code == 2
    assert f"suite aime2024: the candidate scored {(N - 5) * K} of {N * K} planned samples" in (out.out + out.err).replace("\n", "")
    with pytest.raises(SystemExit) as done:
        main(["compare", str(base), str(cand), "--allow-incomplete"])
    assert done.value.code == 0


@pytest.mark.parametrize("change, reason", [
    ({"suite_version": "2"}, "suite version differs"),
    ({"temperature": 0.6}, "sampling differs"),
    ({"max_tokens": 64}, "sampling differs"),
    ({"data_hash": "ffffffffffffffff"}, "dataset (content hash) differs"),
    ({"grader": "math-verify==0.8.0"}, "grader differs"),
    ({"system": "Answer briefly."}, "prompts (messages hash) differ on 40 of 40 shared problems"),
    ({"options": {"start_date": "2024-10-01", "end_date": "2025-02-01"}}, "filters differs"),
])
def test_incomparable_reports_exit_2_with_the_reason(tmp_path, change, reason, capsys):
    b, c = pair(tmp_path, BASE, **change)
    cmp = compare(b, c)
    assert cmp.exit_code == 2 and any(reason in r for r in cmp.reasons), cmp.reasons
    assert cmp.metrics == []  # nothing is scored across incomparable reports
    assert run_cli("compare", b.where, c.where) == 2
    assert reason in capsys.readouterr().err


def test_different_k_and_missing_suite_are_incomparable(tmp_path):
    b, c = pair(tmp_path, [2] * N, k=2)
    base4 = crafted_report(tmp_path, "base4", {"aime2024": rates(N, BASE, K)})
    cmp = compare(load_report(base4), c)
    assert cmp.exit_code == 2 and any("k (samples per problem) differs" in r for r in cmp.reasons)
    two = crafted_report(tmp_path, "two", {"aime2024": rates(N, BASE, K), "aime2025": rates(N, BASE, K)})
    cmp = compare(load_report(two), load_report(base4))
    assert cmp.exit_code == 2 and cmp.reasons == ["suite aime2025: in the baseline, missing from the candidate"]
    # the other way round the extra suite is only noted
    cmp = compare(load_report(base4), load_report(two))
    assert cmp.exit_code == 0 and any("only in the candidate" in r for r in cmp.ignored)


def test_irrelevant_differences_compare_cleanly(tmp_path):
    b, c = pair(tmp_path, BASE, created="2026-06-01T12:00:00+00:00", run_name="other", commit="b" * 40,
                checkpoint_hash="deadbeef00000000", seed=7, options={"isolation": "unshare"})
    assert b.report["run_id"] != c.report["run_id"]
    cmp = compare(b, c)
    assert cmp.exit_code == 0 and cmp.reasons == []
    assert all(m.delta == 0 for m in cmp.metrics if m.delta is not None)
    assert any("checkpoint differs" in r for r in cmp.ignored)


def test_a_report_compared_with_itself_and_with_its_run_dir(tmp_path):
    b, _ = pair(tmp_path, BASE)
    run_dir = tmp_path / "base-run"
    cmp = compare(b, load_report(run_dir))  # the run directory builds the same report in memory
    assert cmp.exit_code == 0 and [m.status for m in gated(cmp)] == ["within tolerance"]


def test_cli_writes_json_and_markdown(tmp_path):
    b, c = pair(tmp_path, [1] * N)
    out_json, out_md = tmp_path / "cmp.json", tmp_path / "summary.md"
    assert run_cli("compare", b.where, c.where, "--json", str(out_json), "--md", str(out_md)) == 1
    doc = json.loads(out_json.read_text())
    assert doc["verdict"] == "regression" and doc["exit_code"] == 1
    assert "**Verdict: regression** (exit 1)" in out_md.read_text()


def test_unreadable_candidate_is_not_comparable(tmp_path, capsys):
    b, _ = pair(tmp_path, BASE)
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "cand", bad)
    doc = json.loads((bad / "report.json").read_text())
    doc["suites"]["aime2024"]["k"] = "four"
    (bad / "report.json").write_text(json.dumps(doc))
    assert run_cli("compare", b.where, str(bad)) == 2
    assert "field suites.aime2024.k" in capsys.readouterr().err
