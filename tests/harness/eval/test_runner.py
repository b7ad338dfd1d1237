"""Run config validation, the resumable runner (records, resume, kill -9, truncated lines,
errors apart from wrong answers, regrading) and `m1bench run` end to end (in-process tiny model
and an HTTP endpoint)."""
import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from m1bench.harness.bench.stub_server import StubServer
from m1bench.harness.cli import main as cli_main
from m1bench.harness.core.client import RequestError
from m1bench.harness.eval.config import ConfigError, load_config, validate
from m1bench.harness.eval.runner import Runner
from m1bench.suites.source import DataError
from tests.support.scripted_client import ScriptedClient, demo_answers, even_right, sample_of

CHILD = Path(__file__).resolve().parents[2] / "support" / "runner_child.py"


def quiet():
    return Console(file=open("/dev/null", "w"))


def demo_cfg(out, **suite_over):
    def edit(raw):
        raw["run"]["output_dir"] = str(out)
        for name, over in suite_over.items():
            raw["suites"][name].update(over)
    return load_config(None, edit)


def run(cfg, client):
    return asyncio.run(Runner(cfg, client=client, console=quiet()).run())


def ok_records(out):
    recs = [json.loads(l) for l in (Path(out) / "records.jsonl").read_text().splitlines()]
    return [r for r in recs if r["status"] == "ok"], recs


# ---- config -----------------------------------------------------------------------------
BASE = {"suites": {"aime2024": {}}}


@pytest.mark.parametrize("raw,key", [
    ({**BASE, "sampling": {"temprature": 1.0}}, "sampling.temprature"),
    ({**BASE, "sampling": {"temperature": "hot"}}, "sampling.temperature"),
    ({**BASE, "sampling": {"top_p": 1.5}}, "sampling.top_p"),
    ({**BASE, "run": {"concurrency": 0}}, "run.concurrency"),
    ({**BASE, "run": {"keep_token_times": 1}}, "run.keep_token_times"),
    ({**BASE, "model": {"engine": "magic"}}, "model.engine"),
    ({**BASE, "model": {"engine": "openai", "name": "m"}}, "model.endpoints"),
    ({**BASE, "model": {"engine": "openai", "endpoints": ["http://x/v1"]}}, "model.name"),
    ({**BASE, "model": {"engine": "openai", "name": "m", "endpoints": ["ftp://x"]}}, "model.endpoints"),
    ({"suites": {"aime2024": {"samples": 0}}}, "suites.aime2024.samples"),
    ({"suites": {"aime2024": {"sampels": 3}}}, "suites.aime2024.sampels"),
    ({"suites": {"livecodebench": {"isolation": "docker"}}}, "suites.livecodebench.isolation"),
    ({"suites": {"livecodebench": {"test_timeout_s": "6"}}}, "suites.livecodebench.test_timeout_s"),
    ({"suites": {"aime2026": {}}}, "suites.aime2026"),
    ({"suites": {}}, "suites"),
    ({**BASE, "extra": {}}, "extra"),
])
def test_invalid_config_names_the_key(raw, key):
    with pytest.raises(ConfigError, match=rf"config key {key}\b"):
        validate(raw)


def test_defaults_are_the_papers():
    cfg = validate({"suites": {"aime2024": {}, "aime2025": {}, "livecodebench": {}}})
    assert cfg.sampling["temperature"] == 1.0 and cfg.sampling["top_p"] == 0.95
    assert cfg.suites["aime2024"]["samples"] == 32 and cfg.suites["aime2025"]["samples"] == 32
    assert cfg.suites["livecodebench"]["samples"] == 16
    assert (cfg.suites["livecodebench"]["start_date"], cfg.suites["livecodebench"]["end_date"]) == ("2024-08-01", "2025-05-01")


