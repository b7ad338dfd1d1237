"""Measured latency of the reference model (prefill, per-token decode vs context; hybrid vs softmax twin)
and of the attention kernels (lightning vs SDPA, prefill and decode). Decode is the engine's decode
step (model/decode.py: a decode pool, in a CUDA graph on GPU), as `generate` and the server run it.

Timing: on CUDA every sample is bracketed by CUDA events and synchronised; kernels go through
triton.testing.do_bench (median of many). On CPU, time.perf_counter around the call. Every
measurement has warm-up runs that are not recorded, and reports median, min, max and quartiles.
Inputs are random token ids / random activations (never zeros: a zero input can take fast paths).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from m1bench.model.arch import m1_twin_config
from m1bench.kernels import lightning_attention, lightning_decode
from m1bench.model.config import M1Config, alibi_slopes
from m1bench.model.decode import DecodeRunner
from m1bench.model.m1 import M1ForCausalLM

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def stats(values: list[float]) -> dict:
    v = sorted(values)
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "p25": q[0], "p75": q[2], "n": len(v)}


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable, device: torch.device):
    """(seconds one call of fn takes, its result); CUDA events on GPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        _sync(device)
        start.record()
        out = fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, out
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower() or isinstance(e, MemoryError)


# ---- model level ----------------------------------------------------------------------------------

def build_pair(config: M1Config, device, dtype, seed: int = 0) -> dict[str, M1ForCausalLM]:
    """The hybrid model and its softmax twin, sharing every weight they both have (embeddings, norms,
    MoE, the softmax layers, LM head); the twin's new softmax layers are freshly initialised."""
    torch.manual_seed(seed)
    with torch.device(device):
        hybrid = M1ForCausalLM(config).to(dtype).eval()
        twin = M1ForCausalLM(m1_twin_config(config)).to(dtype).eval()
    own = twin.state_dict()
    shared = {k: v for k, v in hybrid.state_dict().items() if k in own and own[k].shape == v.shape}
    twin.load_state_dict(shared, strict=False)
    return {"hybrid": hybrid, "softmax-twin": twin}


@torch.inference_mode()
def _prefill(model, ids: torch.Tensor, chunk: int):
    cache = model.new_cache(1, capacity=ids.shape[1])
    for s in range(0, ids.shape[1], chunk):
        model(ids[:, s:s + chunk], cache=cache, logits_to_keep=1)
    return cache


@torch.inference_mode()
def model_latency(model, contexts: list[int], *, warmup: int = 1, repeats: int = 3, decode_warmup: int = 2,
                  decode_steps: int = 8, chunk: int = 8192, time_budget_s: float = float("inf"),
                  single_run_from: int | None = None, on_context: Callable[[dict], None] | None = None,
                  seed: int = 0) -> list[dict]:
    """For each context length L: prefill time of L tokens (fresh cache, in chunks of `chunk`),
    then the time of each of `decode_steps` single-token steps at context ~L. Contexts from
    `single_run_from` on get no warm-up and one recorded prefill (each row records its counts). Stops growing L after an out-of-memory error or once one length took longer than
    `time_budget_s` in all."""
    device, vocab = model.device, model.config.vocab_size
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for L in contexts:
        ids = torch.randint(0, vocab, (1, L), generator=gen).to(device)
        step_ids = torch.randint(0, vocab, (decode_warmup + decode_steps,), generator=gen).tolist()
        if single_run_from is not None and L >= single_run_from:
            warmup, repeats = 0, 1
        row = {"context": L, "chunk": chunk, "warmup": warmup, "repeats": repeats,
               "decode_warmup": decode_warmup, "decode_steps": decode_steps}
        t0 = time.perf_counter()
        try:
            pre, cache, runner = [], None, None
            for i in range(warmup + repeats):
                cache = None  # free the previous cache before the next one is built
                secs, cache = time_once(lambda: _prefill(model, ids, chunk), device)
                if i >= warmup:
                    pre.append(secs)
            runner = DecodeRunner(model, model.new_pool(1, L + decode_warmup + decode_steps))
            runner.pool.load(0, cache)
            cache = None
            dec = []
            for j in range(decode_warmup + decode_steps):  # the first warm-up step captures the graph
                secs, _ = time_once(lambda: runner.step([step_ids[j]], [0]), device)
                if j >= decode_warmup:
                    dec.append(secs)
            row.update(prefill_s=stats(pre), decode_s=stats(dec), prefill_tok_per_s=L / statistics.median(pre),
                       decode_tok_per_s=1 / statistics.median(dec))
            if device.type == "cuda":
                row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
        except Exception as e:  # noqa: BLE001 - OOM ends the sweep for this model; anything else is a bug
            if not _is_oom(e):
                raise
            row["error"] = f"out of memory: {str(e).splitlines()[0][:200]}"
        finally:
            cache = runner = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
        row["wall_s"] = time.perf_counter() - t0
        rows.append(row)
        if on_context:
            on_context(row)
        if "error" in row or row["wall_s"] > time_budget_s:
            break
    return rows


