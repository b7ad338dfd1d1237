"""Graders on known right and wrong answers: math-verify (AIME), LiveCodeBench stdin and
functional rules, code extraction, test decoding, data loading and the date window."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m1bench.harness.core.m1_output import parse_output, split_reasoning
from m1bench.harness.core.metrics import bootstrap_ci, majority, pass_at_k, summarize
from m1bench.harness.core.sandbox import Limits, Sandbox
from m1bench.harness.core.types import Completion, Score
from m1bench.suites import get_suite
from m1bench.suites.aime.suite import grade_math
from m1bench.suites.livecodebench.grading import run_tests, stdout_matches
from m1bench.suites.livecodebench.suite import decode_tests, extract_code, release_files
from m1bench.suites.source import DataError, load_rows
from tests.support.fixtures.lcb_fixture import SOLUTIONS, call_test, encode_private, rows, stdin_test


# ---- math-verify ------------------------------------------------------------------------
@pytest.mark.parametrize("answer,gold", [
    ("so the answer is \\boxed{204}", "204"),
    ("\\boxed{\\frac{1}{2}}", "0.5"),
    ("The result is $\\frac{6}{12}$.", "\\frac{1}{2}"),
    ("\\boxed{033}", "33"),
    ("We get \\boxed{2\\sqrt{2}}", "\\sqrt{8}"),
    ("\\boxed{x^2+2x+1}", "(x+1)^2"),
])
def test_math_verify_equivalences(answer, gold):
    assert grade_math(answer, gold).correct


@pytest.mark.parametrize("answer,gold", [
    ("\\boxed{205}", "204"),
    ("no final answer here", "204"),
    ("", "7"),
    ("\\boxed{\\frac{1}{3}}", "0.33"),
])
def test_math_verify_wrong(answer, gold):
    assert not grade_math(answer, gold).correct


def test_math_answers_vote_by_value():
    assert grade_math("\\boxed{0.5}", "1/2").answer == grade_math("\\boxed{\\frac{1}{2}}", "1/2").answer


def test_aime_suite_grades_answer_after_reasoning_removal(tmp_path):
    f = tmp_path / "aime.jsonl"
    f.write_text(json.dumps({"ID": "2024-I-1", "Problem": "p", "Answer": 204}) + "\n")
    suite = get_suite("aime2024")
    problems, info = suite.load({"data": str(f)})
    assert problems[0].id == "2024-I-1" and problems[0].messages[0]["content"].startswith("Please reason step by step")
    reasoning, answer = split_reasoning("<think>maybe \\boxed{205}?</think>Final: \\boxed{204}")
    assert suite.score(problems[0], Completion(text=answer, reasoning=reasoning), {}).correct
    # a completion cut inside its reasoning has no answer: wrong, not "205"
    reasoning, answer = split_reasoning("<think>the answer is \\boxed{204} but")
    assert answer == "" and not suite.score(problems[0], Completion(text=answer), {}).correct


def test_reasoning_and_tool_call_parsing():
    # M1's template does not open <think> in the prompt: a </think> with none before it is answer text
    assert split_reasoning("abc</think>ans") == ("", "abc</think>ans")
    assert split_reasoning("plain") == ("", "plain")
    assert split_reasoning("<think>a</think>b</think>c") == ("a", "b</think>c")  # the first close ends it
    assert split_reasoning("pre <think>cut off") == ("cut off", "pre")
    out = parse_output('<think>r</think>ok<tool_calls>\n{"name": "f", "arguments": {"a": 1}}\nnot json\n</tool_calls>')
    assert out.reasoning == "r" and [c.name for c in out.tool_calls] == ["f"]
    assert json.loads(out.tool_calls[0].arguments) == {"a": 1} and "not json" in out.content


# ---- metrics ----------------------------------------------------------------------------
def test_pass_at_k_matches_combinatorics():
    from math import comb
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_majority_and_summary():
    probs = [[Score(True, "1"), Score(False, "2"), Score(True, "1")],  # majority right
             [Score(False, "5"), Score(False, "5"), Score(True, "3")],  # majority wrong
             [Score(False, None), Score(False, None), Score(False, None)]]
    assert [majority(p) for p in probs] == [1.0, 0.0, 0.0]
    m = {x["metric"]: x for x in summarize(probs, k=3, majority=True)}
    assert m["avg@3"]["value"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert m["pass@3"]["value"] == pytest.approx(2 / 3) and m["pass@1"]["value"] == pytest.approx(m["avg@3"]["value"])
    lo, hi = m["avg@3"]["ci95"]
    assert 0 <= lo <= m["avg@3"]["value"] <= hi <= 1
    assert bootstrap_ci(pytest.importorskip("numpy").ones(5)) == (1.0, 1.0)


# ---- LiveCodeBench ----------------------------------------------------------------------
@pytest.mark.parametrize("got,expected,ok", [
    ("7\n0.750\n", "7\n0.750", True),
    ("  7 \n 0.75\n\n", "7\n0.750", True),       # stripped lines; Decimal 0.75 == 0.750
    ("1e3", "1000", True),                       # Decimal equality
    ("0.3333333", "0.333333", False),            # no epsilon in the official rules
    ("1 2 3", "1 2  3", True),                   # whitespace-separated numbers
    ("7\n0.75\n1", "7\n0.75", False),            # line count must match
    ("YES", "yes", False),
    ("(1, 2)", "[1, 2]", False),
])
def test_stdout_comparison_rules(got, expected, ok):
    assert stdout_matches(got, expected) is ok


def test_private_tests_decode_and_release_files():
    tests = [stdin_test("1\n", "2\n")]
    assert decode_tests(encode_private(tests), "x") == tests == decode_tests(json.dumps(tests), "x")
    with pytest.raises(DataError, match="neither JSON"):
        decode_tests("!!!", "row 3")
    assert release_files("release_v3") == ["test.jsonl", "test2.jsonl", "test3.jsonl"] and release_files("v2") == ["test2.jsonl"]


def test_extract_last_fenced_block():
    text = "first\n```python\nprint(1)\n```\nthen fixed:\n```python\nprint(2)\n```\nbye"
    assert extract_code(text) == "print(2)"
    assert extract_code("no code") is None and extract_code("```python\nunclosed") is None


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox(Limits(wall_s=5, cpu_s=5, memory_mb=512))


@pytest.fixture(scope="module")
def lcb(tmp_path_factory):
    f = tmp_path_factory.mktemp("lcb") / "lcb.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    suite = get_suite("livecodebench")
    problems, info = suite.load({"data": str(f)})
    return suite, {p.id: p for p in problems}, info


def test_lcb_load_window_and_tests(lcb):
    _, problems, info = lcb
    assert set(problems) == {"demo_stdin_sum", "demo_call_minmax"}  # 2023 problem is outside the window
    assert problems["demo_stdin_sum"].target["fn_name"] is None and len(problems["demo_stdin_sum"].target["tests"]) == 3
    assert problems["demo_call_minmax"].target["fn_name"] == "minMax"
    assert "```python\nclass Solution" in problems["demo_call_minmax"].messages[1]["content"]
    assert info["window"] == ["2024-08-01", "2025-05-01"]


@pytest.mark.parametrize("when,kept", [("2025-05-01T00:00:00", True), ("2025-05-01T06:30:00", False),
                                       ("2024-08-01T00:00:00", True), ("2024-07-31T23:59:00", False)])
def test_lcb_window_bounds_are_midnights_as_lcb_runner(tmp_path, when, kept):
    r = rows()[0]
    r["contest_date"] = when
    f = tmp_path / "edge.jsonl"
    f.write_text(json.dumps(r) + "\n")
    assert len(get_suite("livecodebench").load({"data": str(f)})[0]) == kept


@pytest.mark.parametrize("pid,which,ok", [
    ("demo_stdin_sum", "right", True), ("demo_stdin_sum", "right_other_format", True), ("demo_stdin_sum", "wrong", False),
    ("demo_call_minmax", "right", True), ("demo_call_minmax", "right_tuple", True), ("demo_call_minmax", "wrong", False),
])
def test_lcb_solutions(lcb, pid, which, ok):
    suite, problems, _ = lcb
    answer = f"Here you go:\n```python\n{SOLUTIONS[pid][which]}```\n"
    score = suite.score(problems[pid], Completion(text=answer), {"test_timeout_s": 5})
    assert score.correct is ok, score.details


def test_functional_harness_details(sandbox):
    # module-level function (no class Solution), official prelude available without imports
    code = "def f(xs):\n    return [max(Counter(xs).values()), gcd(4, 6)]\n"
    assert run_tests(code, [call_test([[2, 1, 2]], [2, 2])], "f", sandbox, 5)["passed"]
    # nested tuples do not count as lists: only the top-level result is converted, as officially
    code = "def f(x):\n    return [(x, 2)]\n"
    assert not run_tests(code, [call_test([1], [[1, 2]])], "f", sandbox, 5)["passed"]
    # floats compare exactly with ==
    assert run_tests("def f(x):\n    return x / 2\n", [call_test([1], 0.5)], "f", sandbox, 5)["passed"]
    assert not run_tests("def f(x):\n    return x + 0.2\n", [call_test([0.1], 0.3)], "f", sandbox, 5)["passed"]
    res = run_tests("def g(x):\n    return 1\n", [call_test([1], 1)], "f", sandbox, 5)
    assert not res["passed"] and "no function" in res["failure"]["error"]


def test_failures_stop_at_first_and_name_cause(sandbox):
    tests = [stdin_test("1\n", "1\n"), stdin_test("2\n", "2\n"), stdin_test("3\n", "3\n")]
    res = run_tests("x = int(input())\nassert x < 2\nprint(x)\n", tests, None, sandbox, 5)
    assert not res["passed"] and res["n_passed"] == 1 and res["failure"]["test"] == 1
    assert "runtime error" in res["failure"]["error"] and "AssertionError" in res["failure"]["stderr"]
    res = run_tests("while True: pass\n", tests, None, sandbox, 1)
    assert res["failure"]["error"] == "time limit exceeded" and res["n_passed"] == 0


def test_no_code_block_is_wrong_not_error(lcb):
    suite, problems, _ = lcb
    s = suite.score(problems["demo_stdin_sum"], Completion(text="I think the answer is 7"), {})
    assert not s.correct and s.details["error"] == "no fenced code block"


# ---- data loading -----------------------------------------------------------------------
def test_local_formats_agree(tmp_path):
    data = [{"problem": "p1", "answer": "1"}, {"problem": "p2", "answer": "2"}]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    (tmp_path / "a.json").write_text(json.dumps(data))
    pq.write_table(pa.Table.from_pylist(data), tmp_path / "a.parquet")
    hashes = {load_rows(str(tmp_path / n))[1]["content_hash"] for n in ("a.jsonl", "a.json", "a.parquet")}
    assert len(hashes) == 1


def test_bad_data_names_file_and_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"problem": "x", "answer": "1"}\n{oops\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        load_rows(str(f))
    g = tmp_path / "nocol.jsonl"
    g.write_text('{"question_text": "x"}\n')
    with pytest.raises(DataError, match="no problem column"):
        get_suite("aime2025").load({"data": str(g)})


def test_hub_dataset_read_at_pinned_revision(monkeypatch):
    import datasets

    seen = {}

    class FakeDS:
        def to_list(self):
            return [{"problem": "p", "answer": "3"}]

    def fake_load(path, **kw):
        seen.update(path=path, **kw)
        return FakeDS()

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    sha = "0123456789abcdef0123456789abcdef01234567"
    rows_, info = load_rows("org/aime", revision=sha, split="train")
    assert seen["path"] == "org/aime" and seen["revision"] == sha and info["revision"] == sha
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo, f, repo_type, revision: f"/cache/{repo_type}/{repo}@{revision}/{f}")
    rows_, info = load_rows("livecodebench/code_generation_lite", revision=sha, data_files=["test.jsonl"])
    assert seen["data_files"] == {"test": [f"/cache/dataset/livecodebench/code_generation_lite@{sha}/test.jsonl"]}
