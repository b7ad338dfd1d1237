"""The decode step's projections with the norm in front of them fused in, in PyTorch: the
definitions the Triton kernels are checked against, and what runs on CPU. Each is the composition
of the unfused ops it replaces (norm, then linear layer or router), so it rounds where they round."""
import torch.nn.functional as F

from m1bench.kernels.moe.reference import route
from m1bench.kernels.norm.reference import add_rms_norm, gated_rms_norm


def linear(x, weight):
    """x Wᵀ (the unnormalised projections: a softmax layer's o_proj)."""
    return F.linear(x, weight)


def add_norm_linear(residual, y, alpha: float, beta: float, norm_weight, eps: float, weight, out_dtype=None):
    """(x, h, out): x, h = add_rms_norm(...), out = h Wᵀ (in `out_dtype` after rounding to h's dtype)."""
    x, h = add_rms_norm(residual, y, alpha, beta, norm_weight, eps)
    out = F.linear(h, weight)
    return x, h, out if out_dtype is None else out.to(out_dtype)


def gated_norm_linear(o, gate, norm_weight, eps: float, weight):
    """(sigmoid(gate) * rms_norm(o)) Wᵀ: the lightning layer's output norm, gate and projection."""
    return F.linear(gated_rms_norm(o, gate, norm_weight, eps), weight)


def add_norm_route(residual, y, alpha: float, beta: float, norm_weight, eps: float, gate_weight, top_k: int):
    """(x, h, weights, ids): add_rms_norm, then the MoE router on h (fp32 softmax, renormalised top-k)."""
    x, h = add_rms_norm(residual, y, alpha, beta, norm_weight, eps)
    return (x, h, *route(h, gate_weight, top_k))
