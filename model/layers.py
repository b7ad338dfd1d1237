"""M1 attention layers: lightning (linear) attention and softmax GQA attention with partial RoPE."""
import torch
import torch.nn.functional as F
from torch import nn

from m1bench.kernels import lightning_attention, lightning_decode
from m1bench.kernels.attention import apply_partial_rope, decode_attention, inv_freq, rope_cos_sin, rotary_append
from m1bench.kernels.linear import add_norm_linear, gated_norm_linear, linear
from m1bench.kernels.norm import add_rms_norm, gated_rms_norm
from m1bench.model.cache import DecodePool, InferenceCache, StepRows
from m1bench.model.config import M1Config
from m1bench.model.packing import packed_rows

__all__ = ["LightningAttention", "RMSNorm", "SoftmaxAttention", "apply_partial_rope", "rope_cos_sin"]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return self.add_forward(x, None, 1.0, 1.0)[1]

    def add_forward(self, residual, branch, alpha: float, beta: float):
        """(x, norm(x)) with x = residual * alpha + branch * beta (x = residual when branch is None),
        for [..., dim] inputs: one fused kernel on CUDA."""
        shape = residual.shape
        rows = residual.reshape(-1, shape[-1])
        parts = None if branch is None else branch.reshape(-1, 1, shape[-1])
        x, h = add_rms_norm(rows, parts, alpha, beta, self.weight, self.eps)
        return x.view(shape), h.view(shape)


# MiniMax's modeling code builds the lightning output norm as MiniMaxText01RMSNorm(head_dim * num_heads),
# whose default eps is 1e-6, not the config's rms_norm_eps (1e-5 in M1); transformers does the same.
# vLLM's M1 layer passed rms_norm_eps: a deviation (kernels/lightning/NOTES.md), not followed here.
LIGHTNING_NORM_EPS = 1e-6


class LightningAttention(nn.Module):
    """SiLU(qkv) linear attention with per-head exponential decay, gated RMSNorm output (MiniMax-Text-01, arXiv 2501.08313)."""

    def __init__(self, config: M1Config, layer: int):
        super().__init__()
        self.layer, self.heads, self.head_dim = layer, config.num_attention_heads, config.head_dim
        inner = self.heads * self.head_dim
        self.qkv_proj = nn.Linear(config.hidden_size, 3 * inner, bias=False)
        self.output_gate = nn.Linear(config.hidden_size, inner, bias=False)
        self.out_proj = nn.Linear(inner, config.hidden_size, bias=False)
        self.norm = RMSNorm(inner, LIGHTNING_NORM_EPS)
        self._slope_values = config.lightning_slopes(layer)
        self.register_buffer("slopes", torch.tensor(self._slope_values, dtype=torch.float32), persistent=False)
        self._packed: dict[str, torch.Tensor] = {}

    def _apply(self, fn, recurse=True):
        # Every move and cast (.to, .cuda, .bfloat16, to_empty) comes through here. The decay rates are
        # made anew in fp32 on the new device: they stay fp32 whatever the weights' dtype, as MiniMax's
        # code keeps them, and a model built on the meta device gets them with its first real storage.
        super()._apply(fn, recurse)
        self.slopes = torch.tensor(self._slope_values, dtype=torch.float32, device=self.slopes.device)
        return self

    def forward(self, x, cache: InferenceCache, token_mask):
        B, T, _ = x.shape
        # SiLU as its own op, which streams at memory speed: inside the prefill kernel it would sit on
        # the kernel's serial per-chunk chain (3 x 64 x d exponentials a chunk, on heads x 2 programs).
        qkv = F.silu(self.qkv_proj(x))
        if token_mask is not None:  # left padding: zero q, k, v so pads leave the state untouched
            qkv = qkv * token_mask[..., None].to(qkv.dtype)
        q, k, v = qkv.view(B, T, self.heads, 3 * self.head_dim).split(self.head_dim, dim=-1)
        state = cache.states[self.layer]
        if T == 1:  # decode updates the state in place (a serving engine's state pool works so)
            o = lightning_decode(q[:, 0], k[:, 0], v[:, 0], self.slopes, state)[:, None]
        else:  # q, k, v stay views of the projection: the kernel reads them in place
            o, cache.states[self.layer] = lightning_attention(q, k, v, self.slopes, initial_state=state)
        inner = self.heads * self.head_dim
        gated = gated_rms_norm(o.reshape(B * T, inner), self.output_gate(x).view(B * T, inner), self.norm.weight,
                               self.norm.eps)
        return self.out_proj(gated.view(B, T, inner))

    def decode(self, residual, branch, alpha, beta, norm: RMSNorm, pool: DecodePool, rows: StepRows):
        """One token per row, the layer's input norm fused into its first projection (x = residual *
        alpha + branch * beta, h = norm(x)): returns (x, h, attention output [B, hidden]); the state
        of row b is pool slot rows.slots[b]."""
        B = residual.shape[0]
        inner = self.heads * self.head_dim
        qkvg = packed_rows(self._packed, "qkvg", [self.qkv_proj.weight, self.output_gate.weight])
        x, h, proj = add_norm_linear(residual, branch, alpha, beta, norm.weight, norm.eps, qkvg)
        q, k, v = proj[:, :3 * inner].view(B, self.heads, 3 * self.head_dim).split(self.head_dim, dim=-1)
        o = lightning_decode(q, k, v, self.slopes, pool.states[self.layer], rows.slots, silu=True)
        return x, h, gated_norm_linear(o.view(B, inner), proj[:, 3 * inner:], self.norm.weight, self.norm.eps,
                                       self.out_proj.weight)


