"""Inference state. `InferenceCache`: one batch's fp32 (H, d, d) state of every lightning layer and KV
cache of every softmax layer, plus which cached positions are real tokens (left padding) and their
positions; what a forward (prefill, training, the reference decode loop) reads and extends.
`DecodePool`: the same state for many sequences in fixed slots, what the decode step runs on."""
from typing import NamedTuple

import torch
from torch.nn.attention.bias import causal_lower_right

from m1bench.model.config import M1Config


class InferenceCache:
    def __init__(self, config: M1Config, batch_size: int, dtype: torch.dtype, device, capacity: int = 256):
        H, d = config.num_attention_heads, config.head_dim
        state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        self.states = {l: torch.zeros(batch_size, H, d, d, dtype=state_dtype, device=device)
                       for l in config.lightning_layers}
        kv_shape = (batch_size, capacity, config.num_key_value_heads, d)
        self.keys = {l: torch.empty(kv_shape, dtype=dtype, device=device) for l in config.softmax_layers}
        self.values = {l: torch.empty(kv_shape, dtype=dtype, device=device) for l in config.softmax_layers}
        self.real = torch.zeros(batch_size, capacity, dtype=torch.bool, device=device)  # real token, not pad
        self.length = 0  # positions fed so far (pads included); the same for every row
        self.padded = False  # any pad so far? Without pads the causal mask needs no tensor at all
        self.num_real = torch.zeros(batch_size, dtype=torch.long, device=device)

    @property
    def batch_size(self) -> int:
        return self.num_real.shape[0]

    def begin(self, token_mask: torch.Tensor) -> torch.Tensor:
        """Register the next chunk's token mask [B, T]; returns each token's RoPE position [B, T]."""
        T = token_mask.shape[1]
        self.padded = self.padded or not bool(token_mask.all())
        self._reserve(self.length + T)
        self.real[:, self.length:self.length + T] = token_mask
        positions = self.num_real[:, None] + token_mask.long().cumsum(1) - 1
        self.num_real += token_mask.long().sum(1)
        self._chunk = (self.length, T)
        self.length += T
        return positions.clamp(min=0)

    def _reserve(self, n: int):
        capacity = self.real.shape[1]
        if n <= capacity:
            return
        new = max(n, 2 * capacity)
        grow = lambda t: torch.cat([t, t.new_empty(t.shape[0], new - capacity, *t.shape[2:])], dim=1)
        self.keys = {l: grow(t) for l, t in self.keys.items()}
        self.values = {l: grow(t) for l, t in self.values.items()}
        self.real = torch.cat([self.real, self.real.new_zeros(self.real.shape[0], new - capacity)], dim=1)

    def append_kv(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        start, T = self._chunk
        self.keys[layer][:, start:start + T] = k
        self.values[layer][:, start:start + T] = v
        return self.keys[layer][:, :start + T], self.values[layer][:, :start + T]

    def attention_mask(self, T: int):
        """Mask for SDPA over the S = length fed so far. Unpadded: nothing for one query, else a lazy
        causal bias aligned to the last key (flash/efficient kernels, no [T, S] tensor, so 1M-token
        contexts fit). Padded: a [B, 1, T, S] boolean mask, causal and never attending to pads."""
        start, _ = self._chunk
        S = start + T
        if not self.padded:
            return None if T == 1 else causal_lower_right(T, S)
        q_pos = torch.arange(start, S, device=self.real.device)[:, None]
        k_pos = torch.arange(S, device=self.real.device)[None, :]
        mask = (k_pos <= q_pos)[None] & self.real[:, None, :S]
        # A pad query attends to nothing, which would give NaN; let it see itself (its output is ignored).
        return (mask | (k_pos == q_pos)[None])[:, None]


class DecodePool:
    """Preallocated state of up to `num_slots` sequences for the decode step: per softmax layer a KV
    cache [slots + 1, capacity, kv_heads, d], per lightning layer an fp32 state [slots + 1, H, d, d],
    and each slot's length on the device (what the decode step reads; `host_lengths` mirrors it for
    capacity checks without a sync). A sequence keeps its slot while it runs; no row ever moves, so
    a CUDA graph captured over these buffers stays valid. The last slot (`scratch`) takes the
    padding rows of a graph's batch bucket; its length is reset every step."""

    def __init__(self, config: M1Config, num_slots: int, capacity: int, dtype: torch.dtype, device):
        H, d = config.num_attention_heads, config.head_dim
        rows = num_slots + 1
        self.config, self.dtype, self.device = config, dtype, device
        state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        self.num_slots, self.capacity, self.scratch = num_slots, capacity, num_slots
        self.states = {l: torch.zeros(rows, H, d, d, dtype=state_dtype, device=device) for l in config.lightning_layers}
        kv_shape = (rows, capacity, config.num_key_value_heads, d)
        # Zeros, not empty: masked attention over a row's unused tail multiplies its values by zero
        # weights, and 0 * NaN from never-written memory would be NaN.
        self.keys = {l: torch.zeros(kv_shape, dtype=dtype, device=device) for l in config.softmax_layers}
        self.values = {l: torch.zeros(kv_shape, dtype=dtype, device=device) for l in config.softmax_layers}
        self.lengths = torch.zeros(rows, dtype=torch.int32, device=device)
        self.host_lengths = [0] * num_slots

    def load(self, slot: int, cache: InferenceCache, row: int = 0) -> None:
        """Copy row `row` of a prefilled cache into `slot`: its states and the KV of its real tokens
        (left padding dropped)."""
        n = int(cache.num_real[row])
        if n > self.capacity:
            raise ValueError(f"a sequence of {n} tokens does not fit a decode pool of capacity {self.capacity}")
        start = cache.length - n
        for l, t in self.states.items():
            t[slot].copy_(cache.states[l][row])
        for l in self.keys:
            self.keys[l][slot, :n] = cache.keys[l][row, start:cache.length]
            self.values[l][slot, :n] = cache.values[l][row, start:cache.length]
        self.lengths[slot] = n
        self.host_lengths[slot] = n

    def copy_slot(self, src: int, dst: int) -> None:
        """Give slot `dst` the sequence held in `src` (a request's n samples share one prefill)."""
        n = self.host_lengths[src]
        for t in self.states.values():
            t[dst].copy_(t[src])
        for t in (*self.keys.values(), *self.values.values()):
            t[dst, :n] = t[src, :n]
        self.lengths[dst] = n
        self.host_lengths[dst] = n

    def resized(self, capacity: int) -> "DecodePool":
        """A pool of the same slots holding `capacity` tokens each, every sequence copied over."""
        new = DecodePool(self.config, self.num_slots, capacity, self.dtype, self.device)
        if max(self.host_lengths, default=0) > capacity:
            raise ValueError(f"a running sequence holds {max(self.host_lengths)} tokens, more than capacity {capacity}")
        n = min(capacity, self.capacity)
        for l, t in self.states.items():
            new.states[l].copy_(t)
        for old, grown in ((self.keys, new.keys), (self.values, new.values)):
            for l, t in old.items():
                grown[l][:, :n] = t[:, :n]
        new.lengths.copy_(self.lengths)
        new.host_lengths = list(self.host_lengths)
        return new

    def rows(self, slots: torch.Tensor) -> "StepRows":
        """The rows of a decode step over `slots` [B]: where each new token goes and how many keys
        each row has with it. Device ops only (inside the CUDA graph)."""
        positions = self.lengths[slots]
        return StepRows(slots, positions, positions + 1)

    def advance(self, rows: "StepRows") -> None:
        """After the step over `rows` wrote each row's token: their lengths grow by one. Device ops only."""
        self.lengths.index_put_((rows.slots,), rows.lengths)
        self.lengths[self.scratch:].zero_()  # a kernel, not a host-to-device copy of a 0 (capture forbids it)


class StepRows(NamedTuple):
    slots: torch.Tensor  # [B] pool slot of each row
    positions: torch.Tensor  # [B] int32: the new token's position (the row's length before it)
    lengths: torch.Tensor  # [B] int32: positions + 1, the keys each row attends to
