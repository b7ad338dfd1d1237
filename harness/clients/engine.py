"""In-process client over the reference engine (harness/engine: continuous batching, the same
engine the embedded server runs). Each request joins the running batch as soon as it has a free
row; its text arrives as it is generated, so the completion has the time to first token and
per-token arrival times. `batch_size` is the engine's number of rows.
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
    def __init__(self, engine: Any, model_id: str, info: dict[str, Any] | None = None, routing_stats: bool = False):
        self.engine = engine
        self.routing_stats = routing_stats  # per-request expert-routing summaries in the completions
        self.model_id = model_id
        self.info = info or {}

    @classmethod
    def from_checkpoint(cls, checkpoint: str, dtype: str = "float32", device: str = "cpu",
                        batch_size: int = 8, routing_stats: bool = False) -> "EngineClient":
        import torch

        from m1bench.harness.engine.batching import Engine
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
        fp = checkpoint_hash(path)
        return cls(Engine(model, load_tokenizer(path), max_batch_size=batch_size),
                   model_id=f"reference:{fp.removeprefix('sha256:')[:16]}",
                   info={"engine": "reference", "checkpoint": str(path), "checkpoint_hash": fp,
                         "dtype": dtype, "device": device, "batch_size": batch_size,
                         "routing_stats": routing_stats, "torch": torch.__version__},
                   routing_stats=routing_stats)

    def describe(self) -> dict[str, Any]:
        return {"engine": "reference", "model_id": self.model_id, **self.info}

    async def complete(self, request: Request) -> Completion:
        from m1bench.model.generate import SamplingParams

        t0 = time.perf_counter()
        tok = self.engine.tokenizer
        prompt_ids = tok.encode(tok.render_chat(list(request.messages), tools=list(request.tools) if request.tools else None,
                                                add_generation_prompt=True))
        s = request.sampling
        params = SamplingParams(max_new_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                                seed=s.seed, stop=tuple(s.stop))
        try:
            handle, events = self.engine.submit_async(prompt_ids, [params], self.routing_stats)
        except ValueError as e:  # a request the engine refuses (an empty prompt)
            raise RequestError("client", str(e)) from None
        pieces, times = [], []
        try:
            while True:
                event = await events.get()
                elapsed = time.perf_counter() - t0
                if event.text:
                    pieces.append(event.text)
                    times.append(elapsed)
                if event.finish_reason:
                    break
        finally:
            handle.cancelled.set()  # no-op once finished; frees the row of a cancelled request
        if event.finish_reason.startswith("error:"):
            raise RequestError("engine", event.finish_reason.removeprefix("error:").strip())
        try:
            parsed = parse_output("".join(pieces))
            finish = "tool_calls" if parsed.tool_calls and event.finish_reason == "stop" else event.finish_reason
            return Completion(text=parsed.content, reasoning=parsed.reasoning, tool_calls=parsed.tool_calls,
                              finish_reason=finish, prompt_tokens=len(prompt_ids),
                              completion_tokens=event.completion_tokens, ttft_s=times[0] if times else elapsed,
                              total_s=elapsed, token_times=times,
                              routing=handle.routing.summary() if handle.routing is not None else None)
        except Exception as e:  # a result that does not convert is this request's error, not the run's
            raise RequestError("engine", f"{type(e).__name__}: {e}") from None

    async def aclose(self) -> None:
        await asyncio.to_thread(self.engine.shutdown)