# ---- kernel level ---------------------------------------------------------------------------------

def _bench(fn: Callable, device: torch.device, warmup: int, repeats: int) -> dict:
    if device.type == "cuda":
        from triton.testing import do_bench
        q = do_bench(fn, warmup=25, rep=100, quantiles=[0.25, 0.5, 0.75], return_mode="median")
        return {"median": q[1] / 1e3, "p25": q[0] / 1e3, "p75": q[2] / 1e3, "n": "do_bench(rep=100ms)"}
    for _ in range(warmup):
        fn()
    return stats([time_once(fn, device)[0] for _ in range(repeats)])


@torch.no_grad()
def kernel_latency(contexts: list[int], *, heads: int, head_dim: int, kv_heads: int, device, dtype,
                   warmup: int = 1, repeats: int = 5, sdpa_max: int = 1 << 17,
                   on_row: Callable[[dict], None] | None = None, seed: int = 0) -> list[dict]:
    """Lightning vs causal SDPA for one layer's attention at batch 1: prefill over T tokens (lightning:
    the entry point's default path, Triton on CUDA, the blocked PyTorch reference on CPU) and one decode
    step at context T (lightning: state update + readout; SDPA: one query against T cached keys)."""
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed)
    slopes = torch.tensor(alibi_slopes(heads), device=device)
    rows = []

    def emit(row):
        rows.append(row)
        if on_row:
            on_row(row)

    for T in contexts:
        rnd = lambda *shape: F.silu(torch.randn(*shape, device=device, generator=g)).to(dtype)
        q, k, v = rnd(1, T, heads, head_dim), rnd(1, T, heads, head_dim), rnd(1, T, heads, head_dim)
        t = _bench(lambda: lightning_attention(q, k, v, slopes), device, warmup, repeats)
        emit({"phase": "prefill", "impl": "lightning", "context": T, **_ms(t)})
        state = torch.randn(1, heads, head_dim, head_dim, device=device, generator=g)
        t = _bench(lambda: lightning_decode(q[:, -1], k[:, -1], v[:, -1], slopes, state), device, warmup, repeats)
        emit({"phase": "decode", "impl": "lightning", "context": T, **_ms(t)})
        del q, k, v
        if T <= sdpa_max:
            qh = rnd(1, heads, T, head_dim)
            kh, vh = rnd(1, kv_heads, T, head_dim), rnd(1, kv_heads, T, head_dim)
            gqa = kv_heads != heads
            t = _bench(lambda: F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, enable_gqa=gqa),
                       device, warmup, repeats)
            emit({"phase": "prefill", "impl": "sdpa", "context": T, **_ms(t)})
            t = _bench(lambda: F.scaled_dot_product_attention(qh[:, :, -1:], kh, vh, enable_gqa=gqa),
                       device, warmup, repeats)
            emit({"phase": "decode", "impl": "sdpa", "context": T, **_ms(t)})
            del qh, kh, vh
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def _ms(t: dict) -> dict:
    out = {"median_ms": t["median"] * 1e3, "p25_ms": t["p25"] * 1e3, "p75_ms": t["p75"] * 1e3, "n": t["n"]}
    if "min" in t:
        out.update(min_ms=t["min"] * 1e3, max_ms=t["max"] * 1e3)
    return out

