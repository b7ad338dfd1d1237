"""Weights the decode step reads as one tensor: several parameters packed one after another along
their first dim (the lightning layer's qkv and gate projections, a softmax layer's q, k and v, the
experts' gate/up and down matrices), so that one kernel streams them all. The parameters become
views into the packed tensor: one copy in memory, and every in-place update (training, loading)
is seen by both. Whatever replaces a parameter's storage (`.to()`, `load_state_dict` with
assign) unties it; the next call packs again."""
import torch
from torch import nn


def packed_rows(cache: dict, key: str, params: list[nn.Parameter]) -> torch.Tensor:
    """[sum of the params' rows, ...]: `params` stacked along dim 0, kept in `cache[key]`."""
    buf = cache.get(key)
    if buf is None or not _tied(buf, params):
        # Ordinary tensors even when called under inference_mode: the parameters stay trainable.
        with torch.inference_mode(False), torch.no_grad():
            buf = torch.cat([p.detach() for p in params])
            start = 0
            for p in params:
                p.data = buf[start:start + p.shape[0]]
                start += p.shape[0]
        cache[key] = buf
    return buf


def _tied(buf: torch.Tensor, params: list[nn.Parameter]) -> bool:
    row = buf.stride(0) * buf.element_size()
    start = 0
    for p in params:
        if p.dtype != buf.dtype or p.device != buf.device or p.data_ptr() != buf.data_ptr() + start * row:
            return False
        start += p.shape[0]
    return start == buf.shape[0]
