"""The MoE of the decode step: routing and sorted-dispatch experts (reference.py defines them; Triton on CUDA)."""
from m1bench.kernels.dispatch import use_triton
from m1bench.kernels.moe import reference


def route(x, gate_weight, top_k: int, impl: str = "auto"):
    """(weights [N, k] fp32, expert ids [N, k]) of the fp32 softmax router's renormalised top-k."""
    if use_triton(x, impl):
        from m1bench.kernels.moe.triton_moe import route as fused
        return fused(x, gate_weight, top_k)
    return reference.route(x, gate_weight, top_k)


def experts(x, w13, w2, weights, ids, impl: str = "auto"):
    """[N, k, hidden]: each routed expert's SwiGLU output times its routing weight."""
    if use_triton(x, impl):
        from m1bench.kernels.moe.triton_moe import experts as fused
        return fused(x, w13, w2, weights, ids)
    return reference.experts(x, w13, w2, weights, ids)


__all__ = ["experts", "route"]
