"""`m1bench serve`: an OpenAI-compatible server for an M1 checkpoint (or a preset).

  --engine embedded   m1bench's server on the reference engine (the default when vLLM is not installed)
  --engine vllm       `vllm serve` with m1bench's plugin and M1 flags, run as a child process: waits
                      for /health, logs to <run-dir>/server-vllm.log, stops on Ctrl-C or failure
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from m1bench.harness.serve.launcher import LaunchError, ManagedServer, ServerSpec, resolve_model

console = Console(stderr=True)
DTYPES = ("auto", "float32", "bfloat16", "float16")


def default_engine() -> str:
    from m1bench.model.vllm_plugin import installed_vllm_version
    return "vllm" if installed_vllm_version() else "embedded"


def build_embedded(model_dir: Path, dtype: str, device: str, max_batch_size: int, max_model_len: int | None,
                   served_model_name: str | None):
    """Load the checkpoint and return (FastAPI app, EmbeddedServer)."""
    import torch

    from m1bench.harness.engine.batching import Engine
    from m1bench.harness.serve.server import EmbeddedServer, create_app
    from m1bench.model.checkpoint import load_model
    from m1bench.model.tokenizer import load_tokenizer
    torch_dtype = torch.float32 if dtype == "auto" else getattr(torch, dtype)
    model, tok = load_model(model_dir, torch_dtype, device), load_tokenizer(model_dir)
    limit = max_model_len or min(model.config.max_position_embeddings, 32768)
    server = EmbeddedServer(Engine(model, tok, max_batch_size), tok, served_model_name or model_dir.name, limit)
    return create_app(server), server


def serve_embedded(args) -> int:
    import uvicorn
    model_dir = resolve_model(args.model, "embedded")
    t0 = time.perf_counter()
    app, server = build_embedded(model_dir, args.dtype, args.device, args.max_batch_size, args.max_model_len,
                                 args.served_model_name)
    console.print(f"[bold]m1bench serve[/] embedded engine: {model_dir} as '{server.name}' "
                  f"(loaded in {time.perf_counter() - t0:.1f}s) on http://{args.host}:{args.port}/v1")
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        server.engine.shutdown()
    _summary("embedded", model_dir, server.name, t0, steps=server.engine.steps)
    return 0


def serve_vllm(args) -> int:
    spec = ServerSpec(model=args.model, engine="vllm", host=args.host, port=args.port,
                      served_model_name=args.served_model_name, dtype=args.dtype, max_model_len=args.max_model_len,
                      tensor_parallel_size=args.tensor_parallel_size, quantization=args.quantization,
                      max_num_seqs=args.max_num_seqs, kv_cache_memory_bytes=args.kv_cache_memory_bytes,
                      enforce_eager=args.enforce_eager, extra_args=args.vllm_arg,
                      health_timeout_s=args.health_timeout)
    run_dir = Path(args.run_dir or Path("runs") / f"serve-{time.strftime('%Y%m%d-%H%M%S')}")
    server = ManagedServer(spec, run_dir)
    t0 = time.perf_counter()
    with console.status(f"starting vLLM (log: {server.log_path}) …"):
        server.start()
    console.print(f"[bold]m1bench serve[/] vLLM: {server.model_dir} as '{server.served_model_name}' healthy after "
                  f"{time.perf_counter() - t0:.0f}s on {server.base_url}  (Ctrl-C stops it)\n  $ {' '.join(server.cmd)}")
    code = None
    try:
        code = server.wait()
    except KeyboardInterrupt:
        console.print("stopping vLLM …")
    finally:
        code = server.stop() if code is None else code
    _summary("vllm", server.model_dir, server.served_model_name, t0, exit_code=code, log=server.log_path)
    return 0 if code in (0, None, -2, 130) else 1


def _summary(engine: str, model_dir, name: str, t0: float, **facts) -> None:
    table = Table(title="m1bench serve", show_header=False)
    for k, v in {"engine": engine, "model": str(model_dir), "served as": name,
                 "uptime": f"{time.perf_counter() - t0:.0f}s", **facts}.items():
        table.add_row(k.replace("_", " "), str(v))
    console.print(table)


def cmd_serve(args) -> int:
    from m1bench.model.vllm_plugin import UnsupportedVllmError
    engine = args.engine if args.engine != "auto" else default_engine()
    try:
        return serve_vllm(args) if engine == "vllm" else serve_embedded(args)
    except (LaunchError, UnsupportedVllmError) as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        return 1


def add_parser(sub):
    p = sub.add_parser("serve", help="serve a checkpoint over an OpenAI-compatible HTTP API (embedded or vLLM)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="checkpoint directory or preset (tiny, small); default tiny")
    p.add_argument("--engine", choices=("auto", "embedded", "vllm"), default="auto",
                   help="auto: vLLM when installed, else embedded")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", help="model id clients send (default: the checkpoint directory's name)")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: float32 (embedded), the checkpoint's (vLLM)")
    p.add_argument("--max-model-len", type=int, help="prompt + completion tokens per request")
    g = p.add_argument_group("embedded engine")
    g.add_argument("--device", default="cpu")
    g.add_argument("--max-batch-size", type=int, default=16, help="sequences decoded together")
    g = p.add_argument_group("vLLM engine")
    g.add_argument("--tensor-parallel-size", type=int, default=1)
    g.add_argument("--quantization", help="passed to vLLM (e.g. experts_int8, fp8)")
    g.add_argument("--max-num-seqs", type=int)
    g.add_argument("--kv-cache-memory-bytes", type=int, help="KV cache size (on CPU: instead of a memory fraction)")
    g.add_argument("--enforce-eager", action="store_true")
    g.add_argument("--vllm-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `vllm serve` (repeatable, e.g. --vllm-arg=--max-num-batched-tokens=2048)")
    g.add_argument("--run-dir", help="where the server log goes (default runs/serve-<time>)")
    g.add_argument("--health-timeout", type=float, default=900.0, help="seconds to wait for /health")
    p.set_defaults(func=lambda a: sys.exit(cmd_serve(a)))
    return p
