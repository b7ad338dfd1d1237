"""The client interface: anything that turns a `Request` into a `Completion`.

Two implementations: `EngineClient` (the in-process reference engine, batching requests) and
`OpenAIClient` (any OpenAI-compatible endpoint: vLLM, m1bench's server, a hosted API).
"""
from __future__ import annotations

from typing import Any, Protocol

from m1bench.harness.core.types import Completion, Request


class RequestError(Exception):
    """A request that produced no completion. `kind` is one of: timeout, connection, server,
    rate_limit, client (a 4xx the server will not change its mind about), engine."""

    def __init__(self, kind: str, message: str, attempts: int = 1):
        super().__init__(f"{kind}: {message}")
        self.kind, self.message, self.attempts = kind, message, attempts


class Client(Protocol):
    model_id: str  # identity of the model answering; part of every request hash

    def describe(self) -> dict[str, Any]:
        """Engine/server facts for the results (what makes a run comparable)."""

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...


def make_client(model_cfg: Any) -> Client:
    """Build the client a validated `[model]` config section asks for."""
    if model_cfg.engine == "reference":
        from m1bench.harness.clients.engine import EngineClient

        return EngineClient.from_checkpoint(
            model_cfg.checkpoint, dtype=model_cfg.dtype, device=model_cfg.device,
            batch_size=model_cfg.batch_size, routing_stats=model_cfg.routing_stats,
        )
    from m1bench.harness.clients.openai_compat import OpenAIClient

    return OpenAIClient(
        endpoints=model_cfg.endpoints, model=model_cfg.name, api_key=model_cfg.api_key(),
        timeout_s=model_cfg.request_timeout_s, max_retries=model_cfg.max_retries,
        backoff_s=model_cfg.backoff_s, cooldown_s=model_cfg.cooldown_s,
    )
