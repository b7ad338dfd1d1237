"""Per-batch inference state: the fp32 (H, d, d) state of every lightning layer and the KV cache of
every softmax layer, plus which cached positions are real tokens (left padding) and their positions."""
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

    def select(self, rows: torch.Tensor):
        """Keep only `rows` of the batch (finished sequences leave the batch)."""
        self.states = {l: t[rows] for l, t in self.states.items()}
        self.keys = {l: t[rows] for l, t in self.keys.items()}
        self.values = {l: t[rows] for l, t in self.values.items()}
        self.real, self.num_real = self.real[rows], self.num_real[rows]
