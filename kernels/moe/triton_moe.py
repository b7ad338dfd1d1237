"""The MoE of the decode step in Triton, four launches whatever the routing (no host sync, fixed
grids, so the step can live in a CUDA graph). For up to a few tokens the routing is fused with the
norm before it (kernels/linear) and a single token skips the sort:

1. `_route_kernel`: fp32 router logits, softmax, top-k, renormalised weights (one program per token).
2. `_align_kernel`: the (token, slot) pairs sorted by expert into blocks of BM rows, each block one
   expert's (a block's unused rows are -1), as fused-MoE kernels lay them out; grids are sized for
   the worst case, cdiv(pairs, BM) + min(experts, pairs) blocks, and unused blocks exit at once.
3. `_gate_up_kernel`: per (block, column tile), SiLU(x W1ᵀ) * (x W3ᵀ) from one pass over x.
4. `_down_kernel`: per (block, column tile), act W2ᵀ times the routing weight, written per pair.

A single token's k pairs need no sorting (its experts are distinct): `_gate_up_gemv_kernel` and
`_down_gemv_kernel` read the expert ids directly, each program one pair and a few whole weight
rows (kernels/launch.gemv_tile), no loop over the hidden dim (rows up to GEMV_MAX_WIDTH wide).

`gather_sum` is prefill's: the expert outputs of the (token, slot) pairs sorted by expert, back in
token order, weighted and summed over k in one pass (torch's gather, multiply and sum took 12
passes' time over the [pairs, hidden] outputs on an H200).

Only the experts that were chosen are read: the decode step's memory floor."""
import torch
import triton
import triton.language as tl

from m1bench.kernels.launch import GEMV_MAX_WIDTH, gemv_tile, pdl, wait_for_inputs
from m1bench.kernels.lightning.chunk import INTERPRET


@triton.jit
def _route_kernel(x, w, weights, ids, H, E: tl.constexpr, BE: tl.constexpr, BH: tl.constexpr,
                  TOP_K: tl.constexpr, PDL: tl.constexpr):
    wait_for_inputs(PDL)
    n = tl.program_id(0).to(tl.int64)
    o_e = tl.arange(0, BE)
    m_e = o_e < E
    acc = tl.zeros([BE], tl.float32)
    for h0 in range(0, H, BH):
        o_h = h0 + tl.arange(0, BH)
        m_h = o_h < H
        xb = tl.load(x + n * H + o_h, mask=m_h, other=0.0).to(tl.float32)
        wb = tl.load(w + o_e[:, None] * H + o_h[None, :], mask=m_e[:, None] & m_h[None, :], other=0.0).to(tl.float32)
        acc += tl.sum(wb * xb[None, :], axis=1)
    logits = tl.where(m_e, acc, float("-inf"))
    p = tl.exp(logits - tl.max(logits, axis=0))
    p = tl.where(m_e, p / tl.sum(p, axis=0), -1.0)
    total = 0.0
    left = p
    for _ in tl.static_range(TOP_K):
        top = tl.max(left, axis=0)
        total += top
        left = tl.where(o_e == tl.argmax(left, axis=0), -1.0, left)
    left = p
    for j in tl.static_range(TOP_K):
        top = tl.max(left, axis=0)
        i = tl.argmax(left, axis=0)
        tl.store(weights + n * TOP_K + j, top / total)
        tl.store(ids + n * TOP_K + j, i)
        left = tl.where(o_e == i, -1.0, left)


