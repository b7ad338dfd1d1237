"""The decode step's projections with their norm fused in front, in Triton: one launch where the
unfused step had a norm kernel and a matrix product (and, for the router, a routing kernel).

Each program owns BM rows and BN output columns. It reads its rows of the norm's input twice,
once for the RMS statistics and once to normalise chunk by chunk into the product (the rows are
a few KB and come from L2; the weights stream once), so no normalised row goes through memory
before the product. The programs of column tile 0 also write the norm's outputs (x, h) for the
layers that need them later. Rounding follows the unfused ops (kernels/norm/reference.py): every
intermediate they round to the input dtype is rounded here too.

Prologues: `add` (x = residual * alpha + (sum of a branch's k parts) * beta, then RMSNorm) and
`gated` (sigmoid(gate) * RMSNorm(o), the lightning output). Epilogues: the product rounded to the
input dtype, or the MoE router (fp32 logits, softmax, renormalised top-k: one column tile)."""
import torch
import triton
import triton.language as tl

from m1bench.kernels.launch import pdl, wait_for_inputs
from m1bench.kernels.lightning.chunk import INTERPRET
from m1bench.kernels.moe.triton_moe import column_tile


@triton.jit
def _round(x, dtype: tl.constexpr):
    return x.to(dtype).to(tl.float32)


@triton.jit
def _norm_input(res, y, rows, mask, o_k, alpha, beta, s_r, D, KY: tl.constexpr, HAS_Y: tl.constexpr,
                dt: tl.constexpr):
    """A [BM, BK] chunk of what the norm normalises: the residual, plus the branch when there is one."""
    x = tl.load(res + rows[:, None] * s_r + o_k[None, :], mask=mask, other=0.0).to(tl.float32)
    if HAS_Y:
        p_y = y + rows[:, None] * (KY * D) + o_k[None, :]
        s = tl.load(p_y, mask=mask, other=0.0).to(tl.float32)
        for j in tl.static_range(1, KY):
            s = _round(s + tl.load(p_y + j * D, mask=mask, other=0.0).to(tl.float32), dt)
        x = _round(_round(x * alpha, dt) + _round(s * beta, dt), dt)
    return x


@triton.jit
def _norm_linear_kernel(res, y, gate, nw, w, x_out, h_out, out, route_w, route_ids, alpha, beta, eps,
                        M, D, N, s_r, s_g, GATED: tl.constexpr, KY: tl.constexpr, HAS_Y: tl.constexpr,
                        STORE_XH: tl.constexpr, ROUTE: tl.constexpr, TOP_K: tl.constexpr,
                        BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, DOT_F32: tl.constexpr,
                        PREC: tl.constexpr, PDL: tl.constexpr):
    pid_n = tl.program_id(0)
    rows = (tl.program_id(1) * BM + tl.arange(0, BM)).to(tl.int64)
    m_r = rows < M
    o_n = pid_n * BN + tl.arange(0, BN)
    m_n = o_n < N
    dt = res.dtype.element_ty
    wait_for_inputs(PDL)
    ss = tl.zeros([BM], tl.float32)
    for k0 in range(0, D, BK):
        o_k = k0 + tl.arange(0, BK)
        x = _norm_input(res, y, rows, m_r[:, None] & (o_k < D)[None, :], o_k, alpha, beta, s_r, D, KY, HAS_Y, dt)
        ss += tl.sum(x * x, axis=1)
    inv = tl.rsqrt(ss / D + eps)[:, None]
    acc = tl.zeros([BM, BN], tl.float32)
    for k0 in range(0, D, BK):
        o_k = k0 + tl.arange(0, BK)
        m_k = o_k < D
        mask = m_r[:, None] & m_k[None, :]
        x = _norm_input(res, y, rows, mask, o_k, alpha, beta, s_r, D, KY, HAS_Y, dt)
        n = _round(_round(x * inv, dt) * tl.load(nw + o_k, mask=m_k, other=0.0).to(tl.float32)[None, :], dt)
        if GATED:
            g = tl.load(gate + rows[:, None] * s_g + o_k[None, :], mask=mask, other=0.0).to(tl.float32)
            n = _round(_round(tl.sigmoid(g), dt) * n, dt)
        if STORE_XH:
            if pid_n == 0:
                if HAS_Y:
                    tl.store(x_out + rows[:, None] * D + o_k[None, :], x.to(dt), mask=mask)
                tl.store(h_out + rows[:, None] * D + o_k[None, :], n.to(dt), mask=mask)
        wt = tl.load(w + o_n[:, None].to(tl.int64) * D + o_k[None, :], mask=m_n[:, None] & m_k[None, :], other=0.0)
        if DOT_F32:
            acc += tl.dot(n, tl.trans(wt.to(tl.float32)), input_precision=PREC)
        else:
            acc += tl.dot(n.to(dt), tl.trans(wt), input_precision=PREC)
    if ROUTE:  # fp32 softmax over the experts, then the top-k renormalised (the reference's order of ties)
        logits = tl.where(m_n[None, :], acc, float("-inf"))
        p = tl.exp(logits - tl.max(logits, axis=1)[:, None])
        p = tl.where(m_n[None, :], p / tl.sum(p, axis=1)[:, None], -1.0)
        total = tl.zeros([BM], tl.float32)
        left = p
        for _ in tl.static_range(TOP_K):
            total += tl.max(left, axis=1)
            left = tl.where(o_n[None, :] == tl.argmax(left, axis=1)[:, None], -1.0, left)
        left = p
        for j in tl.static_range(TOP_K):
            top = tl.max(left, axis=1)
            i = tl.argmax(left, axis=1)
            tl.store(route_w + rows * TOP_K + j, top / total, mask=m_r)
            tl.store(route_ids + rows * TOP_K + j, i, mask=m_r)
            left = tl.where(o_n[None, :] == i[:, None], -1.0, left)
    else:
        o = acc.to(dt).to(out.dtype.element_ty)
        tl.store(out + rows[:, None] * N + o_n[None, :], o, mask=m_r[:, None] & m_n[None, :])


