"""Top-k mixture of SwiGLU experts with an fp32 softmax router and renormalised top-k weights.

Two ways through the same function. `forward` sorts the (token, slot) pairs by expert and runs each
expert on its slice, one host sync per layer for the slices' sizes, then gathers the outputs back
into (token, slot) order and sums each token's k: what prefill and training run.
`decode` takes the routing from the decode step (fused with the norm before it, kernels/linear)
and runs every expert's rows at once over the experts' weights stacked [E, ...] (kernels/moe):
fixed shapes and no host sync, so the decode step can be captured in a CUDA graph. The stacked
weights are the experts' own storage (model/packing.py), so they cost no memory and follow every
in-place update.
"""
import torch
import torch.nn.functional as F
from torch import nn

from m1bench.kernels import moe as moe_kernels
from m1bench.model.config import M1Config
from m1bench.model.packing import packed_rows


class Expert(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.w1 = nn.Linear(hidden, intermediate, bias=False)  # gate
        self.w3 = nn.Linear(hidden, intermediate, bias=False)  # up
        self.w2 = nn.Linear(intermediate, hidden, bias=False)  # down

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class SparseMoE(nn.Module):
    def __init__(self, config: M1Config, layer: int):
        super().__init__()
        self.layer, self.top_k = layer, config.num_experts_per_tok
        self.recorder = None  # a RoutingRecorder while routing statistics are on
        self.gate = nn.Linear(config.hidden_size, config.num_local_experts, bias=False)
        self.experts = nn.ModuleList(Expert(config.hidden_size, config.intermediate_size)
                                     for _ in range(config.num_local_experts))
        self._packed: dict[str, torch.Tensor] = {}

    def route(self, x: torch.Tensor):
        """x [N, hidden] -> (weights [N, k] fp32, expert ids [N, k])."""
        return moe_kernels.reference.route(x, self.gate.weight, self.top_k)

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        weights, ids = self.route(x)
        if self.recorder is not None:
            self.recorder.record(self.layer, ids, weights)
        # The (token, slot) pairs sorted by expert: each expert's rows are one contiguous slice.
        pairs = ids.flatten()
        order = pairs.argsort(stable=True)
        parts = x[order // self.top_k].split(torch.bincount(pairs, minlength=len(self.experts)).tolist())
        y = torch.cat([expert(part) for expert, part in zip(self.experts, parts)])
        # Back to (token, slot) order by a gather, not a scatter-add (which serialises on atomics),
        # weighted and summed over k in the same pass (the kernel has no backward: training takes torch's).
        unsort = torch.empty_like(order)
        unsort[order] = torch.arange(len(order), device=order.device)
        out = moe_kernels.gather_sum(y, unsort, weights, impl="torch" if y.requires_grad else "auto")
        return out.view(shape)

    def stacked_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(w13 [E, 2I, H]: each expert's gate rows then up rows, w2 [E, H, I]), the experts' own storage."""
        E, (I, H) = len(self.experts), self.experts[0].w1.weight.shape
        w13 = packed_rows(self._packed, "w13", [w for e in self.experts for w in (e.w1.weight, e.w3.weight)])
        w2 = packed_rows(self._packed, "w2", [e.w2.weight for e in self.experts])
        return w13.view(E, 2 * I, H), w2.view(E, H, I)

    def decode(self, x: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """x [N, hidden] routed to experts `ids` [N, k] with `weights` [N, k] -> [N, k, hidden]: each
        chosen expert's output times its routing weight (the caller sums over k)."""
        if self.recorder is not None:
            self.recorder.record(self.layer, ids.long(), weights)
        return moe_kernels.experts(x, *self.stacked_weights(), weights, ids)
