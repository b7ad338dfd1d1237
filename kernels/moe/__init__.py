"""The MoE experts of the decode step, sorted-dispatch, and the prefill MoE's gather of its sorted
outputs back into token order (reference.py defines them and the routing; Triton on CUDA, where the
decode step's routing is fused with the norm before it: kernels/linear)."""
from m1bench.kernels.dispatch import use_triton
from m1bench.kernels.moe import reference


def experts(x, w13, w2, weights, ids, impl: str = "auto"):
    """[N, k, hidden]: each routed expert's SwiGLU output times its routing weight."""
    if use_triton(x, impl):
        from m1bench.kernels.moe.triton_moe import experts as fused
        return fused(x, w13, w2, weights, ids)
    return reference.experts(x, w13, w2, weights, ids)


def gather_sum(y, unsort, weights, impl: str = "auto"):
    """[N, hidden]: the prefill MoE's outputs back in token order, weighted and summed over k."""
    if use_triton(y, impl):
        from m1bench.kernels.moe.triton_moe import gather_sum as fused
        return fused(y, unsort, weights)
    return reference.gather_sum(y, unsort, weights)


__all__ = ["experts", "gather_sum"]
