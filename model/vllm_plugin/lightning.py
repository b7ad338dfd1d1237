"""M1's lightning attention as a vLLM hybrid-model layer.

vLLM's `LinearAttention` base (a `MambaBase`) gives each layer a per-request state slot in the
mamba cache: `self.kv_cache[0]` is a pool [slots, heads/tp, d, d] and the `linear_attn` backend's
metadata says which slot each request owns. The layer runs through vLLM's registered
`vllm::linear_attention` op, which torch.compile splits the graph at and which calls `_forward`
below. The math is m1bench's: `lightning_attention` (varlen prefill with initial/final state) and
`lightning_decode` (slot pool, in place), Triton on GPU and the PyTorch references on CPU; never
vLLM's own lightning kernels (Triton-only, and the prefill is suspected of an off-by-one).
"""
import torch
import torch.nn.functional as F

# Importing this module registers the `vllm::linear_attention` custom op we dispatch through.
import vllm.model_executor.layers.mamba.linear.minimax_linear_attn  # noqa: F401
from vllm.config import get_current_vllm_config
from vllm.forward_context import get_forward_context
from vllm.model_executor.layers.linear import ColumnParallelLinear, RowParallelLinear
from vllm.model_executor.layers.mamba.linear.base import LinearAttention
from vllm.model_executor.layers.minimax_rms_norm import MiniMaxText01RMSNormTP
from vllm.v1.attention.backends.linear_attn import LinearAttentionMetadata

from m1bench.kernels import lightning_attention
from m1bench.model.config import M1Config
from m1bench.model.layers import LIGHTNING_NORM_EPS
from m1bench.model.vllm_plugin.state import lightning_batch


class M1LightningAttention(LinearAttention):
    """qkv = SiLU(W_qkv x) per head; decayed linear attention; RMSNorm over all heads (TP-aware);
    × sigmoid(W_gate x); out_proj. Heads are split across tensor-parallel ranks."""

    def __init__(self, hf_config, m1: M1Config, vllm_config, prefix: str):
        super().__init__(hf_config, vllm_config, prefix)
        d = self.head_dim
        self.tp_heads = self.num_heads // self.tp_size
        # Checkpoint layout of qkv_proj rows is per head [q | k | v], so a contiguous column shard
        # holds whole heads.
        self.qkv_proj = ColumnParallelLinear(self.hidden_size, 3 * self.hidden_inner_size, bias=False,
                                             quant_config=self.quant_config, prefix=f"{prefix}.qkv_proj")
        self.output_gate = ColumnParallelLinear(self.hidden_size, self.hidden_inner_size, bias=False,
                                                quant_config=self.quant_config, prefix=f"{prefix}.output_gate")
        self.out_proj = RowParallelLinear(self.hidden_inner_size, self.hidden_size, bias=False,
                                          quant_config=self.quant_config, prefix=f"{prefix}.out_proj")
        # The norm spans all heads, so its variance is all-reduced across ranks.
        self.norm = MiniMaxText01RMSNormTP(self.hidden_inner_size, eps=LIGHTNING_NORM_EPS)  # as the reference
        slopes = torch.tensor(m1.lightning_slopes(self.layer_idx), dtype=torch.float32)
        self.register_buffer("slopes", slopes[self.tp_rank * self.tp_heads:(self.tp_rank + 1) * self.tp_heads]
                             .contiguous(), persistent=False)
        self.split = (d, d, d)

        context = get_current_vllm_config().compilation_config.static_forward_context
        if prefix in context:
            raise ValueError(f"duplicate layer name: {prefix}")
        context[prefix] = self

    def get_state_dtype(self) -> tuple[torch.dtype]:
        return (torch.float32,)  # the (H, d, d) state is fp32 whatever the weights, as in the reference model

    def forward(self, hidden_states: torch.Tensor, output: torch.Tensor, positions: torch.Tensor) -> None:
        torch.ops.vllm.linear_attention(hidden_states, output, positions, self.prefix)

    def _forward(self, hidden_states: torch.Tensor, output: torch.Tensor, positions: torch.Tensor) -> None:
        metadata = get_forward_context().attn_metadata
        meta = metadata.get(self.prefix) if isinstance(metadata, dict) else None
        n = hidden_states.shape[0] if meta is None else meta.num_prefill_tokens + meta.num_decode_tokens
        x = hidden_states[:n]
        qkv, _ = self.qkv_proj(x)
        q, k, v = F.silu(qkv).view(n, self.tp_heads, 3 * self.head_dim).split(self.split, dim=-1)
        if meta is None:  # memory-profiling / dummy run: no state slots exist yet
            o = lightning_attention(q[None], k[None], v[None], self.slopes)[0][0]
        else:
            o = self._attend(q, k, v, meta)
        o = self.norm._forward(o.reshape(n, -1))
        gate, _ = self.output_gate(x)
        out, _ = self.out_proj(torch.sigmoid(gate) * o)
        output[:n] = out

    def _attend(self, q, k, v, meta: LinearAttentionMetadata) -> torch.Tensor:
        return lightning_batch(q, k, v, self.slopes, self.kv_cache[0], meta.state_indices_tensor, meta.seq_lens,
                               meta.query_start_loc, meta.num_decodes, meta.num_decode_tokens, meta.num_prefills)
