"""Counted FLOPs: run the reference model under torch.utils.flop_counter and set the counts, component by
component, beside the analytic model (model/flops.py).

FlopCounterMode counts matrix products per module. Components are read off the module tree: the
Linear children of an attention module are its projections; what the attention module counts beyond
them is its attention core (SDPA for softmax layers, the lightning kernel for lightning layers); an MoE
block's experts are its expert modules and the rest of it is the router (an fp32 F.linear).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import _disable_current_modes
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from m1bench.model.flops import decode_flops, executed_block_size, prefill_flops
from m1bench.model.arch import from_m1_config
from m1bench.model import cache as cache_module

# Comparison groups: counted component -> analytic components it should equal.
GROUPS = {
    "attn_proj": ("attn_proj",),
    "softmax_attention": ("attn_scores", "attn_values"),
    "lightning": ("lightning_intra", "lightning_inter", "lightning_state"),
    "router": ("router",),
    "experts": ("experts",),
    "lm_head": ("lm_head",),
}
# What FlopCounterMode cannot see, by phase: decode's state update S <- exp(-s) S + k^T v is an
# elementwise outer product and add (no matmul), so only o = q S is counted.
UNSEEN = {"decode": {"lightning_state": "elementwise outer product k^T v + add (no matmul op to count)"},
          "prefill": {}}


def _cpu_flash_sdpa(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _grouped_mm(a_shape, b_shape, *args, **kwargs) -> int:
    """torch._grouped_mm(a [M, K], b [G, K, N], offs): each of the M rows meets its group's K x N matrix."""
    return 2 * a_shape[0] * a_shape[-1] * b_shape[-1]


# torch counts the CUDA SDPA kernels but not the CPU flash kernel that CPU SDPA calls; give it torch's
# own SDPA formula (dense: every query against every key of the call, whatever the mask). Nor does it
# count the grouped product the decode step's MoE runs its experts with (kernels/moe/reference.py).
CUSTOM_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_sdpa,
                   torch.ops.aten._grouped_mm: _grouped_mm}


@dataclass
class Step:
    phase: str          # "prefill" | "decode"
    start: int          # position of the first token of the forward
    length: int         # tokens in the forward
    counted: dict       # group -> FLOPs counted by FlopCounterMode
    analytic: dict      # component -> analytic FLOPs for the same forward (as executed: dense SDPA)
    uncounted: float    # FLOPs FlopCounterMode saw outside every group (should be 0)
    causal_attention: float = 0.0  # softmax scores + values a causal kernel would need (prefill)

    def rows(self) -> list[dict]:
        out = []
        unseen = UNSEEN[self.phase]
        for group, comps in GROUPS.items():
            full = sum(float(self.analytic[c]) for c in comps)
            seen = sum(float(self.analytic[c]) for c in comps if c not in unseen)
            counted = float(self.counted.get(group, 0.0))
            if full == 0 and counted == 0:
                continue
            rel = abs(counted - seen) / seen if seen else float("inf")
            notes = [f"{c} not counted: {why}" for c, why in unseen.items() if c in comps and self.analytic[c]]
            if group == "softmax_attention" and self.phase == "prefill" and self.length > 1:
                notes.append(f"torch's SDPA formula counts the dense {self.length} x {self.start + self.length} "
                             f"scores whatever the mask (causal needs {self.causal_attention:.4g})")
            note = "; ".join(notes)
            out.append({"phase": self.phase, "start": self.start, "length": self.length, "component": group,
                        "counted": counted, "analytic_seen": seen, "analytic": full, "rel_diff": rel, "note": note})
        return out


def _attribute(model: nn.Module, counts: dict) -> tuple[dict, float]:
    names = {id(m): f"{type(model).__name__}.{n}" if n else type(model).__name__ for n, m in model.named_modules()}
    flops = lambda m: float(sum(counts.get(names[id(m)], {}).values()))
    out = {g: 0.0 for g in GROUPS}
    for layer in model.model.layers:
        attn, moe = layer.self_attn, layer.block_sparse_moe
        proj = sum(flops(c) for c in attn.children() if isinstance(c, nn.Linear))
        out["attn_proj"] += proj
        out["lightning" if layer.is_lightning else "softmax_attention"] += flops(attn) - proj
        experts = sum(flops(e) for e in moe.experts)
        out["experts"] += experts
        out["router"] += flops(moe) - experts
    out["lm_head"] += flops(model.lm_head)
    total = float(sum(counts.get("Global", {}).values()))
    return out, total - sum(out.values())


@contextlib.contextmanager
def _causal_bias_outside_modes():
    """The cache's lazy causal mask is a torch.nn.attention.bias.CausalBias, a Tensor subclass that cannot
    be constructed while a TorchDispatchMode (FlopCounterMode) is active ("raw Tensor object is already
    associated to a python object"). Build it with the modes switched off; SDPA still runs, and is
    counted, inside the mode."""
    make = cache_module.causal_lower_right

    def outside(*size):
        with _disable_current_modes():
            return make(*size)
    cache_module.causal_lower_right = outside
    try:
        yield
    finally:
        cache_module.causal_lower_right = make


def count_forward(model, input_ids, cache, logits_to_keep: int = 0) -> tuple[dict, float]:
    with torch.no_grad(), _causal_bias_outside_modes(), \
            FlopCounterMode(display=False, custom_mapping=CUSTOM_FORMULAS) as fc:
        model(input_ids, cache=cache, logits_to_keep=logits_to_keep)
    return _attribute(model, fc.get_flop_counts())


def count_generation(model, prompt_chunks: list[int], decode_steps: int, seed: int = 0) -> list[Step]:
    """Prefill a random prompt in the given chunk lengths, then decode `decode_steps` tokens one at a
    time; count every forward and compute the analytic FLOPs of the same forward."""
    config = model.config
    spec = from_m1_config(config, name="reference")
    block = executed_block_size()
    gen = torch.Generator().manual_seed(seed)
    cache = model.new_cache(1)
    steps, pos = [], 0
    for T in [*prompt_chunks, *[1] * decode_steps]:
        ids = torch.randint(0, config.vocab_size, (1, T), generator=gen)
        counted, other = count_forward(model, ids, cache)
        if T == 1:  # the model takes the decode path for a one-token forward
            steps.append(Step("decode", pos, 1, counted, decode_flops(spec, pos), other))
        else:
            analytic = prefill_flops(spec, T, pos, block=block, attention="dense", logits="all")
            causal = prefill_flops(spec, T, pos, block=block, attention="causal", logits="all")
            steps.append(Step("prefill", pos, T, counted, analytic, other,
                              float(causal["attn_scores"] + causal["attn_values"])))
        pos += T
    return steps
