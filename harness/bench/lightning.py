"""Lightning attention on one GPU at M1's shape (H=64, d=128, B=1, bf16, MiniMax slopes).

Measures, in one run: the device's two ceilings (copy bandwidth, bf16 matmul rate); accuracy of
the Triton kernels against float64 (and flash-linear-attention's, side by side); prefill
tokens/s at T = 16K..128K for ours, fla's `chunk_simple_gla` and causal SDPA, with % of the
memory roofline (q, k, v read once, o written once); decode step time for B = 1 and 64, eager and
in CUDA graphs, against the memory floor (state read + written). Writes JSON, prints a table.

    python -m m1bench.harness.bench.lightning --out reports/bench/lightning_h100.json
"""
import argparse
import json
import math
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from m1bench.harness.core.provenance import environment
from m1bench.kernels.lightning import naive as reference
from m1bench.model.config import alibi_slopes

H, D, LAYERS = 64, 128, 80  # M1: 64 heads of 128, 80 layers (70 lightning)
GOALS = {"prefill_speedup_vs_fla": 1.3, "decode_b1_us": 20.0, "decode_b64_over_floor": 1.5,
         "bf16_rel_err": 1e-2, "fp32_rel_err": 1e-5}


def m1_slopes(layer: int) -> torch.Tensor:
    factor = 1 - layer / (LAYERS - 1) + 1e-5
    return torch.tensor(alibi_slopes(H), device="cuda") * factor


