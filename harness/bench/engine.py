"""The reference engine on one GPU, against the floors it computes for every row.

Measures, in one run (bf16, random weights, random token ids):
- decode: one decode step (model/decode.py, in its CUDA graph) at B=1 for contexts 4K..1M, and at
  B=64 at 4K, for the hybrid and its softmax twin, of the `small` preset and of a slice of M1's real
  shapes (2 lightning + 2 softmax layers: 64 heads of 128, hidden 6144, 32 experts, top-2, M1's
  vocabulary). The KV caches and lightning states are filled with random values to the context
  length (decode time does not depend on how they were filled; the twin's 1M-token cache is
  measured at 1M, not extrapolated);
- prefill: one prompt of T tokens through `generate`'s prefill (one chunk, causal SDPA, the
  lightning Triton prefill);
- correctness: graph-captured tokens against the same decode step run eagerly, and both against
  the plain forward loop (bf16: different kernels, so agreement is reported, not required);
- the lightning kernels (harness/bench/lightning.py): prefill at 128K against the memory roofline,
  decode at B=1 in a graph against its floor, accuracy against float64.

Floors per row: memory = bytes that must move (weights read once: attention, router, the experts
the batch routes to, LM head; lightning states read and written; the KV cache read) over the
measured copy bandwidth; compute = analytic FLOPs (model/flops.py) over the measured bf16 matmul
rate. Writes JSON with every row, the targets and whether each is met.

    python -m m1bench.harness.bench.engine --out reports/bench/engine_h200.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
import traceback
from pathlib import Path

import torch

from m1bench.harness.bench import lightning as kernel_bench
from m1bench.harness.core.provenance import environment
from m1bench.model.arch import from_m1_config, m1_twin_config
from m1bench.model.config import M1Config, every_nth_softmax
from m1bench.model.decode import DecodeRunner
from m1bench.model.flops import decode_flops, prefill_flops, total
from m1bench.model.generate import prefill
from m1bench.model.m1 import M1ForCausalLM
from m1bench.model.presets import preset

K = 1024
GOALS = {
    "small_b1_decode_over_memory_floor_at_4K": 3.0,  # <=
    "b64_over_b1_tokens_per_s": 20.0,  # >=
    "hybrid_over_twin_decode_at_1M": 4.0,  # >=, and > 1 at every context >= 16K
    "prefill_1M_over_compute_floor": 1.5,  # <=
    "lightning_prefill_pct_roofline_128K": 85.0,  # >=
    "lightning_decode_b1_over_floor": 1.5,  # <=
}


def m1_slice() -> M1Config:
    """M1's shapes, 4 layers: lightning, softmax, lightning, softmax (M1's own slopes and alphas)."""
    return dataclasses.replace(preset("m1"), num_hidden_layers=4, attn_type_list=every_nth_softmax(4, 2))


MODELS = {  # name -> (config, decode contexts, prefill contexts)
    "small": (lambda: preset("small"), [4 * K, 16 * K, 64 * K, 256 * K, 1024 * K], [4 * K, 16 * K, 64 * K, 256 * K, 1024 * K]),
    "m1-slice": (m1_slice, [4 * K, 16 * K, 64 * K, 256 * K, 1024 * K], [4 * K, 16 * K, 64 * K]),
}
TWIN_PREFILL_MAX = 256 * K  # the twin's prefill is quadratic in every layer: measured to 256K
B64_CONTEXT = 4 * K


# ---- floors -------------------------------------------------------------------------------------
def experts_read(config: M1Config, batch: int) -> float:
    """Expected number of distinct experts a batch routes to per layer (uniform routing; exact at B=1)."""
    E, k = config.num_local_experts, config.num_experts_per_tok
    return float(k) if batch == 1 else E * (1 - (1 - k / E) ** batch)


def decode_floor(config: M1Config, batch: int, context: int, ceil: dict) -> dict:
    c, dt = config, 2
    H, d, kvh, hid = c.num_attention_heads, c.head_dim, c.num_key_value_heads, c.hidden_size
    inner = H * d
    lightning_w = 3 * hid * inner + 2 * hid * inner  # qkv, output gate, out proj
    softmax_w = 2 * hid * inner + 2 * hid * kvh * d
    expert_w = 3 * hid * c.intermediate_size
    n_lin, n_soft = len(c.lightning_layers), len(c.softmax_layers)
    weights = (n_lin * lightning_w + n_soft * softmax_w
               + c.num_hidden_layers * (experts_read(c, batch) * expert_w + c.num_local_experts * hid)
               + c.vocab_size * hid) * dt
    states = batch * n_lin * H * d * d * 4 * 2
    kv = batch * n_soft * context * kvh * d * 2 * dt
    flops = batch * total(decode_flops(from_m1_config(c, "floor"), context))
    return {"bytes": weights + states + kv, "weight_bytes": weights, "state_bytes": states, "kv_bytes": kv,
            "flops": flops, "memory_floor_ms": (weights + states + kv) / ceil["copy_GBps"] / 1e6,
            "compute_floor_ms": flops / ceil["bf16_matmul_TFLOPs"] / 1e9}


def prefill_floor(config: M1Config, T: int, ceil: dict) -> dict:
    flops = total(prefill_flops(from_m1_config(config, "floor"), T, attention="causal", logits="last"))
    return {"flops": flops, "compute_floor_s": flops / ceil["bf16_matmul_TFLOPs"] / 1e12}


# ---- models and caches --------------------------------------------------------------------------
def random_model(config: M1Config, seed: int) -> M1ForCausalLM:
    """Built on the meta device and allocated once in bf16 on the GPU (M1's slice is 49 GB), then
    N(0, 0.02) weights, unit norm scales."""
    with torch.device("meta"):
        model = M1ForCausalLM(config).to(torch.bfloat16)
    model.to_empty(device="cuda")
    g = torch.Generator(device="cuda").manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith("norm.weight") or "layernorm" in name else p.normal_(0, 0.02, generator=g)
    return model.eval()


def fill(pool, slots: list[int], context: int, seed: int) -> None:
    """Random KV for the first `context` positions and random lightning states (never zeros)."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    for s in slots:
        for t in (*pool.keys.values(), *pool.values.values()):
            t[s, :context].normal_(0, 1, generator=g)
        for t in pool.states.values():
            t[s].normal_(0, 0.05, generator=g)
        pool.lengths[s] = context
        pool.host_lengths[s] = context


def time_decode(model, batch: int, context: int, steps: int = 24, repeats: int = 5) -> dict:
    """`step_ms`: one engine step (the host hands the tokens over, the graph replays); `replay_ms`:
    the captured step replayed back to back, the device's time alone."""
    pool = model.new_pool(batch, context + 8 + 2 * steps * repeats)
    slots = list(range(batch))
    fill(pool, slots, context, seed=batch + context)
    runner = DecodeRunner(model, pool)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, model.config.vocab_size, (steps * repeats + 3, batch), generator=g).tolist()
    for t in tokens[:3]:  # capture, then warm
        runner.step(t, slots)
    per_step = []
    for r in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        a.record()
        for t in tokens[3 + r * steps: 3 + (r + 1) * steps]:
            runner.step(t, slots)
        b.record()
        b.synchronize()
        per_step.append(a.elapsed_time(b) / steps)
    graph = next(iter(runner._captured.values())).graph
    replay = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(steps):
            graph.replay()
        b.record()
        b.synchronize()
        replay.append(a.elapsed_time(b) / steps)
    return {"step_ms": statistics.median(per_step), "step_ms_runs": per_step, "steps_per_run": steps,
            "replay_ms": statistics.median(replay)}


