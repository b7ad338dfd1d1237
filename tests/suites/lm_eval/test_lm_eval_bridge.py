"""lm-eval bridge, offline: a custom YAML task over a local JSONL file, run through m1bench's
client (scripted, then the tiny reference engine), lm-eval's metrics folded into m1bench's results,
its requests cached in records.jsonl like any other suite's."""
import asyncio
import json
import re

import pytest
from rich.console import Console

pytest.importorskip("lm_eval")

from m1bench.harness.eval.config import validate  # noqa: E402
from m1bench.harness.eval.runner import Runner  # noqa: E402
from tests.support.scripted_client import ScriptedClient  # noqa: E402

DOCS = [{"a": a, "b": b, "answer": str(a + b)} for a, b in [(2, 3), (4, 4), (7, 1), (6, 5), (1, 9), (8, 2)]]

TASK_YAML = """task: m1bench_arith
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "What is {{{{a}}}} + {{{{b}}}}? Answer with the number only."
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


@pytest.fixture
def task_dir(tmp_path):
    d = tmp_path / "tasks"
    d.mkdir()
    (d / "arith.jsonl").write_text("".join(json.dumps(x) + "\n" for x in DOCS))
    (d / "m1bench_arith.yaml").write_text(TASK_YAML.format(data=d / "arith.jsonl"))
    return d


def cfg_for(task_dir, out, **model):
    return validate({"run": {"output_dir": str(out)}, "model": model,
                     "suites": {"lm_eval": {"tasks": ["m1bench_arith"], "include_path": str(task_dir),
                                            "builtin_tasks": False}}})


def adder_right_when_a_even(req):
    a, b = map(int, re.search(r"What is (\d+) \+ (\d+)", req.messages[-1]["content"]).groups())
    return str(a + b) if a % 2 == 0 else str(a + b + 1)


def run(cfg, client=None):
    return asyncio.run(Runner(cfg, client=client, console=Console(file=open("/dev/null", "w"))).run())


def test_local_yaml_task_through_scripted_client_and_resume(task_dir, tmp_path):
    client = ScriptedClient(adder_right_when_a_even)
    res = run(cfg_for(task_dir, tmp_path / "out"), client)
    s = res["suites"]["lm_eval"]
    m = {x["metric"]: x for x in s["metrics"]}
    assert m["m1bench_arith/exact_match"]["value"] == pytest.approx(4 / 6)  # a = 2, 4, 6, 8
    assert m["m1bench_arith/exact_match"]["stderr"] is not None and s["grader"] == "lm-eval==0.4.13"
    assert len(client.calls) == 6 and s["counts"]["planned"] == 6
    req = client.calls[0]
    assert req.sampling.temperature == 0.0 and req.sampling.stop == ("\n",) and req.sampling.max_tokens == 8
    assert req.messages[-1]["role"] == "user"  # chat messages, not a flattened prompt
    recs = [json.loads(l) for l in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and all(r["suite"] == "lm_eval" for r in recs)
    # resume: lm-eval runs again, every generation comes from the records
    again = ScriptedClient(lambda req: AssertionError("must not be sent"))
    res2 = run(cfg_for(task_dir, tmp_path / "out"), again)
    assert again.calls == [] and res2["suites"]["lm_eval"]["metrics"] == s["metrics"]


def test_local_yaml_task_through_tiny_engine(task_dir, tmp_path, tiny_dir):
    res = run(cfg_for(task_dir, tmp_path / "tiny", engine="reference", checkpoint=str(tiny_dir)))
    s = res["suites"]["lm_eval"]
    assert res["engine"]["engine"] == "reference" and s["counts"]["graded"] == 6 and s["counts"]["request_errors"] == 0
    assert {x["metric"] for x in s["metrics"]} >= {"m1bench_arith/exact_match"}


def test_loglikelihood_tasks_are_refused_clearly():
    from m1bench.suites.lm_eval.suite import make_lm

    lm = make_lm(None, None, {"max_tokens": 8, "temperature": 1.0, "top_p": 1.0, "top_k": 0}, lambda k: 0)
    with pytest.raises(NotImplementedError, match="generate_until"):
        lm.loglikelihood([])


def _run_against(stub_answer, task_dir, out, reports):
    """`m1bench run` of the lm-eval task against an endpoint that answers `stub_answer(a, b)`; the report's path."""
    from m1bench.harness.bench.stub_server import StubServer
    from m1bench.harness.cli import main as cli_main

    def responder(body):
        a, b = map(int, re.search(r"What is (\d+) \+ (\d+)", body["messages"][-1]["content"]).groups())
        return {"content": stub_answer(a, b)}

    config = out.parent / f"{out.name}.toml"
    config.write_text(f'[run]\noutput_dir = "{out}"\n[suites.lm_eval]\ntasks = ["m1bench_arith"]\n'
                      f'include_path = "{task_dir}"\nbuiltin_tasks = false\n')
    before = set(reports.rglob("report.json"))
    with StubServer(responder) as stub, pytest.raises(SystemExit) as done:
        cli_main(["run", str(config), "--endpoint", stub.url, "--model", "stub"])
    assert done.value.code == 0
    (report,) = set(reports.rglob("report.json")) - before
    return report.parent


def test_the_gate_pairs_lm_eval_metrics_and_refuses_what_it_cannot_pair(task_dir, tmp_path, monkeypatch, capsys):
    """An lm-eval metric that drops from 1.0 to 0.0 fails the gate (exit 1, paired per document); a
    gated metric without per-item values is refused (exit 2, naming it), never passed untested."""
    from m1bench.harness.cli import main as cli_main

    reports = tmp_path / "reports"
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(reports))
    base = _run_against(lambda a, b: str(a + b), task_dir, tmp_path / "base", reports)
    cand = _run_against(lambda a, b: str(a + b + 1), task_dir, tmp_path / "cand", reports)
    doc = json.loads((base / "report.json").read_text())
    # the tasks' documents are hashed, so the gate knows both runs scored the same rows
    hashes = {json.loads((r / "report.json").read_text())["suites"]["lm_eval"]["dataset"].get("content_hash")
              for r in (base, cand)}
    assert len(hashes) == 1 and None not in hashes
    assert doc["suites"]["lm_eval"]["extra"]["per_item"]["m1bench_arith/exact_match"] == {str(i): 1.0 for i in range(6)}
    capsys.readouterr()

    def gate(*args):
        with pytest.raises(SystemExit) as done:
            cli_main(["compare", *map(str, args)])
        captured = capsys.readouterr()
        return done.value.code, captured.out + captured.err

    code, out = gate(base, cand)
    assert code == 1 and "regression" in out
    # the same reports without per-item values (as an older report): the gate cannot pair, so it refuses
    unpaired = tmp_path / "unpaired"
    unpaired.mkdir()
    for name in ("report.json", "samples.jsonl"):
        (unpaired / name).write_bytes((cand / name).read_bytes())
    doc = json.loads((unpaired / "report.json").read_text())
    del doc["suites"]["lm_eval"]["extra"]["per_item"]
    (unpaired / "report.json").write_text(json.dumps(doc))
    code, out = gate(base, unpaired)
    assert code == 2 and "m1bench_arith/exact_match" in out and "cannot gate" in out
