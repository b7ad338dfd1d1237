"""The decode step's projections with their norm fused in front, in Triton: one launch where the
unfused step had a norm kernel and a matrix product (and, for the router, a routing kernel).

Each program owns BN output columns and a block of BM rows. It loads its BN whole weight rows at
once (no loop whose every step waits for its own load) before it waits for the kernel before it
(PDL: the weights' DRAM round trip overlaps that kernel), then its rows of the norm's input,
normalises them in registers and multiplies. Up to `GEMV_ROWS` rows a program takes one row and
reduces (a matrix-vector product, kernels/launch.gemv_tile); up to `GEMM_ROWS` it takes 16 rows to
the tensor cores, each weight tile read from DRAM once for all of them. The programs of column
tile 0 also write the norm's outputs (x, h) for the layers that need them later. Rounding follows
the unfused ops (kernels/norm/reference.py): every intermediate they round to the input dtype is
rounded here too.

Prologues: `add` (x = residual * alpha + (sum of a branch's k parts) * beta, then RMSNorm),
`gated` (sigmoid(gate) * RMSNorm(o), the lightning output), or none (a plain projection).
Epilogues: the product rounded to the input dtype, or the MoE router (fp32 logits, softmax,
renormalised top-k: every expert in one program). Past GEMM_ROWS rows cuBLAS's reuse of the
weights wins, and past GEMV_MAX_WIDTH (M1's 6144; GEMM_MAX_WIDTH for the row blocks) cuBLAS
streams wide rows better: the norm kernels of kernels/norm, then cuBLAS (or the routing kernel)."""
import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from m1bench.kernels.launch import GEMV_MAX_WIDTH, gemv_tile, pdl, wait_for_inputs
from m1bench.kernels.lightning.chunk import INTERPRET
from m1bench.kernels.moe import triton_moe
from m1bench.kernels.norm import triton_norm

GEMV_ROWS = 4
GEMM_ROWS = 64
GEMM_BLOCK = 16  # rows (and at least as many columns) per program: tl.dot's smallest tile
GEMM_WARPS = 8
# A program of the row blocks holds a [16, width] tile of weights and one of rows (fp32): 64 values
# a thread for each, so up to 1024-wide rows.
GEMM_MAX_WIDTH = 64 * 32 * GEMM_WARPS // GEMM_BLOCK
ROUTE_WARPS = 8
ROUTE_MAX_ELEMENTS = 64 * 32 * ROUTE_WARPS  # the fused router holds every expert's row: 64 values a thread


@triton.jit
def _round(x, dtype: tl.constexpr):
    return x.to(dtype).to(tl.float32)


@triton.jit
def _norm_linear_kernel(res, y, gate, nw, w, x_out, h_out, out, route_w, route_ids, alpha, beta, eps, M, D, N,
                        s_r, s_g, NORM: tl.constexpr, GATED: tl.constexpr, KY: tl.constexpr, HAS_Y: tl.constexpr,
                        STORE_XH: tl.constexpr, ROUTE: tl.constexpr, TOP_K: tl.constexpr, BM: tl.constexpr,
                        BN: tl.constexpr, BD: tl.constexpr, DOT_F32: tl.constexpr, PDL: tl.constexpr):
    pid_n = tl.program_id(0)
    o_m = tl.program_id(1) * BM + tl.arange(0, BM)
    o_n = pid_n * BN + tl.arange(0, BN)
    o_d = tl.arange(0, BD)
    m_m = o_m < M
    m_n = o_n < N
    m_d = o_d < D
    # The weights and the norm's scale are no kernel's output: loaded before the wait, they stream
    # while the kernel before this one finishes.
    wt = tl.load(w + o_n[:, None].to(tl.int64) * D + o_d[None, :], mask=m_n[:, None] & m_d[None, :], other=0.0)
    norm_w = tl.load(nw + o_d, mask=m_d, other=0.0).to(tl.float32)[None, :]
    wait_for_inputs(PDL)
    dt = res.dtype.element_ty
    rows = o_m.to(tl.int64)[:, None]
    m_md = m_m[:, None] & m_d[None, :]
    x = tl.load(res + rows * s_r + o_d[None, :], mask=m_md, other=0.0).to(tl.float32)
    if HAS_Y:
        p_y = y + rows * (KY * D) + o_d[None, :]
        s = tl.load(p_y, mask=m_md, other=0.0).to(tl.float32)
        for j in tl.static_range(1, KY):
            s = _round(s + tl.load(p_y + j * D, mask=m_md, other=0.0).to(tl.float32), dt)
        x = _round(_round(x * alpha, dt) + _round(s * beta, dt), dt)
    if NORM:
        inv = tl.rsqrt(tl.sum(x * x, axis=1) / D + eps)[:, None]
        h = _round(_round(x * inv, dt) * norm_w, dt)
    else:
        h = x
    if GATED:
        g = tl.load(gate + rows * s_g + o_d[None, :], mask=m_md, other=0.0).to(tl.float32)
        h = _round(_round(tl.sigmoid(g), dt) * h, dt)
    if STORE_XH:
        if pid_n == 0:
            if HAS_Y:
                tl.store(x_out + rows * D + o_d[None, :], x.to(dt), mask=m_md)
            tl.store(h_out + rows * D + o_d[None, :], h.to(dt), mask=m_md)
    if BM == 1:  # one row: a reduction across the threads
        acc = tl.sum(wt.to(tl.float32) * h, axis=1)[None, :]
    elif DOT_F32:  # fp32 weights, or the interpreter (whose bf16 dot is wrong)
        acc = tl.dot(h, tl.trans(wt.to(tl.float32)), input_precision="ieee")
    else:  # h holds values of the weights' dtype already: exact in it
        acc = tl.dot(h.to(wt.dtype), tl.trans(wt))
    if ROUTE:  # fp32 softmax over the experts, then the top-k renormalised (ties: the lowest index)
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
            i = tl.argmax(left, axis=1)
            tl.store(route_w + o_m * TOP_K + j, tl.max(left, axis=1) / total, mask=m_m)
            tl.store(route_ids + o_m * TOP_K + j, i, mask=m_m)
            left = tl.where(o_n[None, :] == i[:, None], -1.0, left)
    else:
        tl.store(out + rows * N + o_n[None, :], acc.to(dt).to(out.dtype.element_ty), mask=m_m[:, None] & m_n[None, :])


