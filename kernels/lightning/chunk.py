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
from typing import NamedTuple

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
DTYPES = (torch.bfloat16, torch.float16, torch.float32)


class Config(NamedTuple):
    BT: int  # tokens per chunk
    BV: int  # value columns per program
    num_warps: int
    num_stages: int


# One config per dot precision, decided from measurements, not tuned at call time. The autotuner
# this replaces keyed on (H, K, V, varlen, precision, dtypes): the first call of a key, whatever
# its length, ran every candidate on the caller's tensors and fixed the config for all lengths;
# in the repro sequence (../shared/repro) that first bf16 call had one token and faulted with
# invalid shared-memory reads while the candidates ran. H200, T=128K, bf16
# (reports/bench/engine_h200.json, kernels.prefill.tuning): BV=64, 4 warps, 3 stages 3.21 ms;
# 4 stages 3.37; BT=32 4.57; BV=32 3.76; BT=128 4.21 (8 warps); BV=128 7.39. fp32 ("ieee") tiles
# are twice the bytes: 2 stages.
CONFIGS = {"tf32": Config(64, 64, 4, 3), "ieee": Config(64, 64, 4, 2)}
INTERPRET_CONFIG = Config(16, 32, 4, 1)  # a small chunk so that short tests cross chunk boundaries


def default_config(prec: str, sequence_heads: int, V: int, device) -> Config:
    """CONFIGS[prec], with narrower value blocks while (sequence, head) pairs are too few to give
    half the multiprocessors a program: the small preset's 8 heads at BV=64 are 16 programs for
    132 SMs. Narrower blocks shorten each program's serial per-chunk chain (q Kᵀ stays, the three
    dots with V columns shrink) and spread the sequence's heads over more SMs."""
    cfg = CONFIGS[prec]
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    for bv in (64, 32, 16):
        if bv <= cfg.BV and sequence_heads * triton.cdiv(V, bv) >= sms // 2:
            return cfg._replace(BV=bv)
    return cfg._replace(BV=16)


# `T` is not specialised: Triton compiles an integer argument equal to 1 as a constant, so T == 1 got
# a kernel of its own (one loop trip known at compile time, unpipelined: 57 KB of shared memory at
# BV=64 instead of 131 KB) beside the one every other length runs. Unpipelined is what faulted: under
# memcheck on an H200 (Triton 3.6), num_stages=1 at BT=64, BV=32, 4 warps reads shared memory past its
# allocation at the kᵀv dot, for every length; the same config pipelined, and the other one-stage
# shapes tried, run clean. So configs have two stages or more (lightning_prefill refuses fewer).
@triton.jit(do_not_specialize=["T"])
def _prefill_kernel(q, k, v, o, slopes, h0, ht, cu_seqlens, T, s_t, s_h,
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
    # 1M tokens x 64 heads x 128 dims does not overflow an int32 offset). q, k, v share the token
    # and head strides s_t, s_h (views of one projection's [.., H, 2K + V] rows, or contiguous).
    row_in = bos * s_t + i_h * s_h
    p_q = q + row_in + o_t[:, None] * s_t + o_k[None, :]
    p_k = k + row_in + o_t[:, None] * s_t + o_k[None, :]
    p_v = v + row_in + o_t[:, None] * s_t + o_v[None, :]
    p_o = o + (bos * H + i_h) * V + o_t[:, None] * (H * V) + o_v[None, :]
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
        p_q += BT * s_t
        p_k += BT * s_t
        p_v += BT * s_t
        p_o += BT * H * V
    tl.store(ht + p_state, S, mask=m_state)


def lightning_prefill(q, k, v, slopes, initial_state=None, cu_seqlens=None, config: Config | None = None):
    """Triton lightning prefill. q, k [B, T, H, K], v [B, T, H, V] (bf16/fp16/fp32; any strides that
    q, k and v share with a contiguous last dim, e.g. views of one [B, T, H, 2K + V] buffer); slopes
    [H]; initial_state [N, H, K, V] or None; cu_seqlens [N + 1] (B == 1) or None (then N = B).
    `config` overrides the block shape (benchmarks sweep it). Returns (o [B, T, H, V] in q's dtype,
    final_state [N, H, K, V] fp32)."""
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
    shared = all(x.stride()[:3] == q.stride()[:3] and x.stride(3) == 1 for x in (q, k, v))
    if not shared or q.stride(0) != T * q.stride(1):
        buf = torch.cat([q, k, v], dim=-1)  # one contiguous [B, T, H, 2K + V] buffer: one set of strides
        q, k, v = buf[..., :K], buf[..., K:2 * K], buf[..., 2 * K:]
    slopes = slopes.to(device=q.device, dtype=torch.float32).contiguous()
    o = torch.empty(B, T, H, V, device=q.device, dtype=q.dtype)
    final = torch.empty(N, H, K, V, device=q.device, dtype=torch.float32)
    dot_f32 = INTERPRET or q.dtype == torch.float32
    prec = "ieee" if dot_f32 else "tf32"
    cfg = config or (INTERPRET_CONFIG if INTERPRET else default_config(prec, N * H, V, q.device))
    if cfg.num_stages < 2 and not INTERPRET:
        raise ValueError(f"lightning prefill config {cfg}: num_stages must be >= 2 on a GPU (Triton 3.6's "
                         "unpipelined compile of BT=64, BV=32, 4 warps reads shared memory past its allocation)")
    _prefill_kernel[(N * H * triton.cdiv(V, cfg.BV),)](
        q, k, v, o, slopes, initial_state, final, cu_seqlens, T, q.stride(1), q.stride(2),
        H=H, K=K, V=V, BK=max(16, triton.next_power_of_2(K)), BT=cfg.BT, BV=cfg.BV,
        HAS_H0=initial_state is not None, IS_VARLEN=cu_seqlens is not None,
        DOT_F32=dot_f32, PREC=prec, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    return o, final


lightning_prefill.supports_varlen = True
