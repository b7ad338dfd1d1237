"""Lightning attention prefill in Triton: one fused pass over the sequence, state kept in registers.

Each program owns one (sequence, head, value-block) and walks its sequence chunk by chunk
(the blocked form of naive.py's recurrence, chunk size m):

    O_i = [(Q_i K_iᵀ) ⊙ D] V_i + λ_q ⊙ (Q_i S)        S ← exp(−s m) S + (λ_k ⊙ K_i)ᵀ V_i

so q, k, v are read once and o written once: no per-chunk states go through device memory
(flash-linear-attention's `chunk_simple_gla` writes and re-reads one per chunk). The parallelism
is sequences × heads × d/BV; with B=1 and M1's 64 heads that is 128..256 programs, about one
wave on an H100/H200. The state stays fp32; the dots take the input dtype (bf16/fp16) with fp32
accumulation, or exact fp32 ("ieee") for fp32 inputs and in the interpreter (whose bf16 dot is
wrong). Packed batches (`cu_seqlens`) are a grid over sequences, each with its own state.
"""
import os

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def _configs():
    if INTERPRET:  # the interpreter cannot benchmark; a small chunk so short tests cross blocks
        return [triton.Config({"BT": 16, "BV": 32}, num_warps=4, num_stages=1)]
    # (BT, BV, warps, stages). H200, T=128K (reports/bench/lightning_h200.json): BV=64, 4 warps,
    # 3 stages 3.07 ms; 4 stages 3.13; 2 stages 4.48; 8 warps 4.38; BV=32 3.85 (qkᵀ recomputed per
    # value block). Seen worse and left out: BV=128 (64 programs for 132 SMs) 7.9; BT=128 with
    # 3 stages did not fit in shared memory.
    return [triton.Config({"BT": bt, "BV": bv}, num_warps=w, num_stages=st)
            for bt, bv, w, st in [(64, 64, 4, 2), (64, 64, 4, 3), (64, 64, 4, 4), (64, 32, 4, 3),
                                  (64, 32, 4, 4), (64, 64, 8, 3)]]


def _prune(configs, named_args, **kwargs):
    # fp32 inputs take the exact ("ieee") dots: a correctness path, not worth tuning for.
    return configs[:1] if kwargs.get("PREC") == "ieee" else configs


@triton.autotune(configs=_configs(), key=["H", "K", "V", "IS_VARLEN", "PREC"],
                 prune_configs_by={"early_config_prune": _prune})
