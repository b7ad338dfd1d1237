"""Benchmarks, each writing JSON under reports/bench/ (committed with the numbers), and the stub
servers they and the tests measure against. `m1bench bench NAME [ARGS]` runs one; `BENCHMARKS`
is the registry it reads (a module with `main(argv)`)."""

BENCHMARKS = {  # name -> (module, what it measures)
    "eval": ("m1bench.harness.bench.eval", "evaluation core: runner throughput, sandbox executions"),
    "serving": ("m1bench.harness.bench.serving", "embedded server and vLLM-CPU latency/throughput; client overhead"),
    "routing": ("m1bench.harness.bench.routing", "cost of expert-routing statistics on the tiny model"),
    "mrcr": ("m1bench.harness.bench.mrcr", "MRCR: 1M-token generation time, harness RSS, both suites on GPU"),
    "lightning": ("m1bench.harness.bench.lightning", "lightning-attention kernels on one GPU at M1's shape vs fla"),
    "engine": ("m1bench.harness.bench.engine", "reference engine on one GPU: decode step and prefill vs their floors, hybrid vs twin"),
    "vllm-gpu": ("m1bench.harness.bench.vllm_gpu", "M1 through vLLM on one GPU: parity with the reference, 128K chunked "
                 "prefill, throughput vs the embedded engine"),
    "faults": ("m1bench.harness.bench.faults", "m1bench run against an endpoint injecting faults at 0-20%; a dead one"),
    "gate-model": ("m1bench.harness.bench.gate_model", "train/perturb the CI gate's tiny model, write its problems"),
}
