"""In-process client over m1bench's reference engine (model/generate.py).

Requests arriving concurrently are gathered into batches (up to `batch_size`) and generated
together in a worker thread, so the event loop keeps serving progress and grading meanwhile.
The engine reports prefill and decode time per batch, not per token: the completion gets time to
first token (queue wait + prefill) and total time, and no per-token times.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from m1bench.harness.core.client import RequestError
from m1bench.harness.core.m1_output import parse_output
from m1bench.harness.core.types import Completion, Request


class EngineClient:
    def __init__(self, model: Any, tokenizer: Any, model_id: str, batch_size: int = 8,
                 info: dict[str, Any] | None = None, routing_stats: bool = False):
        self.model, self.tokenizer = model, tokenizer
        self.routing_stats = routing_stats  # per-request expert-routing summaries in the completions
        self.model_id = model_id
        self.batch_size = batch_size
        self.info = info or {}
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: str, dtype: str = "float32", device: str = "cpu",
                        batch_size: int = 8, routing_stats: bool = False) -> "EngineClient":
        import torch

        from m1bench.model.checkpoint import load_model
        from m1bench.model.identity import checkpoint_hash
        from m1bench.model.tokenizer import load_tokenizer

        if checkpoint == "tiny":
            from m1bench.model.tiny import ensure_tiny

            path = ensure_tiny()
        else:
            path = Path(checkpoint)
            if not path.is_dir():
                raise FileNotFoundError(f"model.checkpoint: no checkpoint directory at {path}")
        model = load_model(path, dtype=getattr(torch, dtype), device=device)
        tokenizer = load_tokenizer(path)
        fp = checkpoint_hash(path)
        return cls(model, tokenizer, model_id=f"reference:{fp.removeprefix('sha256:')[:16]}", batch_size=batch_size,
                   info={"engine": "reference", "checkpoint": str(path), "checkpoint_hash": fp,
                         "dtype": dtype, "device": device, "batch_size": batch_size,
                         "routing_stats": routing_stats, "torch": torch.__version__},
                   routing_stats=routing_stats)

    def describe(self) -> dict[str, Any]:
        return {"engine": "reference", "model_id": self.model_id, **self.info}

    async def complete(self, request: Request) -> Completion:
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._serve())
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((request, fut, time.perf_counter()))
        return await fut

    async def _serve(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(0)  # let requests submitted in the same tick join this batch
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await asyncio.to_thread(self._generate, [r for r, _, _ in batch])
            except Exception as e:  # the engine failed the whole batch: each request errors
                for _, fut, _ in batch:
                    if not fut.done():
                        fut.set_exception(RequestError("engine", f"{type(e).__name__}: {e}"))
                continue
            done = time.perf_counter()
            for (_, fut, t0), (gen, started) in zip(batch, results):
                if fut.done():
                    continue
                try:  # a failure here must reach the caller, never end this worker (every request would hang)
                    fut.set_result(self._to_completion(gen, t0, started, done))
                except Exception as e:
                    fut.set_exception(RequestError("engine", f"{type(e).__name__}: {e}"))

    def _generate(self, requests: list[Request]) -> list[tuple[Any, float]]:
        from m1bench.model.generate import SamplingParams, generate

        prompts = [self.tokenizer.encode(self.tokenizer.render_chat(
            list(r.messages), tools=list(r.tools) if r.tools else None, add_generation_prompt=True))
            for r in requests]
        params = [SamplingParams(max_new_tokens=r.sampling.max_tokens, temperature=r.sampling.temperature,
                                 top_p=r.sampling.top_p, top_k=r.sampling.top_k, seed=r.sampling.seed,
                                 stop=tuple(r.sampling.stop)) for r in requests]
        started = time.perf_counter()
        recorder = self.model.routing_recorder() if self.routing_stats else None
        gens = generate(self.model, self.tokenizer, prompts, params, routing=recorder)
        return [(g, started) for g in gens]

    @staticmethod
    def _to_completion(gen: Any, t0: float, started: float, done: float) -> Completion:
        parsed = parse_output(gen.text)
        reasoning, answer, calls = parsed.reasoning, parsed.content, parsed.tool_calls
        finish = gen.finish_reason
        if calls and finish == "stop":
            finish = "tool_calls"
        return Completion(text=answer, reasoning=reasoning, tool_calls=calls, finish_reason=finish,
                          prompt_tokens=gen.prompt_tokens, completion_tokens=len(gen.token_ids),
                          ttft_s=(started - t0) + gen.prefill_s, total_s=done - t0, routing=gen.routing)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
