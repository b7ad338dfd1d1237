"""Continuous batching over the reference model: the one in-process engine, behind both the
embedded server and the evaluation's in-process client.

One worker thread owns the model. Each loop iteration it admits waiting requests (prefilling each
into a slot of a decode pool, model/cache.py), then advances every running sequence by one token
with the decode step (model/decode.py: one CUDA graph per batch-size bucket on GPU). Sequences
leave the batch when they finish and free their slot; a request's `n` samples share one prefill
(its slot is copied to n - 1 more). Text leaves through a per-request callback as it is
generated: detokenised incrementally (an incomplete UTF-8 character is held back) and cut at stop
strings (a possible stop-string prefix is held back until it is decided).

Sampling is the reference generator's (`model/generate.sample_token`, one seeded torch.Generator
per sample: sample i of a request with seed s uses seed s + i).
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from m1bench.model.decode import DecodeRunner
from m1bench.model.generate import SamplingParams, prefill, sample_token
from m1bench.model.routing import TOP1_BINS, RoutingRecorder, summarize


@dataclass
class TextEvent:
    index: int  # which of the request's n samples
    text: str = ""
    finish_reason: str | None = None  # set on the sample's last event: "stop" | "length"
    completion_tokens: int = 0


@dataclass
class EngineRequest:
    prompt_ids: list[int]
    params: list[SamplingParams]  # one per sample
    emit: Callable[[TextEvent], None]  # called from the engine thread
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)
    routing: RoutingTotals | None = None  # expert-routing counts, when the client asked for them


@dataclass
class RoutingTotals:
    """A request's expert-routing counts: its prompt once, then every sample's fed tokens."""
    counts: torch.Tensor  # [layers, experts]
    top1: torch.Tensor  # [layers, bins]
    top_k: int

    def add(self, recorder: RoutingRecorder, row: int) -> None:
        self.counts += recorder.counts[row]
        self.top1 += recorder.top1[row]

    def summary(self) -> dict:
        return summarize(self.counts, self.top1, self.top_k)


class IncrementalDetokenizer:
    """Text of a growing token list, released only once it can no longer change."""

    def __init__(self, decode: Callable[[list[int]], str]):
        self.decode, self.ids = decode, []
        self.prefix_offset = self.read_offset = 0

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix = self.decode(self.ids[self.prefix_offset:self.read_offset])
        text = self.decode(self.ids[self.prefix_offset:])
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return text[len(prefix):]
        return ""

    def flush(self) -> str:
        rest = self.decode(self.ids[self.prefix_offset:])[len(self.decode(self.ids[self.prefix_offset:self.read_offset])):]
        self.prefix_offset = self.read_offset = len(self.ids)
        return rest


class _Sample:
    def __init__(self, request: EngineRequest, index: int, decode, seed_offset: int, slot: int):
        self.request, self.index, self.slot = request, index, slot  # slot: its row in the decode pool
        self.params = request.params[index]
        self.generator = torch.Generator(device="cpu")
        if self.params.seed is not None:
            self.generator.manual_seed(self.params.seed + seed_offset)
        else:
            self.generator.seed()
        self.detok = IncrementalDetokenizer(decode)
        self.num_tokens = 0
        self.held = ""  # text withheld: it might be the start of a stop string
        self.done = False

    def _release(self, text: str, final: bool) -> tuple[str, bool]:
        """Apply stop strings to newly decoded text: (text to send, stop string hit)."""
        self.held += text
        stops = [s for s in self.params.stop if s]
        hits = [self.held.find(s) for s in stops if s in self.held]
        if hits:
            out, self.held = self.held[:min(hits)], ""
            return out, True
        if final or not stops:
            out, self.held = self.held, ""
            return out, False
        keep = max((k for s in stops for k in range(1, len(s)) if self.held.endswith(s[:k])), default=0)
        out, self.held = self.held[:len(self.held) - keep], self.held[len(self.held) - keep:]
        return out, False

    def step(self, token_id: int, eos_id: int) -> bool:
        """Consume one sampled token; emit text; return True when the sample is finished."""
        if token_id == eos_id:
            return self._finish(self._release(self.detok.flush(), True)[0], "stop")
        self.num_tokens += 1
        text, stopped = self._release(self.detok.push(token_id), False)
        if stopped:
            return self._finish(text, "stop")
        if self.num_tokens >= self.params.max_new_tokens:
            rest, stopped = self._release(self.detok.flush(), True)
            return self._finish(text + rest, "stop" if stopped else "length")
        if text:
            self.request.emit(TextEvent(self.index, text))
        return False

    def _finish(self, text: str, reason: str) -> bool:
        self.done = True
        self.request.emit(TextEvent(self.index, text, reason, self.num_tokens))
        return True


class Engine:
    """Owns the model on a worker thread; `submit` is thread-safe."""

    def __init__(self, model, tokenizer, max_batch_size: int = 16, capacity: int = 4096):
        self.model, self.tokenizer = model, tokenizer
        self.max_batch_size = max_batch_size
        self.waiting: queue.Queue[EngineRequest] = queue.Queue()
        self.samples: list[_Sample] = []
        self.runner = DecodeRunner(model, model.new_pool(max_batch_size, capacity))
        self.free_slots = list(range(max_batch_size))
        self.next_tokens: list[int] = []
        self.steps = 0
        self.batch_sizes: list[int] = []  # running batch size of each decode step (for /metrics-style facts)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="m1bench-engine", daemon=True)
        self._thread.start()

    def routing_totals(self) -> RoutingTotals:
        c = self.model.config
        return RoutingTotals(torch.zeros(c.num_hidden_layers, c.num_local_experts, dtype=torch.long),
                             torch.zeros(c.num_hidden_layers, TOP1_BINS, dtype=torch.long), c.num_experts_per_tok)

    def _recorder(self, requests: list[EngineRequest], token_mask: torch.Tensor | None) -> RoutingRecorder | None:
        """A recorder for one forward whose rows are `requests` (None when nobody asked: no cost)."""
        if not any(r.routing is not None for r in requests):
            return None
        recorder = self.model.routing_recorder()
        recorder.begin_step(list(range(len(requests))), token_mask)
        return recorder

    def submit_async(self, prompt_ids: list[int], params: list[SamplingParams],
                     routing: bool = False) -> tuple[EngineRequest, "asyncio.Queue[TextEvent]"]:
        """Submit from an event loop: the request and the queue its events arrive on (in that loop)."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[TextEvent] = asyncio.Queue()
        request = EngineRequest(prompt_ids, params, emit=lambda e: loop.call_soon_threadsafe(events.put_nowait, e),
                                routing=self.routing_totals() if routing else None)
        self.submit(request)
        return request, events

    def submit(self, request: EngineRequest) -> None:
        if not request.prompt_ids:
            raise ValueError("the prompt is empty")
        if len(request.params) > self.max_batch_size:
            raise ValueError(f"n={len(request.params)} exceeds the engine's max batch size {self.max_batch_size}")
        self.waiting.put(request)

    def shutdown(self) -> None:
        self._stop.set()
        self.waiting.put(None)  # wake the loop
        self._thread.join(timeout=10)

    # ---- worker thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with torch.inference_mode():
                    self._admit(block=not self.samples)
                    if self.samples:
                        self._decode()
            except Exception as e:  # a model failure ends the running requests, not the server
                for s in self.samples:
                    s.request.emit(TextEvent(s.index, "", f"error: {type(e).__name__}: {e}", s.num_tokens))
                self.free_slots += [s.slot for s in self.samples]
                self.samples, self.next_tokens = [], []

    def _admit(self, block: bool) -> None:
        new: list[EngineRequest] = []
        room = self.max_batch_size - len(self.samples)
        try:
            req = self.waiting.get(timeout=0.5) if block else self.waiting.get_nowait()
            while True:
                if req is not None and not req.cancelled.is_set():
                    if len(req.params) > room:  # no room for all its samples: back of the line
                        self.waiting.put(req)
                        break
                    new.append(req)
                    room -= len(req.params)
                req = self.waiting.get_nowait()
        except queue.Empty:
            pass
        if new:
            try:
                self._prefill(new)
            except Exception as e:  # these requests fail; the running batch goes on
                for r in new:
                    for i in range(len(r.params)):
                        r.emit(TextEvent(i, "", f"error: {type(e).__name__}: {e}"))

    def _prefill(self, requests: list[EngineRequest]) -> None:
        room = max(len(r.prompt_ids) + p.max_new_tokens for r in requests for p in r.params)
        if room > self.runner.pool.capacity:
            self._grow(room)
        samples, tokens = [], []
        for r in requests:
            recorder = self._recorder([r], None)
            slots = [self.free_slots.pop() for _ in r.params]
            logits = prefill(self.model, r.prompt_ids, self.runner.pool, slots[0], recorder).float().cpu()
            if recorder is not None:
                r.routing.add(recorder, 0)
            for j, slot in enumerate(slots):
                if j:
                    self.runner.pool.copy_slot(slots[0], slot)
                s = _Sample(r, j, self.tokenizer.decode, j, slot)
                samples.append(s)
                tokens.append(sample_token(logits, s.params, s.generator))
        first = len(self.samples)
        self.samples += samples
        self.next_tokens += tokens
        self._consume(first)  # the running samples already consumed their current tokens

    def _grow(self, capacity: int) -> None:
        """Room for `capacity` tokens per slot: a larger pool (running sequences copied), new graphs."""
        self.runner = DecodeRunner(self.model, self.runner.pool.resized(max(capacity, 2 * self.runner.pool.capacity)))

    def _decode(self) -> None:
        self.batch_sizes.append(len(self.samples))
        recorder = self._recorder([s.request for s in self.samples], None)
        logits = self.runner.step(self.next_tokens, [s.slot for s in self.samples], recorder).float().cpu()
        for row, s in enumerate(self.samples):
            if recorder is not None and s.request.routing is not None:
                s.request.routing.add(recorder, row)
        self.steps += 1
        self.next_tokens = [sample_token(logits[i], s.params, s.generator) for i, s in enumerate(self.samples)]
        self._consume()

    def _consume(self, first: int = 0) -> None:
        """Hand samples[first:] their new tokens; drop finished and cancelled samples from the batch."""
        eos = self.tokenizer.eos_token_id
        keep = list(range(first)) + [i for i, (s, t) in enumerate(zip(self.samples, self.next_tokens)) if i >= first
                                     and not s.request.cancelled.is_set() and not s.step(t, eos)]
        if len(keep) == len(self.samples):
            return
        kept = set(keep)
        self.free_slots += [s.slot for i, s in enumerate(self.samples) if i not in kept]
        self.samples = [self.samples[i] for i in keep]
        self.next_tokens = [self.next_tokens[i] for i in keep]