@triton.jit
def _align_kernel(ids, pairs, block_expert, P, E: tl.constexpr, BP: tl.constexpr, BE: tl.constexpr,
                  BM: tl.constexpr, NB: tl.constexpr, BB: tl.constexpr, PDL: tl.constexpr):
    wait_for_inputs(PDL)
    o_p = tl.arange(0, BP)
    m_p = o_p < P
    e = tl.load(ids + o_p, mask=m_p, other=BE)  # padding pairs belong to no expert
    o_e = tl.arange(0, BE)
    hot = (e[:, None] == o_e[None, :]).to(tl.int32)  # [pairs, experts]
    counts = tl.sum(hot, axis=0)
    padded = (counts + BM - 1) // BM * BM
    ends = tl.cumsum(padded, axis=0)
    starts = ends - padded
    rank = tl.sum(hot * (tl.cumsum(hot, axis=0) - 1), axis=1)  # position among the pairs of its expert
    dest = tl.sum(hot * starts[None, :], axis=1) + rank
    o_b = tl.arange(0, BB)
    for r in tl.static_range(BM):
        tl.store(pairs + o_b * BM + r, -1, mask=o_b < NB)
    tl.debug_barrier()  # the fill above is ordered before the scatter below (other threads' stores)
    tl.store(pairs + dest, o_p, mask=m_p)
    row0 = o_b * BM
    owner = (row0[:, None] >= starts[None, :]) & (row0[:, None] < ends[None, :])
    expert = tl.sum(owner.to(tl.int32) * o_e[None, :], axis=1)
    tl.store(block_expert + o_b, tl.where(tl.sum(owner.to(tl.int32), axis=1) > 0, expert, -1), mask=o_b < NB)


