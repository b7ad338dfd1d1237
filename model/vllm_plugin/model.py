"""MiniMax-M1 / MiniMax-Text-01 for vLLM: the reference model's math on vLLM's layers.

- lightning layers: `M1LightningAttention` (per-request fp32 state in vLLM's mamba cache),
- softmax layers: vLLM `Attention` over the paged KV cache, GQA, neox RoPE on the first rotary_dim dims,
- MoE: vLLM's fused experts (top-k of an fp32 softmax router, renormalised), sharded across TP ranks,
- blocks: M1's postnorm residual (x' = α·RMSNorm(x) + β·f(RMSNorm(x))),
- weights: M1 checkpoint names (and transformers' MiniMax names, mapped as m1bench's loader maps them).
The model is a vLLM hybrid (`IsHybrid`, `HasInnerState`): vLLM sizes the state pool from
`get_mamba_state_shape_from_config` and the KV cache from the softmax layers.
"""
from collections.abc import Iterable

import torch
from torch import nn
from vllm.compilation.decorators import support_torch_compile
from vllm.config import VllmConfig
from vllm.distributed import get_tensor_model_parallel_world_size
from vllm.model_executor.layers.attention import Attention
from vllm.model_executor.layers.fused_moe import GateLinear
from vllm.model_executor.layers.layernorm import RMSNorm
from vllm.model_executor.layers.linear import QKVParallelLinear, RowParallelLinear
from vllm.model_executor.layers.logits_processor import LogitsProcessor
from vllm.model_executor.layers.mamba.mamba_utils import MambaStateCopyFuncCalculator, MambaStateShapeCalculator
from vllm.model_executor.layers.rotary_embedding import get_rope
from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, VocabParallelEmbedding
from vllm.model_executor.models.interfaces import HasInnerState, IsHybrid
from vllm.model_executor.models.utils import AutoWeightsLoader, WeightsMapper, maybe_prefix
from vllm.sequence import IntermediateTensors

from m1bench.model.checkpoint import from_transformers_names
from m1bench.model.config import LIGHTNING, M1Config
from m1bench.model.vllm_plugin.compat import fused_moe
from m1bench.model.vllm_plugin.lightning import M1LightningAttention


def m1_config(hf_config) -> M1Config:
    """The validated M1 facts of a vLLM hf_config (errors name the field)."""
    raw = {k: v for k, v in hf_config.to_dict().items() if v is not None}
    return M1Config.from_dict(raw, source=f"{getattr(hf_config, '_name_or_path', '') or '<hf_config>'}/config.json")


