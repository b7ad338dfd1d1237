"""Analytic forward FLOPs of an architecture spec, split by component, as a function of context position.

Every per-token cost is affine in the number of keys a token attends to, so everything here is a
closed form (numpy-vectorised over positions / lengths) and a 1M-token curve costs nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from m1bench.model.arch import FFN, ArchSpec, Attention

COMPONENTS = ("attn_proj", "attn_scores", "attn_values", "lightning_intra", "lightning_inter",
              "lightning_state", "router", "experts", "dense_ffn", "lm_head")
MLA_LAYOUTS = ("naive", "absorbed")

CONVENTIONS = """\
Counting conventions (analytic FLOPs, forward only, batch 1):
- A multiply-add is 2 FLOPs: x[m,k] @ W[k,n] costs 2mkn. Only matrix products are counted. Not
  counted: norms, activations (SiLU, sigmoid gate), RoPE, residual adds, routing top-k, the embedding
  lookup (O(hidden) per token and layer), the softmax exponentials (O(H) per key) and the lightning
  state decay (O(H d^2) per layer): together under 1% of the counted FLOPs for M1, R1 and Qwen3 up
  to 128K tokens.
- A token at position t (0-based) attends to t+1 keys (itself included). Softmax/MLA attention:
  scores 2*H*d_qk*(t+1), values 2*H*d_v*(t+1) per layer. Prefill counts causal attention by default
  (a causal kernel skips the masked half); `attention="dense"` counts the full T x S score matrix, which
  is what torch's FlopCounterMode formula for SDPA counts whatever the mask (and what a kernel that
  takes an explicit boolean mask computes).
- GQA: K/V projections cost their real (fewer) heads; scores and values cost every query head.
- Lightning (per layer, H heads of d): decode does o = q S (lightning_inter, 2Hd^2) and
  S <- exp(-s) S + k^T v (lightning_state, 2Hd^2: one multiply and one add per state entry). Prefill runs
  the blocked algorithm with block b: per block of m tokens, intra = [(Q K^T) * D] V over the full m x m
  block (4Hm^2 d, the masked half is computed), inter = (Q * lambda) S (2Hmd^2), state update
  (K * lambda)^T V (2Hmd^2). Blocks start at the chunk start.
