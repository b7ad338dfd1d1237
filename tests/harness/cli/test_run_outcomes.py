"""What `m1bench run` tells its user when things go wrong: a completion cut inside <think> is
graded wrong and counted apart (results, the report, the terminal table); a run whose every request
failed exits 1 naming why; Ctrl-C exits 130 saying how to resume, and the re-run sends only what
had not finished."""
import json

import pytest

from m1bench.harness.bench.stub_server import StubServer
from m1bench.harness.cli import main
from tests.support import REPO


def test_cut_inside_reasoning_is_a_failure_counted_apart(tmp_path, monkeypatch, capsys):
    reports = tmp_path / "reports"
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(reports))

    cut = {"content": "<think>so the answer is \\boxed{47}, but let me check that", "finish": "length"}
    with StubServer(lambda body: cut) as stub, pytest.raises(SystemExit) as done:
        main(["run", "--endpoint", stub.url, "--model", "stub", "--suite", "aime2024", "--data",
              f"aime2024={REPO / 'suites/aime/demo.jsonl'}", "--limit", "2", "--samples", "1", "-o", str(tmp_path / "run")])
    assert done.value.code == 0
    s = json.loads((tmp_path / "run" / "results.json").read_text())["suites"]["aime2024"]
    assert s["counts"]["truncated"] == s["counts"]["truncated_in_reasoning"] == 2
    assert next(m for m in s["metrics"] if m["metric"] == "avg@1")["value"] == 0.0  # no answer: wrong
    report = json.loads(next(reports.rglob("report.json")).read_text())
    assert report["suites"]["aime2024"]["counts"]["truncated_in_reasoning"] == 2
    assert "2 (2 think)" in capsys.readouterr().out  # the results table, on stdout


def test_a_run_whose_requests_failed_exits_1_naming_why(tmp_path, capsys):
    """HTTP 400 on every request: exit 1, the first error printed with its status and body, the 4xx
    counted in the endpoint's record."""
    with StubServer(faults=lambda body: ("status", 400)) as stub, pytest.raises(SystemExit) as done:
        main(["run", "--endpoint", stub.url, "--model", "stub", "--suite", "aime2024", "--data",
              f"aime2024={REPO / 'suites/aime/demo.jsonl'}", "--limit", "2", "--samples", "1", "-o", str(tmp_path / "run")])
    assert done.value.code == 1
    err = capsys.readouterr().err.replace("\n", "")
    assert "aime2024: 2 of 2 samples errored (2 client), above run.max_error_rate = 0" in err
    assert 'HTTP 400 from ' + stub.url + ': {"error": {"message": "injected 400"}}' in err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["engine"]["endpoints"][0]["errors"] == {"client": 2}


def test_ctrl_c_keeps_what_finished_and_says_how_to_resume(tmp_path):
    """Ctrl-C mid-run: exit 130, one line that says how to resume, no traceback; the re-run sends
    only what had not finished."""
    import signal
    import subprocess
    import sys
    import time

    def slow(body):
        time.sleep(1.0)  # the run lasts ~12 s: the signal lands mid-run even on a loaded machine
        return {"content": "\\\\boxed{1}"}

    with StubServer(slow) as stub:
        cmd = [sys.executable, "-m", "m1bench.harness.cli", "run", "--endpoint", stub.url, "--model", "stub",
               "--suite", "aime2024", "--data", f"aime2024={REPO / 'suites/aime/demo.jsonl'}", "--samples", "8",
               "--concurrency", "2", "-o", str(tmp_path / "run")]
        # Ctrl-C's default disposition in the child, whatever this suite inherited: a test run started
        # in the background of a non-interactive shell ignores SIGINT, and its children would too.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        records = tmp_path / "run" / "records.jsonl"
        deadline = time.monotonic() + 60
        while (not records.exists() or len(records.read_text().splitlines()) < 2) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "Traceback" not in err
        assert "re-run the same command to resume" in err.replace("\\n", " ")
        kept = len(records.read_text().splitlines())
        sent = len(stub.requests)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert len(stub.requests) - sent == 8 * 3 - kept  # 3 demo problems x 8: only what had no record is sent again
