"""Softmax attention for the decode step, in PyTorch: the definitions the Triton kernels are checked
against, and what runs on CPU.

RoPE (neox layout on the first `rotary_dim` dims of each head, angles in float64) is the model's;
the KV cache is a pool [P, capacity, kv_heads, d] whose row `slot` holds `length` tokens."""
import functools

import torch
import torch.nn.functional as F


@functools.lru_cache
def inv_freq(rotary_dim: int, theta: float, device: torch.device) -> torch.Tensor:
    """RoPE's frequencies [rotary_dim / 2] in float64 (made once per device: the decode step's
    kernels take them as an input)."""
    return 1.0 / theta ** (torch.arange(0, rotary_dim, 2, device=device, dtype=torch.float64) / rotary_dim)


def rope_cos_sin(positions: torch.Tensor, rotary_dim: int, theta: float):
    """cos/sin [..., rotary_dim] for positions [...] (neox layout: the two halves repeat the same frequencies)."""
    return _cos_sin(positions.double()[..., None] * inv_freq(rotary_dim, theta, positions.device))


def _cos_sin(angles: torch.Tensor):
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos().float(), emb.sin().float()


def apply_partial_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first rotary_dim dims of each head (neox rotate_half); x is [B, T, heads, head_dim],
    cos/sin [B, T, rotary_dim]."""
    rd = cos.shape[-1]
    rot, rest = x[..., :rd].float(), x[..., rd:]
    half = rd // 2
    rotated = torch.cat((-rot[..., half:], rot[..., :half]), dim=-1)
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    return torch.cat(((rot * cos + rotated * sin).to(x.dtype), rest), dim=-1)


def rotary_append(q, k, v, freqs, k_cache, v_cache, slots, positions):
    """One new token per row: q [B, Hq, d], k, v [B, KVH, d], RoPE frequencies `freqs` [rotary_dim/2]
    (float64, `inv_freq`). Writes the rotated k and v into the caches at (slots, positions) and
    returns the rotated q."""
    cos, sin = (t[:, None] for t in _cos_sin(positions.double()[:, None] * freqs))
    q, k = apply_partial_rope(q[:, None], cos, sin)[:, 0], apply_partial_rope(k[:, None], cos, sin)[:, 0]
    k_cache[slots, positions] = k
    v_cache[slots, positions] = v
    return q


def decode_attention(q, k_cache, v_cache, slots, lengths, scale: float):
    """q [B, Hq, d] against the first lengths[b] keys of cache row slots[b] (GQA: Hq a multiple of
    the cache's kv heads). Returns o [B, Hq, d]."""
    S = int(lengths.max())
    keys, values = k_cache[slots, :S].transpose(1, 2), v_cache[slots, :S].transpose(1, 2)  # [B, KVH, S, d]
    mask = (torch.arange(S, device=q.device)[None, :] < lengths[:, None])[:, None, None, :]
    o = F.scaled_dot_product_attention(q[:, :, None], keys, values, attn_mask=mask, scale=scale, enable_gqa=True)
    return o[:, :, 0]
