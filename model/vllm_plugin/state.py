"""One vLLM batch through the lightning layers' per-request states (no vLLM import: testable alone).

vLLM packs a step's requests into one token dimension, decodes first (one token each), then
prefills (any number of tokens; a later chunk of a long prompt continues from its slot's state). Each
request owns a slot of the state pool [slots, heads, d, d] (fp32). m1bench's kernels do the math:
Triton on GPU tensors, the PyTorch references elsewhere.
"""
import torch

from m1bench.kernels import lightning_attention, lightning_decode


def lightning_batch(q, k, v, slopes, pool, slots, seq_lens, query_start_loc, num_decodes: int,
                    num_decode_tokens: int, num_prefills: int) -> torch.Tensor:
    """q, k, v [tokens, heads, d]; slots/seq_lens [requests] (decodes first); query_start_loc
    [requests + 1]. Updates `pool` in place; returns o [tokens, heads, d]."""
    nd, ndt = num_decodes, num_decode_tokens
    parts = []
    if nd:
        # A one-token prompt is scheduled as a "decode": it must not inherit what the slot's
        # previous owner left there (vLLM's own M1 layer clears slots for prefills only). Rows that
        # pad a CUDA-graph batch have slot -1 (the decode kernel skips them); here they read and
        # rewrite slot 0, vLLM's null block, which no request owns.
        d_slots = slots[:nd].long().clamp(min=0)
        fresh = (seq_lens[:nd] == 1).view(-1, 1, 1, 1)
        pool[d_slots] = torch.where(fresh, 0.0, pool[d_slots])
        parts.append(lightning_decode(q[:ndt], k[:ndt], v[:ndt], slopes, pool, slots[:nd]))
    if num_prefills:
        bounds = query_start_loc[nd:nd + num_prefills + 1]
        cu_seqlens = bounds - bounds[0]
        p_slots = slots[nd:nd + num_prefills].long()
        # A request whose earlier tokens were already fed (chunked prefill) continues from its
        # slot; a new one starts from zero, whatever a previous owner left in the slot.
        continues = (seq_lens[nd:nd + num_prefills] > cu_seqlens.diff()).view(-1, 1, 1, 1)
        initial = torch.where(continues, pool[p_slots], 0.0)
        o, final = lightning_attention(q[None, ndt:], k[None, ndt:], v[None, ndt:], slopes,
                                       initial_state=initial, cu_seqlens=cu_seqlens)
        pool[p_slots] = final
        parts.append(o[0])
    return parts[0] if len(parts) == 1 else torch.cat(parts)
