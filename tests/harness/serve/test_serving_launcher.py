"""Launching servers as child processes (health wait, logs, clean stop, failures named), the
`[server]` hook of `m1bench run` driving the evaluation core's client, and `m1bench serve` on Ctrl-C."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from m1bench.harness.serve.hook import ServerConfigError, served_for_run, spec_from_table
from m1bench.harness.serve.launcher import LaunchError, ManagedServer, ServerSpec, vllm_command
from m1bench.model.tiny import ensure_tiny


def test_vllm_command_carries_the_m1_flags(tmp_path):
    spec = ServerSpec(model="x", engine="vllm", tensor_parallel_size=8, dtype="bfloat16", max_model_len=131072,
                      quantization="experts_int8", extra_args=["--max-num-seqs", "64"])
    cmd = vllm_command(spec, tmp_path / "MiniMax-M1-80k", 8123, python="python")
    joined = " ".join(cmd)
    assert cmd[:4] == ["python", "-m", "m1bench.harness.serve.vllm_cli", "serve"]
    for flag in ("--tensor-parallel-size 8", "--dtype bfloat16", "--max-model-len 131072", "--quantization experts_int8",
                 "--tool-call-parser m1bench_m1", "--reasoning-parser m1bench_m1", "--enable-auto-tool-choice",
                 "--served-model-name MiniMax-M1-80k", "--port 8123", "--max-num-seqs 64"):
        assert flag in joined


@pytest.mark.skipif("vllm" in sys.modules or __import__("importlib").util.find_spec("vllm") is not None,
                    reason="vLLM is installed here")
def test_vllm_engine_without_vllm_fails_before_launching(tmp_path):
    from m1bench.model.vllm_plugin import UnsupportedVllmError
    with pytest.raises(UnsupportedVllmError, match="vLLM is not installed"):
        ManagedServer(ServerSpec(model=str(ensure_tiny()), engine="vllm"), tmp_path).start()


def test_launch_failures_are_named_and_leave_nothing_running(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LaunchError, match="not a checkpoint directory"):
        ManagedServer(ServerSpec(model=str(tmp_path / "empty")), tmp_path).start()
    with pytest.raises(LaunchError, match="not a preset"):
        ManagedServer(ServerSpec(model="no-such-model"), tmp_path).start()
    bad = ManagedServer(ServerSpec(model="tiny", extra_args=["--no-such-flag"]), tmp_path)
    with pytest.raises(LaunchError, match=r"exited with code 2 before it was healthy(.|\n)*no-such-flag"):
        bad.start()
    slow = ManagedServer(ServerSpec(model="tiny", health_timeout_s=0.5), tmp_path / "slow")
    with pytest.raises(LaunchError, match="not healthy .* after 0s"):
        slow.start()
    assert slow.proc.poll() is not None and bad.proc.poll() is not None


def test_server_config_errors_name_the_key():
    with pytest.raises(ServerConfigError, match=r"server\.tensor_parallel_size: expected int"):
        spec_from_table({"model": "tiny", "tensor_parallel_size": "8"})
    with pytest.raises(ServerConfigError, match=r"server\.gpus: unknown key"):
        spec_from_table({"model": "tiny", "gpus": 8})
    with pytest.raises(ServerConfigError, match=r"server\.model: required"):
        spec_from_table({"engine": "vllm"})
    with pytest.raises(ServerConfigError, match="engine must be one of"):
        spec_from_table({"model": "tiny", "engine": "sglang"})


def test_run_against_a_server_started_for_it(tmp_path, capsys):
    """`m1bench run --serve embedded` starts the embedded server in a child process, the runner and
    OpenAI client run a suite against it, and the server is gone afterwards."""
    from m1bench.harness.cli import build_parser
    from m1bench.harness.cli.run import cmd_run
    data = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "suites", "aime", "demo.jsonl"))
    args = build_parser().parse_args(["run", "--serve", "embedded", "--model", "tiny", "--suite", "aime2024",
                                      "--data", f"aime2024={data}", "--limit", "2", "--samples", "2",
                                      "--max-tokens", "8", "-o", str(tmp_path / "run")])
    assert cmd_run(args) == 0
    records = [json.loads(l) for l in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert all(r["model_id"] == "openai:tiny" and r["completion"]["completion_tokens"] >= 1 for r in records)
    log = next((tmp_path / "run").glob("server-*.log")).read_text()
    assert log.startswith("$ ") and "serve --engine embedded" in log
    assert "server: http://" in capsys.readouterr().err


def test_server_table_errors_fail_before_anything_starts(tmp_path, capsys):
    from m1bench.harness.cli import main
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[run]\noutput_dir = "{tmp_path / "out"}"\n[server]\nmodel = "tiny"\ngpus = 8\n[suites.aime2024]\n')
    with pytest.raises(SystemExit) as done:
        main(["run", str(cfg)])
    assert done.value.code == 2
    assert "server.gpus: unknown key" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # no server started, no run directory made


def test_serve_command_stops_cleanly_on_ctrl_c(tmp_path):
    from m1bench.harness.serve.launcher import free_port
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "m1bench.harness.cli", "serve", "--engine", "embedded",
                             "--model", "tiny", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    import urllib.request
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "timeout"
            time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "m1bench serve" in out and "uptime" in out
