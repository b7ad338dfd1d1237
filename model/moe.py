"""Top-k mixture of SwiGLU experts with an fp32 softmax router and renormalised top-k weights."""
import torch
import torch.nn.functional as F
from torch import nn

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

    def route(self, x: torch.Tensor):
        """x [N, hidden] -> (weights [N, k] fp32, expert ids [N, k])."""
        probs = torch.softmax(F.linear(x.float(), self.gate.weight.float()), dim=-1)
        weights, ids = probs.topk(self.top_k, dim=-1)
        return weights / weights.sum(-1, keepdim=True), ids

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
