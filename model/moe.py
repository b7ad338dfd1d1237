"""Top-k mixture of SwiGLU experts with an fp32 softmax router and renormalised top-k weights.

Two ways through the same function. `forward` loops over the experts that were chosen (a host sync
per layer, data-dependent shapes): the plain form, differentiable, what prefill and training run.
`decode` sorts the (token, slot) pairs by expert and runs every expert's rows at once over the
experts' weights stacked [E, ...] (kernels/moe): fixed shapes and no host sync, so the decode
step can be captured in a CUDA graph. The stacked weights are the experts' own storage (each
expert's parameters are views into them), so they cost no memory and follow every in-place update.
"""
import torch
import torch.nn.functional as F
from torch import nn

from m1bench.kernels import moe as moe_kernels
from m1bench.model.config import M1Config


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
        self._stacked: tuple[torch.Tensor, torch.Tensor] | None = None  # (w13 [E, 2I, H], w2 [E, H, I])

    def route(self, x: torch.Tensor):
        """x [N, hidden] -> (weights [N, k] fp32, expert ids [N, k])."""
        return moe_kernels.reference.route(x, self.gate.weight, self.top_k)

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        weights, ids = self.route(x)
        if self.recorder is not None:
            self.recorder.record(self.layer, ids, weights)
        out = torch.zeros_like(x)
        for e in ids.unique().tolist():
            token, slot = (ids == e).nonzero(as_tuple=True)
            y = self.experts[e](x[token]) * weights[token, slot, None].to(x.dtype)
            out.index_add_(0, token, y)
        return out.view(shape)

    def stacked_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(w13 [E, 2I, H]: each expert's gate rows then up rows, w2 [E, H, I]). The experts' parameters
        are made views into these (one copy, the first time, and again whenever something replaced
        them, e.g. `.to()`), so the stacks always hold the current weights."""
        w13, w2 = self._stacked or (None, None)
        I = self.experts[0].w1.out_features
        tied = w13 is not None and all(
            e.w1.weight.data_ptr() == w13[i].data_ptr() and e.w3.weight.data_ptr() == w13[i, I:].data_ptr()
            and e.w2.weight.data_ptr() == w2[i].data_ptr() for i, e in enumerate(self.experts))
        if not tied:
            # Ordinary tensors even when called under inference_mode: the parameters stay trainable.
            with torch.inference_mode(False), torch.no_grad():
                w13 = torch.stack([torch.cat([e.w1.weight, e.w3.weight]) for e in self.experts])
                w2 = torch.stack([e.w2.weight for e in self.experts])
                for i, e in enumerate(self.experts):
                    e.w1.weight.data, e.w3.weight.data, e.w2.weight.data = w13[i, :I], w13[i, I:], w2[i]
            self._stacked = (w13, w2)
        return w13, w2

    def decode(self, x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        """x [N, hidden] -> [N, k, hidden]: each chosen expert's output times its routing weight (the
        caller sums over k). w13, w2 from `stacked_weights()` (fetched once per step by the caller)."""
        weights, ids = moe_kernels.route(x, self.gate.weight, self.top_k)
        if self.recorder is not None:
            self.recorder.record(self.layer, ids.long(), weights)
        return moe_kernels.experts(x, w13, w2, weights, ids)
