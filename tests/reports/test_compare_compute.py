"""`m1bench compare` on what the answers cost: a candidate whose answers are the baseline's but 30%
longer fails --max-token-increase 10% and --max-flops-increase 10% (exit 1); an unchanged one passes
(exit 0); a schema-1 baseline without compute compares tokens from its samples and says FLOPs were
"not compared" instead of failing."""
from __future__ import annotations

import asyncio
import json

import pytest
from rich.console import Console

from m1bench.harness.cli import main as cli_main
from m1bench.harness.eval.config import load_config
from m1bench.harness.eval.runner import Runner
from tests.support import REPO
from tests.support.crafted_runs import make_run, rates
from tests.support.scripted_client import ScriptedClient, even_right

BASELINE = REPO / "reports/baselines/tiny/baseline"


def cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as e:
        cli_main(list(argv))
    return e.value.code


def scripted_run(out, answer):
    """The demo's AIME problems, 4 samples each, served as M1 (so the records carry FLOPs)."""
    def edit(raw):
        raw["run"]["output_dir"] = str(out)
        raw.setdefault("model", {})["architecture"] = "m1"
        del raw["suites"]["livecodebench"]
        raw["suites"]["aime2024"]["samples"] = 4
    asyncio.run(Runner(load_config(None, edit), client=ScriptedClient(answer), console=Console(file=open("/dev/null", "w"))).run())
    return out


def longer(req):
    """The same answer, 30% more tokens (the scripted client counts one token per character)."""
    text = even_right(req)
    return text + " " * round(0.3 * len(text))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cost")
    return {name: scripted_run(tmp / name, answer) for name, answer in
            (("base", even_right), ("same", even_right), ("longer", longer))}


def compute_rows(path) -> dict[str, dict]:
    return {c["quantity"]: c for c in json.loads(path.read_text())["compute"]}


@pytest.mark.parametrize("flag", ["--max-token-increase", "--max-flops-increase"])
def test_same_answers_30pct_longer_fail_the_gate(runs, tmp_path, flag, capsys):
    assert cli("compare", str(runs["base"]), str(runs["longer"]), flag, "10%", "--json", str(tmp_path / "c.json")) == 1
    rows = compute_rows(tmp_path / "c.json")
    tokens, flops = rows["generated tokens"], rows["FLOPs"]
    assert tokens["relative"] == pytest.approx(0.3, abs=0.02) and tokens["n_shared"] == 3
    assert 0.2 < flops["relative"] < 0.3  # the 10 prompt tokens are prefilled the same in both
    gated = tokens if flag == "--max-token-increase" else flops
    assert gated["gated"] and gated["status"] == "regression" and gated["p_value"] < 0.05
    assert "verdict: regression" in capsys.readouterr().err
    cmp = json.loads((tmp_path / "c.json").read_text())
    assert all(m["status"] != "regression" for m in cmp["metrics"])  # the scores did not move


def test_longer_answers_pass_when_not_gated_or_within_the_limit(runs, tmp_path):
    assert cli("compare", str(runs["base"]), str(runs["longer"]), "--json", str(tmp_path / "c.json")) == 0
    assert compute_rows(tmp_path / "c.json")["generated tokens"]["status"] == "increase"
    assert cli("compare", str(runs["base"]), str(runs["longer"]), "--max-token-increase", "40%",
               "--json", str(tmp_path / "c.json")) == 0
    assert compute_rows(tmp_path / "c.json")["generated tokens"]["status"] == "within limit"


def test_unchanged_candidate_passes(runs, tmp_path):
    assert cli("compare", str(runs["base"]), str(runs["same"]), "--max-token-increase", "10%",
               "--max-flops-increase", "10%", "--json", str(tmp_path / "c.json")) == 0
    rows = compute_rows(tmp_path / "c.json")
    assert rows["generated tokens"]["status"] == rows["FLOPs"]["status"] == "unchanged"
    assert rows["generated tokens"]["relative"] == 0


def test_schema1_baseline_compares_tokens_from_samples_and_not_flops(tmp_path, capsys):
    assert cli("compare", str(BASELINE), str(BASELINE), "--max-token-increase", "10%", "--max-flops-increase", "10%",
               "--json", str(tmp_path / "c.json"), "--md", str(tmp_path / "c.md")) == 0
    rows = compute_rows(tmp_path / "c.json")
    assert rows["generated tokens"]["status"] == "unchanged" and rows["generated tokens"]["n_shared"] == 50
    assert rows["FLOPs"]["status"] == "not compared" and "no per-sample FLOPs" in rows["FLOPs"]["note"]
    assert "not compared" in (tmp_path / "c.md").read_text()


def test_token_increase_on_crafted_runs_matches_a_direct_computation(tmp_path):
    base = make_run(tmp_path / "b", {"aime2024": rates(6, [1] * 6, 2)}, completion_tokens=lambda p, i: 10 + int(p[1:]) + i)
    cand = make_run(tmp_path / "c", {"aime2024": rates(6, [1] * 6, 2)}, completion_tokens=lambda p, i: 2 * (10 + int(p[1:]) + i))
    assert cli("compare", str(base), str(cand), "--max-token-increase", "99%", "--json", str(tmp_path / "c.json")) == 1
    t = compute_rows(tmp_path / "c.json")["generated tokens"]
    mean_base = sum(10 + p + i for p in range(6) for i in range(2)) / 12
    assert (t["baseline"], t["candidate"], t["relative"]) == (pytest.approx(mean_base), pytest.approx(2 * mean_base), pytest.approx(1.0))
    assert t["delta"] == pytest.approx(mean_base)


def test_bad_percentage_is_a_one_line_error(capsys):
    assert cli("compare", str(BASELINE), str(BASELINE), "--max-token-increase", "lots") == 2
    assert "expected a percentage such as 10%" in capsys.readouterr().err
