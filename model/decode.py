"""The decode step as generation runs it: `M1ForCausalLM.decode_step` over a `DecodePool`, captured
in one CUDA graph per batch-size bucket on CUDA, called eagerly on CPU (the same ops, so the same
tokens). A batch of B rows replays the graph of the smallest bucket >= B; the rows past B point at
the pool's scratch slot and their outputs are dropped. With routing statistics on, the step runs
eagerly too (the recorder copies the router's choices to the host)."""
from __future__ import annotations

import torch

from m1bench.model.cache import DecodePool
from m1bench.model.m1 import M1ForCausalLM

BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)


class _Graph:
    def __init__(self, model: M1ForCausalLM, pool: DecodePool, bucket: int, mempool):
        device = model.device
        self.bucket, self.scratch = bucket, pool.scratch
        self.inputs = torch.zeros(2, bucket, dtype=torch.long, device=device)  # tokens, slots: one copy a step
        self.inputs[1] = pool.scratch
        self.tokens, self.slots = self.inputs
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up outside the capture: kernels compiled, cuBLAS set up
            for _ in range(2):
                model.decode_step(self.tokens, pool, self.slots)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=mempool):  # every row on the scratch slot while capturing
            self.logits = model.decode_step(self.tokens, pool, self.slots)

    def feed(self, tokens: list[int], slots: list[int]) -> None:
        """The step's rows, padded to the bucket with the scratch slot, in one host-to-device copy."""
        pad = self.bucket - len(tokens)
        self.inputs.copy_(torch.tensor([tokens + [0] * pad, slots + [self.scratch] * pad]), non_blocking=True)


class DecodeRunner:
    def __init__(self, model: M1ForCausalLM, pool: DecodePool, graphs: bool | None = None):
        self.model, self.pool = model, pool
        self.graphs = model.device.type == "cuda" if graphs is None else graphs
        self._captured: dict[int, _Graph] = {}
        self._mempool = torch.cuda.graph_pool_handle() if self.graphs else None

    def step(self, tokens: list[int], slots: list[int], routing=None) -> torch.Tensor:
        """Feed tokens[i] to the sequence in slot slots[i]; logits [B, V] fp32 (on the model's device)."""
        B = len(slots)
        if B != len(tokens):
            raise ValueError(f"{len(tokens)} tokens for {B} slots")
        pool = self.pool
        for s in slots:
            if pool.host_lengths[s] >= pool.capacity:
                raise ValueError(f"slot {s} is full: its sequence reached the decode pool's capacity {pool.capacity}")
            pool.host_lengths[s] += 1
        bucket = next((b for b in BUCKETS if b >= B), None)
        if not self.graphs or routing is not None or bucket is None:
            device = self.model.device
            with self.model.recording_routing(routing):
                return self.model.decode_step(torch.tensor(tokens, device=device), pool,
                                              torch.tensor(slots, device=device))
        g = self._captured.get(bucket)
        if g is None:
            g = self._captured[bucket] = _Graph(self.model, pool, bucket, self._mempool)
        g.feed(tokens, slots)
        g.graph.replay()
        return g.logits[:B]