def time_prefill(model, T: int) -> float:
    ids = torch.randint(0, model.config.vocab_size, (T,), generator=torch.Generator().manual_seed(T)).tolist()
    pool = model.new_pool(1, T)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.inference_mode():
        prefill(model, ids, pool, 0, chunk=T)
    torch.cuda.synchronize()
    return time.perf_counter() - t0


# ---- correctness --------------------------------------------------------------------------------
@torch.inference_mode()
def agreement(model, lengths=(100, 1000, 3000), steps=16) -> dict:
    """Greedy tokens of three prompts: graph-captured decode vs the same step eagerly vs the forward loop."""
    g = torch.Generator().manual_seed(7)
    prompts = [torch.randint(0, model.config.vocab_size, (n,), generator=g).tolist() for n in lengths]
    runs = {}
    for name, graphs in (("graph", True), ("eager", False)):
        pool = model.new_pool(len(prompts), max(lengths) + steps)
        runner = DecodeRunner(model, pool, graphs=graphs)
        toks = [[int(prefill(model, p, pool, i).argmax())] for i, p in enumerate(prompts)]
        for _ in range(steps - 1):
            out = runner.step([t[-1] for t in toks], list(range(len(prompts)))).argmax(-1).tolist()
            for t, o in zip(toks, out):
                t.append(o)
        runs[name] = toks
    loop = []
    for p in prompts:
        cache = model.new_cache(1, capacity=len(p) + steps)
        logits = model(torch.tensor([p], device=model.device), cache)[0, -1]
        toks = []
        for _ in range(steps):
            toks.append(int(logits.argmax()))
            logits = model(torch.tensor([[toks[-1]]], device=model.device), cache)[0, -1]
        loop.append(toks)
    same = lambda a, b: sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb)) / (len(a) * steps)  # noqa: E731
    return {"prompt_lengths": list(lengths), "steps": steps, "graph_equals_eager": runs["graph"] == runs["eager"],
            "graph_vs_eager_token_agreement": same(runs["graph"], runs["eager"]),
            "graph_vs_forward_loop_token_agreement": same(runs["graph"], loop), "tokens": runs}


