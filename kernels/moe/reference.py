"""Top-k mixture of SwiGLU experts, dispatched by sorting: the PyTorch definitions of the MoE's two
halves (routing and the experts), for the decode step. Pairs (token, slot) are sorted by expert and
each expert's rows go through one grouped matrix product (`torch._grouped_mm`, which on CPU equals
`F.linear` per group), so the work has one shape whatever the routing: no per-expert loop."""
import torch
import torch.nn.functional as F


def route(x: torch.Tensor, gate_weight: torch.Tensor, top_k: int):
    """x [N, hidden] -> (weights [N, k] fp32, expert ids [N, k]): fp32 softmax router, renormalised top-k."""
    probs = torch.softmax(F.linear(x.float(), gate_weight.float()), dim=-1)
    weights, ids = probs.topk(top_k, dim=-1)
    return weights / weights.sum(-1, keepdim=True), ids


def experts(x, w13, w2, weights, ids):
    """The routed experts' outputs, each scaled by its routing weight: [N, k, hidden].
    x [N, hidden]; w13 [E, 2I, hidden] (gate rows then up rows, as nn.Linear weights); w2 [E, hidden, I]."""
    N, k = ids.shape
    I = w2.shape[-1]
    flat = ids.flatten()
    order = flat.argsort(stable=True)
    offsets = torch.bincount(flat, minlength=w13.shape[0]).cumsum(0).to(torch.int32)
    h = torch._grouped_mm(x[order // k], w13.transpose(1, 2), offs=offsets)
    act = F.silu(h[:, :I]) * h[:, I:]
    y = torch._grouped_mm(act, w2.transpose(1, 2), offs=offsets) * weights.flatten()[order, None].to(x.dtype)
    out = torch.empty_like(y)
    out[order] = y
    return out.view(N, k, -1)


def gather_sum(y, unsort, weights):
    """[N, hidden]: each token's k expert outputs, rows `unsort` [N * k] of y [pairs, hidden] in
    (token, slot) order, times their routing weights `weights` [N, k] (fp32, rounded to y's dtype
    first), summed in fp32 and rounded once."""
    N, k = weights.shape
    return (y[unsort].view(N, k, -1) * weights[..., None].to(y.dtype)).sum(1)
