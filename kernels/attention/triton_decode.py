"""Softmax attention for one new token per sequence, in Triton: split-KV ("flash decoding") over a
KV-cache pool, and the RoPE + cache append that precedes it.

Graph-safe: every length is read on the device (the cache row of sequence b is slots[b], its key
count lengths[b]), and the grid depends only on the batch size, so one CUDA graph serves every
context length. Each program owns (sequence, kv head, split): it reads its span of keys and values
once for all the query heads that share the kv head (GQA), keeping a running max and sum, and
writes a partial output and log-sum-exp; `_combine_kernel` merges the splits. A sequence's keys
are cut into `splits` spans of whole blocks, so short contexts leave the later splits empty (and
the merge reads only the splits that hold keys)."""
import functools

import torch
import triton
import triton.language as tl

from m1bench.kernels.launch import pdl, wait_for_inputs
from m1bench.kernels.lightning.chunk import INTERPRET

BLOCK_N = 64  # keys per block; a split is a whole number of blocks


@triton.jit
def _span(n, SPLITS: tl.constexpr, BN: tl.constexpr):
    """Keys per split: whole blocks (at least one, so that an empty row divides by no zero)."""
    return tl.maximum(tl.cdiv(tl.cdiv(n, SPLITS), BN), 1) * BN


@triton.jit
def _split_kernel(q, k_cache, v_cache, slots, lengths, o_part, lse_part, scale,
                  s_kp, s_kt, s_kh, s_vp, s_vt, s_vh,
                  KVH: tl.constexpr, G: tl.constexpr, BG: tl.constexpr, D: tl.constexpr,
                  BN: tl.constexpr, SPLITS: tl.constexpr, DOT_F32: tl.constexpr, PREC: tl.constexpr,
                  PDL: tl.constexpr):
    wait_for_inputs(PDL)
    b = tl.program_id(0)
    h = tl.program_id(1)
    s = tl.program_id(2)
    slot = tl.load(slots + b).to(tl.int64)
    n = tl.load(lengths + b)
    span = _span(n, SPLITS, BN)
    lo = s * span
    hi = tl.minimum(lo + span, n)
    o_g = tl.arange(0, BG)
    o_d = tl.arange(0, D)
    m_g = o_g < G
    heads = h * G + o_g  # the query heads reading kv head h
    qb = tl.load(q + (b * KVH * G + heads[:, None]) * D + o_d[None, :], mask=m_g[:, None], other=0.0)
    if DOT_F32:
        qb = qb.to(tl.float32)
    m_i = tl.full([BG], float("-inf"), tl.float32)
    l_i = tl.zeros([BG], tl.float32)
    acc = tl.zeros([BG, D], tl.float32)
    kp = k_cache + slot * s_kp + h * s_kh + o_d[None, :]
    vp = v_cache + slot * s_vp + h * s_vh + o_d[None, :]
    for start in range(lo, hi, BN):
        o_n = start + tl.arange(0, BN)
        m_n = o_n < hi
        kb = tl.load(kp + o_n[:, None].to(tl.int64) * s_kt, mask=m_n[:, None], other=0.0)
        vb = tl.load(vp + o_n[:, None].to(tl.int64) * s_vt, mask=m_n[:, None], other=0.0)
        if DOT_F32:
            kb = kb.to(tl.float32)
            vb = vb.to(tl.float32)
        sc = tl.dot(qb, tl.trans(kb), input_precision=PREC) * scale
        sc = tl.where(m_n[None, :], sc, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(sc, axis=1))
        p = tl.exp(sc - m_new[:, None])
        alpha = tl.exp(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(vb.dtype), vb, input_precision=PREC)
        m_i = m_new
    empty = l_i == 0.0  # a split past the sequence's end
    out = acc / tl.where(empty, 1.0, l_i)[:, None]
    lse = tl.where(empty, float("-inf"), m_i + tl.log(tl.where(empty, 1.0, l_i)))
    row = (b * KVH * G + heads) * SPLITS + s
    tl.store(o_part + row[:, None] * D + o_d[None, :], out, mask=m_g[:, None])
    tl.store(lse_part + row, lse, mask=m_g)


