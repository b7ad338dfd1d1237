"""SWE-bench Verified: the Agentless-style scaffold on a fixture instance made here (a small git
repository with a bug, FAIL_TO_PASS and PASS_TO_PASS tests) with a scripted model, through the
runner; the local evaluation mode graded by swebench's own grading functions, with the row's own
test command or (the fixture filed under a repository of swebench's tables) the official one; the
docker mode's command line and report read-back (with the harness faked: no Docker here); subset,
predictions. The real SWE-bench Verified rows: test_real_rows.py."""
import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from m1bench.harness.core.types import Completion
from m1bench.harness.eval.config import validate
from m1bench.harness.eval.runner import Runner
from m1bench.suites.source import DataError
from m1bench.suites.swebench.agentless import parse_files, parse_locations
from m1bench.suites.swebench.code import elements, excerpt, render_skeleton, render_tree, spans_for
from m1bench.suites.swebench.edits import apply_edits, build_candidate, file_diff, parse_edits, select
from m1bench.suites.swebench.predictions import main as predictions_main
from m1bench.suites.swebench.suite import PAPER_EXCLUDED

try:
    import swebench
except ImportError:  # the scaffold pieces are still tested; grading needs swebench's own functions
    swebench = None
needs_swebench = pytest.mark.skipif(swebench is None, reason="grading needs the swebench extra (pip install 'm1bench[swebench]')")

IID = "acme__calc-1"
OPS = '''"""Arithmetic helpers."""


def add(a, b):
    return a + b


def mean(values):
    """Average of a list of numbers."""
    return sum(values) / (len(values) - 1)


class Stats:
    def __init__(self, values):
        self.values = list(values)

    def total(self):
        return add(0, sum(self.values))
'''
TESTS = '''from calc.ops import Stats, add


def test_add():
    assert add(2, 3) == 5


def test_total():
    assert Stats([1, 2, 3]).total() == 6
'''
TEST_PATCH = '''diff --git a/tests/test_ops.py b/tests/test_ops.py
--- a/tests/test_ops.py
+++ b/tests/test_ops.py
@@ -1,4 +1,4 @@
-from calc.ops import Stats, add
+from calc.ops import Stats, add, mean
 
 
 def test_add():
@@ -7,3 +7,7 @@ def test_add():
 
 def test_total():
     assert Stats([1, 2, 3]).total() == 6
+
+
+def test_mean():
+    assert mean([2, 4]) == 3
'''
BUG_LINE = "    return sum(values) / (len(values) - 1)"
FIX = f"### calc/ops.py\n<<<<<<< SEARCH\n{BUG_LINE}\n=======\n    return sum(values) / len(values)\n>>>>>>> REPLACE\n"
FIX_RESTYLED = ("### calc/ops.py\n<<<<<<< SEARCH\n" + BUG_LINE +
                "\n=======\n    return sum(values)/len(values)  # the mean\n>>>>>>> REPLACE\n")
OTHER_FIX = f"### calc/ops.py\n<<<<<<< SEARCH\n{BUG_LINE}\n=======\n    return sum(values) / float(len(values))\n>>>>>>> REPLACE\n"
BREAKS_ADD = FIX + "\n### calc/ops.py\n<<<<<<< SEARCH\n    return a + b\n=======\n    return a - b\n>>>>>>> REPLACE\n"
NOT_IN_FILE = "### calc/ops.py\n<<<<<<< SEARCH\n    return len(values)\n=======\n    return 1\n>>>>>>> REPLACE\n"


@pytest.fixture(autouse=True)
def reports_in_tmp(tmp_path, monkeypatch):
    """Run reports go under the test's tmp dir, not the repository's reports/."""
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(tmp_path / "reports"))


def quiet():
    return Console(file=open("/dev/null", "w"))


