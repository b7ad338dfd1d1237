"""Fused RMSNorm kernels for the decode step at batches past the fused projections' (kernels/linear):
one program per row, the whole row in registers.

Each intermediate the unfused PyTorch ops round to the input dtype is rounded here too (products,
the residual sum, the normalised value), so the fused result is the reference's up to the order of
the fp32 mean."""
import torch
import triton
import triton.language as tl

from m1bench.kernels.launch import pdl, wait_for_inputs


@triton.jit
def _round(x, dtype: tl.constexpr):
    return x.to(dtype).to(tl.float32)


@triton.jit
def _add_rms_norm_kernel(res, y, x_out, h_out, w, alpha, beta, eps, N, D, s_r,
                         KY: tl.constexpr, HAS_Y: tl.constexpr, BR: tl.constexpr, BD: tl.constexpr,
                         PDL: tl.constexpr):
    wait_for_inputs(PDL)
    rows = (tl.program_id(0) * BR + tl.arange(0, BR)).to(tl.int64)[:, None]
    dt = x_out.dtype.element_ty
    o = tl.arange(0, BD)[None, :]
    m = (rows < N) & (o < D)
    x = tl.load(res + rows * s_r + o, mask=m, other=0.0).to(tl.float32)
    if HAS_Y:
        s = tl.load(y + rows * KY * D + o, mask=m, other=0.0).to(tl.float32)
        for j in tl.static_range(1, KY):
            s = _round(s + tl.load(y + (rows * KY + j) * D + o, mask=m, other=0.0).to(tl.float32), dt)
        x = _round(_round(x * alpha, dt) + _round(s * beta, dt), dt)
        tl.store(x_out + rows * D + o, x.to(dt), mask=m)
    inv = tl.rsqrt(tl.sum(x * x, axis=1) / D + eps)[:, None]
    h = _round(x * inv, dt) * tl.load(w + o, mask=o < D, other=0.0).to(tl.float32)
    tl.store(h_out + rows * D + o, h.to(dt), mask=m)


@triton.jit
def _gated_rms_norm_kernel(o_in, gate, out, w, eps, N, D, s_o, s_g, BR: tl.constexpr, BD: tl.constexpr,
                           PDL: tl.constexpr):
    wait_for_inputs(PDL)
    rows = (tl.program_id(0) * BR + tl.arange(0, BR)).to(tl.int64)[:, None]
    dt = out.dtype.element_ty
    c = tl.arange(0, BD)[None, :]
    m = (rows < N) & (c < D)
    x = tl.load(o_in + rows * s_o + c, mask=m, other=0.0).to(tl.float32)
    inv = tl.rsqrt(tl.sum(x * x, axis=1) / D + eps)[:, None]
    n = _round(_round(x * inv, dt) * tl.load(w + c, mask=c < D, other=0.0).to(tl.float32), dt)
    g = _round(tl.sigmoid(tl.load(gate + rows * s_g + c, mask=m, other=0.0).to(tl.float32)), dt)
    tl.store(out + rows * D + c, (g * n).to(dt), mask=m)


def _tile(N: int, D: int) -> tuple[int, int, int]:
    """(rows per program, BD, num_warps): several rows per program when rows are short, so that a
    million-token prompt is not a million tiny programs (their scheduling, not the bytes, set the time)."""
    BD = triton.next_power_of_2(D)
    BR = min(triton.next_power_of_2(N), max(1, 8192 // BD))
    return BR, BD, 4 if BR * BD <= 2048 else 8 if BR * BD <= 8192 else 16


def add_rms_norm(residual, y, alpha: float, beta: float, weight, eps: float):
    N, D = residual.shape
    if residual.stride(-1) != 1:
        residual = residual.contiguous()
    h = torch.empty(N, D, device=residual.device, dtype=residual.dtype)
    x = residual if y is None else torch.empty_like(h)  # no branch: x is the residual itself
    BR, BD, warps = _tile(N, D)
    _add_rms_norm_kernel[(triton.cdiv(N, BR),)](
        residual, residual if y is None else y.contiguous(), x, h, weight, float(alpha), float(beta), float(eps),
        N, D, residual.stride(0), KY=1 if y is None else y.shape[1], HAS_Y=y is not None, BR=BR, BD=BD,
        num_warps=warps, **pdl(residual.device))
    return x, h


def gated_rms_norm(o, gate, weight, eps: float):
    N, D = o.shape
    if o.stride(-1) != 1 or gate.stride(-1) != 1:
        raise ValueError("o and gate must have a contiguous last dim")
    out = torch.empty(N, D, device=o.device, dtype=o.dtype)
    BR, BD, warps = _tile(N, D)
    _gated_rms_norm_kernel[(triton.cdiv(N, BR),)](o, gate, out, weight, float(eps), N, D, o.stride(0), gate.stride(0),
                                                  BR=BR, BD=BD, num_warps=warps, **pdl(o.device))
    return out
