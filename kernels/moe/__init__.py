"""The MoE experts of the decode step, sorted-dispatch (reference.py defines them and the routing;
Triton on CUDA, where the routing is fused with the norm before it: kernels/linear)."""
from m1bench.kernels.dispatch import use_triton
from m1bench.kernels.moe import reference


def experts(x, w13, w2, weights, ids, impl: str = "auto"):
    """[N, k, hidden]: each routed expert's SwiGLU output times its routing weight."""
    if use_triton(x, impl):
        from m1bench.kernels.moe.triton_moe import experts as fused
        return fused(x, w13, w2, weights, ids)
    return reference.experts(x, w13, w2, weights, ids)


__all__ = ["experts"]