# ---- the run ------------------------------------------------------------------------------------
def run_model(name: str, variant: str, res: dict, save) -> None:
    make, decode_ctx, prefill_ctx = MODELS[name]
    config = make() if variant == "hybrid" else m1_twin_config(make())
    ceil = res["ceilings"]
    model = random_model(config, seed=0)
    key = f"{name}/{variant}"
    out = res["models"][key] = {"layers": config.num_hidden_layers, "lightning_layers": len(config.lightning_layers),
                                "softmax_layers": len(config.softmax_layers), "decode": [], "prefill": []}
    if name == "small" and variant == "hybrid":
        try:
            out["agreement"] = agreement(model)
        except Exception:  # noqa: BLE001 - recorded; the timings still run
            res["errors"].append(f"{key} agreement: " + traceback.format_exc()[-2000:])
        save()
    for ctx in decode_ctx:
        for batch in (1, 64) if ctx == B64_CONTEXT else (1,):
            row = {"batch": batch, "context": ctx, **decode_floor(config, batch, ctx, ceil)}
            try:
                row.update(time_decode(model, batch, ctx))
                row["tokens_per_s"] = batch / row["step_ms"] * 1e3
                row["over_memory_floor"] = row["step_ms"] / row["memory_floor_ms"]
                row["replay_over_memory_floor"] = row["replay_ms"] / row["memory_floor_ms"]
                row["over_compute_floor"] = row["step_ms"] / row["compute_floor_ms"]
            except Exception as e:  # noqa: BLE001 - an OOM or kernel failure is a row of the record
                row["error"] = f"{type(e).__name__}: {e}"[:300]
            out["decode"].append(row)
            print(key, "decode", {k: row.get(k) for k in ("batch", "context", "step_ms", "memory_floor_ms")}, flush=True)
            torch.cuda.empty_cache()
            save()
    time_prefill(model, 4 * K)  # compile and warm
    for T in prefill_ctx:
        if variant != "hybrid" and T > TWIN_PREFILL_MAX:
            continue
        row = {"tokens": T, **prefill_floor(config, T, ceil)}
        try:
            if T <= 256 * K:  # a first call at a new length builds cuDNN's attention plan: not timed
                time_prefill(model, T)
            row["prefill_s"] = time_prefill(model, T)
            row["tokens_per_s"] = T / row["prefill_s"]
            row["over_compute_floor"] = row["prefill_s"] / row["compute_floor_s"]
        except Exception as e:  # noqa: BLE001
            row["error"] = f"{type(e).__name__}: {e}"[:300]
        out["prefill"].append(row)
        print(key, "prefill", {k: row.get(k) for k in ("tokens", "prefill_s", "compute_floor_s")}, flush=True)
        torch.cuda.empty_cache()
        save()
    del model
    torch.cuda.empty_cache()