def qkv(T, dtype, seed, B=1):
    """SiLU'd normal inputs, as M1's qkv = SiLU(W x) produces (never zeros)."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    return tuple(F.silu(torch.randn(B, T, H, D, device="cuda", generator=g)).to(dtype) for _ in range(3))


def rel(a, b) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()  # NaN stays NaN: fails every goal


@contextmanager
def poisoned_outputs():
    """torch.empty hands out NaN-filled float tensors: an element a kernel skips shows up as NaN."""
    real = torch.empty

    def nan_empty(*a, **kw):
        t = real(*a, **kw)
        return t.fill_(float("nan")) if t.is_floating_point() else t
    torch.empty = nan_empty
    try:
        yield
    finally:
        torch.empty = real


def median_ms(fn, rep_ms=200):
    from triton.testing import do_bench
    return do_bench(fn, warmup=25, rep=rep_ms, return_mode="median")


def event_ms(fn, reps):
    """For calls of hundreds of ms (SDPA at 128K), where do_bench's repeat estimate costs seconds."""
    fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def graph_ms(fns, rep_ms=200):
    """Capture `fns` (called in order) into one CUDA graph; median time of one replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for fn in fns:
            fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for fn in fns:
            fn()
    return median_ms(g.replay, rep_ms)


# ---- sections -----------------------------------------------------------------------------------
def ceilings():
    n = 1 << 29  # 2 GiB of fp32 each way
    src, dst = torch.randn(n, device="cuda"), torch.empty(n, device="cuda")
    copy_ms = median_ms(lambda: dst.copy_(src))
    a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    mm_ms = median_ms(lambda: a @ b)
    return {"copy_GBps": 2 * 4 * n / copy_ms / 1e6, "bf16_matmul_TFLOPs": 2 * 8192 ** 3 / mm_ms / 1e9}


def accuracy(fla):
    """Rows {dtype, o, state, err = max(o, state)}; our outputs are poisoned before every call."""
    from m1bench.kernels.lightning.chunk import lightning_prefill
    from m1bench.kernels.lightning.recurrent import lightning_decode
    out = {}
    for dtype, T, oracle in [(torch.bfloat16, 4096, "recurrent"), (torch.float16, 4096, "recurrent"),
                             (torch.float32, 4096, "recurrent"), (torch.bfloat16, 16384, "blocked")]:
        q, k, v = qkv(T, dtype, seed=T)
        for layer in (0, 78):  # first and last lightning layer (decay ~1e-5: whole-prompt memory)
            s = m1_slopes(layer)
            o_r, s_r = getattr(reference, oracle)(q.double(), k.double(), v.double(), s.double())
            with poisoned_outputs():
                o, st = lightning_prefill(q, k, v, s)
            row = {"dtype": str(dtype)[6:], "oracle": f"float64 {oracle}", "o": rel(o, o_r), "state": rel(st, s_r)}
            if fla is not None and dtype != torch.float32:
                o_f, st_f = fla["chunk"](q, k, v, g_gamma=-s, scale=1.0, output_final_state=True)
                row.update(fla_o=rel(o_f, o_r), fla_state=rel(st_f, s_r))
            out[f"prefill {row['dtype']} T={T} layer={layer}"] = row
            del o_r, s_r
    # Packed batch with empty and one-token sequences and initial states, vs each alone.
    lens = [0, 1, 777, 4096, 100, 2053, 0]
    q, k, v = qkv(sum(lens), torch.bfloat16, seed=1)
    s = m1_slopes(40)
    h0 = torch.randn(len(lens), H, D, D, device="cuda")
    cu = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), device="cuda", dtype=torch.int32)
    with poisoned_outputs():
        o, st = lightning_prefill(q, k, v, s, h0, cu)
    row = {"dtype": "bfloat16", "oracle": "float64 blocked, each sequence alone", "o": 0.0, "state": 0.0}
    for i, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        o_i, s_i = reference.blocked(q[:, a:b].double(), k[:, a:b].double(), v[:, a:b].double(),
                                     s.double(), h0[i:i + 1].double())
        row["o"] = max(row["o"], rel(o[:, a:b], o_i) if b > a else 0.0)
        row["state"] = max(row["state"], rel(st[i:i + 1], s_i))
    out["prefill varlen lens=" + ",".join(map(str, lens))] = row
    # Prefill 1000 tokens, then 16 decode steps for 4 sequences in a pool of 8.
    T, steps, slots = 1000, 16, torch.tensor([7, 0, 3, 5], device="cuda")
    q, k, v = qkv(T + steps, torch.bfloat16, seed=2, B=4)
    s = m1_slopes(10)
    o_r, s_r = reference.recurrent(q.double(), k.double(), v.double(), s.double())
    _, st = lightning_prefill(q[:, :T], k[:, :T], v[:, :T], s)
    pool = torch.randn(8, H, D, D, device="cuda")
    pool[slots] = st
    others = pool[[1, 2, 4, 6]].clone()
    with poisoned_outputs():
        o = torch.stack([lightning_decode(q[:, t], k[:, t], v[:, t], s, pool, slots) for t in range(T, T + steps)], 1)
    out["decode B=4 slots=7,0,3,5 after 1000-token prefill"] = {
        "dtype": "bfloat16", "oracle": "float64 recurrent", "o": rel(o, o_r[:, T:]), "state": rel(pool[slots], s_r),
        "other_slots_untouched": bool(torch.equal(pool[[1, 2, 4, 6]], others))}
    for row in out.values():
        row["err"] = max(row["o"], row["state"])
    return out


# Block shapes timed beside the default (chunk.CONFIGS) at the longest prompt; one that does not fit
# in shared memory is recorded as such.
PREFILL_SWEEP = [(64, 64, 4, 3), (64, 64, 4, 4), (32, 64, 4, 3), (64, 32, 4, 3), (128, 64, 4, 2), (128, 64, 8, 2),
                 (64, 128, 8, 3)]


def prefill(fla, Ts, sdpa_max_T, floor_GBps, progress):
    from triton.runtime.errors import OutOfResources

    from m1bench.kernels.lightning.chunk import CONFIGS, Config, lightning_prefill
    rows, s = [], m1_slopes(0)
    q, k, v = qkv(max(Ts), torch.bfloat16, seed=0)
    tuned = {"default": str(CONFIGS["tf32"]), "T": max(Ts), "sweep_ms": {}}
    for cfg in map(Config._make, PREFILL_SWEEP):
        try:
            tuned["sweep_ms"][str(cfg)] = median_ms(lambda: lightning_prefill(q, k, v, s, config=cfg))
        except OutOfResources as e:
            tuned["sweep_ms"][str(cfg)] = f"does not fit: {e}"[:160]
    del q, k, v
    for T in Ts:
        progress(f"prefill T={T}")
        q, k, v = qkv(T, torch.bfloat16, seed=T)
        floor_bytes = 4 * T * H * D * 2
        row = {"T": T, "floor_ms": floor_bytes / floor_GBps / 1e6,
               "ours_ms": median_ms(lambda: lightning_prefill(q, k, v, s))}
        if fla is not None:
            row["fla_ms"] = median_ms(lambda: fla["chunk"](q, k, v, g_gamma=-s, scale=1.0, output_final_state=True))
        if T <= sdpa_max_T:
            qh, kh, vh = (x.transpose(1, 2) for x in (q, k, v))
            row["sdpa_ms"] = event_ms(lambda: F.scaled_dot_product_attention(qh, kh, vh, is_causal=True),
                                      reps=3 if T >= 65536 else 7)
            row["sdpa_TFLOPs"] = 2 * T * T * H * D / row["sdpa_ms"] / 1e9  # causal: half of 4 T^2 H d
        for name in ("ours", "fla", "sdpa"):
            if f"{name}_ms" in row:
                row[f"{name}_Mtok_s"] = T / row[f"{name}_ms"] / 1e3
                row[f"{name}_pct_roofline"] = 100 * row["floor_ms"] / row[f"{name}_ms"]
        if "fla_ms" in row:
            row["speedup_vs_fla"] = row["fla_ms"] / row["ours_ms"]
        rows.append(row)
        del q, k, v
        torch.cuda.empty_cache()
    # A packed batch as a server sends it: 8 prompts of 16K, one launch.
    q, k, v = qkv(8 * 16384, torch.bfloat16, seed=3)
    cu = torch.arange(0, 9 * 16384, 16384, device="cuda", dtype=torch.int32)
    varlen = {"lens": "8 x 16384", "ours_ms": median_ms(lambda: lightning_prefill(q, k, v, s, None, cu))}
    if fla is not None:
        cu64 = cu.long()
        varlen["fla_ms"] = median_ms(lambda: fla["chunk"](q, k, v, g_gamma=-s, scale=1.0, output_final_state=True,
                                                          cu_seqlens=cu64, cu_seqlens_cpu=cu64.cpu()))
        varlen["speedup_vs_fla"] = varlen["fla_ms"] / varlen["ours_ms"]
    return {"tuning": tuned, "rows": rows, "varlen": varlen}


def decode(fla, floor_GBps, l2_bytes, progress):
    from m1bench.kernels.lightning.recurrent import decode_block, lightning_decode
    out = {}
    s = m1_slopes(0)
    blocks = [(8, 1), (8, 2), (16, 1), (16, 2), (32, 2), (32, 4), (64, 4), (64, 8), (128, 4), (128, 8)]
    for B in (1, 64):
        progress(f"decode B={B}")
        state_bytes = B * H * D * D * 4
        # Enough separate pools (one per layer, as in the model) that the state is not served from L2.
        n_pools = max(1, min(70, math.ceil(8 * l2_bytes / state_bytes)))
        pools = [torch.randn(B, H, D, D, device="cuda") for _ in range(n_pools)]
        slots = torch.randperm(B, device="cuda").to(torch.int32)
        q, k, v = (x[:, 0] for x in qkv(1, torch.bfloat16, seed=B, B=B))
        row = {"B": B, "pools_in_graph": n_pools, "floor_us": 2 * state_bytes / floor_GBps / 1e3,
               "default_block": decode_block(B * H, D)}

        def step(pool, block=None):
            return lambda: lightning_decode(q, k, v, s, pool, slots, block)
        row["eager_us"] = 1e3 * median_ms(step(pools[0]))
        row["graph_1step_us"] = 1e3 * graph_ms([step(pools[0])])
        row["graph_us_per_step"] = {str(b): 1e3 * graph_ms([step(p, b) for p in pools]) / n_pools for b in blocks}
        row["graph_us_per_step"]["default"] = 1e3 * graph_ms([step(p) for p in pools]) / n_pools
        row["best_block"] = min(row["graph_us_per_step"], key=row["graph_us_per_step"].get)
        row["ours_us"] = row["graph_us_per_step"]["default"]
        row["ours_over_floor"] = row["ours_us"] / row["floor_us"]
        if fla is not None:
            q4, k4, v4 = (x[:, None] for x in (q, k, v))

            def fla_step(pool):
                return lambda: fla["recurrent"](q4, k4, v4, g_gamma=-s, scale=1.0, initial_state=pool,
                                                output_final_state=True)
            row["fla_eager_us"] = 1e3 * median_ms(fla_step(pools[0]))
            try:
                row["fla_graph_us_per_step"] = 1e3 * graph_ms([fla_step(p) for p in pools]) / n_pools
            except Exception as e:  # noqa: BLE001 - fla's wrappers may not capture; say so in the JSON
                row["fla_graph_error"] = repr(e)[:200]
        out[f"B={B}"] = row
        del pools
        torch.cuda.empty_cache()
    return out


def load_fla():
    try:
        import fla
        from fla.ops.simple_gla import chunk_simple_gla, fused_recurrent_simple_gla
        return {"chunk": chunk_simple_gla, "recurrent": fused_recurrent_simple_gla, "version": fla.__version__}
    except ImportError as e:
        print(f"flash-linear-attention not importable ({e}); its columns are left out")
        return None


# ---- report -------------------------------------------------------------------------------------
def verdicts(res):
    acc = res.get("accuracy", {}).values()
    worst = lambda dt: max((r["err"] for r in acc if r["dtype"] == dt), default=None)  # noqa: E731
    rows = res.get("prefill", {}).get("rows", [])
    dec = res.get("decode", {})
    return {
        "prefill_speedup_vs_fla>=1.3": all(r.get("speedup_vs_fla", 0) >= GOALS["prefill_speedup_vs_fla"] for r in rows) if rows else None,
        "decode_b1<=20us": dec["B=1"]["ours_us"] <= GOALS["decode_b1_us"] if "B=1" in dec else None,
        "decode_b64<=1.5x_floor": dec["B=64"]["ours_over_floor"] <= GOALS["decode_b64_over_floor"] if "B=64" in dec else None,
        "bf16<=1e-2": worst("bfloat16") <= GOALS["bf16_rel_err"] if worst("bfloat16") is not None else None,
        "fp32<=1e-5": worst("float32") <= GOALS["fp32_rel_err"] if worst("float32") is not None else None,
        "decode_other_slots_untouched": all(r.get("other_slots_untouched", True) for r in acc) if acc else None,
    }


def print_tables(res):
    from rich.console import Console
    from rich.table import Table
    con = Console(width=150)
    t = Table(title=f"lightning prefill, H={H} d={D} B=1 bf16 — {res['meta']['device']}")
    for c in ("T", "ours ms", "fla ms", "SDPA ms", "ours/fla", "ours Mtok/s", "fla Mtok/s", "ours %roof", "fla %roof"):
        t.add_column(c, justify="right")
    f = lambda x, p=2: "-" if x is None else f"{x:.{p}f}"  # noqa: E731
    for r in res.get("prefill", {}).get("rows", []):
        t.add_row(str(r["T"]), f(r["ours_ms"], 3), f(r.get("fla_ms"), 3), f(r.get("sdpa_ms"), 1), f(r.get("speedup_vs_fla")),
                  f(r["ours_Mtok_s"], 1), f(r.get("fla_Mtok_s"), 1), f(r["ours_pct_roofline"], 0), f(r.get("fla_pct_roofline"), 0))
    con.print(t)
    t = Table(title="lightning decode step (µs; graph = per step inside a CUDA graph)")
    for c in ("B", "eager", "graph 1 step", "graph/step", "floor", "×floor", "best block", "fla eager", "fla graph/step"):
        t.add_column(c, justify="right")
    for r in res.get("decode", {}).values():
        t.add_row(str(r["B"]), f(r["eager_us"], 1), f(r["graph_1step_us"], 1), f(r["ours_us"], 1), f(r["floor_us"], 1),
                  f(r["ours_over_floor"]), r["best_block"], f(r.get("fla_eager_us"), 1), f(r.get("fla_graph_us_per_step"), 1))
    con.print(t)
    t = Table(title="accuracy: ‖out − ref‖ / ‖ref‖ against float64")
    for c in ("case", "dtype", "o", "state", "fla o", "fla state"):
        t.add_column(c)
    e = lambda r, key: f"{r[key]:.2e}" if key in r else "-"  # noqa: E731
    for name, r in res.get("accuracy", {}).items():
        t.add_row(name, r["dtype"], e(r, "o"), e(r, "state"), e(r, "fla_o"), e(r, "fla_state"))
    con.print(t)
    con.print({"goals": res["goals"], "met": res["verdicts"]})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write (parent folders are made)")
    ap.add_argument("--T", type=int, nargs="+", default=[16384, 32768, 65536, 131072], help="prefill lengths")
    ap.add_argument("--sdpa-max-T", type=int, default=131072, help="skip SDPA above this length")
    ap.add_argument("--skip", nargs="*", default=[], choices=["accuracy", "prefill", "decode"], help="sections to skip")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        ap.error("needs a CUDA GPU (the kernels' CPU tests are tests/kernels/lightning/test_triton.py)")
    fla = load_fla()
    props = torch.cuda.get_device_properties(0)
    res = {"meta": {"device": props.name, "sms": props.multi_processor_count, "l2_bytes": props.L2_cache_size,
                    "fla": fla and fla["version"], **environment("cuda"),
                    "shape": {"H": H, "d": D, "B": 1, "dtype": "bfloat16"}},
           "goals": GOALS}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        res["verdicts"] = verdicts(res)
        args.out.write_text(json.dumps(res, indent=1))

    t0 = time.time()
    progress = lambda what: print(f"[{time.time() - t0:6.1f}s] {what}", flush=True)  # noqa: E731
    progress("ceilings")
    res["ceilings"] = ceilings()
    save()
    # Prefill first: the autotuner keys on shapes and dtype, not T, so it tunes at the longest prompt.
    if "prefill" not in args.skip:
        res["prefill"] = prefill(fla, args.T, args.sdpa_max_T, res["ceilings"]["copy_GBps"], progress)
        save()
    if "decode" not in args.skip:
        res["decode"] = decode(fla, res["ceilings"]["copy_GBps"], props.L2_cache_size, progress)
        save()
    if "accuracy" not in args.skip:
        progress("accuracy")
        res["accuracy"] = accuracy(fla)
        save()
    progress("done")
    print_tables(res)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