@triton.jit
def _prefill_kernel(q, k, v, o, slopes, h0, ht, cu_seqlens, T,
                    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr,
                    BT: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr,
                    IS_VARLEN: tl.constexpr, DOT_F32: tl.constexpr, PREC: tl.constexpr):
    NV: tl.constexpr = (V + BV - 1) // BV
    pid = tl.program_id(0)
    i_nh = pid // NV  # value blocks of one head are neighbours: they share q, k through L2
    i_v = pid % NV
    i_n = i_nh // H
    i_h = i_nh % H
    if IS_VARLEN:
        bos = tl.load(cu_seqlens + i_n).to(tl.int64)
        eos = tl.load(cu_seqlens + i_n + 1).to(tl.int64)
    else:
        bos = i_n.to(tl.int64) * T
        eos = bos + T
    seq_len = (eos - bos).to(tl.int32)
    s = tl.load(slopes + i_h).to(tl.float32)

    o_t = tl.arange(0, BT)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k = o_k < K
    m_v = o_v < V
    # Decays that are the same for every chunk.
    dist = o_t[:, None] - o_t[None, :]
    causal = dist >= 0
    D = tl.where(causal, tl.exp(-s * tl.where(causal, dist, 0).to(tl.float32)), 0.0)
    q_decay = tl.exp(-s * (o_t + 1).to(tl.float32))

    p_state = i_nh.to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
    m_state = m_k[:, None] & m_v[None, :]
    if HAS_H0:
        S = tl.load(h0 + p_state, mask=m_state, other=0.0).to(tl.float32)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)

    # Row pointers of the first chunk; advanced by whole chunks (64-bit pointer arithmetic, so
    # 1M tokens x 64 heads x 128 dims does not overflow an int32 offset).
    row0 = bos * H + i_h
    p_q = q + row0 * K + o_t[:, None] * (H * K) + o_k[None, :]
    p_k = k + row0 * K + o_t[:, None] * (H * K) + o_k[None, :]
    p_v = v + row0 * V + o_t[:, None] * (H * V) + o_v[None, :]
    p_o = o + row0 * V + o_t[:, None] * (H * V) + o_v[None, :]
    for start in range(0, seq_len, BT):
        m_t = (start + o_t) < seq_len
        b_q = tl.load(p_q, mask=m_t[:, None] & m_k[None, :], other=0.0)
        b_k = tl.load(p_k, mask=m_t[:, None] & m_k[None, :], other=0.0)
        b_v = tl.load(p_v, mask=m_t[:, None] & m_v[None, :], other=0.0)
        if DOT_F32:
            b_q = b_q.to(tl.float32)
            b_k = b_k.to(tl.float32)
            b_v = b_v.to(tl.float32)
        scores = tl.dot(b_q, tl.trans(b_k), input_precision=PREC) * D
        b_o = tl.dot(scores.to(b_v.dtype), b_v, input_precision=PREC)
        b_o += tl.dot(b_q, S.to(b_q.dtype), input_precision=PREC) * q_decay[:, None]
        tl.store(p_o, b_o.to(p_o.dtype.element_ty), mask=m_t[:, None] & m_v[None, :])
        # State update over the m real rows of this chunk (m < BT only for the last one).
        m = tl.minimum(seq_len - start, BT)
        k_decay = tl.where(m_t, tl.exp(-s * tl.where(m_t, m - 1 - o_t, 0).to(tl.float32)), 0.0)
        v_scaled = (b_v * k_decay[:, None]).to(b_k.dtype)
        S = S * tl.exp(-s * m.to(tl.float32)) + tl.dot(tl.trans(b_k), v_scaled, input_precision=PREC)
        p_q += BT * H * K
        p_k += BT * H * K
        p_v += BT * H * V
        p_o += BT * H * V
    tl.store(ht + p_state, S, mask=m_state)


def lightning_prefill(q, k, v, slopes, initial_state=None, cu_seqlens=None):
    """Triton lightning prefill. q, k [B, T, H, K], v [B, T, H, V] (bf16/fp16/fp32); slopes [H];
    initial_state [N, H, K, V] or None; cu_seqlens [N + 1] (B == 1) or None (then N = B).
    Returns (o [B, T, H, V] in q's dtype, final_state [N, H, K, V] fp32)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    if q.dtype not in DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"triton lightning prefill takes q, k, v all of one dtype in {DTYPES}; got "
                        f"{q.dtype}, {k.dtype}, {v.dtype} (use impl='blocked' for float64)")
    if cu_seqlens is not None:
        if B != 1:
            raise ValueError(f"packed (cu_seqlens) input must have batch size 1; got B={B}")
        cu_seqlens = cu_seqlens.to(device=q.device).contiguous()
        N = cu_seqlens.numel() - 1
    else:
        N = B
    if initial_state is not None:
        if initial_state.shape != (N, H, K, V):
            raise ValueError(f"initial_state must be [{N}, {H}, {K}, {V}]; got {tuple(initial_state.shape)}")
        initial_state = initial_state.to(device=q.device, dtype=torch.float32).contiguous()
    q, k, v = (x.contiguous() for x in (q, k, v))
    slopes = slopes.to(device=q.device, dtype=torch.float32).contiguous()
    o = torch.empty(B, T, H, V, device=q.device, dtype=q.dtype)
    final = torch.empty(N, H, K, V, device=q.device, dtype=torch.float32)
    dot_f32 = INTERPRET or q.dtype == torch.float32
    grid = lambda meta: (N * H * triton.cdiv(V, meta["BV"]),)
    _prefill_kernel[grid](
        q, k, v, o, slopes, initial_state, final, cu_seqlens, T,
        H=H, K=K, V=V, BK=max(16, triton.next_power_of_2(K)),
        HAS_H0=initial_state is not None, IS_VARLEN=cu_seqlens is not None,
        DOT_F32=dot_f32, PREC="ieee" if dot_f32 else "tf32")
    return o, final


lightning_prefill.supports_varlen = True
