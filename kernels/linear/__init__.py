"""Projections with the norm before them fused in, for the decode step (reference.py defines them;
Triton on CUDA)."""
from m1bench.kernels.dispatch import use_triton
from m1bench.kernels.linear import reference


def _pick(name: str, x, impl: str):
    if use_triton(x, impl):
        from m1bench.kernels.linear import triton_linear
        return getattr(triton_linear, name)
    return getattr(reference, name)


def linear(x, weight, impl: str = "auto"):
    """x Wᵀ, for the decode step's few rows (a matrix-vector kernel on CUDA)."""
    return _pick("linear", x, impl)(x, weight)


def add_norm_linear(residual, y, alpha: float, beta: float, norm_weight, eps: float, weight, out_dtype=None,
                    impl: str = "auto"):
    """(x, h, h Wᵀ) with x, h = add_rms_norm(residual, y, alpha, beta, norm_weight, eps); the product
    rounded to h's dtype, then given in `out_dtype` (default h's)."""
    return _pick("add_norm_linear", residual, impl)(residual, y, alpha, beta, norm_weight, eps, weight, out_dtype)


def gated_norm_linear(o, gate, norm_weight, eps: float, weight, impl: str = "auto"):
    """(sigmoid(gate) * rms_norm(o)) Wᵀ."""
    return _pick("gated_norm_linear", o, impl)(o, gate, norm_weight, eps, weight)


def add_norm_route(residual, y, alpha: float, beta: float, norm_weight, eps: float, gate_weight, top_k: int,
                   impl: str = "auto"):
    """(x, h, weights [N, k] fp32, expert ids [N, k]): add_rms_norm, then the MoE router on h."""
    return _pick("add_norm_route", residual, impl)(residual, y, alpha, beta, norm_weight, eps, gate_weight, top_k)


__all__ = ["add_norm_linear", "add_norm_route", "gated_norm_linear", "linear"]