class SoftmaxAttention(nn.Module):
    """GQA softmax attention, scale 1/sqrt(head_dim), RoPE on the first rotary_dim dims."""

    def __init__(self, config: M1Config, layer: int):
        super().__init__()
        self.layer = layer
        self.heads, self.kv_heads, self.head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        self.rotary_dim, self.theta = config.rotary_dim, config.rope_theta
        self.q_proj = nn.Linear(config.hidden_size, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, config.hidden_size, bias=False)
        self._packed: dict[str, torch.Tensor] = {}

    def forward(self, x, cache: InferenceCache, rope):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.heads, self.head_dim)
        k = self.k_proj(x).view(B, T, self.kv_heads, self.head_dim)
        v = self.v_proj(x).view(B, T, self.kv_heads, self.head_dim)
        cos, sin = rope
        q, k = apply_partial_rope(q, cos, sin), apply_partial_rope(k, cos, sin)
        keys, values = cache.append_kv(self.layer, k, v)  # [B, S, kv_heads, d]
        o = F.scaled_dot_product_attention(
            q.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2),
            attn_mask=cache.attention_mask(T), scale=self.head_dim ** -0.5, enable_gqa=True)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, -1))

    def decode(self, residual, branch, alpha, beta, norm: RMSNorm, pool: DecodePool, rows: StepRows):
        """One token per row at rows.positions (the row's length so far), the layer's input norm fused
        in front: returns (x, h, attention output [B, hidden]); its k, v join the pool's cache."""
        B, (Hq, KVH, d) = residual.shape[0], (self.heads, self.kv_heads, self.head_dim)
        qkv = packed_rows(self._packed, "qkv", [self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        x, h, proj = add_norm_linear(residual, branch, alpha, beta, norm.weight, norm.eps, qkv)
        q, k, v = proj[:, :Hq * d], proj[:, Hq * d:(Hq + KVH) * d], proj[:, (Hq + KVH) * d:]
        keys, values = pool.keys[self.layer], pool.values[self.layer]
        q = rotary_append(q.view(B, Hq, d), k.view(B, KVH, d), v.view(B, KVH, d),
                          inv_freq(self.rotary_dim, self.theta, residual.device), keys, values, rows.slots,
                          rows.positions)
        o = decode_attention(q, keys, values, rows.slots, rows.lengths, self.head_dim ** -0.5)
        return x, h, linear(o.view(B, -1), self.o_proj.weight)
