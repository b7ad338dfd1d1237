"""The one entry point the model (and later the vLLM plugin) calls for lightning attention.

CUDA tensors go to the Triton kernels when they are importable; everything else takes the
pure-PyTorch paths of `reference`. `impl` forces a path (tests and benchmarks use it).
"""
import importlib.util
from typing import Callable

import torch

from m1bench.kernels.dispatch import use_triton
from m1bench.kernels.lightning import naive as reference

PREFILL_IMPLS: dict[str, Callable] = {
    "naive": reference.naive,
    "recurrent": reference.recurrent,
    "blocked": reference.blocked,
}
DECODE_IMPLS: dict[str, Callable] = {"torch": reference.decode}


def register_prefill(name: str, fn: Callable) -> None:
    PREFILL_IMPLS[name] = fn


def register_decode(name: str, fn: Callable) -> None:
    DECODE_IMPLS[name] = fn


def _triton_prefill(q, k, v, slopes, initial_state=None, cu_seqlens=None):
    # Imported on first use: triton costs a second to import, and the kernels must be defined
    # after a test has chosen the interpreter (TRITON_INTERPRET is read when they are defined).
    from m1bench.kernels.lightning.chunk import lightning_prefill
    return lightning_prefill(q, k, v, slopes, initial_state, cu_seqlens)


def _triton_decode(q, k, v, slopes, state, slots=None, silu=False):
    from m1bench.kernels.lightning.recurrent import lightning_decode as triton_decode
    return triton_decode(q, k, v, slopes, state, slots, silu=silu)


_triton_prefill.supports_varlen = True
if importlib.util.find_spec("triton") is not None:
    register_prefill("triton", _triton_prefill)
    register_decode("triton", _triton_decode)


def _auto(impls: dict[str, Callable], x: torch.Tensor, cpu_default: str) -> Callable:
    return impls["triton"] if use_triton(x) and "triton" in impls else impls[cpu_default]


def lightning_attention(q, k, v, slopes, initial_state=None, cu_seqlens=None, impl: str = "auto"):
    """Causal lightning attention over a prompt chunk.

    q, k, v: [B, T, H, d]; slopes: [H]; initial_state: [N, H, d, d] or None, where N = B, or the
    number of packed sequences when `cu_seqlens` ([N + 1] offsets into T, B == 1) is given.
    Returns (o [B, T, H, d] in q's dtype, final_state [N, H, d, d] fp32 or fp64).
    """
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"lightning_attention wants q, k, v as [B, T, H, d]; got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    fn = _auto(PREFILL_IMPLS, q, "blocked") if impl == "auto" else PREFILL_IMPLS[impl]
    if cu_seqlens is None or getattr(fn, "supports_varlen", False):
        if cu_seqlens is None:
            return fn(q, k, v, slopes, initial_state)
        return fn(q, k, v, slopes, initial_state, cu_seqlens=cu_seqlens)
    if q.shape[0] != 1:
        raise ValueError("packed (cu_seqlens) input must have batch size 1")
    bounds = cu_seqlens.tolist()
    outs, states = [], []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        init = None if initial_state is None else initial_state[i:i + 1]
        o, st = fn(q[:, a:b], k[:, a:b], v[:, a:b], slopes, init)
        outs.append(o)
        states.append(st)
    return torch.cat(outs, dim=1), torch.cat(states, dim=0)


def lightning_decode(q, k, v, slopes, state, slots=None, impl: str = "auto", silu: bool = False):
    """One decode step for a batch: q, k, v [B, H, d]; state pool [P, H, d, d] updated in place at
    rows `slots` (default 0..B-1). `silu`: q, k, v are pre-activations (SiLU applied first, fused on
    CUDA). Returns o [B, H, d]."""
    fn = _auto(DECODE_IMPLS, q, "torch") if impl == "auto" else DECODE_IMPLS[impl]
    return fn(q, k, v, slopes, state, slots, silu=silu)
