"""The client interface: anything that turns a `Request` into a `Completion`. The implementations
live in m1bench.harness.clients (`make_client` picks one from a run's `[model]` table)."""
from __future__ import annotations

from typing import Any, Protocol

from m1bench.harness.core.types import Completion, Request


class RequestError(Exception):
    """A request that produced no completion. `kind` is one of: timeout, connection (no answer
    began), truncated (a stream cut short), malformed (chunks that are not OpenAI's), server (5xx or
    an error event), rate_limit (429), client (a 4xx the server will not change its mind about),
    unavailable (every endpoint's circuit breaker is open), engine (the in-process engine failed)."""

    def __init__(self, kind: str, message: str, attempts: int = 1):
        super().__init__(f"{kind}: {message}")
        self.kind, self.message, self.attempts = kind, message, attempts


class Client(Protocol):
    """Clients of remote endpoints also have `status() -> str` (one line for a progress display:
    retries, endpoints down) and `async probe() -> list[dict]` (what each endpoint serves, checked
    before the first request); the runner uses them where they exist."""
    model_id: str  # identity of the model answering; part of every request hash

    def describe(self) -> dict[str, Any]:
        """Engine/server facts for the results (what makes a run comparable)."""

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...

