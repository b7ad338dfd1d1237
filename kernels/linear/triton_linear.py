"""The decode step's projections with their norm fused in front, in Triton: one launch where the
unfused step had a norm kernel and a matrix product (and, for the router, a routing kernel).

Up to `GEMV_ROWS` rows of up to GEMV_MAX_WIDTH features, each program owns one row and BN output
columns: it loads its BN whole weight rows at once (kernels/launch.gemv_tile) before it waits for
the kernel before it (PDL: the weights' DRAM round trip overlaps that kernel), then the row of the
norm's input, normalises it in registers and reduces. The programs of column tile 0 also write the
norm's outputs (x, h) for the layers that need them later. Rounding follows the unfused ops
(kernels/norm/reference.py): every intermediate they round to the input dtype is rounded here too.

Prologues: `add` (x = residual * alpha + (sum of a branch's k parts) * beta, then RMSNorm),
`gated` (sigmoid(gate) * RMSNorm(o), the lightning output), or none (a plain projection).
Epilogues: the product rounded to the input dtype, or the MoE router (fp32 logits, softmax,
renormalised top-k: every expert in one program). Past GEMV_ROWS rows a matrix product's reuse of
the weights wins, and past GEMV_MAX_WIDTH (M1's 6144) cuBLAS streams wide rows better: the norm
kernels of kernels/norm, then cuBLAS (or the routing kernel)."""
import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from m1bench.kernels.launch import GEMV_MAX_WIDTH, gemv_tile, pdl, wait_for_inputs
from m1bench.kernels.moe import triton_moe
from m1bench.kernels.norm import triton_norm

GEMV_ROWS = 4
ROUTE_WARPS = 8
ROUTE_MAX_ELEMENTS = 64 * 32 * ROUTE_WARPS  # the fused router holds every expert's row: 64 values a thread


@triton.jit
def _round(x, dtype: tl.constexpr):
    return x.to(dtype).to(tl.float32)


@triton.jit
def _norm_gemv_kernel(res, y, gate, nw, w, x_out, h_out, out, route_w, route_ids, alpha, beta, eps, D, N,
                      s_r, s_g, NORM: tl.constexpr, GATED: tl.constexpr, KY: tl.constexpr, HAS_Y: tl.constexpr,
                      STORE_XH: tl.constexpr, ROUTE: tl.constexpr, TOP_K: tl.constexpr,
                      BN: tl.constexpr, BD: tl.constexpr, PDL: tl.constexpr):
    pid_n = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64)
    o_n = pid_n * BN + tl.arange(0, BN)
    o_d = tl.arange(0, BD)
    m_n = o_n < N
    m_d = o_d < D
    # The weights and the norm's scale are no kernel's output: loaded before the wait, they stream
    # while the kernel before this one finishes.
    wt = tl.load(w + o_n[:, None].to(tl.int64) * D + o_d[None, :], mask=m_n[:, None] & m_d[None, :], other=0.0)
    norm_w = tl.load(nw + o_d, mask=m_d, other=0.0).to(tl.float32)
    wait_for_inputs(PDL)
    dt = res.dtype.element_ty
    x = tl.load(res + row * s_r + o_d, mask=m_d, other=0.0).to(tl.float32)
    if HAS_Y:
        p_y = y + row * (KY * D) + o_d
        s = tl.load(p_y, mask=m_d, other=0.0).to(tl.float32)
        for j in tl.static_range(1, KY):
            s = _round(s + tl.load(p_y + j * D, mask=m_d, other=0.0).to(tl.float32), dt)
        x = _round(_round(x * alpha, dt) + _round(s * beta, dt), dt)
    if NORM:
        inv = tl.rsqrt(tl.sum(x * x, axis=0) / D + eps)
        h = _round(_round(x * inv, dt) * norm_w, dt)
    else:
        h = x
    if GATED:
        g = tl.load(gate + row * s_g + o_d, mask=m_d, other=0.0).to(tl.float32)
        h = _round(_round(tl.sigmoid(g), dt) * h, dt)
    if STORE_XH:
        if pid_n == 0:
            if HAS_Y:
                tl.store(x_out + row * D + o_d, x.to(dt), mask=m_d)
            tl.store(h_out + row * D + o_d, h.to(dt), mask=m_d)
    acc = tl.sum(wt.to(tl.float32) * h[None, :], axis=1)
    if ROUTE:  # fp32 softmax over the experts, then the top-k renormalised (ties: the lowest index)
        p = tl.exp(tl.where(m_n, acc, float("-inf")) - tl.max(tl.where(m_n, acc, float("-inf")), axis=0))
        p = tl.where(m_n, p / tl.sum(p, axis=0), -1.0)
        total = 0.0
        left = p
        for _ in tl.static_range(TOP_K):
            total += tl.max(left, axis=0)
            left = tl.where(o_n == tl.argmax(left, axis=0), -1.0, left)
        left = p
        for j in tl.static_range(TOP_K):
            i = tl.argmax(left, axis=0)
            tl.store(route_w + row * TOP_K + j, tl.max(left, axis=0) / total)
            tl.store(route_ids + row * TOP_K + j, i)
            left = tl.where(o_n == i, -1.0, left)
    else:
        tl.store(out + row * N + o_n, acc.to(dt).to(out.dtype.element_ty), mask=m_n)


