"""The reference engine at 128K-1M tokens.

`InferenceCache.attention_mask` materialises a [B, 1, T, S] boolean mask and an S x S identity for
every softmax layer call: 2 x 10^12 bytes at S = 1M, so the stock engine cannot prefill or decode
there. Without left padding (one request per batch) the mask is just "causal, aligned to the last
key", which SDPA takes as a `CausalBias` and runs in its flash/efficient kernels without building
anything; a single-token decode step needs no mask at all. `LongContextCache` does exactly that and
falls back to the stock mask whenever a row is padded, so results are unchanged.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.nn.attention.bias import causal_lower_right

from m1bench.model.cache import InferenceCache


class LongContextCache(InferenceCache):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.padded = False

    def begin(self, token_mask: torch.Tensor) -> torch.Tensor:
        self.padded = self.padded or not bool(token_mask.all())
        return super().begin(token_mask)

    def attention_mask(self, T: int):
        if self.padded:
            return super().attention_mask(T)
        start, _ = self._chunk
        if T == 1:
            return None  # one new query sees every cached key
        return causal_lower_right(T, start + T)


class ChunkedEncoder:
    """A ChatTokenizer whose `encode` works message by message. `tokenizers` keeps a full Encoding
    (ids, offsets, token strings, masks: ~200 bytes a token) while it encodes one text, ~220 MiB
    for a 1M-token prompt; special tokens split the text before anything else runs, so encoding
    the pieces between them gives the same ids at a fraction of the peak memory."""

    def __init__(self, tokenizer: Any, marker: str = "<beginning_of_sentence>"):
        self._tokenizer, self.marker = tokenizer, marker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        start = 0
        while start < len(text):
            end = text.find(self.marker, start + 1)
            end = len(text) if end < 0 else end
            ids.extend(self._tokenizer.encode(text[start:end]))
            start = end
        return ids


def enable_long_context(model: Any) -> Any:
    """Make `model.new_cache` (used by generate) hand out LongContextCaches."""

    def new_cache(batch_size: int, capacity: int = 256) -> LongContextCache:
        return LongContextCache(model.config, batch_size, model.dtype, model.device, capacity)

    model.new_cache = new_cache
    return model


def long_context_client(checkpoint: str, dtype: str = "bfloat16", device: str = "cuda") -> Any:
    """An EngineClient for long prompts: one request per batch (no padding), LongContextCache."""
    from m1bench.harness.engine_client import EngineClient

    client = EngineClient.from_checkpoint(checkpoint, dtype=dtype, device=device, batch_size=1)
    enable_long_context(client.model)
    client.tokenizer = ChunkedEncoder(client.tokenizer)
    client.info["cache"] = "LongContextCache (flash/efficient SDPA causal bias, no materialised mask)"
    client.info["prompt_encoding"] = "message by message (same ids, bounded tokenizer memory)"
    return client
