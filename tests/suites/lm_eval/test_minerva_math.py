"""lm-eval's minerva_math500 (the task the Table 2 mapping names) runs in m1bench's environment:
its utils assert antlr4 4.11 and grade with math-verify. The task is lm-eval's own YAML, read over a
local copy of MATH-500-shaped rows (the hub is not reachable here), through `m1bench run`; the run
records the documents' content hash and per-item scores, so `compare` can pair two runs."""
import json
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

# MATH-500's columns (HuggingFaceH4/MATH-500): the answer is the solution's last \boxed{}
DOCS = [{"problem": f"Compute ${a} \\cdot {b}$.", "solution": f"${a} \\cdot {b} = \\boxed{{{a * b}}}$",
         "answer": str(a * b), "subject": "Prealgebra", "level": 1, "unique_id": f"test/prealgebra/{a}{b}.json"}
        for a, b in ((2, 3), (4, 5), (6, 7))]


def math500_local(tmp_path: Path, docs: list[dict]) -> Path:
    import lm_eval

    d = tmp_path / "tasks"
    d.mkdir(exist_ok=True)
    (d / "math500.jsonl").write_text("".join(json.dumps(x) + "\n" for x in docs))
    own = Path(lm_eval.__file__).parent / "tasks" / "minerva_math" / "minerva_math500.yaml"
    (d / "math500_local.yaml").write_text(
        f"include: {own}\ntask: math500_local\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    test: {d / 'math500.jsonl'}\nnum_fewshot: 0\n")
    return d


def run(tmp_path: Path, name: str, docs: list[dict], answer) -> dict:
    from m1bench.harness.bench.stub_server import StubServer
    from m1bench.harness.cli import main

    out = tmp_path / name
    config = tmp_path / f"{name}.toml"
    config.write_text(f'[run]\noutput_dir = "{out}"\n[suites.lm_eval]\ntasks = ["math500_local"]\n'
                      f'include_path = "{math500_local(tmp_path, docs)}"\nbuiltin_tasks = false\n')

    def responder(body):
        prompt = body["messages"][-1]["content"]
        doc = next(d for d in docs if d["problem"] in prompt)
        return {"content": answer(doc)}

    with StubServer(responder) as stub, pytest.raises(SystemExit) as done:
        main(["run", str(config), "--endpoint", stub.url, "--model", "stub"])
    assert done.value.code == 0
    return json.loads((out / "results.json").read_text())["suites"]["lm_eval"]


def test_minerva_math500_scores_through_m1bench_run_with_hash_and_per_item(tmp_path):
    # minerva's exact_match reads the Minerva answer line; math_verify the last \boxed{}
    right = run(tmp_path, "right", DOCS, lambda d: f"So the product is $\\boxed{{{d['answer']}}}$.\n"
                f"Final Answer: The final answer is ${d['answer']}$. I hope it is correct.")
    metrics = {m["metric"]: m["value"] for m in right["metrics"]}
    assert metrics["math500_local/math_verify"] == 1.0 and metrics["math500_local/exact_match"] == 1.0
    assert right["per_item"]["math500_local/math_verify"] == {"0": 1.0, "1": 1.0, "2": 1.0}
    wrong = run(tmp_path, "wrong", DOCS, lambda d: f"So the product is $\\boxed{{{int(d['answer']) + 1}}}$.")
    assert {m["metric"]: m["value"] for m in wrong["metrics"]}["math500_local/math_verify"] == 0.0
    # the documents' hash: the same rows hash alike, other rows differently
    assert right["data"]["rows"] == 3 and right["data"]["content_hash"] == wrong["data"]["content_hash"]
    other = run(tmp_path, "other", DOCS[:2], lambda d: d["answer"])
    assert other["data"]["rows"] == 2 and other["data"]["content_hash"] != right["data"]["content_hash"]
