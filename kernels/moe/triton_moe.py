"""The MoE experts of the decode step in Triton, at most three launches whatever the routing (no
host sync, fixed grids, so the step can live in a CUDA graph). The routing before them is fused
with the norm that precedes it (kernels/linear).

1. `_align_kernel`: the (token, slot) pairs sorted by expert into blocks of BM rows, each block one
   expert's (a block's unused rows are -1), as fused-MoE kernels lay them out; grids are sized for
   the worst case, cdiv(pairs, BM) + min(experts, pairs) blocks, and unused blocks exit at once.
   A single token's pairs need no sorting (its k experts are distinct): each is a block of its
   own, the align launch is skipped, and the expert kernels read the expert ids directly.
2. `_gate_up_kernel`: per (block, column tile), SiLU(x W1ᵀ) * (x W3ᵀ) from one pass over x.
3. `_down_kernel`: per (block, column tile), act W2ᵀ times the routing weight, written per pair.

Only the experts that were chosen are read: the decode step's memory floor."""
import torch
import triton
import triton.language as tl

from m1bench.kernels.launch import pdl, wait_for_inputs
from m1bench.kernels.lightning.chunk import INTERPRET


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
def _block(pairs, block_expert, BM: tl.constexpr, SORTED: tl.constexpr):
    """(expert, its rows' pair indices, -1 for unused rows) of this program's block. Unsorted: block
    b is pair b alone (row 0), and `block_expert` is the expert ids themselves."""
    blk = tl.program_id(0)
    o_m = tl.arange(0, BM)
    e = tl.load(block_expert + blk).to(tl.int64)
    if SORTED:
        pair = tl.load(pairs + blk * BM + o_m)
    else:
        pair = tl.where(o_m == 0, blk, -1)
    return blk, o_m, e, pair


@triton.jit
def _gate_up_kernel(x, w13, pairs, block_expert, act, H, I, s_we, s_wn,
                    TOP_K: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                    DOT_F32: tl.constexpr, PREC: tl.constexpr, SORTED: tl.constexpr, PDL: tl.constexpr):
    wait_for_inputs(PDL)
    blk, o_m, e, pair = _block(pairs, block_expert, BM, SORTED)
    if e >= 0:  # else an unused block: nothing to do
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
                 SORTED: tl.constexpr, PDL: tl.constexpr):
    wait_for_inputs(PDL)
    blk, o_m, e, pair = _block(pairs, block_expert, BM, SORTED)
    if e >= 0:  # else an unused block: nothing to do
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


def column_tile(blocks: int, N: int, sms: int = 132) -> int:
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
    ids = ids.to(torch.int32).contiguous()
    if N == 1:
        NB, pairs, block_expert = P, ids, ids.view(-1)  # pairs unread
    else:
        NB = triton.cdiv(P, block_m) + min(E, P)
        pairs = torch.empty(NB * block_m, device=x.device, dtype=torch.int32)
        block_expert = torch.empty(NB, device=x.device, dtype=torch.int32)
        _align_kernel[(1,)](ids, pairs, block_expert, P, E=E, BP=triton.next_power_of_2(P),
                            BE=triton.next_power_of_2(E), BM=block_m, NB=NB, BB=triton.next_power_of_2(NB),
                            num_warps=4, **launch)
    dot_f32 = INTERPRET or x.dtype == torch.float32
    common = dict(BM=block_m, BK=64, DOT_F32=dot_f32, PREC="ieee" if dot_f32 else "tf32", SORTED=N > 1,
                  num_warps=4, num_stages=3, **launch)
    busy = min(E, P)
    act = torch.empty(NB * block_m, I, device=x.device, dtype=x.dtype)
    bn = column_tile(busy, I)
    _gate_up_kernel[(NB, triton.cdiv(I, bn))](x.contiguous(), w13, pairs, block_expert, act, H, I,
                                              w13.stride(0), w13.stride(1), TOP_K=top_k, BN=bn, **common)
    y = torch.empty(P, H, device=x.device, dtype=x.dtype)
    bn = column_tile(busy, H)
    _down_kernel[(NB, triton.cdiv(H, bn))](act, w2, pairs, block_expert, weights.contiguous(), y, H, I,
                                           w2.stride(0), w2.stride(1), BN=bn, **common)
    return y.view(N, top_k, H)