def _tile(M: int, N: int, D: int, route: bool) -> tuple[int, int, int, int]:
    """(BM, BN, BD, num_warps)."""
    BD = triton.next_power_of_2(D)
    if M > GEMV_ROWS:  # the router's experts fit one column tile (_unfused)
        return GEMM_BLOCK, GEMM_BLOCK, BD, GEMM_WARPS
    if route:
        return 1, triton.next_power_of_2(N), BD, ROUTE_WARPS
    return 1, *gemv_tile(D)


def _norm_linear(src, N, weight, norm_weight=None, eps=0.0, *, y=None, gate=None, alpha=1.0, beta=1.0, store_xh=False,
                 out_dtype=None, top_k=0):
    M, D = src.shape[0], weight.shape[1]
    if src.stride(-1) != 1 or (gate is not None and gate.stride(-1) != 1):
        raise ValueError("the norm's input rows must have a contiguous last dim")
    x = torch.empty(M, D, device=src.device, dtype=src.dtype) if store_xh and y is not None else src
    h = torch.empty(M, D, device=src.device, dtype=src.dtype) if store_xh else src
    if top_k:
        out = rw = torch.empty(M, top_k, device=src.device, dtype=torch.float32)
        ids = torch.empty(M, top_k, device=src.device, dtype=torch.int32)
    else:
        out = rw = ids = torch.empty(M, N, device=src.device, dtype=out_dtype or src.dtype)
    BM, BN, BD, warps = _tile(M, N, D, top_k > 0)
    _norm_linear_kernel[(triton.cdiv(N, BN), triton.cdiv(M, BM))](
        src, src if y is None else y.contiguous(), src if gate is None else gate,
        src if norm_weight is None else norm_weight, weight.contiguous(),
        x, h, out, rw, ids, float(alpha), float(beta), float(eps), M, D, N, src.stride(0),
        0 if gate is None else gate.stride(0), NORM=norm_weight is not None, GATED=gate is not None,
        KY=1 if y is None else y.shape[1], HAS_Y=y is not None, STORE_XH=store_xh, ROUTE=top_k > 0,
        TOP_K=max(top_k, 1), BM=BM, BN=BN, BD=BD, DOT_F32=INTERPRET or weight.dtype == torch.float32,
        num_warps=warps, **pdl(src.device))
    return x, h, (rw, ids) if top_k else out


def _unfused(x, weight, route: bool = False) -> bool:
    M, (N, D) = x.shape[0], weight.shape
    if M <= GEMV_ROWS:
        return D > GEMV_MAX_WIDTH or (route and triton.next_power_of_2(N) * triton.next_power_of_2(D) > ROUTE_MAX_ELEMENTS)
    return M > GEMM_ROWS or D > GEMM_MAX_WIDTH or (route and N > GEMM_BLOCK)


def linear(x, weight):
    if _unfused(x, weight):
        return F.linear(x, weight)
    return _norm_linear(x, weight.shape[0], weight)[2]


def add_norm_linear(residual, y, alpha, beta, norm_weight, eps, weight, out_dtype=None):
    if _unfused(residual, weight):
        x, h = triton_norm.add_rms_norm(residual, y, alpha, beta, norm_weight, eps)
        out = F.linear(h, weight)
        return x, h, out if out_dtype is None else out.to(out_dtype)
    return _norm_linear(residual, weight.shape[0], weight, norm_weight, eps, y=y, alpha=alpha, beta=beta,
                        store_xh=True, out_dtype=out_dtype)


def gated_norm_linear(o, gate, norm_weight, eps, weight):
    if _unfused(o, weight):
        return F.linear(triton_norm.gated_rms_norm(o, gate, norm_weight, eps), weight)
    return _norm_linear(o, weight.shape[0], weight, norm_weight, eps, gate=gate)[2]


def add_norm_route(residual, y, alpha, beta, norm_weight, eps, gate_weight, top_k):
    if _unfused(residual, gate_weight, route=True):
        x, h = triton_norm.add_rms_norm(residual, y, alpha, beta, norm_weight, eps)
        return (x, h, *triton_moe.route(h, gate_weight, top_k))
    x, h, (weights, ids) = _norm_linear(residual, gate_weight.shape[0], gate_weight, norm_weight, eps, y=y,
                                        alpha=alpha, beta=beta, store_xh=True, top_k=top_k)
    return x, h, weights, ids
