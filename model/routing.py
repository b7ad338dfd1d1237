"""Expert-routing statistics: which experts each request's tokens were routed to, per MoE layer.

Off by default (the MoE checks one attribute); `model.recording_routing(recorder)` turns it on for
a block. Per request: token counts per (layer, expert), load balance per layer (coefficient of
variation of the counts, share of the busiest expert) and the distribution of the top-1 routing
weight (renormalised top-k weights, so it lies in [1/k, 1])."""
import torch

TOP1_BINS = 10


class RoutingRecorder:
    def __init__(self, num_layers: int, num_experts: int, top_k: int):
        self.num_layers, self.num_experts, self.top_k = num_layers, num_experts, top_k
        self.counts = torch.zeros(0, num_layers, num_experts, dtype=torch.long)  # [request, layer, expert]
        self.top1 = torch.zeros(0, num_layers, TOP1_BINS, dtype=torch.long)  # [request, layer, bin]
        self.rows = torch.zeros(1, dtype=torch.long)
        self.token_mask: torch.Tensor | None = None

    def begin_step(self, rows: list[int], token_mask: torch.Tensor | None):
        """The next forward's batch rows belong to requests `rows`; `token_mask` [B, T] marks real tokens."""
        self.rows, self.token_mask = torch.tensor(rows, dtype=torch.long), token_mask
        grow = int(self.rows.max()) + 1 - self.counts.shape[0]
        if grow > 0:
            self.counts = torch.cat([self.counts, self.counts.new_zeros(grow, *self.counts.shape[1:])])
            self.top1 = torch.cat([self.top1, self.top1.new_zeros(grow, *self.top1.shape[1:])])

    def record(self, layer: int, ids: torch.Tensor, weights: torch.Tensor):
        """ids, weights [B*T, k] from one MoE layer's router; one vectorised count per call."""
        B, k = len(self.rows), self.top_k
        ids, weights = ids.detach().cpu().view(B, -1, k), weights.detach().cpu().view(B, -1, k)
        lo = 1.0 / k
        bins = ((weights.max(-1).values - lo) / (1 - lo) * TOP1_BINS).long().clamp(0, TOP1_BINS - 1)
        real = (torch.ones(bins.shape, dtype=torch.long) if self.token_mask is None
                else self.token_mask.cpu().long())  # [B, T]
        row = torch.arange(B)[:, None]
        expert_hits = torch.zeros(B, self.num_experts, dtype=torch.long)
        expert_hits.index_put_((row[..., None].expand_as(ids), ids), real[..., None].expand_as(ids), accumulate=True)
        bin_hits = torch.zeros(B, TOP1_BINS, dtype=torch.long)
        bin_hits.index_put_((row.expand_as(bins), bins), real, accumulate=True)
        self.counts[self.rows, layer] += expert_hits
        self.top1[self.rows, layer] += bin_hits

    def summary(self, request: int) -> dict:
        return summarize(self.counts[request], self.top1[request], self.top_k)


def summarize(counts: torch.Tensor, top1: torch.Tensor, top_k: int) -> dict:
    """The documented per-request (or aggregated) routing summary; JSON-serialisable."""
    c = counts.double()
    per_layer = c.sum(1, keepdim=True).clamp(min=1)
    cv = (c.std(1, unbiased=False) / c.mean(1).clamp(min=1e-12))
    return {
        "tokens": int(counts[0].sum() // top_k),
        "top_k": top_k,
        "counts": counts.tolist(),  # [layer][expert]: tokens routed there
        "cv": [round(v, 4) for v in cv.tolist()],  # coefficient of variation of counts, per layer
        "max_share": [round(v, 4) for v in (c.max(1).values / per_layer[:, 0]).tolist()],  # busiest expert
        "top1_weight_hist": top1.tolist(),  # [layer][bin], bins split [1/k, 1] evenly
    }


def aggregate(summaries: list[dict]) -> dict:
    """Sum of per-request summaries (a suite's or a run's routing), summarised the same way."""
    if not summaries:
        raise ValueError("no routing summaries to aggregate")
    counts = sum(torch.tensor(s["counts"]) for s in summaries)
    top1 = sum(torch.tensor(s["top1_weight_hist"]) for s in summaries)
    return summarize(counts, top1, summaries[0]["top_k"])
