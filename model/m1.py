"""The reference MiniMax-M1 causal LM: postnorm decoder blocks of (lightning | softmax) attention + MoE."""
from contextlib import contextmanager

import torch
from torch import nn

from m1bench.kernels.linear import add_norm_linear, add_norm_route
from m1bench.model.cache import DecodePool, InferenceCache
from m1bench.model.config import LIGHTNING, M1Config
from m1bench.model.layers import LightningAttention, RMSNorm, SoftmaxAttention, rope_cos_sin
from m1bench.model.moe import SparseMoE
from m1bench.model.routing import RoutingRecorder


class DecoderLayer(nn.Module):
    def __init__(self, config: M1Config, layer: int):
        super().__init__()
        self.is_lightning = config.attn_type_list[layer] == LIGHTNING
        self.self_attn = (LightningAttention if self.is_lightning else SoftmaxAttention)(config, layer)
        self.block_sparse_moe = SparseMoE(config, layer)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.postnorm = config.postnorm
        self.attn_alpha, self.attn_beta = config.layer_alpha_beta(layer)
        self.mlp_alpha, self.mlp_beta = config.layernorm_mlp_alpha, config.layernorm_mlp_beta

    def forward(self, residual, branch, alpha, beta, cache, token_mask, rope):
        """The layer's input is residual * alpha + branch * beta (the previous layer's output, its add
        fused into this layer's first norm), and so is its output: (residual, MoE branch)."""
        x, h = self.input_layernorm.add_forward(residual, branch, alpha, beta)
        a = self.self_attn(h, cache, token_mask) if self.is_lightning else self.self_attn(h, cache, rope)
        # postnorm: the residual branch carries the normalised input
        x, h = self.post_attention_layernorm.add_forward(h if self.postnorm else x, a, self.attn_alpha, self.attn_beta)
        return (h if self.postnorm else x), self.block_sparse_moe(h)

    def decode(self, residual, branch, alpha, beta, pool, rows):
        """`forward` for one token per row, its norms fused into the kernels after them: the layer's
        input is residual * alpha + branch.sum(1) * beta (the previous layer's output, not yet
        added), and so is its output (residual, MoE branch [B, k, hidden]) for the next layer."""
        x, h, a = self.self_attn.decode(residual, branch, alpha, beta, self.input_layernorm, pool, rows)
        moe, norm = self.block_sparse_moe, self.post_attention_layernorm
        x, h, weights, ids = add_norm_route(h if self.postnorm else x, a[:, None], self.attn_alpha, self.attn_beta,
                                            norm.weight, norm.eps, moe.gate.weight, moe.top_k)
        return (h if self.postnorm else x), moe.decode(h, weights, ids)


class M1Model(nn.Module):
    def __init__(self, config: M1Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class M1ForCausalLM(nn.Module):
    def __init__(self, config: M1Config):
        super().__init__()
        self.config = config
        self.model = M1Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def routing_recorder(self) -> RoutingRecorder:
        c = self.config
        return RoutingRecorder(c.num_hidden_layers, c.num_local_experts, c.num_experts_per_tok)

    @contextmanager
    def recording_routing(self, recorder: RoutingRecorder | None):
        """Count expert choices into `recorder` inside the block (None: no recording, no cost)."""
        if recorder is None:
            yield
            return
        moes = [layer.block_sparse_moe for layer in self.model.layers]
        for moe in moes:
            moe.recorder = recorder
        try:
            yield
        finally:
            for moe in moes:
                moe.recorder = None

    def new_cache(self, batch_size: int, capacity: int = 256) -> InferenceCache:
        return InferenceCache(self.config, batch_size, self.dtype, self.device, capacity)

    def forward(self, input_ids: torch.Tensor, cache: InferenceCache | None = None,
                attention_mask: torch.Tensor | None = None, logits_to_keep: int = 0) -> torch.Tensor:
        """input_ids [B, T] continue the sequences held in `cache` (a fresh one if None).
        attention_mask [B, T]: 1 for real tokens, 0 for left padding. Returns logits [B, T', V] in fp32,
        T' = T or the last `logits_to_keep` positions."""
        B, T = input_ids.shape
        cache = cache if cache is not None else self.new_cache(B, capacity=T)
        token_mask = (torch.ones(B, T, dtype=torch.bool, device=input_ids.device) if attention_mask is None
                      else attention_mask.to(torch.bool))
        positions = cache.begin(token_mask)
        rope = rope_cos_sin(positions, self.config.rotary_dim, self.config.rope_theta)
        lightning_mask = None if attention_mask is None or bool(token_mask.all()) else token_mask
        residual, branch, alpha, beta = self.model.embed_tokens(input_ids), None, 1.0, 1.0
        for layer in self.model.layers:
            residual, branch = layer(residual, branch, alpha, beta, cache, lightning_mask, rope)
            alpha, beta = layer.mlp_alpha, layer.mlp_beta
        _, x = self.model.norm.add_forward(residual, branch, alpha, beta)
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        return self.lm_head(x).float()

    def new_pool(self, num_slots: int, capacity: int) -> DecodePool:
        return DecodePool(self.config, num_slots, capacity, self.dtype, self.device)

    def decode_step(self, tokens: torch.Tensor, pool: DecodePool, slots: torch.Tensor) -> torch.Tensor:
        """One token for each row: tokens [B] continue the sequences in pool slots `slots` [B].
        Returns logits [B, V] fp32. Device ops only, no host sync: a CUDA graph can capture it.
        The same function as `forward` on those sequences; each residual add and the RMSNorm after
        it are fused into the projection that reads the norm (x = residual * alpha + branch * beta,
        then its norm, then the product)."""
        rows = pool.rows(slots)
        residual, branch, alpha, beta = self.model.embed_tokens(tokens), None, 1.0, 1.0
        for layer in self.model.layers:
            residual, branch = layer.decode(residual, branch, alpha, beta, pool, rows)
            alpha, beta = layer.mlp_alpha, layer.mlp_beta
        norm = self.model.norm
        _, _, logits = add_norm_linear(residual, branch, alpha, beta, norm.weight, norm.eps, self.lm_head.weight,
                                       out_dtype=torch.float32)
        pool.advance(rows)
        return logits

    def num_parameters(self) -> dict[str, int]:
        """Total parameters and those active per token. Active excludes the unrouted experts, the embedding
        and the LM head (the paper's convention: 45.9B of 456B for M1)."""
        c = self.config
        total = sum(p.numel() for p in self.parameters())
        expert = 3 * c.hidden_size * c.intermediate_size
        inactive = c.num_hidden_layers * (c.num_local_experts - c.num_experts_per_tok) * expert
        embed = c.vocab_size * c.hidden_size  # embedding and LM head each
        return {"total": total, "active_per_token": total - inactive - 2 * embed, "embedding": embed}
