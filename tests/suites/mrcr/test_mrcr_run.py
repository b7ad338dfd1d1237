"""Both MRCR suites through the runner: exact scores and the breakdown with a scripted model,
resume, requests over the window never sent, `m1bench run` against the tiny model, and the
long-context cache of the reference engine."""
import asyncio
import json

import pytest
from rich.console import Console

from m1bench.harness.cli import main as cli_main
from m1bench.harness.core.m1_output import split_reasoning
from m1bench.harness.core.types import Completion
from m1bench.harness.eval.config import validate
from m1bench.harness.eval.runner import Runner
from m1bench.suites.mrcr import report as mrcr_report
from m1bench.suites.mrcr.grading import grade
from m1bench.suites.mrcr.tokens import load_o200k
from tests.support.fixtures.mrcr.layout import generated_row, short_row, write_layout


def quiet():
    return Console(file=open("/dev/null", "w"))


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("M1BENCH_HOME", str(tmp_path / "home"))
    return tmp_path


class Answers:
    """A scripted model: knows every sample's answer (by the final question) and answers it right,
    without the prefix, or half-right, by a rule on the problem."""

    def __init__(self, rows):
        self.by_question = {json.loads(r["prompt"])[-1]["content"]: r for r in rows}
        self.model_id, self.calls = "scripted-mrcr", []

    def describe(self):
        return {"engine": "scripted", "model_id": self.model_id}

    def reply(self, row):
        prefix, answer = row["random_string_to_prepend"], row["answer"]
        kind = sum(map(ord, prefix)) % 3
        return {0: answer, 1: answer[len(prefix):], 2: answer[: len(answer) // 2]}[kind]

    async def complete(self, request):
        self.calls.append(request)
        row = self.by_question[request.messages[-1]["content"]]
        reasoning, text = split_reasoning(f"<think>counting needles</think>\n{self.reply(row)}")
        return Completion(text=text, reasoning=reasoning, prompt_tokens=1, completion_tokens=1)

    async def aclose(self):
        pass


def _rows_of(path):
    return [json.loads(line) for line in open(path)]


def test_scripted_run_scores_breakdown_and_resume(home, capsys):
    o200k = load_o200k()
    openai_rows = [short_row(n, i) for i, n in enumerate((2, 2, 4, 8))] + [generated_row(o200k, 5000, 2, 1)]
    data = write_layout(home / "mrcr", openai_rows)
    raw = {"run": {"output_dir": str(home / "run"), "seed": 3},
           "sampling": {"max_tokens": 64},
           "suites": {"openai_mrcr": {"data": str(data), "bins": ["<4K", "4K-8K"], "context_window": 4000},
                      "mrcr": {"lengths": [4096, 8192], "needles": [2, 4], "per_cell": 1, "tokenizer": "o200k_base",
                               "aggregate_needles": [2, 4]}}}
    cfg = validate(raw)
    suite_rows = {}

    # the mrcr suite generates its samples on load; read them back for the scripted model
    from m1bench.suites import get_suite

    problems, info = get_suite("mrcr").load(cfg.suites["mrcr"])
    suite_rows["mrcr"] = _rows_of(info["source"])
    client = Answers(openai_rows + suite_rows["mrcr"])
    results = asyncio.run(Runner(cfg, client=client, console=quiet()).run())

    # the 5000-token row is over the 4000-token window: counted, never sent
    o = results["suites"]["openai_mrcr"]
    assert o["data"]["skipped_over_context_window"]["count"] == 1
    assert o["counts"]["planned"] == 4 and results["suites"]["mrcr"]["counts"]["planned"] == 4
    assert len(client.calls) == 8
    over_window = json.loads(openai_rows[-1]["prompt"])[-1]["content"]
    assert all(r.messages[-1]["content"] != over_window for r in client.calls)

    b = mrcr_report.run_breakdown(home / "run")
    for name, rows in (("openai_mrcr", openai_rows[:4]), ("mrcr", suite_rows["mrcr"])):
        want = [grade(client.reply(r), r["answer"], r["random_string_to_prepend"]) for r in rows]
        assert b[name]["overall"]["n"] == 4
        assert b[name]["overall"]["score"] == pytest.approx(sum(want) / 4)
        assert b[name]["overall"]["exact"] == sum(w == 1.0 for w in want)
        avg = next(m for m in results["suites"][name]["metrics"] if m["metric"] == "avg@1")
        assert avg["value"] == pytest.approx(sum(want) / 4)  # the mean grade, not the exact-copy rate
    assert set(b["mrcr"]["per_bin"]) == {"4K", "8K"} and set(b["mrcr"]["per_needles"]) == {"2", "4"}
    assert set(b["openai_mrcr"]["per_bin_needles"]["<4K"]) == {"2", "4", "8"}
    assert b["openai_mrcr"]["skipped_over_context_window"]["by_bin_needles"] == {"4K-8K/2": 1}
    assert "(65536, 131072]" in b["openai_mrcr"]["aggregates"]["128K"]["definition"]
    assert b["openai_mrcr"]["aggregates"]["128K"]["n"] == 0  # no sample that long here, and it says so

    # resume: nothing is sent again, the breakdown is the same
    again = Answers(openai_rows + suite_rows["mrcr"])
    asyncio.run(Runner(cfg, client=again, console=quiet()).run())
    assert again.calls == []
    assert mrcr_report.run_breakdown(home / "run") == b
    # a run with other sampling shares the records file but not the breakdown
    raw["sampling"]["temperature"] = 0.5
    asyncio.run(Runner(validate(raw), client=Answers(openai_rows + suite_rows["mrcr"]), console=quiet()).run())
    raw["sampling"]["temperature"] = 1.0
    assert mrcr_report.run_breakdown(home / "run") == b
    # a run killed mid-write leaves a partial last line: skipped, as the runner skips it
    records = home / "run" / "records.jsonl"
    with open(records, "a") as f:
        f.write('{"hash": "cut-off mid-wri')
    assert mrcr_report.run_breakdown(home / "run") == b
    assert mrcr_report.main([str(home / "run"), "-o", str(home / "mrcr.json")]) == 0
    # a broken line anywhere else is an error naming the file and line
    lines = records.read_text().splitlines(keepends=True)
    records.write_text(lines[0] + "not json\n" + "".join(lines[1:]))
    capsys.readouterr()
    assert mrcr_report.main([str(home / "run")]) == 2
    assert "records.jsonl:2: invalid JSON" in capsys.readouterr().err.replace("\n", "")  # rich wraps lines


def test_m1bench_run_with_the_tiny_model(home, tiny_dir, capsys):
    data = write_layout(home / "mrcr", [short_row(2, 0), short_row(2, 1), short_row(4, 2)])
    config = home / "mrcr.toml"
    config.write_text(f"""
[run]
output_dir = "{home / 'run'}"
[model]
checkpoint = "{tiny_dir}"
batch_size = 4
[sampling]
max_tokens = 8
[suites.openai_mrcr]
data = "{data}"
bins = ["<4K"]
needles = [2]
model = "{tiny_dir}"
[suites.mrcr]
lengths = [4096]
needles = [2]
per_cell = 1
model = "{tiny_dir}"
context_window = 4000
""")
    with pytest.raises(SystemExit) as e:
        cli_main(["run", str(config)])
    assert e.value.code == 0
    results = json.loads((home / "run" / "results.json").read_text())
    o, m = results["suites"]["openai_mrcr"], results["suites"]["mrcr"]
    assert o["counts"]["graded"] == 2 and o["counts"]["request_errors"] == 0
    assert o["data"]["token_counter"]["official"]  # o200k_base available offline
    # the 4096-token mrcr sample (chat-rendered, tiny tokenizer) is over the 4000-token window
    assert m["counts"]["planned"] == 0 and m["data"]["skipped_over_context_window"]["count"] == 1
    assert mrcr_report.main([str(home / "run")]) == 0
    out = json.loads((home / "run" / "mrcr.json").read_text())
    assert out["openai_mrcr"]["overall"]["n"] == 2
    assert 0.0 <= out["openai_mrcr"]["overall"]["score"] <= 1.0


def test_mrcr_sample_through_the_tiny_engine(home, tiny_dir):
    """One generated 4K-token conversation answered by the reference engine (long-context cache)."""
    from m1bench.harness.clients.long_context import long_context_client

    raw = {"run": {"output_dir": str(home / "run")}, "sampling": {"max_tokens": 4},
           "suites": {"mrcr": {"lengths": [4096], "needles": [2], "per_cell": 1, "model": str(tiny_dir)}}}
    cfg = validate(raw)
    client = long_context_client(str(tiny_dir), dtype="float32", device="cpu")
    results = asyncio.run(Runner(cfg, client=client, console=quiet()).run())
    m = results["suites"]["mrcr"]
    assert m["counts"]["graded"] == 1 and m["tokens"]["prompt"] == 4096  # the generator's length, exactly


def test_chunked_encoding_gives_the_same_ids(tiny_dir, home):
    from m1bench.model.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_dir)
    row = short_row(4, 1)
    text = tok.render_chat(json.loads(row["prompt"]) + [{"role": "assistant", "content": "<think>x</think>y"}])
    assert tok.encode(text) == tok.tokenizer.encode(text, add_special_tokens=False).ids  # piecewise == whole


def test_m1bench_run_reports_the_mean_mrcr_grade(home, tmp_path, monkeypatch):
    """OpenAI-MRCR's metric is the mean grade (the dataset card's SequenceMatcher ratio), not the
    rate of exact copies: through `m1bench run` against an endpoint on the published-schema row,
    the records, results.json and report.json all carry the grade of the answer given."""
    import pyarrow.parquet as pq

    from m1bench.harness.bench.stub_server import StubServer
    from tests.support import REPO

    data = REPO.parent / "shared" / "realdata" / "openai_mrcr"
    if not data.is_dir():
        pytest.skip("../shared/realdata is not here")
    row = pq.read_table(data / "2needle" / "2needle_0.parquet").to_pylist()[0]
    reply = row["answer"][: len(row["answer"]) // 2]  # the prefix and the first half of the poem
    want = grade(reply, row["answer"], row["random_string_to_prepend"])
    assert 0.2 < want < 0.9
    reports = tmp_path / "reports"
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(reports))
    with StubServer(lambda body: {"content": reply}) as stub:
        with pytest.raises(SystemExit) as done:
            cli_main(["run", "--endpoint", stub.url, "--model", "stub", "--suite", "openai_mrcr",
                      "--data", f"openai_mrcr={data}", "--samples", "1", "-o", str(home / "run")])
    assert done.value.code == 0
    records = [json.loads(line) for line in (home / "run" / "records.jsonl").read_text().splitlines()]
    assert [r["score"]["value"] for r in records] == [pytest.approx(want)]
    metrics = {m["metric"]: m["value"] for m in json.loads((home / "run" / "results.json").read_text())
               ["suites"]["openai_mrcr"]["metrics"]}
    assert metrics["avg@1"] == pytest.approx(want) and metrics["pass@1"] == 0.0
    report = json.loads(next(reports.rglob("report.json")).read_text())
    reported = {m["metric"]: m["value"] for m in report["suites"]["openai_mrcr"]["metrics"]}
    assert reported["avg@1"] == pytest.approx(want)