def test_toml_errors_name_the_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[run\nname = 1\n")
    with pytest.raises(ConfigError, match=r"bad.toml:1:5: invalid TOML"):
        load_config(f)


def test_cli_rejects_bad_flags_before_any_request(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["run", "--samples", "0", "-o", str(tmp_path / "x")])
    assert e.value.code == 2 and "suites.aime2024.samples" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli_main(["run", "--suite", "nope", "-o", str(tmp_path / "x")])
    assert e.value.code == 2 and "suites.nope" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bad_data_fails_before_any_request(tmp_path):
    cfg = demo_cfg(tmp_path / "out", livecodebench={"data": str(tmp_path / "missing.jsonl")})
    client = ScriptedClient()
    with pytest.raises(DataError, match="missing.jsonl"):
        run(cfg, client)
    assert client.calls == []


# ---- runner -----------------------------------------------------------------------------
def test_metrics_counts_and_records(tmp_path):
    cfg = demo_cfg(tmp_path / "out", aime2024={"samples": 4})
    res = run(cfg, ScriptedClient())
    aime = res["suites"]["aime2024"]
    m = {x["metric"]: x["value"] for x in aime["metrics"]}
    assert m["avg@4"] == 0.5 and m["pass@1"] == 0.5 and m["pass@4"] == 1.0 and m["maj@4"] in (0.0, 1.0)
    assert aime["counts"]["graded"] == 12 and aime["counts"]["request_errors"] == 0
    lcb = {x["metric"]: x["value"] for x in res["suites"]["livecodebench"]["metrics"]}
    assert lcb["avg@2"] == 0.5 and lcb["pass@2"] == 1.0
    assert res["suites"]["livecodebench"]["environment"]["sandbox"]["isolation"]
    oks, recs = ok_records(tmp_path / "out")
    assert len(oks) == len(recs) == 12 + 4 and len({r["hash"] for r in recs}) == 16
    r0 = oks[0]
    assert {"request", "completion", "score", "grader", "suite_version", "model_id"} <= set(r0)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["schema_version"] == 1 and saved["suites"]["aime2024"]["data"]["content_hash"]
    # seeds differ per sample, and are recorded in the request
    seeds = {r["request"]["sampling"]["seed"] for r in oks}
    assert len(seeds) == 16


def test_resume_reuses_everything(tmp_path):
    cfg = demo_cfg(tmp_path / "out")
    first = run(cfg, ScriptedClient())
    second_client = ScriptedClient(lambda req: AssertionError("must not be sent"))
    second = run(cfg, second_client)
    assert second_client.calls == []
    for name in ("aime2024", "livecodebench"):
        assert first["suites"][name]["metrics"] == second["suites"][name]["metrics"]
        assert second["suites"][name]["counts"]["reused"] == first["suites"][name]["counts"]["sent"]


def test_more_samples_later_sends_only_the_new_ones(tmp_path):
    run(demo_cfg(tmp_path / "out", aime2024={"samples": 2}), ScriptedClient())
    client = ScriptedClient()
    run(demo_cfg(tmp_path / "out", aime2024={"samples": 4}), client)
    assert sorted(sample_of(r) for r in client.calls) == [2, 2, 2, 3, 3, 3]


def test_truncated_last_line_is_tolerated(tmp_path):
    cfg = demo_cfg(tmp_path / "out")
    run(cfg, ScriptedClient())
    path = tmp_path / "out" / "records.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # crash mid-write
    client = ScriptedClient()
    run(cfg, client)
    assert len(client.calls) == 1
    oks, recs = ok_records(tmp_path / "out")
    assert len(recs) == len(lines) and len({r["hash"] for r in oks}) == len(lines)


def test_request_errors_are_counted_apart_and_retried_on_resume(tmp_path):
    cfg = demo_cfg(tmp_path / "out")

    def flaky(req):
        return RequestError("server", "HTTP 503 from stub", attempts=6) if sample_of(req) == 1 else even_right(req)

    res = run(cfg, ScriptedClient(flaky))
    aime = res["suites"]["aime2024"]
    assert aime["counts"]["request_errors"] == 3 and aime["counts"]["request_errors_by_kind"] == {"server": 3}
    assert aime["counts"]["graded"] == 3
    assert {x["metric"]: x["value"] for x in aime["metrics"]}["avg@2"] == 1.0  # errors are not wrong answers
    errs = [json.loads(l) for l in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert all(r["error"]["message"] == "HTTP 503 from stub" for r in errs if r["status"] == "error")
    client = ScriptedClient()
    res = run(cfg, client)
    assert len(client.calls) == 5 and all(sample_of(r) == 1 for r in client.calls)
    assert res["suites"]["aime2024"]["counts"]["request_errors"] == 0


def test_grading_crash_is_an_error_and_regraded_without_resending(tmp_path, monkeypatch):
    from m1bench.suites.aime.suite import AIME

    cfg = demo_cfg(tmp_path / "out", livecodebench={"limit": 1})
    real = AIME.score

    def boom(self, problem, completion, opts):
        raise RuntimeError("grader exploded")

    monkeypatch.setattr(AIME, "score", boom)
    res = run(cfg, ScriptedClient())
    assert res["suites"]["aime2024"]["counts"]["grading_errors"] == 6 and res["suites"]["aime2024"]["metrics"] == []
    rec = next(r for r in ok_records(tmp_path / "out")[0] if r["suite"] == "aime2024")
    assert rec["grade_error"] == "RuntimeError: grader exploded"
    monkeypatch.setattr(AIME, "score", real)
    client = ScriptedClient()
    res = run(cfg, client)
    assert client.calls == [] and res["suites"]["aime2024"]["counts"]["regraded"] == 6
    assert {x["metric"]: x["value"] for x in res["suites"]["aime2024"]["metrics"]}["avg@2"] == 0.5


def test_kill_9_at_random_point_then_resume(tmp_path):
    out = tmp_path / "out"
    planned = 3 * 12 + 2 * 4
    rng = random.Random()
    proc = subprocess.Popen([sys.executable, str(CHILD), str(out), "0.05"],
                            stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    sent = 0
    kill_after = rng.randint(3, planned - 5)
    while sent < kill_after and time.monotonic() < deadline:  # kill mid-run, after some work
        line = proc.stdout.readline()
        sent += line.startswith("SENT")
    proc.kill()
    proc.wait()
    assert sent >= kill_after, "child did not make progress"
    before = {r["hash"] for r in ok_records(out)[0]} if (out / "records.jsonl").exists() else set()
    assert 0 < len(before) < planned
    res = subprocess.run([sys.executable, str(CHILD), str(out), "0"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"FINISHED {planned - len(before)}" in res.stdout  # exactly the missing ones were sent
    oks, recs = ok_records(out)
    counts = Counter(r["hash"] for r in oks)
    assert len(counts) == planned and max(counts.values()) == 1  # nothing lost, nothing duplicated


# ---- m1bench run end to end ---------------------------------------------------------------
def test_m1bench_run_tiny_model_in_process(tmp_path, tiny_dir, capsys):
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as e:
        cli_main(["run", "--model", str(tiny_dir), "--limit", "1", "--samples", "1", "--max-tokens", "8", "-o", str(out)])
    assert e.value.code == 0
    table = capsys.readouterr().out  # the results table: stdout
    assert "m1bench results" in table and "aime2024" in table and "livecodebench" in table
    res = json.loads((out / "results.json").read_text())
    assert res["engine"]["engine"] == "reference" and res["engine"]["checkpoint_hash"]
    for name in ("aime2024", "livecodebench"):
        c = res["suites"][name]["counts"]
        assert c["planned"] == 1 and c["request_errors"] == 0 and c["graded"] + c["grading_errors"] == 1
    oks, recs = ok_records(out)
    assert len(oks) == 2 and all(r["completion"]["completion_tokens"] >= 1 for r in oks)
    assert all(r["model_id"].startswith("reference:") for r in oks)


def test_m1bench_run_against_http_endpoint(tmp_path, capsys):
    answers = demo_answers()

    def responder(body):
        user = body["messages"][-1]["content"]
        text = next(a for q, a in answers.items() if q in user)
        reasoning, _, content = text.partition("</think>")
        if reasoning.startswith("<think>"):
            return {"reasoning": reasoning[len("<think>"):], "content": content}
        return {"content": text}

    out = tmp_path / "http"
    with StubServer(responder) as a, StubServer(responder) as b:
        with pytest.raises(SystemExit) as e:
            cli_main(["run", "--endpoint", a.url, "--endpoint", b.url, "--model", "stub-m1", "-o", str(out),
                      "--concurrency", "4"])
        assert e.value.code == 0
        assert a.requests and b.requests  # spread over both replicas
        assert all(r["model"] == "stub-m1" and r["temperature"] == 1.0 and r["top_p"] == 0.95
                   for r in a.requests + b.requests)
    assert "m1bench results (openai:stub-m1)" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    for name, k in (("aime2024", 2), ("livecodebench", 2)):
        m = {x["metric"]: x["value"] for x in res["suites"][name]["metrics"]}
        assert m[f"avg@{k}"] == 1.0, (name, res["suites"][name])
    oks, _ = ok_records(out)
    assert all(r["completion"]["ttft_s"] is not None for r in oks)
    assert any(r["completion"]["reasoning"] == "easy" for r in oks)


def test_shipped_paper_config_validates_with_an_endpoint():
    from m1bench.harness.eval.config import demo_config_path

    paper = demo_config_path().parent / "paper.toml"
    with pytest.raises(ConfigError, match="model.endpoints"):
        load_config(paper)
    cfg = load_config(paper, lambda raw: raw["model"].update(endpoints=["http://127.0.0.1:8000/v1"], name="M1"))
    assert {n: o["samples"] for n, o in cfg.suites.items()} == {"aime2024": 32, "aime2025": 32, "livecodebench": 16}


def test_corrupt_record_in_the_middle_names_file_and_line(tmp_path):
    from m1bench.harness.core.records import RecordsError

    cfg = demo_cfg(tmp_path / "out")
    run(cfg, ScriptedClient())
    path = tmp_path / "out" / "records.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + "{not json\n" + "".join(lines[2:]))
    with pytest.raises(RecordsError, match=r"records.jsonl:3"):
        run(cfg, ScriptedClient())