- MLA (DeepSeek-V3/R1): layout "naive" (default) up-projects each token's latent once into per-head
  keys (nope 128 + rope 64) and values (128) and attends over them like MHA: the fewest FLOPs.
  Layout "absorbed" folds W_UK into the query and W_UV into the output (what DeepSeek's decode does):
  attention runs over the 512-d latent + 64-d rope key of every cached token (MQA-like), which is
  cheaper in memory traffic but costs 2*H*(512+64) + 2*H*512 FLOPs per key instead of 2*H*(192+128).
- MoE: router 2*hidden*E; each routed token costs its top-k experts (+ shared experts), 6*hidden*I each.
- LM head: 2*hidden*vocab for every position whose logits are computed.
- Generating N tokens after a P-token prompt = prefill of P tokens (no logits) + N decode steps at
  positions P..P+N-1, each with the LM head (N forwards that each yield logits; the engine's exact
  off-by-one, logits of the last prompt token instead of the last generated token's forward, changes
  the total by one token). MTP modules (DeepSeek) are not counted.
"""


@dataclass(frozen=True)
class Coefficients:
    """Per-token FLOPs summed over layers: const[c] + per_key[c] * keys (+ per_block_sq[c] * sum m^2 in prefill)."""

    const: dict[str, float]
    per_key: dict[str, float]
    per_block_sq: dict[str, float]


def _zero() -> dict[str, float]:
    return {c: 0.0 for c in COMPONENTS}


def _attention_terms(a: Attention, hidden: int, mla_layout: str, const, per_key, per_block_sq):
    H = a.heads
    if a.kind == "lightning":
        d = a.head_dim
        inner = H * d
        const["attn_proj"] += 2 * hidden * 3 * inner + 2 * hidden * inner + 2 * inner * hidden
        const["lightning_inter"] += 2 * H * d * a.v_head_dim
        const["lightning_state"] += 2 * H * d * a.v_head_dim
        per_block_sq["lightning_intra"] += 2 * H * d + 2 * H * a.v_head_dim
    elif a.kind == "softmax":
        d, dv = a.head_dim, a.v_head_dim
        const["attn_proj"] += 2 * hidden * (H * d + a.kv_heads * d + a.kv_heads * dv) + 2 * H * dv * hidden
        per_key["attn_scores"] += 2 * H * d
        per_key["attn_values"] += 2 * H * dv
    elif a.kind == "mla":
        q_out = H * a.qk_dim
        q = 2 * hidden * q_out if a.q_lora_rank is None else 2 * hidden * a.q_lora_rank + 2 * a.q_lora_rank * q_out
        kv_a = 2 * hidden * (a.kv_lora_rank + a.qk_rope_dim)
        o = 2 * H * a.v_head_dim * hidden
        if mla_layout == "naive":
            kv_b = 2 * a.kv_lora_rank * H * (a.qk_nope_dim + a.v_head_dim)
            const["attn_proj"] += q + kv_a + kv_b + o
            per_key["attn_scores"] += 2 * H * a.qk_dim
            per_key["attn_values"] += 2 * H * a.v_head_dim
        elif mla_layout == "absorbed":
            absorb = 2 * H * a.qk_nope_dim * a.kv_lora_rank + 2 * H * a.kv_lora_rank * a.v_head_dim
            const["attn_proj"] += q + kv_a + absorb + o
            per_key["attn_scores"] += 2 * H * (a.kv_lora_rank + a.qk_rope_dim)
            per_key["attn_values"] += 2 * H * a.kv_lora_rank
        else:
            raise ValueError(f"mla_layout must be one of {MLA_LAYOUTS}, got {mla_layout!r}")
    else:
        raise ValueError(f"unknown attention kind {a.kind!r}")


def _ffn_terms(f: FFN, hidden: int, const):
    per = 6 * hidden * f.intermediate
    if not f.is_moe:
        const["dense_ffn"] += per
        return
    const["router"] += 2 * hidden * f.experts
    const["experts"] += f.top_k * per + f.shared_experts * 6 * hidden * f.shared_intermediate


def coefficients(spec: ArchSpec, mla_layout: str = "naive") -> Coefficients:
    const, per_key, per_block_sq = _zero(), _zero(), _zero()
    for layer in spec.layers:
        _attention_terms(layer.attn, spec.hidden, mla_layout, const, per_key, per_block_sq)
        _ffn_terms(layer.ffn, spec.hidden, const)
    const["lm_head"] = 2 * spec.hidden * spec.vocab
    return Coefficients(const, per_key, per_block_sq)


def total(flops: dict) -> np.ndarray | float:
    return sum(flops[c] for c in COMPONENTS)


def decode_flops(spec: ArchSpec, position, mla_layout: str = "naive") -> dict:
    """FLOPs of one decode step for the token at `position` (scalar or array), logits included."""
    k = coefficients(spec, mla_layout)
    keys = np.asarray(position, dtype=np.float64) + 1
    return {c: k.const[c] + k.per_key[c] * keys for c in COMPONENTS}


def _block_sq_sum(length, block: int):
    length = np.asarray(length, dtype=np.float64)
    full, rest = np.floor_divide(length, block), np.mod(length, block)
    return full * block * block + rest * rest


def prefill_flops(spec: ArchSpec, length, start=0, *, block: int | None = None, attention: str = "causal",
                  logits: str = "last", mla_layout: str = "naive") -> dict:
    """FLOPs of one forward over the chunk of `length` tokens at positions start..start+length-1.
    attention: "causal" (token t sees t+1 keys) or "dense" (every query of the chunk scores all
    start+length keys). logits: "all" | "last" | "none" positions run through the LM head."""
    k = coefficients(spec, mla_layout)
    T = np.asarray(length, dtype=np.float64)
    s = np.asarray(start, dtype=np.float64)
    if attention == "causal":
        keys = T * s + T * (T + 1) / 2
    elif attention == "dense":
        keys = T * (s + T)
    else:
        raise ValueError(f"attention must be 'causal' or 'dense', got {attention!r}")
    n_logits = {"all": T, "last": np.minimum(T, 1), "none": 0 * T}[logits]
    blocks = _block_sq_sum(T, block or spec.lightning_block)
    out = {}
    for c in COMPONENTS:
        per_token = n_logits if c == "lm_head" else T
        out[c] = k.const[c] * per_token + k.per_key[c] * keys + k.per_block_sq[c] * blocks
    return out


def generation_flops(spec: ArchSpec, n_gen, prompt: int = 0, mla_layout: str = "naive") -> dict:
    """Cumulative FLOPs to generate `n_gen` tokens (scalar or array) after a `prompt`-token prefill."""
    k = coefficients(spec, mla_layout)
    N = np.asarray(n_gen, dtype=np.float64)
    pre = prefill_flops(spec, prompt, logits="none", mla_layout=mla_layout)
    keys = N * prompt + N * (N + 1) / 2  # sum over t = P..P+N-1 of (t + 1)
    return {c: pre[c] + k.const[c] * N + k.per_key[c] * keys for c in COMPONENTS}


def flops_ratio(a: ArchSpec, b: ArchSpec, n_gen, prompt: int = 0, mla_layout: str = "naive") -> dict:
    """FLOPs of `a` over FLOPs of `b`: cumulative to generate n_gen tokens, and per token at position n_gen."""
    cumulative = total(generation_flops(a, n_gen, prompt, mla_layout)) / total(generation_flops(b, n_gen, prompt, mla_layout))
    last = np.asarray(n_gen) + prompt - 1
    per_token = total(decode_flops(a, last, mla_layout)) / total(decode_flops(b, last, mla_layout))
    return {"cumulative": cumulative, "per_token": per_token}


def executed_block_size() -> int:
    """Block size of the CPU lightning prefill path (the blocked reference) the model calls."""
    import inspect

    from m1bench.kernels import lightning

    return inspect.signature(lightning.PREFILL_IMPLS["blocked"]).parameters["block_size"].default


def request_flops(spec: ArchSpec, prompt: int, n_gen: int, mla_layout: str = "naive") -> float:
    """Total FLOPs of one generate call as the reference engine runs it: a causal prefill of the
    `prompt` tokens with the LM head on the last one (the first generated token's logits), then one
    decode forward per further generated token (positions prompt..prompt+n_gen-2; the last token
    sampled is never fed back)."""
    pre = total(prefill_flops(spec, prompt, logits="last", mla_layout=mla_layout)) if prompt else 0.0
    steps = max(int(n_gen) - 1, 0)
    if not steps:
        return float(pre)
    k = coefficients(spec, mla_layout)
    keys = steps * prompt + steps * (steps + 1) / 2  # sum over t = P..P+steps-1 of (t + 1)
    return float(pre + sum(k.const[c] * steps + k.per_key[c] * keys for c in COMPONENTS))