def targets(res: dict) -> dict:
    return {name: {k: (bool(v) if k == "met" else v) for k, v in t.items()} for name, t in _targets(res).items()}


def _targets(res: dict) -> dict:
    out = {}
    models, kern = res.get("models", {}), res.get("kernels", {})

    def dec(key, batch, ctx):
        return next((r for r in models.get(key, {}).get("decode", []) if r["batch"] == batch and r["context"] == ctx
                     and "step_ms" in r), None)
    name = "small"  # the targets are the small preset's; the M1 slice's rows are on record beside them
    h1, h64 = dec(f"{name}/hybrid", 1, B64_CONTEXT), dec(f"{name}/hybrid", 64, B64_CONTEXT)
    if h1:
        v = h1["over_memory_floor"]
        out["small B=1 decode <= 3x memory floor at 4K"] = {"measured": v, "met": v <= GOALS[
            "small_b1_decode_over_memory_floor_at_4K"]}
    if h1 and h64:
        v = h64["tokens_per_s"] / h1["tokens_per_s"]
        out["small B=64 tokens/s >= 20x B=1"] = {"measured": v, "met": v >= GOALS["b64_over_b1_tokens_per_s"]}
    ratios = {}
    for r in models.get(f"{name}/hybrid", {}).get("decode", []):
        t = dec(f"{name}/softmax-twin", 1, r["context"])
        if r["batch"] == 1 and t and "step_ms" in r:
            ratios[r["context"]] = t["step_ms"] / r["step_ms"]
    if ratios:
        faster = all(v > 1 for c, v in ratios.items() if c >= 16 * K)
        out["small hybrid decode faster than twin at every context >= 16K"] = {"measured": ratios, "met": faster}
        if 1024 * K in ratios:
            v = ratios[1024 * K]
            out["small hybrid decode >= 4x twin at 1M"] = {"measured": v, "met": v >= GOALS["hybrid_over_twin_decode_at_1M"]}
    p1m = next((r for r in models.get(f"{name}/hybrid", {}).get("prefill", []) if r["tokens"] == 1024 * K
                and "prefill_s" in r), None)
    if p1m:
        v = p1m["over_compute_floor"]
        out["small 1M prefill <= 1.5x compute floor"] = {"measured": v, "met": v <= GOALS["prefill_1M_over_compute_floor"]}
    rows = kern.get("prefill", {}).get("rows", [])
    if rows:
        v = rows[-1]["ours_pct_roofline"]
        out["lightning prefill >= 85% of memory roofline at 128K"] = {"measured": v, "met": v >= GOALS[
            "lightning_prefill_pct_roofline_128K"]}
    b1 = kern.get("decode", {}).get("B=1")
    if b1:
        v = min(t for t in b1["graph_us_per_step"].values()) / b1["floor_us"]
        out["lightning decode B=1 <= 1.5x floor in a graph"] = {"measured": v, "met": v <= GOALS["lightning_decode_b1_over_floor"],
                                                               "default_block_over_floor": b1["ours_over_floor"]}
    return out


