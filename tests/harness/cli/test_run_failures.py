"""`m1bench run` when the endpoint is wrong, dead or slow, through the CLI as a user runs it: the
endpoint is checked before any request (the model it serves, its max_model_len), a closed port
fails at once naming the URL, results go to stdout (a table, or --json) and progress to stderr,
a CI log gets plain progress lines, the run's deadline stops it so that the next run resumes, and
run.max_error_rate decides the exit status."""
import json
import subprocess
import sys
import time

import pytest

from m1bench.harness.bench.stub_server import StubServer
from m1bench.harness.cli import main
from tests.support import REPO, dead_url

DEMO = f"aime2024={REPO / 'suites/aime/demo.jsonl'}"


def right(body):
    return {"content": "\\boxed{47}"}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "m1bench.harness.cli", "run", *args], capture_output=True, text=True,
                          timeout=120)


def test_a_generation_that_cannot_fit_is_refused_before_any_request(tmp_path, capsys):
    with StubServer(right, models={"stub": 32768}) as stub, pytest.raises(SystemExit) as done:
        main(["run", "--endpoint", stub.url, "--model", "stub", "--suite", "aime2024", "--data", DEMO,
              "--max-tokens", "81920", "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and not stub.requests
    assert "sampling.max_tokens (--max-tokens) = 81920 cannot fit" in err and "max_model_len 32768" in err
    assert "Traceback" not in err


def test_a_suite_max_tokens_is_named_as_its_own_key(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(f'[suites.aime2024]\ndata = "{REPO / "suites/aime/demo.jsonl"}"\nmax_tokens = 40000\n')
    with StubServer(right, models={"stub": 32768}) as stub, pytest.raises(SystemExit) as done:
        main(["run", str(config), "--endpoint", stub.url, "--model", "stub", "-o", str(tmp_path / "run")])
    assert done.value.code == 2 and "suites.aime2024.max_tokens = 40000 cannot fit" in capsys.readouterr().err


def test_a_model_the_endpoint_does_not_serve_is_named(tmp_path, capsys):
    with StubServer(right, models={"MiniMax-M1-80k": 131072}) as stub, pytest.raises(SystemExit) as done:
        main(["run", "--endpoint", stub.url, "--model", "MiniMax-M1", "--suite", "aime2024", "--data", DEMO,
              "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and not stub.requests
    assert "model.name 'MiniMax-M1' (--model): " + stub.url + " serves 'MiniMax-M1-80k'" in err


def test_a_closed_port_fails_at_once_naming_the_url(tmp_path):
    url = dead_url()
    t0 = time.monotonic()
    res = cli("--endpoint", url, "--model", "m", "--suite", "aime2024", "--data", DEMO, "-o", str(tmp_path / "run"))
    assert res.returncode == 2 and time.monotonic() - t0 < 60
    assert f"no endpoint answers (model.endpoints / --endpoint): ClientConnectorError talking to {url}/models" in res.stderr
    assert "Traceback" not in res.stderr and "Unclosed" not in res.stderr


def test_results_go_to_stdout_progress_to_stderr(tmp_path):
    with StubServer(right) as stub:
        table = cli("--endpoint", stub.url, "--model", "stub", "--suite", "aime2024", "--data", DEMO, "--samples", "2",
                    "-o", str(tmp_path / "a"))
        as_json = cli("--endpoint", stub.url, "--model", "stub", "--suite", "aime2024", "--data", DEMO, "--samples", "2",
                      "-o", str(tmp_path / "b"), "--json")
    assert table.returncode == 0 and as_json.returncode == 0
    assert "m1bench results (openai:stub)" in table.stdout and "aime2024" in table.stdout
    assert "m1bench results" not in table.stderr and "records:" in table.stderr
    results = json.loads(as_json.stdout)  # nothing but the JSON on stdout
    assert results == json.loads((tmp_path / "b" / "results.json").read_text())
    assert results["suites"]["aime2024"]["counts"]["graded"] == 6


def test_a_ci_log_gets_plain_progress_lines(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(f'[run]\nprogress_every_s = 0.5\n[suites.aime2024]\ndata = "{REPO / "suites/aime/demo.jsonl"}"\n'
                      "samples = 4\n")
    with StubServer(right, ttft_s=0.4) as stub:
        res = cli(str(config), "--endpoint", stub.url, "--model", "stub", "--concurrency", "2", "-o", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("[") and "aime2024" in line]
    assert len(lines) >= 3 and "/12 (0 err)" in lines[0]  # e.g. "[     1s] aime2024 4/12 (0 err)"
    assert "\x1b[" not in res.stderr  # no terminal control codes in a log


def test_the_deadline_stops_the_run_and_the_next_run_resumes(tmp_path):
    def slow(body):
        time.sleep(0.5)
        return right(body)

    args = ["--model", "stub", "--suite", "aime2024", "--data", DEMO, "--samples", "4", "--concurrency", "2",
            "-o", str(tmp_path / "run")]
    with StubServer(slow) as stub:
        cut = cli("--endpoint", stub.url, *args, "--deadline", "1.2")
        first = len(stub.requests)
        again = cli("--endpoint", stub.url, *args)
    assert cut.returncode == 1
    assert "run.deadline_s = 1.2 reached with" in cut.stderr and "re-run the same command to resume" in cut.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert again.returncode == 0 and results["suites"]["aime2024"]["counts"]["graded"] == 12
    assert "unfinished" not in results
    assert len(stub.requests) - first == 12 - results["suites"]["aime2024"]["counts"]["reused"]  # nothing re-sent


def test_max_error_rate_decides_the_exit_status(tmp_path):
    def sometimes_400(body):
        return ("status", 400) if "divisible" in body["messages"][-1]["content"] else None  # 1 of 3 problems

    args = ["--model", "stub", "--suite", "aime2024", "--data", DEMO, "--samples", "2"]
    with StubServer(right, faults=sometimes_400) as stub:
        strict = cli("--endpoint", stub.url, *args, "-o", str(tmp_path / "strict"))
        lenient = cli("--endpoint", stub.url, *args, "-o", str(tmp_path / "lenient"), "--max-error-rate", "0.5")
    assert strict.returncode == 1 and "2 of 6 samples errored (2 client)" in strict.stderr
    assert "HTTP 400 from" in strict.stderr
    assert lenient.returncode == 0, lenient.stderr
