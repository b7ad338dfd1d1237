"""The reference engine for 128K-1M-token prompts: one request per batch, so no row is padded and
the softmax layers run SDPA with a lazy causal bias (model/cache.py) instead of a [T, S] mask."""
from __future__ import annotations

from typing import Any


def long_context_client(checkpoint: str, dtype: str = "bfloat16", device: str = "cuda") -> Any:
    from m1bench.harness.clients.engine import EngineClient

    return EngineClient.from_checkpoint(checkpoint, dtype=dtype, device=device, batch_size=1)