def plot(res: dict, stem: Path) -> list[Path]:
    """Decode step (B=1) against context beside its memory floor, and prefill against its compute
    floor, per model: PNG + SVG next to the JSON."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from m1bench.harness.core.provenance import provenance_line
    names = list(MODELS)
    fig, axes = plt.subplots(2, len(names), figsize=(6 * len(names), 8), squeeze=False)
    for col, name in enumerate(names):
        dec, pre = axes[0][col], axes[1][col]
        for variant, color in (("hybrid", "C0"), ("softmax-twin", "C1")):
            m = res["models"].get(f"{name}/{variant}", {})
            rows = [r for r in m.get("decode", []) if r["batch"] == 1 and "step_ms" in r]
            if rows:
                ctx = [r["context"] for r in rows]
                dec.plot(ctx, [r["step_ms"] for r in rows], "o-", color=color, label=f"{variant}: decode step")
                dec.plot(ctx, [r["memory_floor_ms"] for r in rows], "--", color=color, label=f"{variant}: memory floor")
            rows = [r for r in m.get("prefill", []) if "prefill_s" in r]
            if rows:
                ctx = [r["tokens"] for r in rows]
                pre.plot(ctx, [r["prefill_s"] for r in rows], "o-", color=color, label=f"{variant}: prefill")
                pre.plot(ctx, [r["compute_floor_s"] for r in rows], "--", color=color, label=f"{variant}: compute floor")
        dec.set(title=f"{name}: decode step, B=1 (CUDA graph)", ylabel="ms per step", yscale="log")
        pre.set(title=f"{name}: prefill of one prompt", ylabel="seconds", yscale="log")
        for ax in (dec, pre):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("context / prompt length (tokens)")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
                lambda x, _: f"{x / 1024 ** 2:g}M" if x >= 1024 ** 2 else f"{x / 1024:g}K"))
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
    fig.text(0.01, 0.005, provenance_line(res["meta"], "bf16, random weights"), fontsize=6.5, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/bench/engine_h200.json")
    ap.add_argument("--replot", metavar="JSON", help="only redraw the plots of a JSON this benchmark wrote")
    ap.add_argument("--models", default="small,m1-slice", help="comma-separated: " + ", ".join(MODELS))
    ap.add_argument("--no-kernels", action="store_true", help="skip the lightning kernel section")
    ap.add_argument("--kernels-from", help="take the kernel section from this earlier run's JSON (its meta kept)")
    args = ap.parse_args(argv)
    if args.replot:
        print("wrote", *plot(json.loads(Path(args.replot).read_text()), Path(args.replot).with_suffix("")))
        return
    res = {"meta": environment("cuda"), "goals": GOALS, "ceilings": kernel_bench.ceilings(), "models": {}, "errors": []}
    res["meta"]["l2_bytes"] = torch.cuda.get_device_properties(0).L2_cache_size
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        res["targets"] = targets(res)
        out.write_text(json.dumps(res, indent=1) + "\n")
    save()
    if args.kernels_from:
        earlier = json.loads(Path(args.kernels_from).read_text())
        res["kernels"] = {**earlier["kernels"], "measured_in": {"meta": earlier["meta"], "ceilings": earlier["ceilings"]}}
    elif not args.no_kernels:
        try:
            copy = res["ceilings"]["copy_GBps"]
            res["kernels"] = {"accuracy": kernel_bench.accuracy(None),
                              "prefill": kernel_bench.prefill(None, [128 * K], 0, copy, print),
                              "decode": kernel_bench.decode(None, copy, res["meta"]["l2_bytes"], print)}
        except Exception:  # noqa: BLE001
            res["errors"].append(traceback.format_exc()[-2000:])
        save()
    for name in args.models.split(","):
        for variant in ("hybrid", "softmax-twin"):
            try:
                run_model(name, variant, res, save)
            except Exception:  # noqa: BLE001 - keep what the other models measure
                res["errors"].append(f"{name}/{variant}: " + traceback.format_exc()[-2000:])
                torch.cuda.empty_cache()
            save()
    for k, v in res["targets"].items():
        print(f"{'MET ' if v['met'] else 'MISS'} {k}: {v['measured']}")
    print(f"wrote {out}", *plot(res, out.with_suffix("")))


if __name__ == "__main__":
    main()
