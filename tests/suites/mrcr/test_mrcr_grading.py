"""OpenAI-MRCR grading, bins and aggregates."""
import json

import pytest

from m1bench.harness.core.m1_output import split_reasoning
from m1bench.harness.core.types import Completion
from m1bench.suites.base import Problem
from m1bench.suites.mrcr.grading import (
    ABOVE,
    BELOW,
    BIN_LABELS,
    bin_label,
    bin_range,
    breakdown,
    grade,
    paper_aggregates,
)
from m1bench.suites.mrcr.openai_mrcr import score_sample
from tests.support import FIXTURES

CASES = json.loads((FIXTURES / "mrcr" / "grader_cases.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_grader_reproduces_the_official_function(case):
    got = grade(case["response"], case["answer"], case["random_string_to_prepend"])
    assert got == pytest.approx(case["expected"], abs=1e-12)


def test_grader_keeps_sequencematchers_default_autojunk():
    long = next(c for c in CASES if "autojunk" in c["case"])
    assert long["expected"] < 0.01  # autojunk=False would give 0.997: the official call uses the default
    assert grade(long["response"], long["answer"], "PFX") == pytest.approx(long["expected"])


@pytest.mark.parametrize("tokens,label", [
    (0, BELOW), (4095, BELOW), (4096, "4K-8K"), (8192, "4K-8K"), (8193, "8K-16K"), (16384, "8K-16K"),
    (65537, "64K-128K"), (131072, "64K-128K"), (131073, "128K-256K"), (524288, "256K-512K"),
    (524289, "512K-1M"), (1048576, "512K-1M"), (1048577, ABOVE),
])
def test_bins_follow_the_dataset_card(tokens, label):
    assert bin_label(tokens) == label


def test_bin_labels_and_ranges():
    assert BIN_LABELS == ("4K-8K", "8K-16K", "16K-32K", "32K-64K", "64K-128K", "128K-256K", "256K-512K", "512K-1M")
    assert bin_range("4K-8K") == "[4096, 8192]"
    assert bin_range("512K-1M") == "(524288, 1048576]"


def _problem(prefix="Qx7", answer_text="the poem"):
    return Problem(id="p", messages=[], target={"answer": prefix + answer_text, "prefix": prefix},
                   meta={"bin": "4K-8K", "n_needles": 2, "tokens": 5000})


def test_score_grades_the_answer_after_reasoning_removal():
    # what the clients do: reasoning split off (harness/core/m1_output.py), the answer stripped
    reasoning, answer = split_reasoning("<think>maybe Qx7 the other poem</think>\n\nQx7the poem")
    s = score_sample(_problem(), Completion(text=answer, reasoning=reasoning))
    assert s.details["score"] == 1.0 and s.correct and s.details["prefix_ok"]
    s = score_sample(_problem(), Completion(text="Here it is: Qx7the poem"))
    assert s.details["score"] == 0.0 and not s.correct and not s.details["prefix_ok"]
    s = score_sample(_problem(), Completion(text="Qx7the poems"))
    assert 0.9 < s.details["score"] < 1.0 and not s.correct


def test_breakdown_cells_and_aggregates():
    samples = ([{"score": 1.0, "bin": "64K-128K", "n_needles": 2}] * 3 + [{"score": 0.0, "bin": "64K-128K", "n_needles": 2}]
               + [{"score": 0.5, "bin": "64K-128K", "n_needles": 8}] + [{"score": 0.2, "bin": "512K-1M", "n_needles": 2}]
               + [{"score": 0.9, "bin": "4K-8K", "n_needles": 2}])
    b = breakdown(samples, paper_aggregates())
    assert b["per_bin_needles"]["64K-128K"]["2"] == {"score": 0.75, "n": 4, "exact": 3}
    assert b["per_bin"]["64K-128K"]["n"] == 5
    assert b["per_needles"]["8"]["score"] == 0.5
    assert b["aggregates"]["128K"]["score"] == 0.75 and b["aggregates"]["128K"]["n"] == 4  # 2 needles, one bin
    assert b["aggregates"]["1M"]["score"] == pytest.approx(0.2)
    assert "(65536, 131072]" in b["aggregates"]["128K"]["definition"]
    assert "2-needle" in b["aggregates"]["128K"]["definition"]
    avg = breakdown(samples, paper_aggregates(needles=(2, 8), mode="average"))
    assert avg["aggregates"]["128K"]["n"] == 6  # bins 4K..128K, both needle counts
    assert avg["aggregates"]["128K"]["score"] == pytest.approx((3 + 0.5 + 0.9) / 6)
    assert list(b["per_bin"]) == ["4K-8K", "64K-128K", "512K-1M"]
