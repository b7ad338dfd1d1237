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
def _add_rms_norm_kernel(res, y, x_out, h_out, w, alpha, beta, eps, D,
                         KY: tl.constexpr, HAS_Y: tl.constexpr, BD: tl.constexpr, PDL: tl.constexpr):
    wait_for_inputs(PDL)
    row = tl.program_id(0).to(tl.int64)
    dt = x_out.dtype.element_ty
    o = tl.arange(0, BD)
    m = o < D
    x = tl.load(res + row * D + o, mask=m, other=0.0).to(tl.float32)
    if HAS_Y:
        s = tl.load(y + row * KY * D + o, mask=m, other=0.0).to(tl.float32)
        for j in tl.static_range(1, KY):
            s = _round(s + tl.load(y + (row * KY + j) * D + o, mask=m, other=0.0).to(tl.float32), dt)
        x = _round(_round(x * alpha, dt) + _round(s * beta, dt), dt)
        tl.store(x_out + row * D + o, x.to(dt), mask=m)
    inv = tl.rsqrt(tl.sum(x * x, axis=0) / D + eps)
    h = _round(x * inv, dt) * tl.load(w + o, mask=m, other=0.0).to(tl.float32)
    tl.store(h_out + row * D + o, h.to(dt), mask=m)


@triton.jit
def _gated_rms_norm_kernel(o_in, gate, out, w, eps, D, s_o, s_g, BD: tl.constexpr, PDL: tl.constexpr):
    wait_for_inputs(PDL)
    row = tl.program_id(0).to(tl.int64)
    dt = out.dtype.element_ty
    c = tl.arange(0, BD)
    m = c < D
    x = tl.load(o_in + row * s_o + c, mask=m, other=0.0).to(tl.float32)
    inv = tl.rsqrt(tl.sum(x * x, axis=0) / D + eps)
    n = _round(_round(x * inv, dt) * tl.load(w + c, mask=m, other=0.0).to(tl.float32), dt)
    g = _round(tl.sigmoid(tl.load(gate + row * s_g + c, mask=m, other=0.0).to(tl.float32)), dt)
    tl.store(out + row * D + c, (g * n).to(dt), mask=m)


def _warps(D: int) -> int:
    return 4 if D <= 2048 else 8 if D <= 8192 else 16


def add_rms_norm(residual, y, alpha: float, beta: float, weight, eps: float):
    N, D = residual.shape
    residual = residual.contiguous()
    h = torch.empty_like(residual)
    x = residual if y is None else torch.empty_like(residual)  # no branch: x is the residual itself
    _add_rms_norm_kernel[(N,)](residual, residual if y is None else y.contiguous(), x, h, weight, float(alpha),
                               float(beta), float(eps), D, KY=1 if y is None else y.shape[1], HAS_Y=y is not None,
                               BD=triton.next_power_of_2(D), num_warps=_warps(D), **pdl(residual.device))
    return x, h


def gated_rms_norm(o, gate, weight, eps: float):
    N, D = o.shape
    if o.stride(-1) != 1 or gate.stride(-1) != 1:
        raise ValueError("o and gate must have a contiguous last dim")
    out = torch.empty(N, D, device=o.device, dtype=o.dtype)
    _gated_rms_norm_kernel[(N,)](o, gate, out, weight, float(eps), D, o.stride(0), gate.stride(0),
                                 BD=triton.next_power_of_2(D), num_warps=_warps(D), **pdl(o.device))
    return out
