"""Softmax attention for the decode step over a KV-cache pool (reference.py defines it; Triton on CUDA)."""
from m1bench.kernels.attention import reference
from m1bench.kernels.attention.reference import apply_partial_rope, inv_freq, rope_cos_sin
from m1bench.kernels.dispatch import use_triton


def rotary_append(q, k, v, freqs, k_cache, v_cache, slots, positions, impl: str = "auto"):
    """RoPE (frequencies `freqs` from `inv_freq`) on one new token per row, its k and v written into
    the cache at (slots, positions); returns rotated q."""
    if use_triton(q, impl):
        from m1bench.kernels.attention.triton_decode import rotary_append as fused
        return fused(q, k, v, freqs, k_cache, v_cache, slots, positions)
    return reference.rotary_append(q, k, v, freqs, k_cache, v_cache, slots, positions)


def decode_attention(q, k_cache, v_cache, slots, lengths, scale: float, impl: str = "auto", splits: int | None = None):
    """o [B, Hq, d]: q [B, Hq, d] against the first lengths[b] keys of cache row slots[b]."""
    if use_triton(q, impl):
        from m1bench.kernels.attention.triton_decode import decode_attention as split_kv
        return split_kv(q, k_cache, v_cache, slots, lengths, scale, splits)
    return reference.decode_attention(q, k_cache, v_cache, slots, lengths, scale)


__all__ = ["apply_partial_rope", "decode_attention", "inv_freq", "rope_cos_sin", "rotary_append"]