def _gemv(src, N, weight, norm_weight=None, eps=0.0, *, y=None, gate=None, alpha=1.0, beta=1.0, store_xh=False,
          out_dtype=None, top_k=0):
    M, D = src.shape[0], weight.shape[1]
    if src.stride(-1) != 1 or (gate is not None and gate.stride(-1) != 1):
        raise ValueError("the norm's input rows must have a contiguous last dim")
    x = torch.empty(M, D, device=src.device, dtype=src.dtype) if store_xh and y is not None else src
    h = torch.empty(M, D, device=src.device, dtype=src.dtype) if store_xh else src
    if top_k:
        out = rw = torch.empty(M, top_k, device=src.device, dtype=torch.float32)
        ids = torch.empty(M, top_k, device=src.device, dtype=torch.int32)
        BN, BD, warps = triton.next_power_of_2(N), triton.next_power_of_2(D), ROUTE_WARPS
    else:
        out = rw = ids = torch.empty(M, N, device=src.device, dtype=out_dtype or src.dtype)
        BN, BD, warps = gemv_tile(D)
    _norm_gemv_kernel[(triton.cdiv(N, BN), M)](
        src, src if y is None else y.contiguous(), src if gate is None else gate,
        src if norm_weight is None else norm_weight, weight.contiguous(),
        x, h, out, rw, ids, float(alpha), float(beta), float(eps), D, N, src.stride(0),
        0 if gate is None else gate.stride(0), NORM=norm_weight is not None, GATED=gate is not None,
        KY=1 if y is None else y.shape[1], HAS_Y=y is not None, STORE_XH=store_xh, ROUTE=top_k > 0, TOP_K=max(top_k, 1), BN=BN, BD=BD,
        num_warps=warps, **pdl(src.device))
    return x, h, (rw, ids) if top_k else out


def _unfused(x, weight) -> bool:
    return x.shape[0] > GEMV_ROWS or weight.shape[1] > GEMV_MAX_WIDTH


def linear(x, weight):
    if _unfused(x, weight):
        return F.linear(x, weight)
    return _gemv(x, weight.shape[0], weight)[2]


def add_norm_linear(residual, y, alpha, beta, norm_weight, eps, weight, out_dtype=None):
    if _unfused(residual, weight):
        x, h = triton_norm.add_rms_norm(residual, y, alpha, beta, norm_weight, eps)
        out = F.linear(h, weight)
        return x, h, out if out_dtype is None else out.to(out_dtype)
    return _gemv(residual, weight.shape[0], weight, norm_weight, eps, y=y, alpha=alpha, beta=beta, store_xh=True,
                 out_dtype=out_dtype)


def gated_norm_linear(o, gate, norm_weight, eps, weight):
    if _unfused(o, weight):
        return F.linear(triton_norm.gated_rms_norm(o, gate, norm_weight, eps), weight)
    return _gemv(o, weight.shape[0], weight, norm_weight, eps, gate=gate)[2]


def add_norm_route(residual, y, alpha, beta, norm_weight, eps, gate_weight, top_k):
    E, D = gate_weight.shape
    if _unfused(residual, gate_weight) or triton.next_power_of_2(E) * triton.next_power_of_2(D) > ROUTE_MAX_ELEMENTS:
        x, h = triton_norm.add_rms_norm(residual, y, alpha, beta, norm_weight, eps)
        return (x, h, *triton_moe.route(h, gate_weight, top_k))
    x, h, (weights, ids) = _gemv(residual, E, gate_weight, norm_weight, eps, y=y, alpha=alpha, beta=beta,
                                 store_xh=True, top_k=top_k)
    return x, h, weights, ids