def _launch(src, D, N, *, y=None, gate=None, norm_weight, eps, weight, alpha=1.0, beta=1.0, store_xh=False,
            out_dtype=None, top_k=0):
    M = src.shape[0]
    if src.stride(-1) != 1 or (gate is not None and gate.stride(-1) != 1):
        raise ValueError("the norm's input rows must have a contiguous last dim")
    x = torch.empty(M, D, device=src.device, dtype=src.dtype) if store_xh and y is not None else src
    h = torch.empty(M, D, device=src.device, dtype=src.dtype) if store_xh else src
    route = top_k > 0
    if route:
        rw = torch.empty(M, top_k, device=src.device, dtype=torch.float32)
        ids = torch.empty(M, top_k, device=src.device, dtype=torch.int32)
        out = rw
    else:
        out = torch.empty(M, N, device=src.device, dtype=out_dtype or src.dtype)
        rw = ids = out
    BM = max(16, min(64, triton.next_power_of_2(M)))
    BN = max(16, triton.next_power_of_2(N)) if route else column_tile(triton.cdiv(M, BM), N)
    dot_f32 = INTERPRET or route or src.dtype == torch.float32
    grid = (triton.cdiv(N, BN), triton.cdiv(M, BM))
    _norm_linear_kernel[grid](
        src, src if y is None else y.contiguous(), src if gate is None else gate, norm_weight, weight.contiguous(),
        x, h, out, rw, ids, float(alpha), float(beta), float(eps), M, D, N, src.stride(0),
        0 if gate is None else gate.stride(0), GATED=gate is not None, KY=1 if y is None else y.shape[1],
        HAS_Y=y is not None, STORE_XH=store_xh, ROUTE=route, TOP_K=max(top_k, 1), BM=BM, BN=BN,
        BK=128 if BM <= 16 else 64, DOT_F32=dot_f32, PREC="ieee" if dot_f32 else "tf32", num_warps=4,
        num_stages=3, **pdl(src.device))
    return x, h, (rw, ids) if route else out


def add_norm_linear(residual, y, alpha, beta, norm_weight, eps, weight, out_dtype=None):
    N, D = weight.shape
    x, h, out = _launch(residual, D, N, y=y, norm_weight=norm_weight, eps=eps, weight=weight, alpha=alpha,
                        beta=beta, store_xh=True, out_dtype=out_dtype)
    return x, h, out


def gated_norm_linear(o, gate, norm_weight, eps, weight):
    N, D = weight.shape
    return _launch(o, D, N, gate=gate, norm_weight=norm_weight, eps=eps, weight=weight)[2]


def add_norm_route(residual, y, alpha, beta, norm_weight, eps, gate_weight, top_k):
    E, D = gate_weight.shape
    x, h, (weights, ids) = _launch(residual, D, E, y=y, norm_weight=norm_weight, eps=eps, weight=gate_weight,
                                   alpha=alpha, beta=beta, store_xh=True, top_k=top_k)
    return x, h, weights, ids