def git(cwd, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def make_instance(tmp_path, repo_name="acme/calc", **row):
    """repos_dir with the calc repository (filed as repo_name) at its buggy base commit, and a
    one-instance data file."""
    repo = tmp_path / "repos" / repo_name.replace("/", "__")
    (repo / "calc").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "calc" / "__init__.py").write_text("")
    (repo / "calc" / "ops.py").write_text(OPS)
    (repo / "tests" / "__init__.py").write_text("")  # `pytest tests/…` (no -m) imports calc from the root
    (repo / "tests" / "test_ops.py").write_text(TESTS)
    (repo / "README.md").write_text("calc\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "calc" / "ops.py").write_text(OPS + "\n\ndef later():\n    pass\n")  # a later commit the instance must not see
    git(repo, "commit", "-qam", "later")
    row = {"instance_id": IID, "repo": repo_name, "base_commit": base, "version": "0.1",
           "problem_statement": "mean([2, 4]) returns 6 instead of 3.",
           "patch": "", "test_patch": TEST_PATCH,
           "FAIL_TO_PASS": json.dumps(["tests/test_ops.py::test_mean"]),
           "PASS_TO_PASS": json.dumps(["tests/test_ops.py::test_add", "tests/test_ops.py::test_total"]),
           "test_cmd": "python -m pytest -rA -p no:cacheprovider tests/test_ops.py", **row}
    row = {k: v for k, v in row.items() if v is not None}
    data = tmp_path / "instances.jsonl"
    data.write_text(json.dumps(row) + "\n")
    return {"repos": tmp_path / "repos", "data": data, "row": row, "tmp": tmp_path}


@pytest.fixture
def instance(tmp_path):
    """An instance of one's own: acme/calc, not in swebench's tables, with its test_cmd."""
    return make_instance(tmp_path)


@pytest.fixture
def tables_instance(tmp_path):
    """The calc fixture filed as pytest-dev/pytest 6.0 with no test_cmd: as princeton-nlp rows come, the
    test command, log parser and image come from swebench's tables for that repository and version."""
    return make_instance(tmp_path, "pytest-dev/pytest", version="6.0", test_cmd=None)


class ScriptedCoder:
    """Answers the scaffold's stages by the tag of the request key (…/files, …/elements, …/repairN)."""

    model_id = "scripted-coder"

    def __init__(self, repairs=(FIX,), files="```\ncalc/ops.py\n```", elements="```\ncalc/ops.py\nfunction: mean\n```"):
        self.repairs, self.files, self.elements = list(repairs), files, elements
        self.requests = []

    def describe(self):
        return {"engine": "scripted", "model_id": self.model_id}

    async def complete(self, req):
        self.requests.append(req)
        tag = req.key.rsplit("/", 1)[1]
        if tag == "files":
            text = self.files
        elif tag == "elements":
            text = self.elements
        else:
            text = "Here is the fix.\n```python\n" + self.repairs[int(tag[6:]) % len(self.repairs)] + "```"
        return Completion(text=text, reasoning="thinking", prompt_tokens=50, completion_tokens=20)

    async def aclose(self):
        pass

    def prompt(self, tag):
        return next(r for r in self.requests if r.key.endswith("/" + tag)).messages[0]["content"]


def cfg_for(inst, out, **opts):
    o = {"data": str(inst["data"]), "repos_dir": str(inst["repos"]), "clone": False, "evaluation": "local",
         "repair_samples": 1, "eval_timeout_s": 120, **opts}
    return validate({"run": {"output_dir": str(out), "concurrency": 2}, "suites": {"swebench-verified": o}})


def run(cfg, client):
    return asyncio.run(Runner(cfg, client=client, console=quiet()).run())


def records(out):
    return [json.loads(line) for line in (Path(out) / "records.jsonl").read_text().splitlines()]


# ---- end to end through the runner ---------------------------------------------------------------
@needs_swebench
def test_correct_patch_is_resolved(instance):
    out = instance["tmp"] / "run"
    client = ScriptedCoder()
    res = run(cfg_for(instance, out, context_lines=2), client)
    rec = records(out)[0]
    assert rec["score"]["correct"] is True and rec["score"]["details"]["reason"] == "resolved"
    status = rec["score"]["details"]["tests_status"]
    assert status["FAIL_TO_PASS"]["success"] == ["tests/test_ops.py::test_mean"]
    assert sorted(status["PASS_TO_PASS"]["success"]) == ["tests/test_ops.py::test_add", "tests/test_ops.py::test_total"]
    assert rec["completion"]["text"].startswith("diff --git a/calc/ops.py b/calc/ops.py")
    assert "+    return sum(values) / len(values)" in rec["completion"]["text"]
    s = res["suites"]["swebench-verified"]
    assert s["metrics"][0]["value"] == 1.0 and s["data"]["subset"] == "all" and s["data"]["instances"] == 1
    assert s["environment"]["evaluation"] == "local" and s["grader"] == f"swebench=={swebench.__version__}"
    # the log is in the harness's format and swebench's grading read it
    log = Path(rec["score"]["details"]["log"]).read_text()
    assert ">>>>> Start Test Output" in log and ">>>>> End Test Output" in log
    # stage 1 saw the repository structure at the base commit (not the later commit's), stage 2 the skeleton
    assert "calc/" in client.prompt("files") and "    ops.py" in client.prompt("files")
    assert "README.md" not in client.prompt("files")
    assert "def mean(values):" in client.prompt("elements") and "def later" not in client.prompt("elements")
    assert BUG_LINE in client.prompt("repair0") and "def total" not in client.prompt("repair0")
    stages = [t["stage"] for t in rec["completion"]["trajectory"]]
    assert stages == ["files", "elements", "repair", "select"]


@needs_swebench
@pytest.mark.parametrize("repair,reason", [
    (BREAKS_ADD, "PASS_TO_PASS broken: tests/test_ops.py::test_add, tests/test_ops.py::test_total"),
    (NOT_IN_FILE, "empty patch"),
])
def test_unresolved_patches_say_why(instance, repair, reason):
    out = instance["tmp"] / "run"
    run(cfg_for(instance, out), ScriptedCoder(repairs=[repair]))
    rec = records(out)[0]
    assert rec["score"]["correct"] is False and rec["score"]["details"]["reason"] == reason
    if repair is NOT_IN_FILE:
        repair_step = rec["completion"]["trajectory"][2]
        assert repair_step["problem"] == "edit of calc/ops.py: the SEARCH block is not in the file"


@needs_swebench
def test_patch_that_does_not_apply_is_unresolved(instance):
    """A recorded patch that no longer applies (regraded from the record) is unresolved, with the reason."""
    out = instance["tmp"] / "run"
    run(cfg_for(instance, out), ScriptedCoder())
    recs = records(out)
    bad = recs[0]["completion"]["text"].replace("(len(values) - 1)", "(len(values) - 2)")
    recs[0]["completion"]["text"], recs[0]["grader"] = bad, "old"
    (out / "records.jsonl").write_text(json.dumps(recs[0]) + "\n")
    run(cfg_for(instance, out), ScriptedCoder(repairs=["nothing should be asked"]))
    rec = records(out)[-1]
    assert rec["regraded"] and rec["score"]["correct"] is False
    assert rec["score"]["details"]["reason"] == "patch does not apply"
    assert ">>>>> Patch Apply Failed" in Path(rec["score"]["details"]["log"]).read_text()


@needs_swebench
def test_k_samples_majority_over_normalised_patches(instance):
    out = instance["tmp"] / "run"
    client = ScriptedCoder(repairs=[NOT_IN_FILE, OTHER_FIX, FIX, FIX_RESTYLED])
    run(cfg_for(instance, out, repair_samples=4), client)
    traj = records(out)[0]["completion"]["trajectory"]
    repairs = [t for t in traj if t["stage"] == "repair"]
    assert [r["sample"] for r in repairs] == [0, 1, 2, 3] and repairs[0]["patch"] == ""
    assert repairs[2]["key"] == repairs[3]["key"] != repairs[1]["key"]  # same syntax tree, different layout
    sel = traj[-1]
    assert sel["chosen"] == 2 and sorted(sel["votes"].values()) == [1, 2]
    assert records(out)[0]["completion"]["text"] == repairs[2]["patch"]
    seeds = {r.sampling.seed for r in client.requests if "/repair" in r.key}
    assert len(seeds) == 4


@needs_swebench
def test_paper_subset_and_missing_checkout(instance):
    rows = [instance["row"], {**instance["row"], "instance_id": PAPER_EXCLUDED[5], "repo": "psf/requests"}]
    instance["data"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = instance["tmp"] / "run"
    res = run(cfg_for(instance, out, subset="paper486"), ScriptedCoder())
    s = res["suites"]["swebench-verified"]
    assert s["data"]["subset"] == "paper486" and s["data"]["excluded"] == [{"id": "psf__requests-2317", "reason": "left out of the M1 paper's n=486 set"}]
    assert s["data"]["instances"] == 1 and [r["problem_id"] for r in records(out)] == [IID]
    with pytest.raises(DataError, match=r"psf/requests: no checkout at .*psf__requests \(clone is off"):
        run(cfg_for(instance, instance["tmp"] / "run2"), ScriptedCoder())


@needs_swebench
def test_repositories_are_cloned_when_missing(instance):
    """clone = true: a missing checkout is cloned from clone_url (a file:// remote here) into repos_dir."""
    origin = instance["tmp"] / "origin"
    (origin / "acme").mkdir(parents=True)
    (instance["repos"] / "acme__calc").rename(origin / "acme" / "calc")
    out = instance["tmp"] / "run"
    res = run(cfg_for(instance, out, clone=True, clone_url=f"file://{origin}/{{repo}}"), ScriptedCoder())
    assert res["suites"]["swebench-verified"]["metrics"][0]["value"] == 1.0
    assert (instance["repos"] / "acme__calc" / ".git").is_dir()
    (origin / "acme" / "calc").rename(origin / "acme" / "gone")  # the clone is reused, no second clone
    run(cfg_for(instance, instance["tmp"] / "run2", clone=True, clone_url=f"file://{origin}/{{repo}}"), ScriptedCoder())


@needs_swebench
def test_local_mode_runs_the_official_test_command(tables_instance):
    """A row with no test_cmd (as princeton-nlp's are) runs the command of swebench's spec for its
    repository and version (pytest-dev/pytest 6.0: `pytest -rA` and the test patch's files), and its
    log is read by that repository's parser."""
    out = tables_instance["tmp"] / "run"
    res = run(cfg_for(tables_instance, out), ScriptedCoder())
    rec = records(out)[0]
    assert rec["score"]["correct"] is True and rec["score"]["details"]["reason"] == "resolved"
    script = (Path(rec["score"]["details"]["log"]).parent / "eval.sh").read_text()
    assert "\npytest -rA tests/test_ops.py\n" in script
    assert res["suites"]["swebench-verified"]["metrics"][0]["value"] == 1.0


@needs_swebench
@pytest.mark.parametrize("row,match", [
    ({"repo": "acme/other", "test_cmd": None},
     r"instance acme__calc-1: acme/other version 0.1 is not in swebench's specs and the row has no test_cmd"),
    ({"log_parser": "parse_log_nothing"}, r"instance acme__calc-1: log_parser 'parse_log_nothing' is not one of swebench's"),
])
def test_local_rows_without_a_test_to_run_fail_before_any_request(tmp_path, row, match):
    inst = make_instance(tmp_path, **row)
    with pytest.raises(DataError, match=match):
        run(cfg_for(inst, tmp_path / "run"), ScriptedCoder(repairs=[]))


@needs_swebench
def test_docker_mode_refuses_a_row_outside_swebenchs_tables(instance):
    """The harness builds its spec from swebench's tables: a row of a repository they lack stops the
    run before Docker is asked for, naming the instance."""
    with pytest.raises(DataError, match=r"instance acme__calc-1: swebench's MAP_REPO_VERSION_TO_SPECS has no acme/calc "
                                        r"version 0.1"):
        run(cfg_for(instance, instance["tmp"] / "run", evaluation="docker"), ScriptedCoder(repairs=[]))


@needs_swebench
def test_docker_absent_fails_clearly_before_any_request(tables_instance, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tables_instance['tmp']}/no-docker.sock")
    with pytest.raises(DataError, match=r"evaluation = 'docker': the official SWE-bench harness needs a running Docker daemon"):
        run(cfg_for(tables_instance, tables_instance["tmp"] / "run", evaluation="docker"), ScriptedCoder(repairs=[]))


@needs_swebench
def test_docker_mode_runs_the_harness_and_reads_its_report(tables_instance, monkeypatch):
    """The harness is faked (no Docker here): it grades the way run_instance does, from a log in its
    format, and writes report.json / run_instance.log where the real one does. It is handed the row
    as the dataset has it, and the namespace of the published images."""
    from swebench.harness.constants import APPLY_PATCH_FAIL
    from swebench.harness.grading import get_eval_report
    from swebench.harness.test_spec.test_spec import make_test_spec

    import m1bench.suites.swebench.evaluate as ev

    calls = []
    row = tables_instance["row"]

    def fake_harness(cmd, cwd, timeout_s):
        args = dict(zip(cmd[3::2], cmd[4::2], strict=True))
        calls.append((cmd[:3], args))
        pred = json.loads(Path(args["--predictions_path"]).read_text())
        assert set(pred) == {"instance_id", "model_name_or_path", "model_patch"}
        assert json.loads(Path(args["--dataset_name"]).read_text()) == [row]
        d = Path(cwd) / "logs" / "run_evaluation" / args["--run_id"] / pred["model_name_or_path"] / IID
        d.mkdir(parents=True)
        if "len(values) - 2" in pred["model_patch"]:
            (d / "run_instance.log").write_text(f"{APPLY_PATCH_FAIL}:\nerror: patch failed\n")
        else:
            (d / "test_output.txt").write_text(">>>>> Start Test Output\nPASSED tests/test_ops.py::test_mean\n"
                                               "PASSED tests/test_ops.py::test_add\nFAILED tests/test_ops.py::test_total\n"
                                               ">>>>> End Test Output\n")
            spec = make_test_spec(row, namespace=args["--namespace"])  # what run_evaluation builds (pytest: offline)
            report = get_eval_report(spec, pred, str(d / "test_output.txt"), include_tests_status=True)
            (d / "report.json").write_text(json.dumps(report))
        return "", 0

    monkeypatch.setattr(ev, "docker_status", lambda: None)
    monkeypatch.setattr(ev, "run_harness", fake_harness)
    import m1bench.suites.swebench.suite as suite_mod
    monkeypatch.setattr(suite_mod, "docker_status", lambda: None)
    out = tables_instance["tmp"] / "run"
    res = run(cfg_for(tables_instance, out, evaluation="docker"), ScriptedCoder())
    rec = records(out)[0]
    assert calls[0][0][1:] == ["-m", "swebench.harness.run_evaluation"]
    assert calls[0][1]["--instance_ids"] == IID and calls[0][1]["--max_workers"] == "1"
    assert calls[0][1]["--namespace"] == "swebench"
    assert res["suites"]["swebench-verified"]["environment"]["image_namespace"] == "swebench"
    assert rec["score"]["correct"] is False
    assert rec["score"]["details"]["reason"] == "PASS_TO_PASS broken: tests/test_ops.py::test_total"
    # a patch that does not apply: no report.json, the reason from run_instance.log
    recs = records(out)
    recs[0]["completion"]["text"] = recs[0]["completion"]["text"].replace("(len(values) - 1)", "(len(values) - 2)")
    recs[0]["grader"] = "old"
    (out / "records.jsonl").write_text(json.dumps(recs[0]) + "\n")
    run(cfg_for(tables_instance, out, evaluation="docker"), ScriptedCoder(repairs=[]))
    assert records(out)[-1]["score"]["details"]["reason"] == "patch does not apply"


@needs_swebench
def test_predictions_file_in_the_official_format(instance, capsys):
    out = instance["tmp"] / "run"
    run(cfg_for(instance, out), ScriptedCoder())
    assert predictions_main([str(out)]) == 0
    lines = (out / "predictions.jsonl").read_text().splitlines()
    pred = json.loads(lines[0])
    assert len(lines) == 1 and list(pred) == ["instance_id", "model_name_or_path", "model_patch"]
    assert pred["instance_id"] == IID and pred["model_name_or_path"] == "scripted-coder"
    assert pred["model_patch"] == records(out)[0]["completion"]["text"]
    with pytest.raises(SystemExit):
        predictions_main(["--help"])


# ---- pieces ------------------------------------------------------------------------------------
def test_localisation_parsing():
    files = ["calc/__init__.py", "calc/ops.py", "tests/test_ops.py", "other/ops.py"]
    assert parse_files("Edit these:\n```\n./calc/ops.py\nnope.py\ntests/test_ops.py\n```", files, 5) == \
        ["calc/ops.py", "tests/test_ops.py"]
    assert parse_files("```\nops.py\n__init__.py\n```", files, 5) == ["calc/__init__.py"]  # ambiguous suffix dropped
    assert parse_files("1. `calc/ops.py`\n- tests/test_ops.py", files, 1) == ["calc/ops.py"]
    locs = parse_locations("```\ncalc/ops.py\nfunction: Stats.total\nline: 12\nclass: Stats\n\nmissing.py\nfunction: f\n```", files)
    assert locs == {"calc/ops.py": [("function", "Stats.total"), ("line", "12"), ("class", "Stats")]}
    assert render_tree(["calc/ops.py", "calc/__init__.py", "setup.py"]) == "calc/\n    __init__.py\n    ops.py\nsetup.py"


def test_skeleton_spans_and_excerpt():
    src = "import os\nX = 1\n\n@deco\ndef f():\n    return 1\n\nclass C:\n    def m(self):\n        pass\n\f\ndef g():\n    pass\n"
    names = [(e.kind, e.name, e.start, e.end) for e in elements(src)]
    assert names == [("variable", "X", 2, 2), ("function", "f", 4, 6), ("class", "C", 8, 10),
                     ("function", "C.m", 9, 10), ("function", "g", 12, 13)]  # the form feed is not a line break
    assert "    9-10   |     def m(self):" in render_skeleton(src)
    assert spans_for(src, [("function", "m"), ("line", "2"), ("class", "Nope")]) == [(9, 10), (2, 2)]
    assert excerpt(src, [(5, 5)], 1) == "...\n@deco\ndef f():\n    return 1\n..."


def test_edits_to_a_patch_git_applies(tmp_path):
    files = {"a.py": "x = 1\ny = 2   \nz = 0\n", "b.txt": "no newline at end"}
    answer = ("### a.py\n<<<<<<< SEARCH\ny = 2\nz = 0\n=======\ny = 3\nz = 0\n>>>>>>> REPLACE\n"  # trailing spaces ignored
              "### b.txt\n<<<<<<< SEARCH\nno newline at end\n=======\nchanged, still none\n>>>>>>> REPLACE\n"
              "### new/c.py\n<<<<<<< SEARCH\n=======\nprint('hi')\n>>>>>>> REPLACE\n")
    assert [e.path for e in parse_edits(answer)] == ["a.py", "b.txt", "new/c.py"]
    cand = build_candidate(files.get, answer)
    assert cand.problem is None, cand.problem
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    git(tmp_path, "init", "-q")
    (tmp_path / "p.diff").write_text(cand.patch)
    git(tmp_path, "apply", "p.diff")
    assert (tmp_path / "a.py").read_text() == "x = 1\ny = 3\nz = 0\n"
    assert (tmp_path / "b.txt").read_text() == "changed, still none"
    assert (tmp_path / "new" / "c.py").read_text() == "print('hi')\n"
    assert file_diff("a.py", "same\n", "same\n") == ""
    bad = build_candidate(files.get, "### a.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = (\n>>>>>>> REPLACE\n")
    assert bad.patch and bad.problem.startswith("a.py does not parse after the edit")
    assert select([bad]) == (None, {})
    _, _, problem = apply_edits(files.get, parse_edits("### zz.py\n<<<<<<< SEARCH\nq\n=======\nr\n>>>>>>> REPLACE\n"))
    assert problem == "edit of zz.py: no such file in the repository"