@triton.jit
def _gate_up_kernel(x, w13, pairs, block_expert, act, H, I, s_we, s_wn,
                    TOP_K: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                    DOT_F32: tl.constexpr, PREC: tl.constexpr, PDL: tl.constexpr):
    wait_for_inputs(PDL)
    blk = tl.program_id(0)
    e = tl.load(block_expert + blk).to(tl.int64)
    if e >= 0:  # else an unused block: nothing to do
        o_m = tl.arange(0, BM)
        pair = tl.load(pairs + blk * BM + o_m)
        valid = pair >= 0
        tok = tl.where(valid, pair // TOP_K, 0).to(tl.int64)
        o_n = tl.program_id(1) * BN + tl.arange(0, BN)
        m_n = o_n < I
        acc1 = tl.zeros([BM, BN], tl.float32)
        acc3 = tl.zeros([BM, BN], tl.float32)
        for k0 in range(0, H, BK):
            o_k = k0 + tl.arange(0, BK)
            m_k = o_k < H
            a = tl.load(x + tok[:, None] * H + o_k[None, :], mask=valid[:, None] & m_k[None, :], other=0.0)
            p1 = w13 + e * s_we + o_n[:, None].to(tl.int64) * s_wn + o_k[None, :]
            w1 = tl.load(p1, mask=m_n[:, None] & m_k[None, :], other=0.0)
            w3 = tl.load(p1 + I * s_wn, mask=m_n[:, None] & m_k[None, :], other=0.0)
            if DOT_F32:
                a, w1, w3 = a.to(tl.float32), w1.to(tl.float32), w3.to(tl.float32)
            acc1 += tl.dot(a, tl.trans(w1), input_precision=PREC)
            acc3 += tl.dot(a, tl.trans(w3), input_precision=PREC)
        dt = act.dtype.element_ty
        g = acc1.to(dt).to(tl.float32)  # rounded where the unfused linear layers round
        u = acc3.to(dt).to(tl.float32)
        h = (g * tl.sigmoid(g)).to(dt).to(tl.float32) * u
        tl.store(act + (blk * BM + o_m[:, None]).to(tl.int64) * I + o_n[None, :], h.to(dt), mask=m_n[None, :])


@triton.jit
def _down_kernel(act, w2, pairs, block_expert, weights, y, H, I, s_we, s_wn,
                 BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, DOT_F32: tl.constexpr, PREC: tl.constexpr,
                 PDL: tl.constexpr):
    wait_for_inputs(PDL)
    blk = tl.program_id(0)
    e = tl.load(block_expert + blk).to(tl.int64)
    if e >= 0:  # else an unused block: nothing to do
        o_m = tl.arange(0, BM)
        pair = tl.load(pairs + blk * BM + o_m)
        valid = pair >= 0
        o_n = tl.program_id(1) * BN + tl.arange(0, BN)
        m_n = o_n < H
        acc = tl.zeros([BM, BN], tl.float32)
        for k0 in range(0, I, BK):
            o_k = k0 + tl.arange(0, BK)
            m_k = o_k < I
            a = tl.load(act + (blk * BM + o_m[:, None]).to(tl.int64) * I + o_k[None, :], mask=m_k[None, :], other=0.0)
            w = tl.load(w2 + e * s_we + o_n[:, None].to(tl.int64) * s_wn + o_k[None, :],
                        mask=m_n[:, None] & m_k[None, :], other=0.0)
            if DOT_F32:
                a, w = a.to(tl.float32), w.to(tl.float32)
            acc += tl.dot(a, tl.trans(w), input_precision=PREC)
        dt = y.dtype.element_ty
        wt = tl.load(weights + tl.where(valid, pair, 0), mask=valid, other=0.0).to(dt).to(tl.float32)
        out = acc.to(dt).to(tl.float32) * wt[:, None]
        tl.store(y + tl.where(valid, pair, 0).to(tl.int64)[:, None] * H + o_n[None, :], out.to(dt),
                 mask=valid[:, None] & m_n[None, :])


@triton.jit
def _round(x, dtype: tl.constexpr):
    return x.to(dtype).to(tl.float32)


@triton.jit
def _gate_up_gemv_kernel(x, w13, ids, act, H, I, s_we, s_wn, BN: tl.constexpr, BH: tl.constexpr,
                         PDL: tl.constexpr):
    wait_for_inputs(PDL)  # the expert ids come from the kernel just before
    p = tl.program_id(0)  # the pair (the one token, slot p)
    e = tl.load(ids + p).to(tl.int64)
    o_n = tl.program_id(1) * BN + tl.arange(0, BN)
    o_h = tl.arange(0, BH)
    m_h = o_h < H
    mask = (o_n < I)[:, None] & m_h[None, :]
    p1 = w13 + e * s_we + o_n[:, None].to(tl.int64) * s_wn + o_h[None, :]
    w1 = tl.load(p1, mask=mask, other=0.0).to(tl.float32)
    w3 = tl.load(p1 + I * s_wn, mask=mask, other=0.0).to(tl.float32)
    a = tl.load(x + o_h, mask=m_h, other=0.0).to(tl.float32)[None, :]
    dt = act.dtype.element_ty
    g = _round(tl.sum(w1 * a, axis=1), dt)  # rounded where the unfused linear layers round
    u = _round(tl.sum(w3 * a, axis=1), dt)
    tl.store(act + p * I + o_n, (_round(g * tl.sigmoid(g), dt) * u).to(dt), mask=o_n < I)


@triton.jit
def _down_gemv_kernel(act, w2, ids, weights, y, H, I, s_we, s_wn, BN: tl.constexpr, BI: tl.constexpr,
                      PDL: tl.constexpr):
    p = tl.program_id(0)
    # The ids were written two kernels back, so the expert's weights load before the wait.
    e = tl.load(ids + p).to(tl.int64)
    o_n = tl.program_id(1) * BN + tl.arange(0, BN)
    o_i = tl.arange(0, BI)
    m_i = o_i < I
    w = tl.load(w2 + e * s_we + o_n[:, None].to(tl.int64) * s_wn + o_i[None, :],
                mask=(o_n < H)[:, None] & m_i[None, :], other=0.0).to(tl.float32)
    wait_for_inputs(PDL)
    a = tl.load(act + p * I + o_i, mask=m_i, other=0.0).to(tl.float32)
    dt = y.dtype.element_ty
    out = _round(tl.sum(w * a[None, :], axis=1), dt) * _round(tl.load(weights + p), dt)
    tl.store(y + p * H + o_n, out.to(dt), mask=o_n < H)


def route(x, gate_weight, top_k: int):
    N, H = x.shape
    E = gate_weight.shape[0]
    weights = torch.empty(N, top_k, device=x.device, dtype=torch.float32)
    ids = torch.empty(N, top_k, device=x.device, dtype=torch.int32)
    _route_kernel[(N,)](x.contiguous(), gate_weight.contiguous(), weights, ids, H, E=E,
                        BE=triton.next_power_of_2(E), BH=min(256, triton.next_power_of_2(H)), TOP_K=top_k, num_warps=4,
                        **pdl(x.device))
    return weights, ids


def _column_tile(blocks: int, N: int, sms: int = 132) -> int:
    """Narrow column tiles while few expert blocks are busy, so that the weights stream from many SMs."""
    for bn in (64, 32):
        if blocks * triton.cdiv(N, bn) >= 2 * sms:
            return bn
    return 16


def experts(x, w13, w2, weights, ids, block_m: int = 16):
    N, H = x.shape
    E, I = w13.shape[0], w2.shape[-1]
    top_k = ids.shape[1]
    P = N * top_k
    launch = pdl(x.device)
    if N == 1 and max(H, I) <= GEMV_MAX_WIDTH:
        return _one_token(x, w13, w2, weights.contiguous(), ids.to(torch.int32).contiguous(), launch)
    NB = triton.cdiv(P, block_m) + min(E, P)
    pairs = torch.empty(NB * block_m, device=x.device, dtype=torch.int32)
    block_expert = torch.empty(NB, device=x.device, dtype=torch.int32)
    _align_kernel[(1,)](ids.contiguous(), pairs, block_expert, P, E=E, BP=triton.next_power_of_2(P),
                        BE=triton.next_power_of_2(E), BM=block_m, NB=NB, BB=triton.next_power_of_2(NB), num_warps=4,
                        **launch)
    dot_f32 = INTERPRET or x.dtype == torch.float32
    common = dict(BM=block_m, BK=64, DOT_F32=dot_f32, PREC="ieee" if dot_f32 else "tf32", num_warps=4, num_stages=3,
                  **launch)
    busy = min(E, P)
    act = torch.empty(NB * block_m, I, device=x.device, dtype=x.dtype)
    bn = _column_tile(busy, I)
    _gate_up_kernel[(NB, triton.cdiv(I, bn))](x.contiguous(), w13, pairs, block_expert, act, H, I,
                                              w13.stride(0), w13.stride(1), TOP_K=top_k, BN=bn, **common)
    y = torch.empty(P, H, device=x.device, dtype=x.dtype)
    bn = _column_tile(busy, H)
    _down_kernel[(NB, triton.cdiv(H, bn))](act, w2, pairs, block_expert, weights.contiguous(), y, H, I,
                                           w2.stride(0), w2.stride(1), BN=bn, **common)
    return y.view(N, top_k, H)


def _one_token(x, w13, w2, weights, ids, launch):
    (_, H), (E, I), K = x.shape, (w13.shape[0], w2.shape[-1]), ids.shape[1]
    act = torch.empty(K, I, device=x.device, dtype=x.dtype)
    bn, bh, warps = gemv_tile(H, tiles=2)
    _gate_up_gemv_kernel[(K, triton.cdiv(I, bn))](x.contiguous(), w13, ids, act, H, I, w13.stride(0), w13.stride(1),
                                                  BN=bn, BH=bh, num_warps=warps, **launch)
    y = torch.empty(K, H, device=x.device, dtype=x.dtype)
    bn, bi, warps = gemv_tile(I)
    _down_gemv_kernel[(K, triton.cdiv(H, bn))](act, w2, ids, weights, y, H, I, w2.stride(0), w2.stride(1),
                                               BN=bn, BI=bi, num_warps=warps, **launch)
    return y.view(1, K, H)


@triton.jit
def _gather_sum_kernel(y, unsort, weights, out, N, H, TOP_K: tl.constexpr, BN: tl.constexpr, BH: tl.constexpr):
    o_n = tl.program_id(0) * BN + tl.arange(0, BN)
    o_h = tl.program_id(1) * BH + tl.arange(0, BH)
    m_n = o_n < N
    mask = m_n[:, None] & (o_h < H)[None, :]
    dt = out.dtype.element_ty
    acc = tl.zeros([BN, BH], tl.float32)
    for j in tl.static_range(TOP_K):
        row = tl.load(unsort + o_n * TOP_K + j, mask=m_n, other=0).to(tl.int64)
        w = _round(tl.load(weights + o_n * TOP_K + j, mask=m_n, other=0.0), dt)
        acc += _round(tl.load(y + row[:, None] * H + o_h[None, :], mask=mask, other=0.0).to(tl.float32) * w[:, None], dt)
    tl.store(out + o_n.to(tl.int64)[:, None] * H + o_h[None, :], acc.to(dt), mask=mask)


def gather_sum(y, unsort, weights):
    (N, K), H = weights.shape, y.shape[1]
    out = torch.empty(N, H, device=y.device, dtype=y.dtype)
    BN, BH = 16, min(256, triton.next_power_of_2(H))
    _gather_sum_kernel[(triton.cdiv(N, BN), triton.cdiv(H, BH))](y.contiguous(), unsort.contiguous(), weights.contiguous(),
                                                                 out, N, H, TOP_K=K, BN=BN, BH=BH, num_warps=4)
    return out
