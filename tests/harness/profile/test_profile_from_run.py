"""`m1bench profile flops --from-run`: the committed schema-1 baseline (token counts only in its samples)
and a report written from a run; the run's lengths priced on each model equal the token-by-token sum of
per-token decode FLOPs after the prefill; a bad path is a one-line error, exit 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

from m1bench.harness.cli import main
from m1bench.model import flops as F
from m1bench.model.arch import load_spec
from tests.support import REPO
from tests.support.crafted_runs import crafted_report, rates

BASELINE = REPO / "reports/baselines/tiny/baseline"


def priced_token_by_token(name: str, lengths: list[int], prompt: int) -> float:
    spec = load_spec(name)
    pre = F.total(F.prefill_flops(spec, prompt, logits="none"))
    return float(sum(pre + sum(F.total(F.decode_flops(spec, prompt + t)) for t in range(n)) for n in lengths))


@pytest.mark.parametrize("source", ["baseline", "crafted"])
def test_from_run_draws_the_run_and_prices_its_lengths(source, tmp_path, capsys):
    if source == "baseline":
        where = BASELINE
    else:
        where = crafted_report(tmp_path, "r", {"aime2024": rates(5, [1, 0, 1, 1, 0], 2)})
    main(["profile", "flops", "--from-run", str(where), "--points", "9", "--out", str(tmp_path / "f")])
    out = json.loads((tmp_path / "f.json").read_text())
    samples = [json.loads(line) for line in (where / "samples.jsonl").read_text().splitlines()]
    lengths = [s["completion"]["completion_tokens"] for s in samples if s["status"] == "ok"]
    prompt = int(np.median([s["completion"]["prompt_tokens"] for s in samples if s["status"] == "ok"]))
    run = out["run"]
    assert run["generated_tokens"]["aime2024"] == lengths and run["prompt_tokens_median"] == prompt == out["prompt"]
    assert out["max_gen"] == 2 * max(lengths)
    for name in ("m1", "m1-softmax", "deepseek-r1"):
        assert run["flops_total"][name] == pytest.approx(priced_token_by_token(name, lengths, prompt), rel=1e-9)
    assert run["m1_over_deepseek-r1"] == pytest.approx(run["flops_total"]["m1"] / run["flops_total"]["deepseek-r1"])
    assert (tmp_path / "f.png").stat().st_size > 10000 and (tmp_path / "f.svg").exists()
    assert "This run's generation lengths" in capsys.readouterr().out


def test_from_run_bad_path_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["profile", "flops", "--from-run", str(tmp_path / "nope"), "--out", str(tmp_path / "f")])
    assert e.value.code == 2
    out = capsys.readouterr().out
    assert "nope" in out and "Traceback" not in out and not (tmp_path / "f.json").exists()
