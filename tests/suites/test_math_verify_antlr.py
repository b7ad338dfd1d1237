"""math-verify's verdicts do not depend on which antlr4 runtime parses the LaTeX. m1bench pins
math-verify[antlr4_11_0] (the runtime lm-eval's minerva_math tasks require); the verdicts on the real
AIME 2024/2025 strings were recorded under antlr4 4.13.2, the runtime m1bench pinned before, and the
installed runtime must reproduce every one of them (the recording: `python tests/suites/test_math_verify_antlr.py`
under the old runtime). Only ids, verdicts and parsed answers are recorded, not the benchmark text."""
import json
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from m1bench.suites.aime.suite import grade_math

REALDATA = Path("/work/shared/realdata")
FILES = {"aime2024": REALDATA / "aime2024" / "qwen25math_aime24_test.jsonl",
         "aime2025": REALDATA / "aime2025" / "mathevalharness_aime25_test.jsonl"}
RECORDED = Path(__file__).parents[1] / "support" / "fixtures" / "math_verify_aime_verdicts.json"


def verdicts() -> dict[str, list]:
    """Per real row: the official solution graded against the answer, the problem statement (LaTeX-rich)
    graded against it, and a boxed off-by-one answer; each as (correct, extracted answers)."""
    out = {}
    for suite, path in FILES.items():
        for i, line in enumerate(path.read_text().splitlines()):
            row = json.loads(line)
            gold = str(row["answer"])
            texts = {"solution": row.get("solution"), "problem": row["problem"],
                     "off_by_one": f"\\boxed{{{int(gold) + 1}}}"}
            for kind, text in texts.items():
                if text is not None:
                    s = grade_math(text, gold)
                    out[f"{suite}/{row.get('id', i)}/{kind}"] = [s.correct, s.details["extracted"]]
    return out


@pytest.mark.skipif(not all(p.exists() for p in FILES.values()), reason="needs the real AIME rows in /work/shared")
def test_the_installed_antlr_runtime_keeps_every_recorded_verdict():
    assert version("antlr4-python3-runtime").startswith("4.11")  # what lm-eval's minerva_math asserts
    recorded = json.loads(RECORDED.read_text())
    assert recorded["antlr4"] == "4.13.2" and recorded["math-verify"] == version("math-verify")
    now = verdicts()
    assert len(now) == len(recorded["verdicts"]) > 100
    assert any(c for c, _ in now.values()) and not all(c for c, _ in now.values())
    assert {k: v for k, v in now.items() if recorded["verdicts"][k] != v} == {}


if __name__ == "__main__":
    RECORDED.write_text(json.dumps({"antlr4": version("antlr4-python3-runtime"), "math-verify": version("math-verify"),
                                    "verdicts": verdicts()}, indent=0, sort_keys=True) + "\n")
    print(f"wrote {RECORDED}", file=sys.stderr)
