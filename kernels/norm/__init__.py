"""RMSNorm and its two fused forms (reference.py defines them; Triton on CUDA when no gradient is
needed: the kernels have no backward). The decode step's few rows fuse them further, into the
projection after them (kernels/linear)."""
import torch

from m1bench.kernels.dispatch import use_triton
from m1bench.kernels.norm import reference
from m1bench.kernels.norm.reference import rms_norm


def _fused(x: torch.Tensor, impl: str, *tensors) -> bool:
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *tensors))
    return use_triton(x, impl) and not needs_grad


def add_rms_norm(residual, y, alpha: float, beta: float, weight, eps: float, impl: str = "auto"):
    """(x, rms_norm(x)) with x = residual * alpha + y.sum(1) * beta, or x = residual when y is None."""
    if _fused(residual, impl, y, weight):
        from m1bench.kernels.norm.triton_norm import add_rms_norm as fused
        return fused(residual, y, alpha, beta, weight, eps)
    return reference.add_rms_norm(residual, y, alpha, beta, weight, eps)


def gated_rms_norm(o, gate, weight, eps: float, impl: str = "auto"):
    """sigmoid(gate) * rms_norm(o)."""
    if _fused(o, impl, gate, weight):
        from m1bench.kernels.norm.triton_norm import gated_rms_norm as fused
        return fused(o, gate, weight, eps)
    return reference.gated_rms_norm(o, gate, weight, eps)


__all__ = ["add_rms_norm", "gated_rms_norm", "rms_norm"]