class M1SoftmaxAttention(nn.Module):
    def __init__(self, m1: M1Config, cache_config, quant_config, prefix: str):
        super().__init__()
        tp = get_tensor_model_parallel_world_size()
        if m1.num_attention_heads % tp:
            raise ValueError(f"num_attention_heads ({m1.num_attention_heads}) must be divisible by the "
                             f"tensor parallel size ({tp})")
        d = m1.head_dim
        self.heads = m1.num_attention_heads // tp
        self.kv_heads = max(1, m1.num_key_value_heads // tp)  # replicated when fewer kv heads than ranks
        self.q_size, self.kv_size = self.heads * d, self.kv_heads * d
        self.qkv_proj = QKVParallelLinear(m1.hidden_size, d, m1.num_attention_heads, m1.num_key_value_heads,
                                          bias=False, quant_config=quant_config, prefix=f"{prefix}.qkv_proj")
        self.o_proj = RowParallelLinear(m1.num_attention_heads * d, m1.hidden_size, bias=False,
                                        quant_config=quant_config, prefix=f"{prefix}.o_proj")
        self.rotary_emb = get_rope(d, max_position=m1.max_position_embeddings, is_neox_style=True,
                                   rope_parameters={"rope_theta": m1.rope_theta, "rope_dim": m1.rotary_dim})
        self.attn = Attention(self.heads, d, d ** -0.5, num_kv_heads=self.kv_heads, cache_config=cache_config,
                              quant_config=quant_config, prefix=f"{prefix}.attn")

    def forward(self, hidden_states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        qkv, _ = self.qkv_proj(hidden_states)
        q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        q, k = self.rotary_emb(positions, q, k)
        out, _ = self.o_proj(self.attn(q, k, v))
        return out


class M1MoE(nn.Module):
    def __init__(self, m1: M1Config, quant_config, prefix: str):
        super().__init__()
        self.hidden_size = m1.hidden_size
        # The router runs in fp32 (M1 code), whatever the model dtype.
        self.gate = GateLinear(m1.hidden_size, m1.num_local_experts, bias=False, params_dtype=torch.float32,
                               out_dtype=torch.float32, prefix=f"{prefix}.gate")
        self.experts = fused_moe(num_experts=m1.num_local_experts, top_k=m1.num_experts_per_tok,
                                       hidden_size=m1.hidden_size, intermediate_size=m1.intermediate_size,
                                       renormalize=True, scoring_func="softmax", quant_config=quant_config,
                                       router_logits_dtype=torch.float32, prefix=f"{prefix}.experts",
                                       ckpt_names=("w1", "w2", "w3"))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        router_logits, _ = self.gate(hidden_states.float())
        return self.experts(hidden_states=hidden_states, router_logits=router_logits)


class M1DecoderLayer(nn.Module):
    def __init__(self, hf_config, m1: M1Config, layer: int, vllm_config: VllmConfig, prefix: str):
        super().__init__()
        self.is_lightning = m1.attn_type_list[layer] == LIGHTNING
        if self.is_lightning:
            self.self_attn = M1LightningAttention(hf_config, m1, vllm_config, prefix=f"{prefix}.self_attn")
        else:
            self.self_attn = M1SoftmaxAttention(m1, vllm_config.cache_config, vllm_config.quant_config,
                                                prefix=f"{prefix}.self_attn")
        self.block_sparse_moe = M1MoE(m1, vllm_config.quant_config, prefix=f"{prefix}.block_sparse_moe")
        self.input_layernorm = RMSNorm(m1.hidden_size, eps=m1.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(m1.hidden_size, eps=m1.rms_norm_eps)
        self.postnorm = m1.postnorm
        self.attn_alpha, self.attn_beta = m1.layer_alpha_beta(layer)
        self.mlp_alpha, self.mlp_beta = m1.layernorm_mlp_alpha, m1.layernorm_mlp_beta

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        h = self.input_layernorm(x)
        if self.is_lightning:
            a = torch.empty_like(h)
            self.self_attn(h, a, positions)
        else:
            a = self.self_attn(h, positions)
        x = (h if self.postnorm else x) * self.attn_alpha + a * self.attn_beta
        h = self.post_attention_layernorm(x)
        return (h if self.postnorm else x) * self.mlp_alpha + self.block_sparse_moe(h) * self.mlp_beta


@support_torch_compile
class M1Model(nn.Module):
    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        hf_config = vllm_config.model_config.hf_config
        m1 = m1_config(hf_config)
        self.embed_tokens = VocabParallelEmbedding(m1.vocab_size, m1.hidden_size)
        self.layers = nn.ModuleList(
            M1DecoderLayer(hf_config, m1, i, vllm_config, prefix=f"{prefix}.layers.{i}")
            for i in range(m1.num_hidden_layers))
        self.norm = RMSNorm(m1.hidden_size, eps=m1.rms_norm_eps)

    def embed_input_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(input_ids)

    def forward(self, input_ids: torch.Tensor | None, positions: torch.Tensor,
                intermediate_tensors: IntermediateTensors | None = None,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        x = inputs_embeds if inputs_embeds is not None else self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, positions)
        return self.norm(x)


class _TransformersNames(WeightsMapper):
    """transformers' MiniMax names (packed experts, `mlp.gate`) -> M1 names, then the vLLM mapping."""

    def apply(self, weights):
        return super().apply((n, t) for name, tensor in weights for n, t in from_transformers_names(name, tensor))


class MiniMaxM1ForCausalLM(nn.Module, HasInnerState, IsHybrid):
    # Softmax layers keep q/k/v apart in the checkpoint; vLLM fuses them into one sharded qkv_proj.
    # (The lightning layers' `qkv_proj` is already fused: ".q_proj" does not match "self_attn.qkv_proj".)
    hf_to_vllm_mapper = _TransformersNames(orig_to_new_stacked={
        ".q_proj": (".qkv_proj", "q"), ".k_proj": (".qkv_proj", "k"), ".v_proj": (".qkv_proj", "v")})
    packed_modules_mapping = {"qkv_proj": ["q_proj", "k_proj", "v_proj"]}

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        config = vllm_config.model_config.hf_config
        if vllm_config.parallel_config.pipeline_parallel_size > 1:
            raise ValueError("m1bench's M1 plugin supports tensor parallelism only (pipeline_parallel_size=1)")
        self.config = config
        self.model = M1Model(vllm_config=vllm_config, prefix=maybe_prefix(prefix, "model"))
        self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size, quant_config=vllm_config.quant_config,
                                      prefix=maybe_prefix(prefix, "lm_head"))
        self.logits_processor = LogitsProcessor(config.vocab_size)

    def embed_input_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.embed_input_ids(input_ids)

    def forward(self, input_ids: torch.Tensor | None, positions: torch.Tensor,
                intermediate_tensors: IntermediateTensors | None = None,
                inputs_embeds: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return self.model(input_ids, positions, intermediate_tensors, inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.logits_processor(self.lm_head, hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights, mapper=self.hf_to_vllm_mapper)

    # ---- vLLM hybrid-model interface: one fp32 (heads/tp, d, d) state per request and layer ----
    @classmethod
    def get_mamba_state_shape_from_config(cls, vllm_config: VllmConfig) -> tuple[tuple[int, int, int]]:
        m1 = m1_config(vllm_config.model_config.hf_config)
        return MambaStateShapeCalculator.linear_attention_state_shape(
            num_heads=m1.num_attention_heads, tp_size=vllm_config.parallel_config.tensor_parallel_size,
            head_dim=m1.head_dim)

    @classmethod
    def get_mamba_state_dtype_from_config(cls, vllm_config: VllmConfig) -> tuple[torch.dtype]:
        return (torch.float32,)

    @classmethod
    def get_mamba_state_copy_func(cls) -> tuple:
        return MambaStateCopyFuncCalculator.linear_attention_state_copy_func()


class MiniMaxText01ForCausalLM(MiniMaxM1ForCausalLM):
    """MiniMax-Text-01: the same architecture under its own name."""