@triton.jit
def _combine_kernel(o_part, lse_part, o, lengths, HQ: tl.constexpr, D: tl.constexpr, BN: tl.constexpr,
                    SPLITS: tl.constexpr, BS: tl.constexpr, PDL: tl.constexpr):
    wait_for_inputs(PDL)
    row = tl.program_id(0).to(tl.int64)  # (sequence, query head)
    n = tl.load(lengths + row // HQ)
    used = tl.cdiv(n, _span(n, SPLITS, BN))  # the splits that hold keys
    o_d = tl.arange(0, D)
    top = float("-inf")
    num = tl.zeros([D], tl.float32)
    den = 0.0
    for s0 in range(0, used, BS):  # one pass, rescaled as the running maximum grows (one trip up to BS splits)
        o_s = s0 + tl.arange(0, BS)
        m_s = o_s < used
        lse = tl.load(lse_part + row * SPLITS + o_s, mask=m_s, other=float("-inf"))
        new_top = tl.maximum(top, tl.max(lse, axis=0))  # split 0 always holds keys, so this is finite
        w = tl.exp(lse - new_top)
        part = tl.load(o_part + (row * SPLITS + o_s[:, None]) * D + o_d[None, :], mask=m_s[:, None], other=0.0)
        scale = tl.exp(top - new_top)
        num = num * scale + tl.sum(part * w[:, None], axis=0)
        den = den * scale + tl.sum(w, axis=0)
        top = new_top
    tl.store(o + row * D + o_d, (num / den).to(o.dtype.element_ty))


@triton.jit
def _rotary_append_kernel(q, k, v, freqs, q_out, k_cache, v_cache, slots, positions, s_q, s_k, s_v,
                          s_kp, s_kt, s_kh, s_vp, s_vt, s_vh,
                          HQ: tl.constexpr, KVH: tl.constexpr, D: tl.constexpr, RD: tl.constexpr,
                          PDL: tl.constexpr):
    wait_for_inputs(PDL)
    b = tl.program_id(0)
    h = tl.program_id(1)  # 0..HQ-1: query heads; HQ..HQ+KVH-1: key heads (and their values)
    half: tl.constexpr = RD // 2
    o_h = tl.arange(0, half)
    angles = tl.load(positions + b).to(tl.float64) * tl.load(freqs + o_h)  # float64, as the reference
    c = tl.cos(angles).to(tl.float32)
    s = tl.sin(angles).to(tl.float32)
    if h < HQ:
        src = q + b * s_q + h * D
        dst = q_out + (b * HQ + h) * D
    else:
        slot = tl.load(slots + b).to(tl.int64)
        pos = tl.load(positions + b).to(tl.int64)
        kvh = h - HQ
        src = k + b * s_k + kvh * D
        dst = k_cache + slot * s_kp + pos * s_kt + kvh * s_kh
        vd = tl.arange(0, D)
        tl.store(v_cache + slot * s_vp + pos * s_vt + kvh * s_vh + vd, tl.load(v + b * s_v + kvh * D + vd))
    lo = tl.load(src + o_h).to(tl.float32)
    hi = tl.load(src + half + o_h).to(tl.float32)
    dt = dst.dtype.element_ty
    tl.store(dst + o_h, (lo * c - hi * s).to(dt))
    tl.store(dst + half + o_h, (hi * c + lo * s).to(dt))
    if D > RD:  # the dims past rotary_dim pass unrotated
        o_r = RD + tl.arange(0, D - RD)
        tl.store(dst + o_r, tl.load(src + o_r))




@functools.lru_cache
def _sms(device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 132


def num_splits(batch: int, kv_heads: int, sms: int) -> int:
    """Enough (sequence, kv head, split) programs for about two per multiprocessor."""
    return max(1, min(256, triton.next_power_of_2(triton.cdiv(2 * sms, batch * kv_heads))))


def decode_attention(q, k_cache, v_cache, slots, lengths, scale: float, splits: int | None = None):
    B, HQ, D = q.shape
    KVH = k_cache.shape[2]
    G = HQ // KVH
    if k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("the KV cache's last dim must be contiguous")
    splits = splits or num_splits(B, KVH, _sms(q.device))
    q = q.contiguous()
    o_part = torch.empty(B * HQ * splits, D, device=q.device, dtype=torch.float32)
    lse_part = torch.empty(B * HQ * splits, device=q.device, dtype=torch.float32)
    dot_f32 = INTERPRET or q.dtype == torch.float32
    _split_kernel[(B, KVH, splits)](
        q, k_cache, v_cache, slots, lengths, o_part, lse_part, float(scale),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        KVH=KVH, G=G, BG=max(16, triton.next_power_of_2(G)), D=D, BN=BLOCK_N, SPLITS=splits,
        DOT_F32=dot_f32, PREC="ieee" if dot_f32 else "tf32", num_warps=4, num_stages=3, **pdl(q.device))
    o = torch.empty_like(q)
    _combine_kernel[(B * HQ,)](o_part, lse_part, o, lengths, HQ=HQ, D=D, BN=BLOCK_N, SPLITS=splits,
                               BS=min(64, splits), num_warps=4, **pdl(q.device))
    return o


def rotary_append(q, k, v, freqs, k_cache, v_cache, slots, positions):
    B, HQ, D = q.shape
    KVH, RD = k.shape[1], 2 * freqs.shape[0]
    if any(n & (n - 1) for n in (RD // 2, D - RD) if n):
        raise ValueError(f"the Triton RoPE kernel wants rotary_dim/2 and head_dim - rotary_dim powers of two; "
                         f"got rotary_dim={RD}, head_dim={D}")
    if freqs.dtype != torch.float64:
        raise TypeError(f"RoPE frequencies must be float64 (the model's angles are); got {freqs.dtype}")
    if any(t.stride(1) != D or t.stride(2) != 1 for t in (q, k, v)):
        raise ValueError("q, k, v must hold each row's heads contiguously (views of a projection's rows are)")
    q_out = torch.empty(B, HQ, D, device=q.device, dtype=q.dtype)
    _rotary_append_kernel[(B, HQ + KVH)](
        q, k, v, freqs, q_out, k_cache, v_cache, slots, positions, q.stride(0), k.stride(0), v.stride(0),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), HQ=HQ, KVH=KVH, D=D, RD=RD, num_warps=1,
        **pdl(q.device))
    return q_out
